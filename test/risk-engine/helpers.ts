// Shared helpers of the risk-engine tests: a bigint mirror of the volatility engine (FixedPointMath.exp2NegD18
// with its table derived independently, the normative sdk/volatility.ts estimator behind RiskManager's fold
// rules, the poke with hysteresis), fixtures that use the on-chain estimator, and small chain glue (explicitly
// timestamped price rounds, cancellation reasons, Automation's off-chain check).
import { expect } from "chai";
import { ethers } from "hardhat";
import { time } from "@nomicfoundation/hardhat-network-helpers";
import { AbiCoder, parseUnits } from "ethers";
import { deployFixture, Fixture, chEvents, usdc } from "../fixture";
import { DEFAULT_MARKETS, SIGMA_SOURCE, MarketSpec } from "../../scripts/lib/params";
import { WAD, mulDiv, isqrt, min, max, baseRatios, RiskParams, riskParamsOf } from "../clearinghouse/math";
import { VolatilityEstimator, VolatilityState } from "../../sdk/volatility";
import type { MockV3Aggregator } from "../../typechain-types";

export { WAD };
export const ETH = 0;
export const BTC = 1;

export const BREAKER = {
  OPENING_PAUSED: 1n,
  SEQUENCER: 2n,
  VOL_STALE: 4n,
  SIGMA: 8n,
  PRICE_JUMP: 16n,
  PRICE_STALE: 32n,
} as const;

export const JOB = { POKE: 0, ORDERS: 1, ACCOUNTS: 2 } as const;

// ===================================================================== exp2 and the estimator, in bigint

/** ⌊2^(−2^(−i))·1e36⌋ for i = 1..64, derived here independently: 2^(2^−i) by i nested integer square roots of
 * 2 at 1e100 precision, then inverted. (FixedPointMath.EXP2_FRACTION_D36 must equal it.) */
export const EXP2_TABLE: readonly bigint[] = (() => {
  const P = 10n ** 100n;
  const out: bigint[] = [];
  let s = 2n * P;
  for (let i = 1; i <= 64; i++) {
    s = isqrt(s * P); // 2^(2^−i)·P, rounded down
    out.push((10n ** 36n * P) / s);
  }
  return out;
})();

/** 2^(−x) in D18 by FixedPointMath's algorithm, operation for operation: x = n + f; the 64 binary digits of f
 * select factors 2^(−2^(−i)) multiplied at 1e36 precision (each product floored), then ⌊⌊r/2^n⌋/1e18⌋. */
export function exp2NegD18(x: bigint): bigint {
  const n = x / WAD;
  if (n >= 120n) return 0n;
  const fb = ((x % WAD) << 64n) / WAD;
  let r = 10n ** 36n;
  for (let i = 1; i <= 64; i++) {
    if (((fb >> BigInt(64 - i)) & 1n) === 1n) r = (r * EXP2_TABLE[i - 1]) / 10n ** 36n;
  }
  return (r >> n) / WAD;
}

/** The market's on-chain estimator, mirrored by the normative TypeScript estimator (sdk/volatility.ts) plus the
 * RiskManager's fold rule (non-positive, not-newer and future rounds are skipped). */
export class EstimatorMirror {
  readonly e = new VolatilityEstimator();

  /** A mirror starting from the chain's current state. */
  static fromChain(st: any): EstimatorMirror {
    const m = new EstimatorMirror();
    const state: VolatilityState = {
      initialized: st.initialized,
      lastPriceD18: st.lastPriceD18,
      lastTime: st.lastTime,
      anchorPriceD18: st.anchorPriceD18,
      anchorTime: st.anchorTime,
      maxExcursionD18: st.maxExcursionD18,
      variancesD18: [...st.variancesD18],
      longRunVarD18: st.longRunVarD18,
      tailVarD18: st.tailVarD18,
      hourFactorsD18: [...st.hourFactorsD18],
      dayFactorsD18: [...st.dayFactorsD18],
      hourSumD18: st.hourSumD18,
      daySumD18: st.daySumD18,
      rounds: 0,
      periods: 0,
    };
    (m.e as any).s = state;
    return m;
  }
  get lastTime(): bigint {
    return this.e.state().lastTime;
  }
  initialized() {
    return this.e.state().initialized;
  }
  /** RiskManager._foldRound: returns whether the round (8-decimal answer) was folded. */
  fold(answer8: bigint, t: bigint, now: bigint): boolean {
    if (answer8 <= 0n || t <= this.lastTime || t > now) return false;
    this.e.update(answer8 * 10n ** 10n, t);
    return true;
  }
  sigma(now: bigint): bigint {
    return this.e.sigmaD18(now);
  }
  /** σ before the hour-of-day × day-of-week factor: √(max(blend, floor·L) + wT·T). Under a constant price this
   * can only fall. */
  baseVariance(): bigint {
    const s = this.e.state();
    const c = this.e.config;
    const blend = s.variancesD18.reduce((a, v, k) => a + c.weightsD18[k] * v, 0n) / WAD;
    const floor = (c.longRunFloorD18 * s.longRunVarD18) / WAD;
    return (blend > floor ? blend : floor) + (c.tailWeightD18 * s.tailVarD18) / WAD;
  }
  seasonalFactor(now: bigint): bigint {
    return this.e.seasonalFactorD18(now);
  }
}

