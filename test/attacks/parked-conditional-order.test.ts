// F5: parked conditional orders as instant market orders, and the executor's choice of round in general.
// A conditional order with an always-true trigger (price ≥ $1), parked long ago, used to be a zero-wait market
// order at the latest round, which its owner already knew was stale. The fix: (1) a trigger must rest on the far
// side of the latest price when committed or modified; (2) every order fills at the price of a round the order
// determines, not the executor: the first round published after its commit (market orders), or the first round
// of the current run of rounds meeting the trigger after its commit (conditional orders); (3) a conditional
// order whose run began more than maxAge ago is re-armed and fills at the first round after that moment.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice, chEvents, Fixture } from "../fixture";
import { commitOnly, tryTrade } from "./helpers";
import { fillPriceD18 } from "../clearinghouse/math";
import { PARAM } from "../../scripts/lib/params";

const ZERO = "0x0000000000000000000000000000000000000000";

async function skewScale(f: Fixture) {
  return (await f.riskManager.marketParams(ETH)).skewScaleD18;
}

async function execute(f: Fixture, id: bigint, by = f.keeper) {
  const rc = await (await f.clearingHouse.connect(by).executeOrder(id)).wait();
  const ev = chEvents(f, rc);
  return {
    rearmed: ev.some((e) => e.name === "OrderRearmed"),
    fill: ev.find((e) => e.name === "PositionModified")?.args.fillPriceD18 as bigint | undefined,
    cancel: ev.find((e) => e.name === "OrderCancelled"),
  };
}

