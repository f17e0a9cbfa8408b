import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, Fixture, setPrice, setVol, chEvents } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import {
  Model,
  DAY,
  depositBoth,
  fillAndCheck,
  expectChainMatchesModel,
  latestTs,
  mulSigned,
  fundingIndexDeltaD18,
  tsOf,
} from "./math";

async function setup() {
  const f = await loadFixture(sigmaFixture);
  const model = await Model.load(f);
  const [alice, bob] = f.traders;
  await depositBoth(f, model, alice, usdc(20_000));
  await depositBoth(f, model, bob, usdc(20_000));
  return { f, model, alice, bob };
}

/** Refreshes ETH's feeds just before `ts` and accrues ETH funding exactly at `ts`. */
async function accrueAt(f: Fixture, model: Model, ts: bigint) {
  await time.setNextBlockTimestamp(Number(ts - 10n));
  await setPrice(f, ETH, "2000");
  await setVol(f, ETH, "50"); // a few blocks, a second apart
  await time.setNextBlockTimestamp(Number(ts));
  const rc = await (await f.clearingHouse.accrueFunding(ETH)).wait();
  expect(await tsOf(rc)).to.equal(ts);
  model.accrue(ETH, ts);
  return rc;
}

describe("ClearingHouse funding", () => {
  it("fundingRatePerDayD18 is clamp(skew/skewScale, ±1) · maxFundingRate: +20 ETH of skew on S = 100,000 → 0.0006% a day", async () => {
    const { f, model, alice } = await setup();
    expect(await f.lens.fundingRatePerDayD18(ETH)).to.equal(0n);
    await fillAndCheck(f, model, alice, ETH, d18(20));
    expect(await f.lens.fundingRatePerDayD18(ETH)).to.equal(d18("0.000006")); // 20/100000 · 3%
    // With a skew beyond the skew scale the rate is clamped at the maximum.
    await f.riskManager.setMarketParam(ETH, PARAM.SkewScale, d18(10));
    expect(await f.lens.fundingRatePerDayD18(ETH)).to.equal(d18("0.03"));
    await f.riskManager.setMarketParam(ETH, PARAM.SkewScale, d18(40));
    expect(await f.lens.fundingRatePerDayD18(ETH)).to.equal(d18("0.015"));
  });

  it("over exactly one day with +20 ETH of skew at $2,000 the index rises by $0.012 per ETH and the long owes $0.24", async () => {
    const { f, model, alice } = await setup();
    const open = await fillAndCheck(f, model, alice, ETH, d18(20));
    expect(open.price).to.equal(d18("2000.2"));
    const t0 = open.now;
    expect((await f.clearingHouse.marketState(ETH)).lastFundingTime).to.equal(t0);
    const rc = await accrueAt(f, model, t0 + DAY);

    // |skew|/S · rate · price · 1 day = 0.0002 · 0.03 · 2000
    expect(fundingIndexDeltaD18(d18(20), d18(100000), d18("0.03"), d18(2000), DAY)).to.equal(d18("0.012"));
    const st = await f.clearingHouse.marketState(ETH);
    expect([st.fundingIndexD18, st.lastFundingTime]).to.deep.equal([d18("0.012"), t0 + DAY]);
    const ev = chEvents(f, rc).find((e) => e.name === "FundingAccrued")!;
    expect([...ev.args]).to.deep.equal([BigInt(ETH), d18("0.012"), d18(20), d18(2000)]);

    // PnL = 20 · 2000 − 20 · 0.012 − 40004 (cost basis at 2000.2): −$4 of premium, −$0.24 of funding.
    const s = await f.clearingHouse.accountSummary(alice.address);
    expect(s.unrealizedPnlD18).to.equal(d18("-4.24"));
    // The pool is the counterparty: traders' aggregate PnL carries the same funding.
    expect(await f.clearingHouse.tradersUnrealizedPnlD18()).to.equal(d18("-4.24"));
    expect(await f.pool.navD18()).to.equal((await f.vault.poolBalance()) * 10n ** 12n + d18("4.24"));
    await expectChainMatchesModel(f, model, [alice.address]);
  });

  it("longs pay shorts when skew > 0, and the pool takes the imbalance", async () => {
    const { f, model, alice, bob } = await setup();
    await fillAndCheck(f, model, alice, ETH, d18(30));
    const b = await fillAndCheck(f, model, bob, ETH, -d18(10)); // skew +20
    const i1 = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    expect(i1).to.equal(model.markets[ETH].index);
    expect(i1 > 0n).to.equal(true); // 30 ETH of skew between the two fills already cost the long
    const a0 = (await f.clearingHouse.accountSummary(alice.address)).unrealizedPnlD18;
    const b0 = (await f.clearingHouse.accountSummary(bob.address)).unrealizedPnlD18;
    const t0 = await f.clearingHouse.tradersUnrealizedPnlD18();
    const nav0 = await f.pool.navD18();

    await accrueAt(f, model, b.now + DAY);
    const i2 = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    expect(i2 - i1).to.equal(d18("0.012"));

    const da = (await f.clearingHouse.accountSummary(alice.address)).unrealizedPnlD18 - a0;
    const db = (await f.clearingHouse.accountSummary(bob.address)).unrealizedPnlD18 - b0;
    // The long pays 30 · 0.012, the short receives 10 · 0.012 (each rounded against the trader).
    expect(da).to.equal(-(mulSigned(d18(30), i2, true) - mulSigned(d18(30), i1, true)));
    expect(db).to.equal(-(mulSigned(-d18(10), i2, true) - mulSigned(-d18(10), i1, true)));
    expect(da >= -d18("0.36") - 1n && da <= -d18("0.36") + 1n).to.equal(true, `long paid ${da}`);
    expect(db >= d18("0.12") - 1n && db <= d18("0.12") + 1n).to.equal(true, `short received ${db}`);
    // The difference, 20 · 0.012 = $0.24, is the pool's.
    const dt = (await f.clearingHouse.tradersUnrealizedPnlD18()) - t0;
    expect(dt).to.equal(-(mulSigned(d18(20), i2, true) - mulSigned(d18(20), i1, true)));
    expect(dt >= da + db - 2n && dt <= da + db + 2n).to.equal(true);
    expect((await f.pool.navD18()) - nav0).to.equal(-dt);
    await expectChainMatchesModel(f, model, [alice.address, bob.address]);
  });

  it("shorts pay longs when skew < 0", async () => {
    const { f, model, alice, bob } = await setup();
    await fillAndCheck(f, model, alice, ETH, -d18(30));
    const b = await fillAndCheck(f, model, bob, ETH, d18(10)); // skew −20
    const i1 = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    expect(i1 < 0n).to.equal(true);
    const a0 = (await f.clearingHouse.accountSummary(alice.address)).unrealizedPnlD18;
    const b0 = (await f.clearingHouse.accountSummary(bob.address)).unrealizedPnlD18;
    await accrueAt(f, model, b.now + DAY);
    const i2 = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    expect(i2 - i1).to.equal(-d18("0.012"));
    expect(await f.lens.fundingRatePerDayD18(ETH)).to.equal(-d18("0.000006"));
    const da = (await f.clearingHouse.accountSummary(alice.address)).unrealizedPnlD18 - a0;
    const db = (await f.clearingHouse.accountSummary(bob.address)).unrealizedPnlD18 - b0;
    expect(da).to.equal(-(mulSigned(-d18(30), i2, true) - mulSigned(-d18(30), i1, true)));
    expect(db).to.equal(-(mulSigned(d18(10), i2, true) - mulSigned(d18(10), i1, true)));
    expect(da >= -d18("0.36") - 1n && da <= -d18("0.36") + 1n).to.equal(true, `short paid ${da}`);
    expect(db >= d18("0.12") - 1n && db <= d18("0.12") + 1n).to.equal(true, `long received ${db}`);
  });

  it("closing after a day settles the accrued funding in the realized PnL, zero-sum with the pool", async () => {
    const { f, model, alice, bob } = await setup();
    await fillAndCheck(f, model, alice, ETH, d18(30));
    const b = await fillAndCheck(f, model, bob, ETH, -d18(10));
    await time.setNextBlockTimestamp(Number(b.now + DAY - 2n));
    await setPrice(f, ETH, "2000");
    await setVol(f, ETH, "50");
    const basisA = (await f.clearingHouse.position(alice.address, ETH)).costBasisD18;
    const a = await fillAndCheck(f, model, alice, ETH, -d18(30));
    // Realized = 30 · fill − cost basis − 30 · (funding index now): the day of funding is paid on close.
    const fundingA = mulSigned(d18(30), model.markets[ETH].index, true);
    expect(fundingA > d18("0.36")).to.equal(true);
    expect(a.realized).to.equal((d18(30) * a.price) / 10n ** 18n - basisA - fundingA);
    const c = await fillAndCheck(f, model, bob, ETH, d18(10));
    expect(c.realized > 0n).to.equal(true);
    await expectChainMatchesModel(f, model, [alice.address, bob.address]);
    expect(await latestTs()).to.equal(c.now);
  });

  it("no funding accrues while the skew is zero", async () => {
    const { f, model, alice, bob } = await setup();
    await fillAndCheck(f, model, alice, ETH, d18(10));
    const b = await fillAndCheck(f, model, bob, ETH, -d18(10));
    const i1 = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    await accrueAt(f, model, b.now + DAY);
    expect((await f.clearingHouse.marketState(ETH)).fundingIndexD18).to.equal(i1);
    expect(await f.lens.fundingRatePerDayD18(ETH)).to.equal(0n);
  });
});
