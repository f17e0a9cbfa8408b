/**
 * Sigma's margin and pricing math in TypeScript: a bigint mirror of `contracts/libraries/MarginMath.sol`,
 * operation for operation and with the same rounding, plus the account-level steps of the ClearingHouse
 * (`_margin`, `_summary`, `_status`, `_fill`), the Vault's settlement and SigmaLens's liquidation price.
 *
 * Every value is a bigint in the contracts' units: prices, sizes, ratios and USD amounts are 18-decimal
 * fixed point (`D18`), collateral is in token units (6 for USDC), times are Unix seconds. Where Solidity
 * would revert (checked-arithmetic overflow, division by zero, a SafeCast bound, a custom error), the mirror
 * throws a {@link SigmaMathError} carrying the same error name and arguments, so an integrator can match
 * an `OrderCancelled.reason` with a prediction.
 *
 * This module has no dependency on ethers or on a chain: it is pure and synchronous.
 */

// ===================================================================================== constants

/** 1.0 in 18-decimal fixed point. */
export const WAD = 10n ** 18n;
/** One day, seconds (MarginMath.DAY). */
export const DAY = 86_400n;
/** One year of 365 days, seconds (MarginMath.YEAR). */
export const YEAR = 365n * DAY;
export const MAX_UINT256 = (1n << 256n) - 1n;
export const MAX_INT256 = (1n << 255n) - 1n;
export const MIN_INT256 = -(1n << 255n);
/** `healthD18` of an account without positions (type(uint256).max). */
export const INFINITE_HEALTH = MAX_UINT256;
/** Largest acceptable price an order can carry (the field is a uint96). */
export const MAX_ACCEPTABLE_PRICE = (1n << 96n) - 1n;
/** ClearingHouse.MAX_MARKETS_PER_ACCOUNT. */
export const MAX_MARKETS_PER_ACCOUNT = 8;

/** Solidity panic codes (`Panic(uint256)`). */
export const PANIC_OVERFLOW = 0x11n;
export const PANIC_DIVISION_BY_ZERO = 0x12n;

/** Circuit-breaker flags of `MarketRisk.breakers` (contracts/libraries/Breakers.sol); any flag → reduce-only. */
export const BREAKERS = {
  OPENING_PAUSED: 1n,
  SEQUENCER: 2n,
  VOL_STALE: 4n,
  SIGMA: 8n,
  PRICE_JUMP: 16n,
  PRICE_STALE: 32n,
} as const;

/** Names of the breaker flags set in `breakers`. */
export function breakerNames(breakers: bigint): string[] {
  return Object.entries(BREAKERS)
    .filter(([, bit]) => (breakers & bit) !== 0n)
    .map(([name]) => name);
}

/** IClearingHouse.AccountStatus. */
export enum AccountStatus {
  Healthy = 0,
  MarginCallable = 1,
  MarginCalled = 2,
  Liquidatable = 3,
}

// ===================================================================================== errors

/**
 * What the contracts would revert with: `errorName` is the Solidity error (`Panic`, `MarginMathInvalidFillPrice`,
 * `SafeCastOverflowedUintToInt`, `ClearingHouseInsufficientMargin`…) and `args` its arguments.
 */
export class SigmaMathError extends Error {
  constructor(
    public readonly errorName: string,
    public readonly args: readonly (bigint | string)[],
  ) {
    super(`${errorName}(${args.map(String).join(", ")})`);
    this.name = "SigmaMathError";
  }
}

function panic(code: bigint): never {
  throw new SigmaMathError("Panic", [code]);
}

/** The caller passed a value its Solidity type cannot hold (the ABI encoder would reject it too). */
function domain(name: string, x: bigint, lo: bigint, hi: bigint): bigint {
  if (typeof x !== "bigint") throw new TypeError(`${name}: expected a bigint, got ${typeof x}`);
  if (x < lo || x > hi) throw new RangeError(`${name}: ${x} is outside [${lo}, ${hi}]`);
  return x;
}
const uint = (name: string, x: bigint) => domain(name, x, 0n, MAX_UINT256);
const int = (name: string, x: bigint) => domain(name, x, MIN_INT256, MAX_INT256);

// ===================================================================================== checked arithmetic

/** A uint256 result of checked arithmetic (`+`, `-`, `*`): reverts with Panic(0x11) out of range. */
function cu(x: bigint): bigint {
  if (x < 0n || x > MAX_UINT256) panic(PANIC_OVERFLOW);
  return x;
}

/** An int256 result of checked arithmetic: reverts with Panic(0x11) out of range. */
function ci(x: bigint): bigint {
  if (x < MIN_INT256 || x > MAX_INT256) panic(PANIC_OVERFLOW);
  return x;
}

/** Unsigned `a / b`. */
function udiv(a: bigint, b: bigint): bigint {
  if (b === 0n) panic(PANIC_DIVISION_BY_ZERO);
  return a / b;
}

/** Signed `a / b`, truncating toward zero like Solidity. */
function sdiv(a: bigint, b: bigint): bigint {
  if (b === 0n) panic(PANIC_DIVISION_BY_ZERO);
  if (a === MIN_INT256 && b === -1n) panic(PANIC_OVERFLOW);
  return a / b; // bigint division truncates toward zero, as Solidity's
}

const abs = (x: bigint) => (x < 0n ? -x : x);
const minU = (a: bigint, b: bigint) => (a < b ? a : b);
const maxU = (a: bigint, b: bigint) => (a > b ? a : b);

