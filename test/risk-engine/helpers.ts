// Shared helpers of the risk-engine tests: a bigint mirror of the volatility engine (FixedPointMath.exp2NegD18,
// VolatilityEstimator, RiskManager's poke with hysteresis), fixtures that use the on-chain estimator, and small
// chain glue (explicitly timestamped price rounds, cancellation reasons, Automation's off-chain check).
import { expect } from "chai";
import { ethers } from "hardhat";
import { time } from "@nomicfoundation/hardhat-network-helpers";
import { AbiCoder, parseUnits } from "ethers";
import { deployFixture, Fixture, chEvents, usdc } from "../fixture";
import { DEFAULT_MARKETS, SIGMA_SOURCE, MarketSpec } from "../../scripts/lib/params";
import { WAD, YEAR, mulDiv, isqrt, min, max, baseRatios, RiskParams } from "../clearinghouse/math";
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

/** ln 2 in D18, rounded down (FixedPointMath.LN2_D18). */
export const LN2_D18 = 693147180559945309n;

/** 2^(−x) in D18 by FixedPointMath's algorithm, operation for operation: x = n + f, e^(−f·ln2) by its Taylor
 * series (positive and negative terms summed apart, stop at the first zero term, ≤ 40 terms), then >> n. */
export function exp2NegD18(x: bigint): bigint {
  const n = x / WAD;
  if (n >= 60n) return 0n;
  const y = ((x % WAD) * LN2_D18) / WAD;
  let pos = WAD;
  let neg = 0n;
  let term = WAD;
  for (let k = 1n; k <= 40n; k++) {
    term = (term * y) / (k * WAD);
    if (term === 0n) break;
    if (k % 2n === 1n) neg += term;
    else pos += term;
  }
  return (pos - neg) >> n;
}

/** VolatilityEstimator's 24 h half-life of the variance EWMA. */
export const ESTIMATOR_HALF_LIFE = 86_400n;

/** The on-chain estimator's state and fold, mirrored from VolatilityEstimator.sol. */
export class EstimatorMirror {
  lastUpdatedAt = 0n;
  lastPrice = 0n;
  variance = 0n;

  static fromChain(s: { lastUpdatedAt: bigint; lastPriceD18: bigint; varianceD18: bigint }): EstimatorMirror {
    const e = new EstimatorMirror();
    e.lastUpdatedAt = s.lastUpdatedAt;
    e.lastPrice = s.lastPriceD18;
    e.variance = s.varianceD18;
    return e;
  }
  initialized() {
    return this.lastUpdatedAt !== 0n;
  }
  init(p: bigint, t: bigint) {
    this.lastPrice = p;
    this.lastUpdatedAt = t;
  }
  /** Folds one round in; returns |r| (D18). */
  update(p: bigint, t: bigint): bigint {
    const last = this.lastPrice;
    const dt = t - this.lastUpdatedAt;
    const move = mulDiv(p > last ? p - last : last - p, WAD, last);
    const sample = mulDiv(move * move, YEAR, dt * WAD);
    const w = exp2NegD18((dt * WAD) / ESTIMATOR_HALF_LIFE);
    this.variance = mulDiv(this.variance, w, WAD) + mulDiv(sample, WAD - w, WAD);
    this.lastPrice = p;
    this.lastUpdatedAt = t;
    return move;
  }
  /** RiskManager's fold rule: non-positive, not-newer and future rounds are skipped. Returns whether folded. */
  fold(answer8: bigint, t: bigint, now: bigint): boolean {
    if (answer8 <= 0n || t <= this.lastUpdatedAt || t > now) return false;
    this.update(answer8 * 10n ** 10n, t);
    return true;
  }
  sigma(): bigint {
    return isqrt(this.variance * WAD);
  }
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

/** The configured sources' σ, clamped to [σ_min, σ_max]; 0 when none is usable (RiskManager._targetSigma). */
export function targetSigma(source: bigint, feedSigma: bigint, estimator: EstimatorMirror, p: { sigmaMinD18: bigint; sigmaMaxD18: bigint }) {
  let t = 0n;
  if (source !== SIGMA_SOURCE.ESTIMATOR) t = feedSigma;
  if (source !== SIGMA_SOURCE.FEED && estimator.initialized()) t = max(t, estimator.sigma());
  if (t === 0n) return 0n;
  return min(max(t, p.sigmaMinD18), p.sigmaMaxD18);
}

/** A market's parameters as math.ts's RiskParams (for baseRatios). */
export async function riskParams(f: Fixture, m: number): Promise<RiskParams & { sigmaDecayHalfLife: bigint; volMaxAge: bigint }> {
  const p = await f.riskManager.marketParams(m);
  return {
    zMmD18: p.zMmD18,
    zImD18: p.zImD18,
    liqFeeD18: p.liqFeeD18,
    horizonSec: p.horizonSec,
    mmrMinD18: p.mmrMinD18,
    mmrMaxD18: p.mmrMaxD18,
    imrMinD18: p.imrMinD18,
    sizeAddOnD18: p.sizeAddOnD18,
    sigmaMinD18: p.sigmaMinD18,
    sigmaMaxD18: p.sigmaMaxD18,
    takerFeeD18: p.takerFeeD18,
    makerFeeD18: p.makerFeeD18,
    skewScaleD18: p.skewScaleD18,
    maxFundingRateD18: p.maxFundingRateD18,
    oiCapRatioD18: p.oiCapRatioD18,
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

/** Commits an order and executes it after minDelay; returns whether it filled and the decoded cancel reason. */
export async function execOrder(f: Fixture, trader: { address: string }, marketId: number, size: bigint) {
  const signer = await ethers.getSigner(trader.address);
  const fee = await f.clearingHouse.minExecutionFee();
  const limit = size > 0n ? 2n ** 95n : 0n;
  const rc = await (await f.clearingHouse.connect(signer).commitOrder(marketId, size, limit, { value: fee })).wait();
  const orderId = chEvents(f, rc).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
  await time.increase(Number(await f.clearingHouse.minDelay()));
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
