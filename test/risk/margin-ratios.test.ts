import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { sigmaFixture, trade, setPrice, setVol, usdc, d18, ETH, BTC, Fixture, chEvents } from "../fixture";
import { PARAM } from "../../scripts/lib/params";

// ------------------------------------------------------------------ MarginMath mirror (bigint)
const WAD = 10n ** 18n;
const YEAR = 365n * 86400n;
const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);
const ceilDiv = (a: bigint, b: bigint) => (a === 0n ? 0n : (a - 1n) / b + 1n);
const mulDiv = (a: bigint, b: bigint, d: bigint, up = false) => (up ? ceilDiv(a * b, d) : (a * b) / d);
function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = n;
  let y = (x + 1n) / 2n;
  while (y < x) {
    x = y;
    y = (x + n / x) / 2n;
  }
  return x;
}
/** sqrt(h / 1 year) in D18, rounded down: Math.sqrt(Math.mulDiv(h, 1e36, YEAR)). */
const sqrtHorizonD18 = (h: bigint) => isqrt((h * WAD * WAD) / YEAR);
/** z·σ·sqrt(h/1y), each product rounded up. */
const moveD18 = (z: bigint, s: bigint, sh: bigint) => mulDiv(mulDiv(z, s, WAD, true), sh, WAD, true);

interface RatioParams {
  zMm: bigint;
  zIm: bigint;
  horizonSec: bigint;
  liqFee: bigint;
  mmrMin: bigint;
  mmrMax: bigint;
  imrMin: bigint;
}
const DEFAULTS: RatioParams = {
  zMm: d18(3),
  zIm: d18(5),
  horizonSec: 3600n,
  liqFee: d18("0.005"),
  mmrMin: d18("0.005"),
  mmrMax: d18("0.25"),
  imrMin: d18("0.01"),
};
/** MMR = clamp(z_mm·σ√h + liqFee, mmrMin, mmrMax); IMR = clamp(z_im·σ√h + liqFee, imrMin, 1), IMR ≥ MMR. */
function baseRatios(sigma: bigint, p: RatioParams = DEFAULTS) {
  const sh = sqrtHorizonD18(p.horizonSec);
  const mmr = min(max(moveD18(p.zMm, sigma, sh) + p.liqFee, p.mmrMin), p.mmrMax);
  let imr = min(max(moveD18(p.zIm, sigma, sh) + p.liqFee, p.imrMin), WAD);
  if (imr < mmr) imr = mmr;
  return { mmr, imr };
}
const ADD_ON = d18("0.01");
const ETH_SKEW_SCALE = d18(100000);
const notionalUp = (a: bigint, p: bigint) => mulDiv(a, p, WAD, true);
const requirement = (a: bigint, p: bigint, ratio: bigint) =>
  mulDiv(notionalUp(a, p), ratio + mulDiv(a, ADD_ON, ETH_SKEW_SCALE, true), WAD, true);

const BREAKER_VOL_STALE = 4n;
const BREAKER_SIGMA = 8n;

/** Publishes a volatility round and pokes once σ's decay has fully run (≥ 60 half-lives, where the contract's
 * 2^(−t/halfLife) weight is exactly 0), so σ = clamp(target) exactly whether it rises or falls. Prices are
 * re-published afterwards so that the markets can be priced again. */
async function settleSigma(f: Fixture, marketId: number, percent: string) {
  const halfLife = (await f.riskManager.marketParams(marketId)).sigmaDecayHalfLife;
  await time.increase(60n * halfLife);
  await setVol(f, marketId, percent);
  await setPrice(f, ETH, "2000");
  await setPrice(f, BTC, "60000");
}

/** Commits and executes an order; returns whether it filled and, if cancelled, the decoded reason. */
async function execOrder(f: Fixture, trader: (typeof f.traders)[number], marketId: number, size: bigint) {
  const { receipt } = await trade(f, trader, marketId, size);
  const evs = chEvents(f, receipt);
  const cancelled = evs.find((e) => e.name === "OrderCancelled");
  return {
    filled: evs.some((e) => e.name === "OrderExecuted"),
    reason: cancelled ? f.clearingHouse.interface.parseError(cancelled.args.reason) : null,
  };
}

