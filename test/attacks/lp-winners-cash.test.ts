// F9, found by the stateful fuzzer (seed 31337 run 654; seed 20261123 run 1361): after an extreme move, an LP
// withdrawal took cash a winning trader was owed. NAV counts every trader's unrealized loss in full, but a loser
// pays at most its collateral; a short far under water lifts NAV by a loss that will never be collected, and the
// old rule, min(NAV − reserve, cash), let LPs take the pool's whole cash. The winning long then closed with its
// profit cut to what the pool and insurance fund still held (ProfitHaircut): on the old contracts, the test
// below pays bob −178 USDC (the fee) instead of +359,476 USDC. Fix: the ClearingHouse tracks each side's cost basis, and LPs may take at most
// min(NAV, cash − Σ winning sides' PnL) − reserve.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, WAD, setPrice } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import { tryTrade } from "./helpers";
import { ceilDiv, mulDivSigned } from "../clearinghouse/math";

const SCALE = 10n ** 12n; // 6-decimal collateral

async function shockedBook() {
  const f = await loadFixture(sigmaFixture);
  // Funding off: every funding index stays 0, so PnL is size × price − basis exactly.
  await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
  // 5M USDC of LP cash, so the reserve (50% of OI notional, $1.2M after the move) leaves room to withdraw.
  await f.pool.connect(f.lp).deposit(usdc(4_000_000), f.lp.address);
  const [alice, bob] = f.traders;
  await f.vault.connect(alice).deposit(alice.address, usdc(30_000));
  await f.vault.connect(bob).deposit(bob.address, usdc(30_000));
  expect((await tryTrade(f, alice, ETH, -d18(100))).filled).to.equal(true); // short $200k
  expect((await tryTrade(f, bob, ETH, d18(20))).filled).to.equal(true); // long $40k
  await setPrice(f, ETH, "20000"); // +900%: alice owes ≈ $1.8M on $30k of collateral, bob is up ≈ $360k
  return { f, alice, bob };
}