/** The chain's estimator state equals the mirror's, field by field. */
export async function expectEstimatorMatches(f: Fixture, m: number, mirror: EstimatorMirror) {
  const st = await f.riskManager.estimatorState(m);
  const e = mirror.e.state();
  expect(
    [st.lastTime, st.lastPriceD18, st.anchorTime, st.anchorPriceD18, st.maxExcursionD18, [...st.variancesD18], st.longRunVarD18, st.tailVarD18],
    "estimator state",
  ).to.deep.equal([e.lastTime, e.lastPriceD18, e.anchorTime, e.anchorPriceD18, e.maxExcursionD18, e.variancesD18, e.longRunVarD18, e.tailVarD18]);
  expect([[...st.hourFactorsD18], [...st.dayFactorsD18], st.hourSumD18, st.daySumD18], "seasonal profile").to.deep.equal([
    e.hourFactorsD18,
    e.dayFactorsD18,
    e.hourSumD18,
    e.daySumD18,
  ]);
  return st;
}

/** σ the poke stores: rises at once, falls decay toward the target with `halfLife` (RiskManager._poke). */
export function pokedSigma(prev: bigint, prevUpdatedAt: bigint, target: bigint, now: bigint, halfLife: bigint, sigmaMax: bigint) {
  let sigma = prev;
  let updatedAt = prevUpdatedAt;
  if (target !== 0n) {
    if (target >= sigma || sigma === 0n) sigma = target;
    else sigma = target + mulDiv(sigma - target, exp2NegD18(((now - prevUpdatedAt) * WAD) / halfLife), WAD);
    updatedAt = now;
  }
  if (sigma === 0n) {
    sigma = sigmaMax;
    updatedAt = now;
  }
  return { sigma, updatedAt };
}

/** The configured sources' σ at `now`, clamped to [σ_min, σ_max]; 0 when none is usable (RiskManager._targetSigma). */
export function targetSigma(
  source: bigint,
  feedSigma: bigint,
  estimator: EstimatorMirror,
  p: { sigmaMinD18: bigint; sigmaMaxD18: bigint },
  now: bigint,
) {
  let t = 0n;
  if (source !== SIGMA_SOURCE.ESTIMATOR) t = feedSigma;
  if (source !== SIGMA_SOURCE.FEED && estimator.initialized()) t = max(t, estimator.sigma(now));
  if (t === 0n) return 0n;
  return min(max(t, p.sigmaMinD18), p.sigmaMaxD18);
}

/** A market's parameters as math.ts's RiskParams (for baseRatios). */
export async function riskParams(f: Fixture, m: number): Promise<RiskParams & { sigmaDecayHalfLife: bigint; volMaxAge: bigint }> {
  const p = await f.riskManager.marketParams(m);
  return {
    ...riskParamsOf(p),
    sigmaDecayHalfLife: p.sigmaDecayHalfLife,
    volMaxAge: p.volMaxAge,
  };
}

/** ratios(m) equal σ and the MMR/IMR the bigint formula gives for it. */
export async function expectRatiosFor(f: Fixture, m: number, sigma: bigint) {
  const p = await riskParams(f, m);
  const { mmr, imr } = baseRatios(p, sigma);
  expect(await f.riskManager.ratios(m), `ratios for σ ${sigma}`).to.deep.equal([sigma, mmr, imr]);
}

// ===================================================================== fixtures

/** Sigma with the default markets, whose σ is the max of the volatility feed and the on-chain estimator. */
export async function estimatorFixture(): Promise<Fixture> {
  return deployFixture({ markets: DEFAULT_MARKETS });
}

export function marketsWithSource(source: bigint, overrides: Partial<MarketSpec["params"]> = {}): MarketSpec[] {
  return DEFAULT_MARKETS.map((m) => ({ ...m, params: { ...m.params, sigmaSource: source, ...overrides } }));
}

// ===================================================================== chain glue

