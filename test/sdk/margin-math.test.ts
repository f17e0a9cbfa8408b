// Differential property tests: the SDK's bigint mirror of MarginMath (sdk/margin.ts) against the Solidity
// library itself (through contracts/mocks/test/MarginMathHarness.sol), to the wei, on random inputs. Where
// the library reverts, the mirror must throw the same error with the same arguments.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import fc from "fast-check";
import { MarginMathHarness__factory } from "../../typechain-types";
import type { MarginMathHarness } from "../../typechain-types";
import * as M from "../../sdk/margin";
import { decodeError } from "../../sdk/client";

const RUNS = 200;
const WAD = 10n ** 18n;
const I256 = { min: -(2n ** 255n), max: 2n ** 255n - 1n };
const U256 = { min: 0n, max: 2n ** 256n - 1n };

async function harnessFixture(): Promise<MarginMathHarness> {
  const [deployer] = await ethers.getSigners();
  const h = await new MarginMathHarness__factory(deployer).deploy();
  await h.waitForDeployment();
  return h;
}

/** The outcome of a call: a value, or the error the contract reverts with / the mirror throws. */
type Outcome = { ok: true; value: unknown } | { ok: false; errorName: string; args: string[] };

const norm = (v: unknown): unknown =>
  typeof v === "bigint" || typeof v === "number" || typeof v === "boolean"
    ? BigInt(v as bigint)
    : Array.isArray(v)
      ? v.map(norm)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, norm(x)]))
        : v;

function sdkOutcome(f: () => unknown): Outcome {
  try {
    return { ok: true, value: norm(f()) };
  } catch (e) {
    if (e instanceof M.SigmaMathError) return { ok: false, errorName: e.errorName, args: e.args.map(String) };
    throw e;
  }
}

async function chainOutcome(f: () => Promise<unknown>): Promise<Outcome> {
  try {
    const v = await f();
    // Multi-value returns come back as an ethers Result.
    return { ok: true, value: norm(Array.isArray(v) ? [...(v as unknown[])] : v) };
  } catch (e) {
    const data = (e as { data?: string }).data;
    if (typeof data !== "string") throw e;
    const d = decodeError(data);
    return { ok: false, errorName: d.errorName, args: d.args.map(String) };
  }
}

/** Per function: how many random inputs gave a value and how many a revert (the generators must mostly hit values). */
const tally = new Map<string, { ok: number; reverted: number }>();

/** Asserts the mirror and the library agree (value to the wei, or the same revert). Returns the outcome. */
async function agree(label: string, sdk: () => unknown, chain: () => Promise<unknown>): Promise<Outcome> {
  const a = sdkOutcome(sdk);
  const b = await chainOutcome(chain);
  expect(a, label).to.deep.equal(b);
  const t = tally.get(label) ?? { ok: 0, reverted: 0 };
  if (a.ok) t.ok++;
  else t.reverted++;
  tally.set(label, t);
  return a;
}

// ------------------------------------------------------------------------------- generators

/** Mostly realistic magnitudes, sometimes the whole type range (to compare overflow behaviour too). */
const uintA = (realisticMax: bigint, typeMax = U256.max) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.bigInt({ min: 0n, max: realisticMax }) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: typeMax }) },
    { weight: 1, arbitrary: fc.constantFrom(0n, 1n, realisticMax, typeMax) },
  );
const intA = (realisticAbs: bigint, typeMin = I256.min, typeMax = I256.max) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.bigInt({ min: -realisticAbs, max: realisticAbs }) },
    { weight: 1, arbitrary: fc.bigInt({ min: typeMin, max: typeMax }) },
    { weight: 1, arbitrary: fc.constantFrom(0n, 1n, -1n, realisticAbs, -realisticAbs) },
  );

