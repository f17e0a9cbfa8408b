// Synthetix sKRW (2019): one oracle published a price 1000× off and a bot traded against it. LUNA (2022):
// feeds froze / sat at a floor while the market kept falling. Sigma: a round that moves more than
// PriceJumpBreaker trips reduce-only until a clean round; a frozen answer turns reduce-only after
// LiquidationPriceMaxAge and unpriceable (orders wait, liquidations stop) after PriceMaxAge.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { tryTrade, commitOnly, errorName } from "./helpers";
import { chEvents } from "../fixture";

const BREAKER_PRICE_JUMP = 16n;
const BREAKER_PRICE_STALE = 32n;

describe("attack: outlier and frozen oracle answers (Synthetix sKRW, LUNA)", () => {
  it("a 10× outlier round trips the price-jump breaker: opening is refused, reducing works, the next clean round clears it", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(10_000));
    await f.vault.connect(bob).deposit(bob.address, usdc(10_000));
    expect((await tryTrade(f, alice, ETH, d18(4))).filled).to.equal(true);

    await setPrice(f, ETH, "20000");
    await f.riskManager.pokeVolatility(ETH);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER_PRICE_JUMP).to.equal(BREAKER_PRICE_JUMP);
    const open = await tryTrade(f, bob, ETH, -d18(1));
    expect(open.filled).to.equal(false);
    expect(open.reason).to.equal("ClearingHouseMarketReduceOnly");

    // Back to the real price: a −90% round is itself a jump; the breaker clears only at a clean round.
    await setPrice(f, ETH, "2000");
    await f.riskManager.pokeVolatility(ETH);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER_PRICE_JUMP).to.equal(BREAKER_PRICE_JUMP);
    expect((await tryTrade(f, alice, ETH, -d18(1))).filled, "reducing works under the breaker").to.equal(true);
    await setPrice(f, ETH, "2001");
    await f.riskManager.pokeVolatility(ETH);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER_PRICE_JUMP).to.equal(0n);
    expect((await tryTrade(f, bob, ETH, -d18(1))).filled, "opening resumes").to.equal(true);
  });

  it("an order executed right after an outlier round, before any poke, cannot open at the outlier price", async () => {
    const f = await loadFixture(sigmaFixture);
    const [, bob] = f.traders;
    await f.vault.connect(bob).deposit(bob.address, usdc(10_000));
    const id = await commitOnly(f, bob, ETH, -d18(1));
    await time.increase(5);
    await setPrice(f, ETH, "20000"); // the outlier is on chain; nobody has poked yet
    const rc = await (await f.clearingHouse.connect(f.keeper).executeOrder(id)).wait();
    const ev = chEvents(f, rc);
    const cancelled = ev.find((e) => e.name === "OrderCancelled");
    // Correct behaviour: the jump is detected at read time (latest round vs the last folded one) and the market
    // is reduce-only, or the order waits for a poke. Opening a short at 10× the real price must be impossible.
    expect((await f.clearingHouse.position(bob.address, ETH)).sizeD18, "no short opened at the outlier price").to.equal(0n);
    expect(cancelled && errorName(f, cancelled.args.reason)).to.equal("ClearingHouseMarketReduceOnly");
  });

  it("a frozen answer becomes stale: no order fills on it, reduce-only after LiquidationPriceMaxAge, nothing priced after PriceMaxAge, resumes on a fresh round", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(10_000));
    await f.vault.connect(bob).deposit(bob.address, usdc(10_000));
    expect((await tryTrade(f, alice, ETH, d18(4))).filled).to.equal(true);
    const p = await f.riskManager.marketParams(ETH);
    await f.riskManager.pokeVolatility(ETH);
    const hasFreshness = f.clearingHouse.interface.fragments.some((x: any) => x.type === "error" && x.name === "ClearingHouseAwaitingPriceRound");

    // The feed stops updating (frozen round). Orders committed now never fill at the frozen answer.
    const [, , , updatedAt] = await f.priceFeeds[ETH].latestRoundData();
    await time.increaseTo(Number(updatedAt + p.liquidationPriceMaxAge) + 1);
    const open = await commitOnly(f, bob, ETH, d18(1));
    await time.increase(5);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER_PRICE_STALE, "reduce-only").to.equal(BREAKER_PRICE_STALE);
    if (hasFreshness) {
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(open), "waits for a round after its commit").to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAwaitingPriceRound");
    } else {
      const rc = await (await f.clearingHouse.connect(f.keeper).executeOrder(open)).wait();
      const c = chEvents(f, rc).find((e) => e.name === "OrderCancelled");
      expect(c && errorName(f, c.args.reason), "opening blocked on a frozen price").to.equal("ClearingHouseMarketReduceOnly");
    }
    expect((await f.clearingHouse.position(bob.address, ETH)).sizeD18, "nothing opened on the frozen answer").to.equal(0n);
    await expect(f.clearingHouse.liquidate(alice.address), "liquidations need a fresher price").to.be.revertedWithCustomError(f.riskManager, "OracleStale");

    // Beyond PriceMaxAge nothing is priced: execution reverts and the order stays.
    const reduce = await commitOnly(f, alice, ETH, -d18(1));
    await time.increaseTo(Number(updatedAt + p.priceMaxAge) + 1);
    await expect(f.clearingHouse.connect(f.keeper).executeOrder(reduce)).to.be.revertedWithCustomError(f.riskManager, "OracleStale");
    expect((await f.clearingHouse.order(reduce)).account).to.equal(alice.address);
    await expect(f.vault.connect(alice).withdraw(1, alice.address), "no withdrawal against an unpriceable position").to.be.reverted;

    // A fresh round resumes everything; the waiting reduce order executes at the fresh price.
    await setPrice(f, ETH, "1990");
    await f.riskManager.pokeVolatility(ETH);
    const rc = await (await f.clearingHouse.connect(f.keeper).executeOrder(reduce)).wait();
    expect(chEvents(f, rc).some((e) => e.name === "OrderExecuted")).to.equal(true);
    expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(d18(3));
  });
});