/** Appends a round to a MockV3Aggregator with an explicit `updatedAt` (no block-time dependence). */
export async function pushRound(feed: MockV3Aggregator, answer: bigint, updatedAt: bigint | number) {
  const id = (await feed.latestRound()) + 1n;
  await feed.updateRoundData(id, answer, updatedAt, updatedAt);
  return id;
}

export const WEEK = 7n * 86_400n;

/** Moves the chain to the start of a coming week (plus `offset` seconds), so that a scenario's hours of day and
 * days of week — which the estimator's seasonal profile depends on — are the same on every run. */
export async function alignToWeek(offset = 0n) {
  const now = BigInt(await time.latest());
  await time.increaseTo((now / WEEK + 1n) * WEEK + offset);
}

/** Price in USD → 8-decimal feed answer. */
export const px = (usd: string | number) => parseUnits(String(usd), 8);

/** Mines the next transaction at `at`. */
export async function at(ts: bigint | number) {
  await time.setNextBlockTimestamp(Number(ts));
}

export async function blockTs(receipt: { blockNumber: number } | null): Promise<bigint> {
  return BigInt((await ethers.provider.getBlock(receipt!.blockNumber))!.timestamp);
}

/** The VolatilityUpdated event of a receipt (exactly one). */
export function volUpdated(f: Fixture, receipt: { logs: readonly any[] } | null) {
  const evs = (receipt?.logs ?? [])
    .map((l) => {
      try {
        return f.riskManager.interface.parseLog(l);
      } catch {
        return null;
      }
    })
    .filter((e) => e?.name === "VolatilityUpdated");
  expect(evs.length, "one VolatilityUpdated").to.equal(1);
  return evs[0]!.args;
}

/** Decodes a revert reason with the interfaces of the ClearingHouse, the Vault and the RiskManager. */
export function parseReason(f: Fixture, data: string) {
  for (const c of [f.clearingHouse, f.vault, f.riskManager]) {
    const e = c.interface.parseError(data);
    if (e) return e;
  }
  return null;
}

/** A new price round at the current answer (Chainlink's heartbeat). */
export async function heartbeat(f: Fixture, marketId: number) {
  await f.priceFeeds[marketId].updateAnswer(await f.priceFeeds[marketId].latestAnswer());
}

/** Commits an order and executes it after minDelay; returns whether it filled and the decoded cancel reason. */
export async function execOrder(f: Fixture, trader: { address: string }, marketId: number, size: bigint) {
  const signer = await ethers.getSigner(trader.address);
  const fee = await f.clearingHouse.minExecutionFee();
  const limit = size > 0n ? 2n ** 95n : 0n;
  const rc = await (await f.clearingHouse.connect(signer).commitOrder(marketId, size, limit, { value: fee })).wait();
  const orderId = chEvents(f, rc).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
  await time.increase(Number(await f.clearingHouse.minDelay()));
  // An order executes at a price round published after its commit: a heartbeat at the current answer.
  await heartbeat(f, marketId);
  const receipt = await (await f.clearingHouse.connect(f.keeper).executeOrder(orderId)).wait();
  const evs = chEvents(f, receipt);
  const cancelled = evs.find((e) => e.name === "OrderCancelled");
  return {
    orderId,
    receipt,
    filled: evs.some((e) => e.name === "OrderExecuted"),
    reason: cancelled ? parseReason(f, cancelled.args.reason) : null,
  };
}

/** Calls SigmaAutomation.checkUpkeep the way the Automation network simulates it: eth_call from address zero
 * (the `cannotExecute` modifier refuses any other origin). Returns the decoded result. */
export async function checkUpkeep(f: Fixture, job: number, start = 0, count = 50) {
  const checkData = AbiCoder.defaultAbiCoder().encode(["uint8", "uint256", "uint256"], [job, start, count]);
  const data = f.automation.interface.encodeFunctionData("checkUpkeep", [checkData]);
  const ret = await ethers.provider.call({ to: await f.automation.getAddress(), data, from: ethers.ZeroAddress });
  const [upkeepNeeded, performData] = f.automation.interface.decodeFunctionResult("checkUpkeep", ret);
  return { upkeepNeeded: upkeepNeeded as boolean, performData: performData as string, checkData };
}

export const coder = AbiCoder.defaultAbiCoder();

export function encodePerform(job: number, types: string[], values: unknown[]) {
  return coder.encode(["uint8", "bytes"], [job, coder.encode(types, values)]);
}

/** Deposits `amount` USDC for each trader. */
export async function fund(f: Fixture, traders: { address: string }[], amount: string | number) {
  for (const t of traders) await f.vault.connect(await ethers.getSigner(t.address)).deposit(t.address, usdc(amount));
}