describe("attack: parked conditional orders and the executor's choice of price round (F5)", () => {
  it("a resting conditional order with an always-true trigger cannot be used as an instant market order at a known-stale price", async () => {
    const f = await loadFixture(sigmaFixture);
    const [attacker] = f.traders;
    await f.vault.connect(attacker).deposit(attacker.address, usdc(20_000));
    await setPrice(f, ETH, "2000");
    const fee = await f.clearingHouse.minExecutionFee();
    // Long ago: park a buy whose trigger is always met (price ≥ $1), valid for 30 days. Refused: the trigger is
    // already met at the latest price, so it would be a market order at a round its owner knows.
    const expires = (await time.latest()) + 30 * 86_400;
    const c0 = await f.vault.collateralOf(attacker.address);
    await expect(
      f.clearingHouse.connect(attacker).commitConditionalOrder(ETH, d18(100), 2n ** 95n, d18(1), true, false, expires, { value: fee }),
    ).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseTriggerAlreadyMet").withArgs(d18(2000), d18(1));
    // The reproduction's remaining steps: 50 minutes later a heartbeat at 2,000, the attacker sees ~2,009
    // off-chain, Chainlink catches up. With no order parked there is nothing to fire.
    await time.increase(3_000);
    await setPrice(f, ETH, "2000");
    await time.increase(60);
    await setPrice(f, ETH, "2009");
    expect((await f.clearingHouse.position(attacker.address, ETH)).sizeD18).to.equal(0n);
    expect((await f.vault.collateralOf(attacker.address)) - c0).to.equal(0n);
    // modifyOrder applies the same rule: a resting order cannot be turned into an always-true one.
    const id = await (async () => {
      const tx = await f.clearingHouse.connect(attacker).commitConditionalOrder(ETH, d18(100), 2n ** 95n, d18(2100), true, false, expires, { value: fee });
      return chEvents(f, await tx.wait()).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
    })();
    await expect(f.clearingHouse.connect(attacker).modifyOrder(id, d18(100), 2n ** 95n, d18(1), expires))
      .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseTriggerAlreadyMet")
      .withArgs(d18(2009), d18(1));
  });

  it("a far-side trigger crossed long ago cannot be fired at the latest (known-stale) round: it is re-armed and fills at the next round", async () => {
    const f = await loadFixture(sigmaFixture);
    const [attacker] = f.traders;
    await f.vault.connect(attacker).deposit(attacker.address, usdc(20_000));
    await setPrice(f, ETH, "1990");
    const fee = await f.clearingHouse.minExecutionFee();
    const expires = (await time.latest()) + 30 * 86_400;
    // Buy when ETH ≥ 1,995: on the far side of the market when committed.
    const tx = await f.clearingHouse.connect(attacker).commitConditionalOrder(ETH, d18(100), 2n ** 95n, d18(1995), true, false, expires, { value: fee });
    const id = chEvents(f, await tx.wait()).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
    await time.increase(60);
    await setPrice(f, ETH, "2000"); // the crossing round: keepers would fill here
    await time.increase(3_000);
    await setPrice(f, ETH, "2000"); // a heartbeat, 50 minutes later: the run began long before maxAge
    const c0 = await f.vault.collateralOf(attacker.address);
    const eth0 = await f.clearingHouse.claimableEth(attacker.address);
    // The attacker sees ~2,009 off-chain and fires at once: re-armed, not filled, no fee paid.
    const r = await execute(f, id, attacker);
    expect(r.rearmed).to.equal(true);
    expect(r.fill).to.equal(undefined);
    const o = await f.clearingHouse.order(id);
    expect(o.account).to.equal(attacker.address);
    expect(o.commitTime).to.equal(await time.latest());
    expect(await f.clearingHouse.claimableEth(attacker.address)).to.equal(eth0);
    // Until a round after the re-arm it waits (the latest round is the one the attacker knows).
    await time.increase(10);
    await expect(f.clearingHouse.connect(attacker).executeOrder(id)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAwaitingPriceRound");
    await time.increase(50);
    await setPrice(f, ETH, "2009");
    const s = await execute(f, id);
    expect(s.fill).to.equal(fillPriceD18(d18(2009), 0n, d18(100), await skewScale(f)));
    // Round trip at 2,009: fees and premium, no profit.
    expect((await tryTrade(f, attacker, ETH, -d18(100))).filled).to.equal(true);
    const profit = (await f.vault.collateralOf(attacker.address)) - c0;
    expect(profit < 0n, `a parked conditional order earned ${profit} token units on a known-stale price`).to.equal(true);
  });

  it("a market order fills at the first round after its commit, whoever executes it and whenever", async () => {
    const f = await loadFixture(sigmaFixture);
    const [attacker] = f.traders;
    await f.vault.connect(attacker).deposit(attacker.address, usdc(20_000));
    await setPrice(f, ETH, "2000");
    const id = await commitOnly(f, attacker, ETH, d18(10));
    await time.increase(5);
    await setPrice(f, ETH, "2010"); // the first round after the commit
    await time.increase(60);
    await setPrice(f, ETH, "2030"); // a later round the executor might prefer (or avoid)
    await time.increase(60);
    const r = await execute(f, id, attacker);
    expect(r.fill).to.equal(fillPriceD18(d18(2010), 0n, d18(10), await skewScale(f)));
  });

  it("a conditional order fills at the first round of the current run of rounds meeting its trigger", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(20_000));
    await setPrice(f, ETH, "2000");
    const fee = await f.clearingHouse.minExecutionFee();
    const expires = (await time.latest()) + 86_400;
    // Limit buy at ≤ 1,990.
    const tx = await f.clearingHouse.connect(t).commitConditionalOrder(ETH, d18(5), 2n ** 95n, d18(1990), false, false, expires, { value: fee });
    const id = chEvents(f, await tx.wait()).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
    await time.increase(10);
    await setPrice(f, ETH, "1985"); // a first run…
    await time.increase(10);
    await setPrice(f, ETH, "1995"); // …ended
    await time.increase(10);
    await setPrice(f, ETH, "1988"); // the current run starts here
    await time.increase(10);
    await setPrice(f, ETH, "1970");
    await time.increase(10);
    await setPrice(f, ETH, "1980");
    await time.increase(30);
    const r = await execute(f, id);
    expect(r.fill).to.equal(fillPriceD18(d18(1988), 0n, d18(5), await skewScale(f)));
  });

  it("the walk is bounded: 17 rounds after a market order's commit it cannot fill (it expires); a conditional order is re-armed", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(20_000));
    await setPrice(f, ETH, "2000");
    const fee = await f.clearingHouse.minExecutionFee();
    const id = await commitOnly(f, t, ETH, d18(1));
    const tx = await f.clearingHouse.connect(t).commitConditionalOrder(ETH, d18(1), 2n ** 95n, d18(2001), true, false, (await time.latest()) + 86_400, { value: fee });
    const cid = chEvents(f, await tx.wait()).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
    for (let i = 0; i < 17; i++) await setPrice(f, ETH, String(2002 + i));
    await expect(f.clearingHouse.executeOrder(id)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseFillRoundUnknown").withArgs(id);
    expect((await execute(f, cid)).rearmed).to.equal(true);
    await time.increase(Number(await f.clearingHouse.maxAge()));
    await f.clearingHouse.cancelOrder(id); // expired: refunded
    expect((await f.clearingHouse.order(id)).account).to.equal(ZERO);
    await setPrice(f, ETH, "2020");
    expect((await execute(f, cid)).fill).to.equal(fillPriceD18(d18(2020), 0n, d18(1), await skewScale(f)));
  });

  it("an outlier round used as the fill round of a risk-increasing order trips the jump breaker, even when the latest round is clean", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(20_000));
    await setPrice(f, ETH, "2000");
    const id = await commitOnly(f, t, ETH, -d18(1));
    await time.increase(5);
    await setPrice(f, ETH, "19999.9"); // outlier: the first round after the commit
    await setPrice(f, ETH, "2000"); // clean again
    const r = await execute(f, id);
    expect(r.fill).to.equal(undefined);
    expect(r.cancel).to.not.equal(undefined);
    const reason = f.clearingHouse.interface.parseError(r.cancel!.args.reason)!;
    expect(reason.name).to.equal("ClearingHouseMarketReduceOnly");
  });

  it("the jump test of a fill round uses the market's PriceJumpBreaker: a 15% round is reduce-only at a 10% bound and fills at a 20% bound", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(20_000));
    const run = async () => {
      await setPrice(f, ETH, "2000");
      const id = await commitOnly(f, t, ETH, d18(1));
      await time.increase(5);
      await setPrice(f, ETH, "2300"); // +15%: the first round after the commit
      await setPrice(f, ETH, "2000"); // the latest round is clean
      return execute(f, id);
    };
    const a = await run();
    expect(a.fill).to.equal(undefined);
    expect(f.clearingHouse.interface.parseError(a.cancel!.args.reason)!.name).to.equal("ClearingHouseMarketReduceOnly");
    await f.riskManager.setMarketParam(ETH, PARAM.PriceJumpBreaker, d18("0.2"));
    const b = await run();
    expect(b.fill).to.equal(fillPriceD18(d18(2300), 0n, d18(1), await skewScale(f)));
  });
});