describe("RiskManager: volatility-driven margin ratios", () => {
  it("lists markets with the default risk parameters (z_mm 3, z_im 5, h 1 h, liqFee 0.5%)", async () => {
    const f = await loadFixture(sigmaFixture);
    const p = await f.riskManager.marketParams(ETH);
    expect(p.zMmD18).to.equal(DEFAULTS.zMm);
    expect(p.zImD18).to.equal(DEFAULTS.zIm);
    expect(p.horizonSec).to.equal(DEFAULTS.horizonSec);
    expect(p.liqFeeD18).to.equal(DEFAULTS.liqFee);
    expect(p.mmrMinD18).to.equal(DEFAULTS.mmrMin);
    expect(p.mmrMaxD18).to.equal(DEFAULTS.mmrMax);
    expect(p.imrMinD18).to.equal(DEFAULTS.imrMin);
    expect(p.sigmaMinD18).to.equal(d18("0.1"));
    expect(p.sigmaMaxD18).to.equal(d18(3));
    expect(await f.riskManager.marketCount()).to.equal(2n);
    expect(await f.riskManager.marketSymbol(ETH)).to.equal(ethers.encodeBytes32String("ETH-PERP"));
  });

  // Expected approximate values from DESIGN.md's illustration.
  for (const [pct, mmrApprox, imrApprox, levApprox] of [
    ["30", "0.0146", "0.0210", "47.56"],
    ["60", "0.0242", "0.0370", "26.99"],
    ["150", "0.0531", "0.0851", "11.75"],
  ] as const) {
    it(`σ = ${pct}%: ratios(marketId) equal the bigint formula exactly (MMR ≈ ${mmrApprox}, IMR ≈ ${imrApprox}) and maxLeverage = 1e36/IMR`, async () => {
      const f = await loadFixture(sigmaFixture);
      await settleSigma(f, ETH, pct);
      const sigma = parseUnits(pct, 16); // percent → D18 fraction
      const { mmr, imr } = baseRatios(sigma);
      const [s, m, i] = await f.riskManager.ratios(ETH);
      expect(s).to.equal(sigma);
      expect(m).to.equal(mmr);
      expect(i).to.equal(imr);
      expect(m).to.be.closeTo(d18(mmrApprox), d18("0.0001"));
      expect(i).to.be.closeTo(d18(imrApprox), d18("0.0001"));
      const lev = await f.riskManager.maxLeverageD18(ETH);
      expect(lev).to.equal((WAD * WAD) / imr);
      expect(lev).to.be.closeTo(d18(levApprox), d18("0.01")); // ≈ 47×, 27×, 12×
      // The per-operation snapshot agrees with ratios().
      const r = await f.riskManager.marketRisk(ETH, false);
      expect(r.sigmaD18).to.equal(sigma);
      expect(r.mmrD18).to.equal(mmr);
      expect(r.imrD18).to.equal(imr);
      expect(r.breakers).to.equal(0n);
    });
  }

  it("σ is clamped to [sigmaMin, sigmaMax]: 5% reads as 10%, 500% reads as 300%", async () => {
    const f = await loadFixture(sigmaFixture);
    await settleSigma(f, ETH, "5");
    let [s, m, i] = await f.riskManager.ratios(ETH);
    expect(s).to.equal(d18("0.1"));
    expect([m, i]).to.deep.equal(Object.values(baseRatios(d18("0.1"))));
    await settleSigma(f, ETH, "500");
    [s, m, i] = await f.riskManager.ratios(ETH);
    expect(s).to.equal(d18(3));
    expect([m, i]).to.deep.equal(Object.values(baseRatios(d18(3))));
    // Exactly at the bounds: unchanged.
    await settleSigma(f, ETH, "10");
    expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("0.1"));
    await settleSigma(f, ETH, "300");
    expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18(3));
  });

  it("σ above sigmaBreaker trips BREAKER_SIGMA (reduce-only) until σ is back under it", async () => {
    const f = await loadFixture(sigmaFixture);
    expect((await f.riskManager.marketParams(ETH)).sigmaBreakerD18).to.equal(d18("2.5"));
    await setVol(f, ETH, "250");
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    await setVol(f, ETH, "260");
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER_SIGMA);
    await settleSigma(f, ETH, "80");
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
  });

  it("MMR is capped at mmrMax and floored at mmrMin; IMR is floored at imrMin", async () => {
    const f = await loadFixture(sigmaFixture);
    // Cap: at σ 150% MMR ≈ 5.3% > mmrMax 5%.
    await f.riskManager.setMarketParam(ETH, PARAM.MmrMax, d18("0.05"));
    await setVol(f, ETH, "150");
    let [, m, i] = await f.riskManager.ratios(ETH);
    expect(m).to.equal(d18("0.05"));
    expect(i).to.equal(baseRatios(d18("1.5")).imr);
    // Floors: at σ 10% MMR ≈ 0.82% < mmrMin 1%, IMR ≈ 1.03% < imrMin 2%.
    await f.riskManager.setMarketParam(ETH, PARAM.ImrMin, d18("0.02"));
    await f.riskManager.setMarketParam(ETH, PARAM.MmrMin, d18("0.01"));
    await settleSigma(f, ETH, "10");
    [, m, i] = await f.riskManager.ratios(ETH);
    expect(m).to.equal(d18("0.01"));
    expect(i).to.equal(d18("0.02"));
    expect([m, i]).to.deep.equal(
      Object.values(baseRatios(d18("0.1"), { ...DEFAULTS, mmrMax: d18("0.05"), mmrMin: d18("0.01"), imrMin: d18("0.02") })),
    );
  });

  it("a longer horizon or higher z raises the ratios exactly as the formula says", async () => {
    const f = await loadFixture(sigmaFixture);
    await setVol(f, ETH, "60");
    await f.riskManager.setMarketParam(ETH, PARAM.HorizonSec, 4n * 3600n);
    await f.riskManager.setMarketParam(ETH, PARAM.ZIm, d18(6));
    await f.riskManager.setMarketParam(ETH, PARAM.ZMm, d18("3.5"));
    const [, m, i] = await f.riskManager.ratios(ETH);
    const expected = baseRatios(d18("0.6"), { ...DEFAULTS, horizonSec: 14400n, zIm: d18(6), zMm: d18("3.5") });
    expect(m).to.equal(expected.mmr);
    expect(i).to.equal(expected.imr);
    expect(m > baseRatios(d18("0.6")).mmr).to.equal(true);
  });

  it("the volatility feed's decimals are normalized: an 8-decimal vol feed at 70 gives σ = 70% exactly", async () => {
    const f = await loadFixture(sigmaFixture);
    const V = await ethers.getContractFactory("MockV3Aggregator");
    const vol8 = await V.deploy(8, parseUnits("70", 8));
    await f.riskManager.setMarketFeeds(ETH, await f.priceFeeds[ETH].getAddress(), await vol8.getAddress());
    expect((await f.riskManager.sigmaSources(ETH))[0]).to.equal(d18("0.7"));
    await f.riskManager.connect(f.others[0]).pokeVolatility(ETH);
    const [s, m, i] = await f.riskManager.ratios(ETH);
    expect(s).to.equal(d18("0.7"));
    expect([m, i]).to.deep.equal(Object.values(baseRatios(d18("0.7"))));
    // The same σ as the 2-decimal feed at "70.00".
    await f.riskManager.setMarketFeeds(ETH, await f.priceFeeds[ETH].getAddress(), await f.volFeeds[ETH].getAddress());
    await f.volFeeds[ETH].updateAnswer(parseUnits("70", 2));
    expect((await f.riskManager.sigmaSources(ETH))[0]).to.equal(d18("0.7"));
  });

  it("a ratio parameter change re-prices the stored σ at once (no poke needed) and emits VolatilityUpdated", async () => {
    const f = await loadFixture(sigmaFixture);
    const expected = baseRatios(d18("0.5"), { ...DEFAULTS, zMm: d18(4) });
    await expect(f.riskManager.setMarketParam(ETH, PARAM.ZMm, d18(4)))
      .to.emit(f.riskManager, "VolatilityUpdated")
      .withArgs(ETH, d18("0.5"), expected.mmr, expected.imr, 0n, (v: bigint) => v >= 0n, 0n);
    expect(await f.riskManager.ratios(ETH)).to.deep.equal([d18("0.5"), expected.mmr, expected.imr]);
  });

  it("σ rises apply at once; falls decay toward the target with the half-life (hysteresis)", async () => {
    const f = await loadFixture(sigmaFixture);
    const halfLife = Number((await f.riskManager.marketParams(ETH)).sigmaDecayHalfLife);
    await setVol(f, ETH, "150");
    expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("1.5"));
    const t0 = await time.latest(); // block of the poke that stored σ = 150%
    await f.volFeeds[ETH].updateAnswer(parseUnits("30", 2));
    // One half-life later: σ = 30% + (150% − 30%)·2^−1 = 90%.
    await time.setNextBlockTimestamp(t0 + halfLife);
    await f.riskManager.pokeVolatility(ETH);
    let [s, m, i] = await f.riskManager.ratios(ETH);
    expect(s).to.equal(d18("0.9"));
    expect([m, i]).to.deep.equal(Object.values(baseRatios(d18("0.9"))));
    // Another half-life: 30% + 60%·2^−1 = 60%.
    await f.volFeeds[ETH].updateAnswer(parseUnits("30", 2));
    await time.setNextBlockTimestamp(t0 + 2 * halfLife);
    await f.riskManager.pokeVolatility(ETH);
    [s] = await f.riskManager.ratios(ETH);
    expect(s).to.equal(d18("0.6"));
    // A rise during the decay applies at once.
    await setVol(f, ETH, "80");
    [s, m, i] = await f.riskManager.ratios(ETH);
    expect(s).to.equal(d18("0.8"));
    expect([m, i]).to.deep.equal(Object.values(baseRatios(d18("0.8"))));
  });

  it("a σ rise on the vol feed raises an open account's maintenance and initial requirement at once", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(10000));
    const size = d18(10);
    await trade(f, t, ETH, size);
    const s0 = await f.clearingHouse.accountSummary(t.address);
    const r50 = baseRatios(d18("0.5"));
    expect(s0.maintenanceRequirementD18).to.equal(requirement(size, d18(2000), r50.mmr));
    expect(s0.initialRequirementD18).to.equal(requirement(size, d18(2000), r50.imr));

    // A new, higher volatility round; any keeper's poke puts it in use immediately.
    await f.volFeeds[ETH].updateAnswer(parseUnits("120", 2));
    await f.riskManager.connect(f.others[0]).pokeVolatility(ETH);
    const s1 = await f.clearingHouse.accountSummary(t.address);
    const r120 = baseRatios(d18("1.2"));
    expect(s1.maintenanceRequirementD18).to.equal(requirement(size, d18(2000), r120.mmr));
    expect(s1.initialRequirementD18).to.equal(requirement(size, d18(2000), r120.imr));
    expect(s1.maintenanceRequirementD18 > s0.maintenanceRequirementD18).to.equal(true);
    expect(s1.healthD18 < s0.healthD18).to.equal(true);
    // Another market's σ does not touch this account.
    await setVol(f, BTC, "200");
    expect((await f.clearingHouse.accountSummary(t.address)).maintenanceRequirementD18).to.equal(
      s1.maintenanceRequirementD18,
    );
  });

  it("a σ spike can make a leveraged account liquidatable without any price move", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(6000));
    await trade(f, t, ETH, d18(90)); // ≈ 30× at σ 50%
    expect((await f.clearingHouse.accountSummary(t.address)).liquidatable).to.equal(false);
    await setVol(f, ETH, "150");
    const s = await f.clearingHouse.accountSummary(t.address);
    expect(s.maintenanceRequirementD18).to.equal(requirement(d18(90), d18(2000), baseRatios(d18("1.5")).mmr));
    expect(s.liquidatable).to.equal(true);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(t.address)).to.emit(f.clearingHouse, "Liquidated");
  });

  describe("stale volatility", () => {
    /** Moves time so that σ's last refresh is `age` seconds old, re-publishing the price so it stays fresh. */
    async function ageSigma(f: Fixture, sigmaUpdatedAt: number, age: number) {
      await time.setNextBlockTimestamp(sigmaUpdatedAt + age);
      await setPrice(f, ETH, "2000");
    }

    it("σ refreshed exactly VolMaxAge ago is fresh; one second older trips BREAKER_VOL_STALE", async () => {
      const f = await loadFixture(sigmaFixture);
      const volMaxAge = Number((await f.riskManager.marketParams(ETH)).volMaxAge);
      await setVol(f, ETH, "50");
      const t0 = await time.latest();
      await ageSigma(f, t0, volMaxAge);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
      await ageSigma(f, t0, volMaxAge + 1);
      const r = await f.riskManager.marketRisk(ETH, false);
      expect(r.breakers & BREAKER_VOL_STALE).to.equal(BREAKER_VOL_STALE);
      // A poke cannot refresh σ from a volatility round older than VolMaxAge: the breaker stays.
      await f.riskManager.pokeVolatility(ETH);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER_VOL_STALE).to.equal(BREAKER_VOL_STALE);
      // A fresh round and a poke clear it.
      await setVol(f, ETH, "50");
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    });

    it("with a stale volatility feed, the market turns reduce-only and keeps its last σ (an oracle outage never raises margin by itself)", async () => {
      const f = await loadFixture(sigmaFixture);
      const before = await f.riskManager.ratios(ETH);
      await time.increase(90001);
      await setPrice(f, ETH, "2000");
      await f.riskManager.pokeVolatility(ETH);
      const r = await f.riskManager.marketRisk(ETH, false);
      expect(r.breakers & BREAKER_VOL_STALE).to.equal(BREAKER_VOL_STALE);
      const { mmr, imr } = baseRatios(d18("0.5"));
      expect(r.sigmaD18).to.equal(d18("0.5"));
      expect(r.mmrD18).to.equal(mmr);
      expect(r.imrD18).to.equal(imr);
      expect(await f.riskManager.ratios(ETH)).to.deep.equal(before);
    });

    it("a zero or negative vol answer is unusable: the feed source reads 0 and a poke keeps σ unchanged (no revert)", async () => {
      const f = await loadFixture(sigmaFixture);
      await setVol(f, ETH, "80");
      await f.volFeeds[ETH].updateAnswer(0n);
      expect((await f.riskManager.sigmaSources(ETH))[0]).to.equal(0n);
      await f.riskManager.pokeVolatility(ETH);
      expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("0.8"));
      await f.volFeeds[ETH].updateAnswer(-5n);
      expect((await f.riskManager.sigmaSources(ETH))[0]).to.equal(0n);
      await f.riskManager.pokeVolatility(ETH);
      expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("0.8"));
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    });

    it("while σ is stale, opening is cancelled with ClearingHouseMarketReduceOnly(market, BREAKER_VOL_STALE) but closing fills", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, u] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(20000));
      await f.vault.connect(u).deposit(u.address, usdc(20000));
      await trade(f, t, ETH, d18(10));
      await time.increase(90001);
      await setPrice(f, ETH, "2000");
      await f.riskManager.pokeVolatility(ETH);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER_VOL_STALE);

      const open = await execOrder(f, u, ETH, d18(1));
      expect(open.filled).to.equal(false);
      expect(open.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
      expect(open.reason!.args).to.deep.equal([BigInt(ETH), BREAKER_VOL_STALE]);
      expect((await f.clearingHouse.position(u.address, ETH)).sizeD18).to.equal(0n);
      // Increasing an existing position is refused too.
      const inc = await execOrder(f, t, ETH, d18(1));
      expect(inc.reason!.name).to.equal("ClearingHouseMarketReduceOnly");

      const partial = await execOrder(f, t, ETH, -d18(4));
      expect(partial.filled).to.equal(true);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(d18(6));
      const close = await execOrder(f, t, ETH, -d18(6));
      expect(close.filled).to.equal(true);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(0n);

      // A fresh vol round and a poke lift the breaker.
      await setVol(f, ETH, "50");
      expect((await execOrder(f, u, ETH, d18(1))).filled).to.equal(true);
    });
  });
});