/** SafeCast.toInt256. */
export function toInt256(x: bigint): bigint {
  if (x > MAX_INT256) throw new SigmaMathError("SafeCastOverflowedUintToInt", [x]);
  return x;
}

/** SafeCast.toInt<bits> (int128, int120, int96…). */
export function toIntN(bits: number, x: bigint): bigint {
  const lim = 1n << BigInt(bits - 1);
  if (x < -lim || x >= lim) throw new SigmaMathError("SafeCastOverflowedIntDowncast", [BigInt(bits), x]);
  return x;
}

/** SafeCast.toUint<bits> (uint128, uint96, uint64…). */
export function toUintN(bits: number, x: bigint): bigint {
  if (x >= 1n << BigInt(bits)) throw new SigmaMathError("SafeCastOverflowedUintDowncast", [BigInt(bits), x]);
  return x;
}

/** Explicit `int256(x)` of a uint256 (wraps, no check — as Solidity). */
function wrapInt256(x: bigint): bigint {
  return x > MAX_INT256 ? x - (1n << 256n) : x;
}

/** OpenZeppelin Math.mulDiv(x, y, d[, Ceil]): full-precision ⌊x·y/d⌋ (or ⌈⌉); reverts if d = 0 or the result overflows. */
export function mulDiv(x: bigint, y: bigint, d: bigint, roundUp = false): bigint {
  uint("x", x);
  uint("y", y);
  uint("d", d);
  if (d === 0n) panic(PANIC_DIVISION_BY_ZERO);
  const p = x * y;
  let r = p / d;
  if (r > MAX_UINT256) panic(PANIC_OVERFLOW);
  if (roundUp && p % d !== 0n) r = cu(r + 1n);
  return r;
}

/** OpenZeppelin Math.ceilDiv(a, b). */
export function ceilDiv(a: bigint, b: bigint): bigint {
  uint("a", a);
  uint("b", b);
  if (b === 0n) panic(PANIC_DIVISION_BY_ZERO);
  return a === 0n ? 0n : (a - 1n) / b + 1n;
}