// Within the RiskManager's bounds (RiskManager.bounds) and the storage types (int128 sizes, uint96 prices…).
const price = uintA(10n ** 24n, 2n ** 96n - 1n); // up to $1M, or any uint96
const skewScale = fc.bigInt({ min: 10n ** 18n, max: 10n ** 30n });
const size = intA(10n ** 24n, -(2n ** 127n), 2n ** 127n - 1n);
const orderSize = intA(10n ** 23n, -(2n ** 95n), 2n ** 95n - 1n);
const basis = intA(10n ** 30n, -(2n ** 119n), 2n ** 119n - 1n);
const index = intA(10n ** 24n, -(2n ** 127n), 2n ** 127n - 1n);
const feeRate = fc.bigInt({ min: 0n, max: 10n ** 16n });
const sigma = fc.oneof(fc.bigInt({ min: 10n ** 16n, max: 10n ** 19n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const ratio = fc.bigInt({ min: 0n, max: 2n * WAD });
const scale = fc.oneof(fc.constantFrom(1n, 10n ** 6n, 10n ** 12n, 10n ** 18n), fc.bigInt({ min: 1n, max: 10n ** 18n }));
const ratioParams = fc.record({
  zMmD18: fc.bigInt({ min: WAD, max: 10n * WAD }),
  zImD18: fc.bigInt({ min: WAD, max: 15n * WAD }),
  sqrtHorizonD18: fc.bigInt({ min: 300n, max: 7n * 86_400n }).map((h) => M.sqrtHorizonD18(h)),
  liqFeeD18: fc.bigInt({ min: 0n, max: WAD / 20n }),
  mmrMinD18: fc.bigInt({ min: WAD / 1000n, max: WAD / 2n }),
  mmrMaxD18: fc.bigInt({ min: WAD / 1000n, max: (9n * WAD) / 10n }),
  imrMinD18: fc.bigInt({ min: WAD / 1000n, max: WAD }),
});

describe("SDK margin math equals MarginMath to the wei (differential, fast-check)", function () {
  let h: MarginMathHarness;
  before(async function () {
    h = await loadFixture(harnessFixture);
  });

  const check = (name: string, prop: fc.IAsyncProperty<any>) =>
    it(name, async function () {
      await fc.assert(prop, { numRuns: RUNS });
    });

  check(
    "mulDivUp",
    fc.asyncProperty(uintA(2n ** 128n), uintA(2n ** 128n), uintA(10n ** 36n), async (a, b, d) => {
      await agree("mulDivUp", () => M.mulDivUp(a, b, d), () => h.mulDivUp(a, b, d));
    }),
  );

  check(
    "sqrtHorizonD18 over the horizon bounds (and beyond)",
    fc.asyncProperty(fc.oneof(fc.bigInt({ min: 300n, max: 7n * 86_400n }), fc.bigInt({ min: 0n, max: 2n ** 128n })), async (hs) => {
      await agree("sqrtHorizonD18", () => M.sqrtHorizonD18(hs), () => h.sqrtHorizonD18(hs));
    }),
  );

  check(
    "moveD18 and baseRatios for σ and ratio parameters within bounds",
    fc.asyncProperty(ratioParams, sigma, async (p, s) => {
      await agree("moveD18", () => M.moveD18(p.zMmD18, s, p.sqrtHorizonD18), () => h.moveD18(p.zMmD18, s, p.sqrtHorizonD18));
      await agree(
        "baseRatios",
        () => {
          const r = M.baseRatios(p, s);
          return [r.mmrD18, r.imrD18];
        },
        () => h.baseRatios(p, s),
      );
    }),
  );

  check(
    "sizeAddOnD18, notionalUpD18 and requirementD18",
    fc.asyncProperty(size, price, ratio, fc.bigInt({ min: 0n, max: WAD }), skewScale, async (s, p, r, addOn, k) => {
      const absS = s < 0n ? -s : s;
      await agree("sizeAddOnD18", () => M.sizeAddOnD18(absS, addOn, k), () => h.sizeAddOnD18(absS, addOn, k));
      await agree("notionalUpD18", () => M.notionalUpD18(absS, p), () => h.notionalUpD18(absS, p));
      await agree("requirementD18", () => M.requirementD18(absS, p, r, addOn, k), () => h.requirementD18(absS, p, r, addOn, k));
    }),
  );

  check(
    "fillPriceD18 (including the invalid-price revert)",
    fc.asyncProperty(price, size, orderSize, skewScale, async (p, skew, delta, k) => {
      await agree("fillPriceD18", () => M.fillPriceD18(p, skew, delta, k), () => h.fillPriceD18(p, skew, delta, k));
    }),
  );

  check(
    "fillPriceD18 near the zero-price edge (num ≤ 0)",
    fc.asyncProperty(price, fc.bigInt({ min: 10n ** 18n, max: 10n ** 24n }), fc.bigInt({ min: -3n, max: 3n }), async (p, k, eps) => {
      // skewBefore + skewAfter ≈ −2·skewScale: the premium takes the price to about zero.
      const skew = -k;
      const delta = eps;
      await agree("fillPriceD18", () => M.fillPriceD18(p, skew, delta, k), () => h.fillPriceD18(p, skew, delta, k));
    }),
  );

  check(
    "tradeFeeD18",
    fc.asyncProperty(size, orderSize, price, feeRate, feeRate, async (skew, delta, fill, a, b) => {
      const [taker, maker] = a >= b ? [a, b] : [b, a];
      await agree("tradeFeeD18", () => M.tradeFeeD18(skew, delta, fill, taker, maker), () => h.tradeFeeD18(skew, delta, fill, taker, maker));
    }),
  );

  check(
    "fundingIndexDeltaD18",
    fc.asyncProperty(
      size,
      skewScale,
      fc.oneof(fc.bigInt({ min: 0n, max: WAD / 10n }), fc.constant(0n)),
      price,
      fc.oneof(fc.bigInt({ min: 0n, max: 10n * 365n * 86_400n }), fc.bigInt({ min: 0n, max: 2n ** 64n })),
      async (skew, k, rate, p, dt) => {
        await agree("fundingIndexDeltaD18", () => M.fundingIndexDeltaD18(skew, k, rate, p, dt), () => h.fundingIndexDeltaD18(skew, k, rate, p, dt));
      },
    ),
  );

  check(
    "mulDivSigned and mulSigned (both roundings)",
    fc.asyncProperty(intA(2n ** 128n), uintA(2n ** 128n), uintA(10n ** 36n), intA(2n ** 128n), fc.boolean(), async (a, b, d, b2, up) => {
      await agree("mulDivSigned", () => M.mulDivSigned(a, b, d, up), () => h.mulDivSigned(a, b, d, up));
      await agree("mulSigned", () => M.mulSigned(a, b2, up), () => h.mulSigned(a, b2, up));
    }),
  );

  check(
    "pnlD18 and basisDeltaD18",
    fc.asyncProperty(size, basis, price, index, async (s, c, p, i) => {
      await agree("pnlD18", () => M.pnlD18(s, c, p, i), () => h.pnlD18(s, c, p, i));
      await agree("basisDeltaD18", () => M.basisDeltaD18(s, p, i), () => h.basisDeltaD18(s, p, i));
    }),
  );

  check(
    "toTokensFloor for every token scale",
    fc.asyncProperty(intA(10n ** 30n), scale, async (x, sc) => {
      await agree("toTokensFloor", () => M.toTokensFloor(x, sc), () => h.toTokensFloor(x, sc));
    }),
  );

  check(
    "nextCostBasis: opens, adds, reduces, closes and flips",
    fc.asyncProperty(
      size,
      basis,
      fc.oneof(orderSize, fc.constant("close" as const), fc.constant("flip" as const)),
      price,
      index,
      async (s, c, d, fill, i) => {
        const delta = d === "close" ? -s : d === "flip" ? -2n * s + 1n : d;
        await agree(
          "nextCostBasis",
          () => {
            const r = M.nextCostBasis(s, c, delta, fill, i);
            return [r.newBasis, r.realized];
          },
          () => h.nextCostBasis(s, c, delta, fill, i),
        );
      },
    ),
  );

  it("the random inputs mostly produce values, not reverts (generator sanity)", function () {
    for (const [label, t] of tally) {
      if (label === "invalid fill price" || label === "overflow" || label === "division by zero" || label === "safecast") continue;
      // The zero-price edge is meant to revert about half the time; every other function mostly computes.
      const minShare = label === "fillPriceD18" ? 0.3 : 0.6;
      expect(t.ok / (t.ok + t.reverted), `${label}: ${t.ok} values, ${t.reverted} reverts`).to.be.greaterThan(minShare);
    }
  });

  it("the mirror throws the library's errors (spot checks)", async function () {
    const o = await agree("invalid fill price", () => M.fillPriceD18(WAD, -(10n ** 18n), -1n, 10n ** 18n), () =>
      h.fillPriceD18(WAD, -(10n ** 18n), -1n, 10n ** 18n),
    );
    expect(o).to.deep.include({ ok: false, errorName: "MarginMathInvalidFillPrice" });
    const ov = await agree("overflow", () => M.mulDivUp(2n ** 255n, 2n, 1n), () => h.mulDivUp(2n ** 255n, 2n, 1n));
    expect(ov).to.deep.equal({ ok: false, errorName: "Panic", args: [String(M.PANIC_OVERFLOW)] });
    const dz = await agree("division by zero", () => M.toTokensFloor(-1n, 0n), () => h.toTokensFloor(-1n, 0n));
    expect(dz).to.deep.equal({ ok: false, errorName: "Panic", args: [String(M.PANIC_DIVISION_BY_ZERO)] });
    const sc = await agree("safecast", () => M.mulDivSigned(1n, 2n ** 255n, 1n, false), () => h.mulDivSigned(1n, 2n ** 255n, 1n, false));
    expect(sc).to.deep.include({ ok: false, errorName: "SafeCastOverflowedUintToInt" });
  });

  it("reproduces DESIGN.md's margin illustration (z_mm 3, z_im 5, 1 h, liqFee 0.5%)", async function () {
    const p = {
      zMmD18: 3n * WAD,
      zImD18: 5n * WAD,
      sqrtHorizonD18: M.sqrtHorizonD18(3600n),
      liqFeeD18: WAD / 200n,
      mmrMinD18: WAD / 200n,
      mmrMaxD18: WAD / 4n,
      imrMinD18: WAD / 100n,
    };
    const pct = (x: bigint) => Number(x) / 1e16;
    const at = (s: bigint) => M.baseRatios(p, s);
    expect(pct(at((30n * WAD) / 100n).mmrD18)).to.be.closeTo(1.46, 0.01);
    expect(pct(at((60n * WAD) / 100n).imrD18)).to.be.closeTo(3.7, 0.05);
    expect(pct(at((150n * WAD) / 100n).imrD18)).to.be.closeTo(8.5, 0.05);
    expect(await h.baseRatios(p, (150n * WAD) / 100n)).to.deep.equal([at((150n * WAD) / 100n).mmrD18, at((150n * WAD) / 100n).imrD18]);
  });
});