describe("attack: LP withdrawal of the cash winners are owed after an extreme move (F9)", () => {
  it("the winning side's profit is reported exactly and stays in the pool", async () => {
    const { f, bob } = await shockedBook();
    const pos = await f.clearingHouse.position(bob.address, ETH);
    const price = await f.riskManager.priceD18(ETH);
    const bobPnl = (pos.sizeD18 * price) / WAD - pos.costBasisD18;
    const [pnl, , winners] = await f.clearingHouse.navInputsD18();
    expect(winners).to.equal(bobPnl); // the only long; the shorts' side is a loss and counts 0
    expect(bobPnl).to.be.gt(d18(359_000));

    const cash = await f.vault.poolBalance();
    const nav = (cash * SCALE - pnl) / SCALE;
    const reserved = await f.pool.reservedAssets();
    // The old rule, min(NAV − reserve, cash), let LPs take all of it: alice's uncollectable loss lifted NAV.
    expect(nav - reserved).to.be.gte(cash);
    const free = cash - ceilDiv(winners, SCALE);
    const expected = (nav < free ? nav : free) - reserved;
    expect(expected).to.be.gt(usdc(3_000_000));
    expect(await f.pool.availableAssets()).to.equal(expected);
    expect(await f.pool.maxWithdraw(f.lp.address)).to.equal(expected);
    expect(cash - expected).to.be.gte(ceilDiv(bobPnl, SCALE));
  });

  it("after LPs withdraw all they may, the winner still closes at its full profit", async () => {
    const { f, bob } = await shockedBook();
    const pos = await f.clearingHouse.position(bob.address, ETH);
    const max = await f.pool.maxWithdraw(f.lp.address);
    await f.pool.connect(f.lp).withdraw(max, f.lp.address, f.lp.address);
    // One wei more than maxWithdraw is refused, and nothing moves.
    const cashAfter = await f.vault.poolBalance();
    await expect(f.pool.connect(f.lp).withdraw(1n, f.lp.address, f.lp.address)).to.be.reverted;
    expect(await f.vault.poolBalance()).to.equal(cashAfter);

    const before = await f.vault.collateralOf(bob.address);
    const close = await tryTrade(f, bob, ETH, -pos.sizeD18);
    expect(close.reason, `the winner's close was refused (pool cash ${cashAfter})`).to.equal(undefined);
    expect(close.filled).to.equal(true);
    // Paid its profit at the fill price, less the fee, in whole tokens rounded down.
    const realized = (pos.sizeD18 * close.fillPrice!) / WAD - pos.costBasisD18;
    expect((await f.vault.collateralOf(bob.address)) - before).to.equal(realized / SCALE - ceilDiv(close.fee!, SCALE));
    expect((await f.clearingHouse.position(bob.address, ETH)).sizeD18).to.equal(0n);
  });

  it("once the winner has closed, its cash no longer holds LP withdrawals back", async () => {
    const { f, bob } = await shockedBook();
    const pos = await f.clearingHouse.position(bob.address, ETH);
    const held = await f.pool.availableAssets();
    expect((await tryTrade(f, bob, ETH, -pos.sizeD18)).filled).to.equal(true);
    const [pnl, , winners] = await f.clearingHouse.navInputsD18();
    expect(winners).to.equal(0n); // only alice's losing short is left
    const cash = await f.vault.poolBalance();
    const nav = (cash * SCALE - pnl) / SCALE;
    const reserved = await f.pool.reservedAssets();
    expect(await f.pool.availableAssets()).to.equal((nav < cash ? nav : cash) - reserved);
    // Bob's profit left the pool, but so did the hold on it; the reserve shrank with his open interest.
    expect(await f.pool.availableAssets()).to.be.gte(held);
  });

  it("navInputsD18's winners is Σ over markets and sides of max(side PnL, 0), each side from its own positions, to the wei", async () => {
    const f = await loadFixture(sigmaFixture);
    for (const m of [ETH, BTC]) await f.riskManager.setMarketParam(m, PARAM.MaxFundingRate, 0n);
    const [a, b, c, d] = f.traders;
    for (const t of [a, b, c, d]) await f.vault.connect(t).deposit(t.address, usdc(50_000));
    // ETH: a long 50 at ~2,000, then b long 30 at ~2,200 and c short 40 at ~2,200; price 2,100: the longs are
    // mixed (a up, b down), the short is up. BTC: d short 1 at ~60,000, price 63,000: the shorts' side is down.
    expect((await tryTrade(f, a, ETH, d18(50))).filled).to.equal(true);
    await setPrice(f, ETH, "2200");
    expect((await tryTrade(f, b, ETH, d18(30))).filled).to.equal(true);
    expect((await tryTrade(f, c, ETH, -d18(40))).filled).to.equal(true);
    expect((await tryTrade(f, d, BTC, -d18(1))).filled).to.equal(true);
    await setPrice(f, ETH, "2100");
    await setPrice(f, BTC, "63000");

    const pnl = async (t: typeof a, m: number) => {
      const p = await f.clearingHouse.position(t.address, m);
      const ms = await f.clearingHouse.marketState(m);
      // PnL rounded toward −∞ (MarginMath.pnlD18), funding index included (0 here: funding is off).
      return mulDivSigned(p.sizeD18, await f.riskManager.priceD18(m), WAD, false) - mulDivSigned(p.sizeD18, ms.fundingIndexD18, WAD, true) - p.costBasisD18;
    };
    const ethLongs = (await pnl(a, ETH)) + (await pnl(b, ETH));
    const ethShorts = await pnl(c, ETH);
    const btcShorts = await pnl(d, BTC);
    expect(await pnl(a, ETH)).to.be.gt(0n);
    expect(await pnl(b, ETH)).to.be.lt(0n);
    expect(ethShorts).to.be.gt(0n);
    expect(btcShorts).to.be.lt(0n);
    const pos = (x: bigint) => (x > 0n ? x : 0n);
    const [total, , winners] = await f.clearingHouse.navInputsD18();
    expect(winners).to.equal(pos(ethLongs) + pos(ethShorts) + pos(btcShorts));
    expect(total).to.equal(ethLongs + ethShorts + btcShorts); // every position's PnL, as the pool's NAV uses
    const ms = await f.clearingHouse.marketState(ETH);
    const [pa, pb] = [await f.clearingHouse.position(a.address, ETH), await f.clearingHouse.position(b.address, ETH)];
    expect(ms.longBasisD18).to.equal(pa.costBasisD18 + pb.costBasisD18);
    expect((await f.clearingHouse.marketState(BTC)).longBasisD18).to.equal(0n);

    // Closing half of a's long takes half its basis off the longs' aggregate, exactly as off the position.
    expect((await tryTrade(f, a, ETH, -d18(25))).filled).to.equal(true);
    const pa2 = await f.clearingHouse.position(a.address, ETH);
    expect((await f.clearingHouse.marketState(ETH)).longBasisD18).to.equal(pa2.costBasisD18 + pb.costBasisD18);
    // Flipping c from short to long moves its basis into the longs' aggregate.
    expect((await tryTrade(f, c, ETH, d18(60))).filled).to.equal(true);
    const pc = await f.clearingHouse.position(c.address, ETH);
    expect(pc.sizeD18).to.equal(d18(20));
    expect((await f.clearingHouse.marketState(ETH)).longBasisD18).to.equal(pa2.costBasisD18 + pb.costBasisD18 + pc.costBasisD18);
  });
});
