import { expect } from "chai";
import {
  DEFAULT_VOLATILITY_CONFIG,
  EXP2_FRACTION_D36,
  VolatilityConfig,
  VolatilityEstimator,
  VolatilityEstimatorFloat,
  WAD,
  dayOfWeek,
  decayD18,
  exp2NegD18,
  hourOfDay,
  isqrt,
  mulDiv,
  mulDivUp,
  validateVolatilityConfig,
} from "../../sdk/volatility";

/** Deterministic PRNG (mulberry32) so the tests never depend on Math.random. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const toD18 = (x: number) => BigInt(Math.round(x * 1e9)) * 10n ** 9n;
const num = (x: bigint) => Number(x) / 1e18;

describe("volatility: fixed-point helpers", () => {
  it("exp2NegD18 matches Math.pow(2, -x) within 1e-15 relative (or 2 wei) across the range", () => {
    const r = rng(1);
    const xs = [0, 1e-18, 1e-9, 0.001, 0.1, 0.25, 0.5, 0.75, 0.999999, 1, 1.5, 2, 3.7, 10.25, 20, 40.5, 55];
    for (let i = 0; i < 300; i++) xs.push(r() * 30);
    for (const x of xs) {
      const xd = toD18(x);
      const got = exp2NegD18(xd);
      const want = Math.pow(2, -num(xd));
      const err = Math.abs(num(got) - want);
      expect(err <= Math.max(want * 1e-15, 2e-18), `x=${x}: got ${got}, want ${want}`).to.equal(true);
    }
  });

  it("exp2NegD18 is exact on integers and halves, and 0 far out", () => {
    for (let n = 0n; n < 64n; n++) expect(exp2NegD18(n * WAD)).to.equal(WAD >> n);
    expect(exp2NegD18(WAD / 2n)).to.equal(707106781186547524n); // ⌊√½ · 1e18⌋
    expect(exp2NegD18(3n * WAD + WAD / 2n)).to.equal(88388347648318440n); // ⌊2^-3.5 · 1e18⌋
    expect(exp2NegD18(60n * WAD)).to.equal(0n);
    expect(exp2NegD18(1000n * WAD)).to.equal(0n);
    expect(() => exp2NegD18(-1n)).to.throw(RangeError);
  });

  it("exp2NegD18 never increases with the exponent", () => {
    let prev = exp2NegD18(0n);
    for (let x = 1n; x < 3n * WAD; x += 7919n * 10n ** 12n) {
      const y = exp2NegD18(x);
      expect(y <= prev).to.equal(true);
      prev = y;
    }
  });

  it("the exp2 fraction table equals ⌊2^(−2^−i)·1e36⌋ recomputed at 1e110 precision", () => {
    const scale = 10n ** 110n;
    let c = scale / 2n; // 2^-1
    for (let i = 1; i <= 64; i++) {
      c = isqrt(c * scale); // 2^(-2^-i)
      expect(EXP2_FRACTION_D36[i - 1]).to.equal(c / 10n ** 74n, `constant ${i}`);
    }
  });

  it("decayD18 halves over one half-life and is 1 for dt = 0", () => {
    expect(decayD18(3600n, 3600n)).to.equal(WAD / 2n);
    expect(decayD18(7200n, 3600n)).to.equal(WAD / 4n);
    expect(decayD18(0n, 3600n)).to.equal(WAD);
    expect(Math.abs(num(decayD18(3600n, 86400n)) - Math.pow(2, -1 / 24))).to.be.lessThan(1e-17);
  });

  it("isqrt is the exact floor square root, and agrees with Math.sqrt", () => {
    const r = rng(2);
    const cases = [0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n, 10n ** 36n, 2n * 10n ** 36n, (1n << 255n) - 1n, (1n << 256n) - 1n];
    for (let i = 0; i < 300; i++) cases.push(BigInt(Math.floor(r() * 1e15)) * BigInt(Math.floor(r() * 1e15)) + BigInt(i));
    for (const n of cases) {
      const s = isqrt(n);
      expect(s * s <= n && (s + 1n) * (s + 1n) > n, `isqrt(${n}) = ${s}`).to.equal(true);
    }
    for (let i = 0; i < 200; i++) {
      const x = r() * 1e30;
      const s = num(isqrt(toD18(x) * WAD));
      expect(Math.abs(s - Math.sqrt(num(toD18(x)))) / Math.sqrt(x)).to.be.lessThan(1e-12);
    }
    expect(() => isqrt(-1n)).to.throw(RangeError);
  });

  it("mulDiv rounds down and mulDivUp rounds up", () => {
    expect(mulDiv(7n, 3n, 2n)).to.equal(10n);
    expect(mulDivUp(7n, 3n, 2n)).to.equal(11n);
    expect(mulDivUp(6n, 3n, 2n)).to.equal(9n);
    expect(() => mulDiv(1n, 1n, 0n)).to.throw(RangeError);
  });

  it("calendar helpers: 1970-01-01 00:00 is a Thursday, hour 0", () => {
    expect(dayOfWeek(0n)).to.equal(4);
    expect(hourOfDay(0n)).to.equal(0);
    expect(dayOfWeek(1759881600n)).to.equal(3); // 2025-10-08 was a Wednesday
    expect(hourOfDay(1759881600n + 5n * 3600n + 59n)).to.equal(5);
  });
});

describe("volatility: estimator", () => {
  it("default config is valid and bad configs are rejected", () => {
    validateVolatilityConfig(DEFAULT_VOLATILITY_CONFIG);
    const bad: Partial<VolatilityConfig>[] = [
      { weightsD18: [WAD, 0n, 0n, 1n] },
      { halfLivesSec: [3600n], weightsD18: [WAD / 2n, WAD / 2n] },
      { periodSec: 0n },
      { excursionWeightD18: 2n * WAD },
      { seasonalBaseIndex: 9 },
    ];
    for (const b of bad) expect(() => new VolatilityEstimator({ ...DEFAULT_VOLATILITY_CONFIG, ...b })).to.throw(RangeError);
  });

  it("starts at the initial σ and rejects rounds out of order or non-positive prices", () => {
    const e = new VolatilityEstimator();
    expect(e.sigmaD18()).to.equal(DEFAULT_VOLATILITY_CONFIG.initialSigmaD18);
    e.update(2000n * WAD, 1000n);
    expect(e.sigmaD18()).to.equal(DEFAULT_VOLATILITY_CONFIG.initialSigmaD18);
    expect(() => e.update(2000n * WAD, 999n)).to.throw(RangeError);
    expect(() => e.update(0n, 2000n)).to.throw(RangeError);
    e.update(2001n * WAD, 1000n); // same timestamp is fine (several rounds in one block)
    expect(e.state().rounds).to.equal(2);
  });

  it("folds only when a full period has elapsed since the anchor", () => {
    const e = new VolatilityEstimator();
    e.update(100n * WAD, 0n);
    e.update(101n * WAD, 1800n);
    expect(e.state().periods).to.equal(0);
    expect(e.state().maxExcursionD18).to.equal(WAD / 100n);
    e.update(100n * WAD, 3599n);
    expect(e.state().periods).to.equal(0);
    e.update(100n * WAD, 3600n);
    const s = e.state();
    expect(s.periods).to.equal(1);
    expect(s.anchorTime).to.equal(3600n);
    expect(s.maxExcursionD18).to.equal(0n);
  });

  it("one period: every variance moves to the hand-computed EWMA of the period variance", () => {
    // Period: 100 → 102 over exactly one hour, max excursion 3 % (a round at 103 in between).
    const cfg: VolatilityConfig = { ...DEFAULT_VOLATILITY_CONFIG, seasonal: false };
    const e = new VolatilityEstimator(cfg);
    e.update(100n * WAD, 0n);
    e.update(103n * WAD, 600n);
    e.update(102n * WAD, 3600n);
    const x = WAD / 50n; // 2 %
    const m = (3n * WAD) / 100n; // 3 %
    const q = ((WAD - cfg.excursionWeightD18) * x * x + cfg.excursionWeightD18 * m * m) * (365n * 86400n) / (3600n * WAD * WAD);
    const v0 = (cfg.initialSigmaD18 * cfg.initialSigmaD18) / WAD;
    const s = e.state();
    cfg.halfLivesSec.forEach((h, i) => {
      const a = decayD18(3600n, h);
      expect(s.variancesD18[i]).to.equal((a * v0 + (WAD - a) * q) / WAD);
    });
    // q = (0.8·0.0004 + 0.2·0.0009)·8760 = 4.38 (annualized variance): fast component ≈ (0.64 + 4.38)/2.
    expect(num(q)).to.be.closeTo(4.38, 1e-12);
    expect(num(s.variancesD18[0])).to.be.closeTo((0.64 + 4.38) / 2, 1e-12);
  });

  it("constant price: σ decays towards zero at the slowest half-life (the long-run floor)", () => {
    const cfg: VolatilityConfig = { ...DEFAULT_VOLATILITY_CONFIG, seasonal: false };
    const e = new VolatilityEstimator(cfg);
    const days = 60;
    for (let h = 0; h <= days * 24; h++) e.update(1500n * WAD, BigInt(h) * 3600n);
    // All q = 0: v_k = v0·2^(−t/H_k), L = v0·2^(−t/30d); the tail term stays 0.
    const t = days * 86400;
    const v0 = 0.64;
    const blend = [3600, 14400, 86400, 604800].reduce((s, H, i) => s + [0.4, 0.25, 0.1, 0.25][i] * v0 * Math.pow(2, -t / H), 0);
    const floor = 0.25 * v0 * Math.pow(2, -t / (30 * 86400));
    expect(floor).to.be.greaterThan(blend); // after 60 days the long-run floor is what is left
    expect(num(e.sigmaD18())).to.be.closeTo(Math.sqrt(Math.max(blend, floor)), 1e-9);
    expect(e.state().tailVarD18).to.equal(0n);
  });

  it("the float reference follows the BigInt estimator on a random walk with intra-hour rounds", () => {
    const r = rng(7);
    const big = new VolatilityEstimator();
    const flt = new VolatilityEstimatorFloat();
    let p = 2000;
    let t = 1_700_000_000;
    let maxRel = 0;
    for (let i = 0; i < 3000; i++) {
      t += 300 + Math.floor(r() * 3400);
      p *= 1 + (r() - 0.5) * (i % 500 < 20 ? 0.08 : 0.01);
      const pd = toD18(p);
      big.update(pd, BigInt(t));
      flt.update(num(pd), t);
      if (i > 50) {
        const a = num(big.sigmaD18());
        const b = flt.sigma();
        maxRel = Math.max(maxRel, Math.abs(a - b) / b);
      }
    }
    expect(maxRel).to.be.lessThan(1e-9);
  });

  it("seasonal factors average to one and learn a louder hour", () => {
    const e = new VolatilityEstimator({ ...DEFAULT_VOLATILITY_CONFIG, seasonalHalfLifeDays: 30n });
    let p = 1000n * WAD;
    const t0 = 1_700_000_000n - (1_700_000_000n % 86400n);
    for (let h = 0n; h < 24n * 200n; h++) {
      // ±0.5 % every hour, ±2 % in the 14:00 UTC hour.
      const big = (t0 / 3600n + h) % 24n === 15n; // the 14:00 candle closes at 15:00
      const step = big ? 20n : 5n;
      p = h % 2n === 0n ? (p * (1000n + step)) / 1000n : (p * (1000n - step)) / 1000n;
      e.update(p, t0 + h * 3600n);
    }
    const f14 = num(e.seasonalFactorD18(t0 + 14n * 3600n));
    const f03 = num(e.seasonalFactorD18(t0 + 3n * 3600n));
    expect(f14).to.be.greaterThan(1.5);
    expect(f03).to.be.lessThan(1);
    const s = e.state();
    expect(s.hourSumD18).to.equal(s.hourFactorsD18.reduce((a, b) => a + b, 0n));
    expect(s.daySumD18).to.equal(s.dayFactorsD18.reduce((a, b) => a + b, 0n));
  });
});