/** OpenZeppelin Math.sqrt: ⌊√a⌋. */
export function sqrt(a: bigint): bigint {
  uint("a", a);
  if (a < 2n) return a;
  // Newton's iteration from a power of two above the root converges monotonically down to ⌊√a⌋.
  let x = 1n << BigInt(Math.ceil(a.toString(2).length / 2));
  for (;;) {
    const y = (x + a / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

// ===================================================================================== MarginMath

/** Parameters that turn σ into margin ratios (MarginMath.RatioParams), all D18. */
export interface RatioParams {
  zMmD18: bigint;
  zImD18: bigint;
  sqrtHorizonD18: bigint;
  liqFeeD18: bigint;
  mmrMinD18: bigint;
  mmrMaxD18: bigint;
  imrMinD18: bigint;
}

/** MarginMath.mulDivUp: ⌈a·b/d⌉ with a checked product (0 when a·b = 0, whatever d). */
export function mulDivUp(a: bigint, b: bigint, d: bigint): bigint {
  uint("a", a);
  uint("b", b);
  uint("d", d);
  const p = cu(a * b);
  return p === 0n ? 0n : udiv(p - 1n, d) + 1n;
}

/** MarginMath.sqrtHorizonD18: √(horizonSec / 1 year) in D18, rounded down. */
export function sqrtHorizonD18(horizonSec: bigint): bigint {
  return sqrt(mulDiv(uint("horizonSec", horizonSec), WAD * WAD, YEAR));
}

/** MarginMath.moveD18: z·σ·√h, rounded up. */
export function moveD18(zD18: bigint, sigmaD18: bigint, sqrtHD18: bigint): bigint {
  return mulDivUp(mulDivUp(zD18, sigmaD18, WAD), sqrtHD18, WAD);
}

/** MarginMath.baseRatios: MMR = clamp(z_mm·σ√h + liqFee, mmrMin, mmrMax), IMR = clamp(z_im·σ√h + liqFee, imrMin, 1) ≥ MMR. */
export function baseRatios(p: RatioParams, sigmaD18: bigint): { mmrD18: bigint; imrD18: bigint } {
  const mmrD18 = minU(maxU(cu(moveD18(p.zMmD18, sigmaD18, p.sqrtHorizonD18) + uint("liqFeeD18", p.liqFeeD18)), p.mmrMinD18), p.mmrMaxD18);
  let imrD18 = minU(maxU(cu(moveD18(p.zImD18, sigmaD18, p.sqrtHorizonD18) + p.liqFeeD18), p.imrMinD18), WAD);
  if (imrD18 < mmrD18) imrD18 = mmrD18;
  return { mmrD18, imrD18 };
}

/** MarginMath.sizeAddOnD18: addOn·|size|/skewScale, rounded up. */
export function sizeAddOnD18(absSizeD18: bigint, addOnD18: bigint, skewScaleD18: bigint): bigint {
  return mulDivUp(absSizeD18, addOnD18, skewScaleD18);
}

/** MarginMath.notionalUpD18: |size|·price, rounded up. */
export function notionalUpD18(absSizeD18: bigint, priceD18: bigint): bigint {
  return mulDivUp(absSizeD18, priceD18, WAD);
}

/** MarginMath.requirementD18: |size|·price·(ratio + size add-on), rounded up. */
export function requirementD18(absSizeD18: bigint, priceD18: bigint, ratioD18: bigint, addOnD18: bigint, skewScaleD18: bigint): bigint {
  const ratio = cu(uint("ratioD18", ratioD18) + sizeAddOnD18(absSizeD18, addOnD18, skewScaleD18));
  return mulDivUp(notionalUpD18(absSizeD18, priceD18), ratio, WAD);
}

/** MarginMath.fillPriceD18: p·(1 + (skewBefore + skewAfter)/2/skewScale); buys round up, sells down. */
export function fillPriceD18(priceD18: bigint, skewD18: bigint, sizeDeltaD18: bigint, skewScaleD18: bigint): bigint {
  uint("priceD18", priceD18);
  int("skewD18", skewD18);
  int("sizeDeltaD18", sizeDeltaD18);
  const twoScale = toInt256(cu(2n * uint("skewScaleD18", skewScaleD18)));
  const num = ci(ci(twoScale + ci(2n * skewD18)) + sizeDeltaD18);
  if (num <= 0n) throw new SigmaMathError("MarginMathInvalidFillPrice", [skewD18, sizeDeltaD18]);
  return sizeDeltaD18 > 0n ? mulDivUp(priceD18, num, twoScale) : udiv(cu(priceD18 * num), twoScale);
}

/** MarginMath.tradeFeeD18: maker rate on the skew-reducing part, taker rate on the rest, on the fill notional, rounded up. */
export function tradeFeeD18(skewD18: bigint, sizeDeltaD18: bigint, fillPriceD18_: bigint, takerD18: bigint, makerD18: bigint): bigint {
  int("skewD18", skewD18);
  int("sizeDeltaD18", sizeDeltaD18);
  uint("takerD18", takerD18);
  uint("makerD18", makerD18);
  const absDelta = abs(sizeDeltaD18);
  let makerPart = 0n;
  if (skewD18 !== 0n && skewD18 > 0n !== sizeDeltaD18 > 0n) makerPart = minU(absDelta, abs(skewD18));
  const weighted = cu(cu(makerPart * makerD18) + cu((absDelta - makerPart) * takerD18));
  return mulDiv(weighted, fillPriceD18_, WAD * WAD, true);
}

/**
 * MarginMath.fundingIndexDeltaD18: clamp(skew/skewScale, −1, 1)·maxRatePerDay·price·dt/1d, USD per unit of size.
 * Positive: longs pay shorts. The magnitude rounds down.
 */
export function fundingIndexDeltaD18(
  skewD18: bigint,
  skewScaleD18: bigint,
  maxFundingRatePerDayD18: bigint,
  priceD18: bigint,
  elapsed: bigint,
): bigint {
  int("skewD18", skewD18);
  uint("skewScaleD18", skewScaleD18);
  uint("maxFundingRatePerDayD18", maxFundingRatePerDayD18);
  uint("priceD18", priceD18);
  uint("elapsed", elapsed);
  if (skewD18 === 0n || elapsed === 0n || maxFundingRatePerDayD18 === 0n) return 0n;
  const proportion = minU(mulDiv(abs(skewD18), WAD, skewScaleD18), WAD);
  const magnitude = mulDiv(cu(proportion * maxFundingRatePerDayD18), cu(priceD18 * elapsed), WAD * WAD * DAY);
  const d = toInt256(magnitude);
  return skewD18 > 0n ? d : -d;
}

/** MarginMath.mulDivSigned: a·b/d for signed a, rounded toward +∞ when `up`, toward −∞ otherwise. */
export function mulDivSigned(a: bigint, b: bigint, d: bigint, up: boolean): bigint {
  int("a", a);
  uint("b", b);
  uint("d", d);
  const neg = a < 0n;
  const ceil = up !== neg;
  const absA = abs(a);
  const m = toInt256(ceil ? mulDivUp(absA, b, d) : udiv(cu(absA * b), d));
  return neg ? -m : m;
}

/** MarginMath.mulSigned: a·b/1e18 for signed a and b, rounded toward +∞ when `up`, toward −∞ otherwise. */
export function mulSigned(a: bigint, b: bigint, up: boolean): bigint {
  int("a", a);
  int("b", b);
  return mulDivSigned(b < 0n ? ci(-a) : a, abs(b), WAD, up);
}

/** MarginMath.pnlD18: size·price − size·index − costBasis, rounded toward −∞ (PnL including funding). */
export function pnlD18(sizeD18: bigint, costBasisD18: bigint, priceD18: bigint, indexD18: bigint): bigint {
  int("costBasisD18", costBasisD18);
  return ci(ci(mulDivSigned(sizeD18, priceD18, WAD, false) - mulSigned(sizeD18, indexD18, true)) - costBasisD18);
}

/** MarginMath.basisDeltaD18: delta·(fill − index), rounded toward +∞. */
export function basisDeltaD18(sizeDeltaD18: bigint, fillD18: bigint, indexD18: bigint): bigint {
  return ci(mulDivSigned(sizeDeltaD18, fillD18, WAD, true) - mulSigned(sizeDeltaD18, indexD18, false));
}

/** MarginMath.toTokensFloor: D18 → token units, toward −∞ (a gain rounds down, a loss rounds up). */
export function toTokensFloor(amountD18: bigint, scale: bigint): bigint {
  int("amountD18", amountD18);
  uint("scale", scale);
  if (amountD18 >= 0n) return sdiv(amountD18, wrapInt256(scale));
  return ci(-wrapInt256(ceilDiv(ci(-amountD18), scale)));
}

/** MarginMath.nextCostBasis: cost basis after a fill and the PnL (including funding) realized on the part it closes. */
export function nextCostBasis(
  size: bigint,
  basis: bigint,
  delta: bigint,
  fill: bigint,
  index: bigint,
): { newBasis: bigint; realized: bigint } {
  int("size", size);
  int("basis", basis);
  int("delta", delta);
  if (size === 0n || size > 0n === delta > 0n) {
    return { newBasis: ci(basis + basisDeltaD18(delta, fill, index)), realized: 0n };
  }
  const absSize = abs(size);
  const closeAbs = minU(absSize, abs(delta));
  // Toward +∞: the closed part's basis rounds up, so the realized PnL rounds against the trader.
  const closedBasis = mulDivSigned(basis, closeAbs, absSize, true);
  const closedSize = size > 0n ? toInt256(closeAbs) : -toInt256(closeAbs);
  const realized = pnlD18(closedSize, closedBasis, fill, index);
  let newBasis = ci(basis - closedBasis);
  if (abs(delta) > absSize) newBasis = basisDeltaD18(ci(size + delta), fill, index);
  return { newBasis, realized };
}

// ===================================================================================== market state

/** IRiskManager.MarketRisk: one market's oracle price, σ, ratios (before size add-on), fees and breakers. */
export interface MarketRisk {
  priceD18: bigint;
  sigmaD18: bigint;
  mmrD18: bigint;
  imrD18: bigint;
  liqFeeD18: bigint;
  sizeAddOnD18: bigint;
  skewScaleD18: bigint;
  takerFeeD18: bigint;
  makerFeeD18: bigint;
  maxFundingRateD18: bigint;
  oiCapRatioD18: bigint;
  breakers: bigint;
}

/** IClearingHouse.MarketState: a market's aggregates as stored (funding index as of `lastFundingTime`). */
export interface MarketState {
  skewD18: bigint;
  netCostBasisD18: bigint;
  oiLongD18: bigint;
  oiShortD18: bigint;
  fundingIndexD18: bigint;
  lastFundingTime: bigint;
}

/** One market as the ClearingHouse sees it in one block: risk snapshot plus aggregates. */
export interface MarketSnapshot {
  marketId: number;
  risk: MarketRisk;
  state: MarketState;
  /** Block timestamp the snapshot was read at. */
  timestamp: bigint;
  /** Funding index including funding pending since the last accrual, at `timestamp`. */
  fundingIndexD18: bigint;
}

/** A position (IClearingHouse.Position without the `used` bit). */
export interface Position {
  sizeD18: bigint;
  costBasisD18: bigint;
}

/**
 * ClearingHouse._pendingIndex: the market's funding index at `now` including funding not yet accrued
 * (equal to what `_accrue` would store by a fill at `now`).
 */
export function pendingFundingIndexD18(state: MarketState, risk: MarketRisk, now: bigint): bigint {
  const last = state.lastFundingTime;
  if (last === 0n || last >= now) return state.fundingIndexD18; // a last accrual at or after `now` accrues nothing
  return ci(
    state.fundingIndexD18 +
      fundingIndexDeltaD18(state.skewD18, risk.skewScaleD18, risk.maxFundingRateD18, risk.priceD18, cu(now - last)),
  );
}

/** Builds a snapshot from a risk read and a state read of the same block. */
export function makeSnapshot(marketId: number, risk: MarketRisk, state: MarketState, timestamp: bigint): MarketSnapshot {
  return { marketId, risk, state, timestamp, fundingIndexD18: pendingFundingIndexD18(state, risk, timestamp) };
}

/** SigmaLens.quote: fill price with the skew premium and the trading fee of `sizeDeltaD18` now (D18). */
export function quote(snap: Pick<MarketSnapshot, "risk" | "state">, sizeDeltaD18: bigint): { fillPriceD18: bigint; feeD18: bigint } {
  const { risk, state } = snap;
  const fill = fillPriceD18(risk.priceD18, state.skewD18, sizeDeltaD18, risk.skewScaleD18);
  return { fillPriceD18: fill, feeD18: tradeFeeD18(state.skewD18, sizeDeltaD18, fill, risk.takerFeeD18, risk.makerFeeD18) };
}

/** SigmaLens.fundingRatePerDayD18: funding rate per day at the current skew (positive: longs pay shorts). */
export function fundingRatePerDayD18(snap: Pick<MarketSnapshot, "risk" | "state">): bigint {
  return fundingIndexDeltaD18(snap.state.skewD18, snap.risk.skewScaleD18, snap.risk.maxFundingRateD18, WAD, DAY);
}

/** SigmaLens.breakEvenPriceD18: costBasis/size + stored funding index (0 without a position or if ≤ 0). */
export function breakEvenPriceD18(pos: Position, state: MarketState): bigint {
  if (pos.sizeD18 === 0n) return 0n;
  const p = ci(sdiv(ci(pos.costBasisD18 * WAD), pos.sizeD18) + state.fundingIndexD18);
  return p > 0n ? p : 0n;
}

// ===================================================================================== accounts

/** The ClearingHouse's global parameters the margin math depends on. */
export interface AccountParams {
  /** Vault.tokenScale(): 10^(18 − token decimals). */
  tokenScale: bigint;
  /** ClearingHouse.hardFloorD18(): below hardFloor × MM an account is liquidatable at once. */
  hardFloorD18: bigint;
  /** ClearingHouse.marginCallExpiry(): seconds a margin call stays usable after its deadline. */
  marginCallExpiry: bigint;
}

/** Everything the ClearingHouse knows about one account. */
export interface AccountState {
  /** For error arguments only (e.g. ClearingHouseInsufficientMargin(account, …)). */
  address?: string;
  /** Vault collateral, token units. */
  collateral: bigint;
  /** Positions by market id; markets absent or with size 0 have no position. */
  positions: ReadonlyMap<number, Position>;
  /** The margin-call deadline stored for the account (0 if none). */
  marginCallDeadline: bigint;
}

/** IClearingHouse.AccountSummary (D18 unless noted). */
export interface AccountSummary {
  /** Token units. */
  collateral: bigint;
  unrealizedPnlD18: bigint;
  equityD18: bigint;
  initialRequirementD18: bigint;
  maintenanceRequirementD18: bigint;
  /** min(collateral, equity) − initial requirement, floored at 0, token units. */
  freeCollateral: bigint;
  /** equity / maintenance requirement; {@link INFINITE_HEALTH} without positions. */
  healthD18: bigint;
  liquidatable: boolean;
  status: AccountStatus;
  /** The live margin call's deadline (0 unless MarginCalled or Liquidatable). */
  marginCallDeadline: bigint;
}

/** Sum of PnL and requirements over an account's markets (ClearingHouse.Totals). */
interface Totals {
  pnlD18: bigint;
  imD18: bigint;
  mmD18: bigint;
}

/** Markets an account has positions in, ascending (the ClearingHouse walks its bitmap in this order). */
function openMarkets(positions: ReadonlyMap<number, Position>): number[] {
  return [...positions.entries()]
    .filter(([, p]) => p.sizeD18 !== 0n)
    .map(([m]) => m)
    .sort((a, b) => a - b);
}

/** ClearingHouse._margin: equity and requirements given collateral and the funding index per market. */
function margin(
  collateral: bigint,
  positions: ReadonlyMap<number, Position>,
  risks: (marketId: number) => { risk: MarketRisk; indexD18: bigint },
  scale: bigint,
): { equityD18: bigint; t: Totals } {
  const t: Totals = { pnlD18: 0n, imD18: 0n, mmD18: 0n };
  for (const m of openMarkets(positions)) {
    const pos = positions.get(m)!;
    const { risk: r, indexD18 } = risks(m);
    const absSize = abs(pos.sizeD18);
    t.pnlD18 = ci(t.pnlD18 + pnlD18(pos.sizeD18, pos.costBasisD18, r.priceD18, indexD18));
    t.imD18 = cu(t.imD18 + requirementD18(absSize, r.priceD18, r.imrD18, r.sizeAddOnD18, r.skewScaleD18));
    t.mmD18 = cu(t.mmD18 + requirementD18(absSize, r.priceD18, r.mmrD18, r.sizeAddOnD18, r.skewScaleD18));
  }
  return { equityD18: ci(toInt256(cu(collateral * scale)) + t.pnlD18), t };
}

/** ClearingHouse._status. */
export function accountStatus(equityD18: bigint, mmD18: bigint, deadline: bigint, params: AccountParams, now: bigint): AccountStatus {
  if (mmD18 === 0n || equityD18 >= toInt256(mmD18)) return AccountStatus.Healthy;
  if (equityD18 < toInt256(mulDiv(mmD18, params.hardFloorD18, WAD))) return AccountStatus.Liquidatable;
  if (deadline === 0n || now > cu(deadline + params.marginCallExpiry)) return AccountStatus.MarginCallable;
  if (now < deadline) return AccountStatus.MarginCalled;
  return AccountStatus.Liquidatable;
}

function summarize(collateral: bigint, equityD18: bigint, t: Totals, deadline: bigint, params: AccountParams, now: bigint): AccountSummary {
  const scale = params.tokenScale;
  // Unrealized profit is not withdrawable: free = min(collateral, equity) − initial requirement.
  const base = ci(toInt256(minU(cu(collateral * scale), equityD18 < 0n ? 0n : equityD18)) - toInt256(t.imD18));
  const healthD18 = t.mmD18 === 0n ? INFINITE_HEALTH : equityD18 <= 0n ? 0n : mulDiv(equityD18, WAD, t.mmD18);
  const status = accountStatus(equityD18, t.mmD18, deadline, params, now);
  return {
    collateral,
    unrealizedPnlD18: t.pnlD18,
    equityD18,
    initialRequirementD18: t.imD18,
    maintenanceRequirementD18: t.mmD18,
    freeCollateral: base <= 0n ? 0n : base / scale,
    healthD18,
    liquidatable: status === AccountStatus.Liquidatable,
    status,
    marginCallDeadline: status === AccountStatus.MarginCalled || status === AccountStatus.Liquidatable ? deadline : 0n,
  };
}

/** Looks up a market snapshot or explains which one is missing. */
function need(markets: ReadonlyMap<number, Pick<MarketSnapshot, "risk" | "state">>, m: number) {
  const s = markets.get(m);
  if (!s) throw new Error(`no snapshot of market ${m}: pass every market the account has a position in`);
  return s;
}

/**
 * ClearingHouse.accountSummary at time `now`: equity (collateral + PnL including pending funding), initial and
 * maintenance requirements, free collateral, health and status. `markets` must hold a snapshot of every
 * market the account has a position in; funding pending up to `now` is computed from their stored state.
 */
export function accountSummary(
  account: AccountState,
  markets: ReadonlyMap<number, Pick<MarketSnapshot, "risk" | "state">>,
  params: AccountParams,
  now: bigint,
): AccountSummary {
  const { equityD18, t } = margin(
    account.collateral,
    account.positions,
    (m) => {
      const s = need(markets, m);
      return { risk: s.risk, indexD18: pendingFundingIndexD18(s.state, s.risk, now) };
    },
    params.tokenScale,
  );
  return summarize(account.collateral, equityD18, t, account.marginCallDeadline, params, now);
}

/**
 * SigmaLens.liquidationPriceD18: the price of the position's market at which equity meets the maintenance
 * requirement, holding σ, funding and the other markets fixed; 0 if none (no position, or no positive price).
 * `summary` is the account's summary at the same state.
 */
export function liquidationPriceD18(
  summary: Pick<AccountSummary, "equityD18" | "maintenanceRequirementD18">,
  sizeD18: bigint,
  risk: Pick<MarketRisk, "priceD18" | "mmrD18" | "sizeAddOnD18" | "skewScaleD18">,
): bigint {
  const s = sizeD18;
  if (s === 0n) return 0n;
  const absS = abs(s);
  const mmr = cu(risk.mmrD18 + sizeAddOnD18(absS, risk.sizeAddOnD18, risk.skewScaleD18));
  // Solve E0 + s·(p − p0) = M_other + |s|·p·mmr for p.
  const mOther = ci(
    toInt256(summary.maintenanceRequirementD18) -
      toInt256(requirementD18(absS, risk.priceD18, risk.mmrD18, risk.sizeAddOnD18, risk.skewScaleD18)),
  );
  const num = ci(ci(mOther - summary.equityD18) + sdiv(ci(s * toInt256(risk.priceD18)), WAD));
  const den = ci(s - toInt256(udiv(cu(absS * mmr), WAD)));
  if (den === 0n) return 0n;
  const p = sdiv(ci(num * WAD), den);
  return p > 0n ? p : 0n;
}

// ===================================================================================== trades

/** Why the ClearingHouse would cancel an order at execution: the custom error and its arguments. */
export interface Rejection {
  errorName: string;
  args: readonly (bigint | string)[];
}

/** Input of {@link previewTrade}. */
export interface TradeInput {
  account: AccountState;
  /** Snapshots of the traded market and of every market the account has a position in. */
  markets: ReadonlyMap<number, Pick<MarketSnapshot, "risk" | "state">>;
  params: AccountParams;
  /** Vault.poolBalance(), token units (for the open-interest cap and the pool's ability to pay a gain). */
  poolBalance: bigint;
  marketId: number;
  sizeDeltaD18: bigint;
  /** Worst accepted fill price: a maximum for buys, a minimum for sells. Default: no limit. */
  acceptablePriceD18?: bigint;
  /** Block timestamp of the execution (funding accrues up to it). */
  now: bigint;
  /**
   * A reduce-only (conditional) order: the fill is clamped to the open position and the order is cancelled
   * (ClearingHouseReduceOnly) if it would open or grow one — as ClearingHouse.fillOrder does.
   */
  reduceOnly?: boolean;
}

/** What a fill would do, computed as the ClearingHouse and Vault compute it. */
export interface TradePreview {
  marketId: number;
  sizeDeltaD18: bigint;
  now: bigint;
  /** Whether the ClearingHouse would fill the order (false: `executeOrder` cancels it with `rejection`). */
  accepted: boolean;
  rejection?: Rejection;
  /** Oracle price the fill is priced from. */
  oraclePriceD18: bigint;
  /** Undefined only when the price itself cannot be computed (MarginMathInvalidFillPrice). */
  fillPriceD18?: bigint;
  feeD18?: bigint;
  /** The fee charged in token units (ceilDiv(fee, scale)), before capping at what the account has left. */
  feeTokens?: bigint;
  /** The fee actually paid (capped at the collateral left after the PnL, as the Vault does). */
  feePaidTokens?: bigint;
  /** PnL including funding realized on the closed part (D18) and as settled in tokens (rounded toward −∞). */
  realizedPnlD18?: bigint;
  realizedPnlTokens?: bigint;
  /** Loss beyond the account's collateral (covered by the insurance fund, then the pool), token units. */
  badDebtTokens?: bigint;
  /** The market's funding index at execution (as PositionModified reports it). */
  fundingIndexD18: bigint;
  increasesRisk?: boolean;
  positionBefore: Position;
  positionAfter?: Position;
  /** The account's summary at `now` without the trade. */
  before: AccountSummary;
  /**
   * The summary right after the fill, whenever the fill's arithmetic goes through — also when `accepted` is
   * false because of margin or caps, to show by how much it misses. If the order is not accepted, the chain
   * keeps `before`.
   */
  after?: AccountSummary;
  /** Liquidation price of the traded market (SigmaLens.liquidationPriceD18) before and after. */
  liquidationPriceBeforeD18: bigint;
  liquidationPriceAfterD18?: bigint;
  /** The market's state right after the fill (funding accrued to `now`). */
  marketStateAfter?: MarketState;
  /**
   * The smallest deposit (token units) that, made before execution, lets a risk-increasing trade pass the
   * initial-margin check; 0 if it passes or the trade reduces risk.
   */
  marginShortfallTokens?: bigint;
}

/** Vault._settle: the account's collateral after a fill's PnL and fee, the fee paid and the bad debt. */
export function settle(
  collateral: bigint,
  pnlTokens: bigint,
  feeTokens: bigint,
  poolBalance: bigint,
): { collateralAfter: bigint; feePaid: bigint; badDebt: bigint } {
  let c = collateral;
  let badDebt = 0n;
  if (pnlTokens >= 0n) {
    if (pnlTokens > poolBalance) throw new SigmaMathError("VaultPoolInsufficient", [pnlTokens, poolBalance]);
    c += pnlTokens;
  } else {
    const loss = -pnlTokens;
    if (loss <= c) c -= loss;
    else {
      badDebt = loss - c;
      c = 0n;
    }
  }
  const feePaid = minU(feeTokens, c);
  return { collateralAfter: c - feePaid, feePaid, badDebt };
}

/**
 * What `executeOrder` would do with an order of `sizeDeltaD18` on `marketId` at time `now`, step for step
 * as ClearingHouse._fill: accrue funding, price with the skew premium, check the acceptable price and
 * reduce-only breakers, charge the fee, move the position and the market's aggregates, check the
 * open-interest cap, settle PnL and fee in the Vault, then check initial margin (risk-increasing trades) or
 * clear a cured margin call (reducing trades). The first failing check is the `rejection`, with the same
 * error the contract reverts with.
 */
export function previewTrade(input: TradeInput): TradePreview {
  const { account, markets, params, marketId, now } = input;
  let delta = input.sizeDeltaD18;
  const scale = params.tokenScale;
  const snap = need(markets, marketId);
  const r = snap.risk;
  const ms = snap.state;
  const index = pendingFundingIndexD18(ms, r, now);
  const pos = account.positions.get(marketId) ?? { sizeD18: 0n, costBasisD18: 0n };
  const before = accountSummary(account, markets, params, now);
  const out: TradePreview = {
    marketId,
    sizeDeltaD18: delta,
    now,
    accepted: false,
    oraclePriceD18: r.priceD18,
    fundingIndexD18: index,
    positionBefore: { sizeD18: pos.sizeD18, costBasisD18: pos.costBasisD18 },
    before,
    liquidationPriceBeforeD18: liquidationPriceD18(before, pos.sizeD18, r),
  };
  const reject = (e: unknown): TradePreview => {
    if (!(e instanceof SigmaMathError)) throw e;
    out.accepted = false;
    out.rejection = { errorName: e.errorName, args: e.args };
    return out;
  };
  if (delta === 0n) return reject(new SigmaMathError("ClearingHouseInvalidOrder", []));
  const acceptable = input.acceptablePriceD18 ?? (delta > 0n ? MAX_ACCEPTABLE_PRICE : 0n);

  let fill: bigint;
  let newSize: bigint;
  try {
    // commitOrder stores the order in int96/uint96 fields.
    toIntN(96, delta);
    toUintN(96, acceptable);
    if (input.reduceOnly) {
      // fillOrder: a reduce-only order closes at most what is open, never flips or opens.
      if (pos.sizeD18 === 0n || pos.sizeD18 > 0n === delta > 0n) throw new SigmaMathError("ClearingHouseReduceOnly", [BigInt(marketId)]);
      if (abs(delta) > abs(pos.sizeD18)) delta = -pos.sizeD18;
      out.sizeDeltaD18 = delta;
    }
    // _accrue stores the index as int128 before anything else.
    toIntN(128, index);
    fill = fillPriceD18(r.priceD18, ms.skewD18, delta, r.skewScaleD18);
    newSize = ci(pos.sizeD18 + delta);
  } catch (e) {
    return reject(e);
  }
  out.fillPriceD18 = fill;
  const increasesRisk =
    abs(newSize) > abs(pos.sizeD18) || (newSize !== 0n && pos.sizeD18 !== 0n && newSize > 0n !== pos.sizeD18 > 0n);
  out.increasesRisk = increasesRisk;
  // Checks the contract makes before touching state, in its order; the rest of the preview is still filled in.
  let rejection: SigmaMathError | undefined;
  if (delta > 0n ? fill > acceptable : fill < acceptable) {
    rejection = new SigmaMathError("ClearingHouseAcceptablePriceExceeded", [fill, acceptable]);
  } else if (increasesRisk && r.breakers !== 0n) {
    rejection = new SigmaMathError("ClearingHouseMarketReduceOnly", [BigInt(marketId), r.breakers]);
  }

  let state: MarketState;
  let positions: Map<number, Position>;
  let collateralAfter: bigint;
  let marginCallDeadline = account.marginCallDeadline;
  let equityAfter: bigint;
  let tAfter: Totals;
  try {
    const fee = tradeFeeD18(ms.skewD18, delta, fill, r.takerFeeD18, r.makerFeeD18);
    out.feeD18 = fee;
    out.feeTokens = ceilDiv(fee, scale);

    // _applyFill: the position and the market's aggregates move by the same amounts.
    const { newBasis, realized } = nextCostBasis(pos.sizeD18, pos.costBasisD18, delta, fill, index);
    out.realizedPnlD18 = realized;
    state = {
      skewD18: toIntN(128, ci(ms.skewD18 + delta)),
      netCostBasisD18: toIntN(128, ci(ci(ms.netCostBasisD18 + newBasis) - pos.costBasisD18)),
      oiLongD18: ms.oiLongD18,
      oiShortD18: ms.oiShortD18,
      fundingIndexD18: toIntN(128, index),
      lastFundingTime: now,
    };
    if (pos.sizeD18 > 0n) state.oiLongD18 = cu(state.oiLongD18 - toUintN(128, pos.sizeD18));
    else if (pos.sizeD18 < 0n) state.oiShortD18 = cu(state.oiShortD18 - toUintN(128, -pos.sizeD18));
    if (newSize > 0n) state.oiLongD18 = toUintN(128, cu(state.oiLongD18 + toUintN(128, newSize)));
    else if (newSize < 0n) state.oiShortD18 = toUintN(128, cu(state.oiShortD18 + toUintN(128, -newSize)));
    positions = new Map(account.positions);
    if (newSize === 0n) {
      positions.delete(marketId);
    } else {
      positions.set(marketId, { sizeD18: toIntN(128, newSize), costBasisD18: toIntN(120, newBasis) });
      if (pos.sizeD18 === 0n && openMarkets(account.positions).length >= MAX_MARKETS_PER_ACCOUNT) {
        throw new SigmaMathError("ClearingHouseTooManyMarkets", [account.address ?? "account"]);
      }
    }
    out.positionAfter = positions.get(marketId) ?? { sizeD18: 0n, costBasisD18: 0n };
    out.marketStateAfter = state;

    if (increasesRisk && !rejection) {
      // _checkOpenInterest, on the grown side, against the pool less what it owes this market's traders.
      const oiNotional = notionalUpD18(newSize > 0n ? state.oiLongD18 : state.oiShortD18, r.priceD18);
      let capacity = toInt256(cu(input.poolBalance * scale));
      const owed = pnlD18(state.skewD18, state.netCostBasisD18, r.priceD18, state.fundingIndexD18);
      if (owed > 0n) capacity = ci(capacity - owed);
      const cap = capacity <= 0n ? 0n : mulDiv(capacity, r.oiCapRatioD18, WAD);
      if (oiNotional > cap) rejection = new SigmaMathError("ClearingHouseOpenInterestCap", [BigInt(marketId), oiNotional, cap]);
    }

    out.realizedPnlTokens = toTokensFloor(realized, scale);
    const pnlTokens = out.realizedPnlTokens;
    const feeTokens = out.feeTokens;
    // Vault settlement then ClearingHouse._margin over the account's markets, with `extra` tokens deposited first.
    const settleAndMargin = (extra: bigint) => {
      const st = settle(cu(account.collateral + extra), pnlTokens, feeTokens, input.poolBalance);
      const m = margin(
        st.collateralAfter,
        positions,
        (id) => {
          if (id === marketId) return { risk: r, indexD18: state.fundingIndexD18 };
          const o = need(markets, id);
          return { risk: o.risk, indexD18: pendingFundingIndexD18(o.state, o.risk, now) };
        },
        scale,
      );
      return { ...st, ...m };
    };
    const res = settleAndMargin(0n);
    collateralAfter = res.collateralAfter;
    out.feePaidTokens = res.feePaid;
    out.badDebtTokens = res.badDebt;
    equityAfter = res.equityD18;
    tAfter = res.t;
    if (increasesRisk) {
      if (!rejection && equityAfter < toInt256(tAfter.imD18)) {
        rejection = new SigmaMathError("ClearingHouseInsufficientMargin", [account.address ?? "account", equityAfter, tAfter.imD18]);
      }
      // The smallest deposit that passes the check. A deposit first absorbs bad debt and the part of the fee
      // that could not be paid (equity unchanged), then raises equity by exactly one token per token; both
      // steps below are lower bounds of what is still missing, so the loop stops at the minimum.
      let extra = 0n;
      for (let x = res; x.equityD18 < toInt256(x.t.imD18); x = settleAndMargin(extra)) {
        const absorbed = x.collateralAfter === 0n ? x.badDebt + (feeTokens - x.feePaid) : 0n;
        extra += absorbed > 0n ? absorbed : ceilDiv(toInt256(x.t.imD18) - x.equityD18, scale);
      }
      out.marginShortfallTokens = extra;
    } else {
      out.marginShortfallTokens = 0n;
      // _clearIfHealthyWith: a reducing fill clears a margin call it cured.
      if (marginCallDeadline !== 0n && equityAfter >= toInt256(tAfter.mmD18)) marginCallDeadline = 0n;
    }
  } catch (e) {
    if (rejection) return reject(rejection);
    return reject(e);
  }

  out.after = summarize(collateralAfter, equityAfter, tAfter, marginCallDeadline, params, now);
  out.liquidationPriceAfterD18 = liquidationPriceD18(out.after, out.positionAfter!.sizeD18, r);
  if (rejection) return reject(rejection);
  out.accepted = true;
  return out;
}

// ===================================================================================== order helpers

/**
 * Acceptable price for an order from a reference fill price and a slippage tolerance in basis points: a buy
 * accepts up to fill·(1 + bps), rounded up; a sell down to fill·(1 − bps), rounded down. Capped to the
 * order's uint96 field.
 */
export function acceptablePriceWithSlippage(fillPriceD18_: bigint, sizeDeltaD18: bigint, slippageBps: number | bigint): bigint {
  const bps = BigInt(slippageBps);
  if (bps < 0n || bps > 10_000n) throw new RangeError(`slippageBps must be within [0, 10000], got ${slippageBps}`);
  if (sizeDeltaD18 > 0n) {
    const p = mulDiv(fillPriceD18_, 10_000n + bps, 10_000n, true);
    return p > MAX_ACCEPTABLE_PRICE ? MAX_ACCEPTABLE_PRICE : p;
  }
  return mulDiv(fillPriceD18_, 10_000n - bps, 10_000n);
}
