// Independent bigint model of Sigma's clearinghouse: MarginMath's formulas, the clearinghouse's fill,
// funding, margin and liquidation steps, and the Vault's settlement waterfall, written from the spec so that
// tests can predict every on-chain value to the wei. Plus a little glue to drive and compare the chain.
import { expect } from "chai";
import { ethers } from "hardhat";
import { parseUnits } from "ethers";
import type { ContractTransactionReceipt } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { Fixture, trade, chEvents, setVol } from "../fixture";
import { MockV3Aggregator__factory } from "../../typechain-types";

// ===================================================================== fixed-point primitives

export const WAD = 10n ** 18n;
export const DAY = 86_400n;
export const YEAR = 365n * DAY;
export const MAX_UINT = 2n ** 256n - 1n;

export const abs = (x: bigint) => (x < 0n ? -x : x);
export const min = (a: bigint, b: bigint) => (a < b ? a : b);
export const max = (a: bigint, b: bigint) => (a > b ? a : b);

/** ⌈a/b⌉ for a ≥ 0. */
export function ceilDiv(a: bigint, b: bigint): bigint {
  if (a < 0n || b <= 0n) throw new Error("ceilDiv domain");
  return a === 0n ? 0n : (a - 1n) / b + 1n;
}

/** a·b/d for a, b ≥ 0, rounded up when `up`. */
export function mulDiv(a: bigint, b: bigint, d: bigint, up = false): bigint {
  if (a < 0n || b < 0n || d <= 0n) throw new Error("mulDiv domain");
  const p = a * b;
  const q = p / d;
  return up && q * d !== p ? q + 1n : q;
}

/** a·b/d for signed a, rounded toward +∞ when `up`, toward −∞ otherwise. */
export function mulDivSigned(a: bigint, b: bigint, d: bigint, up: boolean): bigint {
  const neg = a < 0n;
  const m = mulDiv(abs(a), b, d, up !== neg);
  return neg ? -m : m;
}

export function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = n;
  let y = (x + 1n) / 2n;
  while (y < x) {
    x = y;
    y = (x + n / x) / 2n;
  }
  return x;
}

// ===================================================================== MarginMath

export interface RiskParams {
  zMmD18: bigint;
  zImD18: bigint;
  liqFeeD18: bigint;
  horizonSec: bigint;
  mmrMinD18: bigint;
  mmrMaxD18: bigint;
  imrMinD18: bigint;
  sizeAddOnD18: bigint;
  sigmaMinD18: bigint;
  sigmaMaxD18: bigint;
  takerFeeD18: bigint;
  makerFeeD18: bigint;
  skewScaleD18: bigint;
  maxFundingRateD18: bigint;
  oiCapRatioD18: bigint;
}

export const sqrtHorizonD18 = (h: bigint) => isqrt(mulDiv(h, WAD * WAD, YEAR));
export const moveD18 = (z: bigint, sigma: bigint, sqrtH: bigint) => mulDiv(mulDiv(z, sigma, WAD, true), sqrtH, WAD, true);

/** Maintenance and initial ratio before the size add-on. */
export function baseRatios(p: RiskParams, sigma: bigint): { mmr: bigint; imr: bigint } {
  const sh = sqrtHorizonD18(p.horizonSec);
  const mmr = min(max(moveD18(p.zMmD18, sigma, sh) + p.liqFeeD18, p.mmrMinD18), p.mmrMaxD18);
  let imr = min(max(moveD18(p.zImD18, sigma, sh) + p.liqFeeD18, p.imrMinD18), WAD);
  if (imr < mmr) imr = mmr;
  return { mmr, imr };
}

/** σ (D18) from a realized-volatility feed answer in percent with `decimals` decimals, clamped. */
export function sigmaFromFeed(answer: bigint, decimals: bigint, p: RiskParams): bigint {
  const d18 = decimals <= 18n ? answer * 10n ** (18n - decimals) : answer / 10n ** (decimals - 18n);
  return min(max(d18 / 100n, p.sigmaMinD18), p.sigmaMaxD18);
}

export function fillPriceD18(price: bigint, skew: bigint, delta: bigint, skewScale: bigint): bigint {
  const two = 2n * skewScale;
  const num = two + 2n * skew + delta;
  if (num <= 0n) throw new ModelRevert("MarginMathInvalidFillPrice", [skew, delta]);
  return mulDiv(price, num, two, delta > 0n);
}

export function tradeFeeD18(skew: bigint, delta: bigint, fill: bigint, taker: bigint, maker: bigint): bigint {
  const absDelta = abs(delta);
  let makerPart = 0n;
  if (skew !== 0n && skew > 0n !== delta > 0n) makerPart = min(absDelta, abs(skew));
  const weighted = makerPart * maker + (absDelta - makerPart) * taker;
  return mulDiv(weighted, fill, WAD * WAD, true);
}

export function fundingIndexDeltaD18(skew: bigint, skewScale: bigint, rate: bigint, price: bigint, dt: bigint): bigint {
  if (skew === 0n || dt === 0n || rate === 0n) return 0n;
  const proportion = min(mulDiv(abs(skew), WAD, skewScale), WAD);
  const magnitude = mulDiv(proportion * rate, price * dt, WAD * WAD * DAY);
  return skew > 0n ? magnitude : -magnitude;
}

/** a·b/1e18 for signed a and b, rounded toward +∞ when `up`, toward −∞ otherwise. */
export const mulSigned = (a: bigint, b: bigint, up: boolean) => mulDivSigned(b < 0n ? -a : a, abs(b), WAD, up);

/** PnL including funding: size·price − size·index − costBasis, rounded toward −∞. */
export const pnlD18 = (size: bigint, basis: bigint, price: bigint, index: bigint) =>
  mulDivSigned(size, price, WAD, false) - mulSigned(size, index, true) - basis;

/** Cost basis added by opening `delta` at `fill` with funding index `index`: delta·(fill − index), toward +∞. */
export const basisDeltaD18 = (delta: bigint, fill: bigint, index: bigint) =>
  mulDivSigned(delta, fill, WAD, true) - mulSigned(delta, index, false);

export function toTokensFloor(x: bigint, scale: bigint): bigint {
  return x >= 0n ? x / scale : -ceilDiv(-x, scale);
}

export const sizeAddOnD18 = (absSize: bigint, addOn: bigint, skewScale: bigint) => mulDiv(absSize, addOn, skewScale, true);
export const notionalUpD18 = (absSize: bigint, price: bigint) => mulDiv(absSize, price, WAD, true);
export const requirementD18 = (absSize: bigint, price: bigint, ratio: bigint, addOn: bigint, skewScale: bigint) =>
  mulDiv(notionalUpD18(absSize, price), ratio + sizeAddOnD18(absSize, addOn, skewScale), WAD, true);

/** Cost basis after a fill and the PnL (including funding) realized on the part it closes. */
export function nextCostBasis(size: bigint, basis: bigint, delta: bigint, fill: bigint, index: bigint): { basis: bigint; realized: bigint } {
  if (size === 0n || size > 0n === delta > 0n) return { basis: basis + basisDeltaD18(delta, fill, index), realized: 0n };
  const absSize = abs(size);
  const closeAbs = min(absSize, abs(delta));
  const closedBasis = mulDivSigned(basis, closeAbs, absSize, true);
  const closedSize = size > 0n ? closeAbs : -closeAbs;
  const realized = pnlD18(closedSize, closedBasis, fill, index);
  let newBasis = basis - closedBasis;
  if (abs(delta) > absSize) newBasis = basisDeltaD18(size + delta, fill, index);
  return { basis: newBasis, realized };
}

// ===================================================================== model

/** A revert the model predicts: the custom error's name and arguments. */
export class ModelRevert extends Error {
  constructor(
    public errName: string,
    public args: unknown[],
  ) {
    super(`${errName}(${args.join(", ")})`);
  }
}

export interface Pos {
  size: bigint;
  basis: bigint;
}

export class MarketM {
  skew = 0n;
  netBasis = 0n;
  oiL = 0n;
  oiS = 0n;
  index = 0n;
  last = 0n;
  breakers = 0n;
  constructor(
    public id: number,
    public p: RiskParams,
    public price: bigint,
    public mmr: bigint,
    public imr: bigint,
  ) {}
  ratios() {
    return { mmr: this.mmr, imr: this.imr };
  }
  clone(): MarketM {
    const c = new MarketM(this.id, { ...this.p }, this.price, this.mmr, this.imr);
    Object.assign(c, { ...this, p: { ...this.p } });
    return c;
  }
}

export interface FillResult {
  price: bigint;
  fee: bigint;
  realized: bigint; // including funding of the closed part
  newSize: bigint;
  pnlTokens: bigint;
  feeTokens: bigint;
  feePaid: bigint;
  toPool: bigint;
  toInsurance: bigint;
  toProtocol: bigint;
  badDebt?: BadDebt;
}

export interface BadDebt {
  shortfall: bigint;
  fromInsurance: bigint;
  socialized: bigint;
}

export interface Summary {
  collateral: bigint;
  unrealizedPnlD18: bigint;
  equityD18: bigint;
  initialRequirementD18: bigint;
  maintenanceRequirementD18: bigint;
  freeCollateral: bigint;
  healthD18: bigint;
  liquidatable: boolean;
  status: bigint;
  marginCallDeadline: bigint;
}

/** IClearingHouse.AccountStatus. */
export const STATUS = { Healthy: 0n, MarginCallable: 1n, MarginCalled: 2n, Liquidatable: 3n } as const;

export interface LiquidationResult {
  closes: { marketId: number; delta: bigint; fill: bigint; newSize: bigint; realized: bigint; fee: bigint; index: bigint }[];
  closedNotional: bigint;
  remainingMarkets: bigint;
  /** Equity and initial requirement (D18) the liquidation computed after its closes. */
  equityAfter: bigint;
  imAfter: bigint;
  pnlTokens: bigint;
  feeTokens: bigint;
  feePaid: bigint;
  reward: bigint;
  toInsurance: bigint;
  badDebt?: BadDebt;
}

export const MAX_MARKETS_PER_ACCOUNT = 8;

export class Model {
  collateral = new Map<string, bigint>();
  positions = new Map<string, Pos>();
  markets: MarketM[] = [];
  pool = 0n;
  ins = 0n;
  fees = 0n;
  scale = 1n;
  lpShare = 0n;
  insShare = 0n;
  liqShare = 0n;
  liqCapTokens = 0n;
  hardFloor = 0n;
  marginCallGrace = 0n;
  marginCallExpiry = 0n;
  minPositionNotional = 0n;
  deadlines = new Map<string, bigint>();
  liqLimits: { windowSec: bigint; maxSize: bigint }[] = [];
  liqWindows: { start: bigint; size: bigint }[] = [];

  /** Reads parameters, feeds and ledgers of a freshly deployed fixture (markets must be empty). */
  static async load(f: Fixture): Promise<Model> {
    const m = new Model();
    m.scale = await f.vault.tokenScale();
    m.lpShare = await f.vault.lpFeeShareD18();
    m.insShare = await f.vault.insuranceFeeShareD18();
    m.liqShare = await f.clearingHouse.liqRewardShareD18();
    m.liqCapTokens = (await f.clearingHouse.liqRewardCapD18()) / (await f.vault.tokenScale());
    await m.syncParams(f);
    m.pool = await f.vault.poolBalance();
    m.ins = await f.vault.insuranceFund();
    m.fees = await f.vault.protocolFees();
    const n = Number(await f.riskManager.marketCount());
    for (let i = 0; i < n; i++) await m.addMarketFromChain(f, i);
    for (const s of await ethers.getSigners()) m.collateral.set(s.address, await f.vault.collateralOf(s.address));
    return m;
  }

  async addMarketFromChain(f: Fixture, i: number) {
    const p = await readParams(f, i);
    const [priceAddr] = await f.riskManager.marketFeeds(i);
    const pf = await ethers.getContractAt("MockV3Aggregator", priceAddr);
    const price = scaleToD18((await pf.latestRoundData())[1], await pf.decimals());
    const st = await f.clearingHouse.marketState(i);
    if (st.oiLongD18 !== 0n || st.oiShortD18 !== 0n || st.lastFundingTime !== 0n) throw new Error("market not fresh");
    const [, mmr, imr] = await f.riskManager.ratios(i);
    this.markets[i] = new MarketM(i, p, price, mmr, imr);
    const [windowSec, maxSize] = await f.riskManager.liquidationLimit(i);
    this.liqLimits[i] = { windowSec, maxSize };
    const w = await f.clearingHouse.liquidationWindows(i);
    this.liqWindows[i] = { start: w.start, size: w.sizeD18 };
  }

  /** Re-reads the clearinghouse's global liquidation and margin-call parameters. */
  async syncParams(f: Fixture) {
    this.liqShare = await f.clearingHouse.liqRewardShareD18();
    this.liqCapTokens = (await f.clearingHouse.liqRewardCapD18()) / (await f.vault.tokenScale());
    this.hardFloor = await f.clearingHouse.hardFloorD18();
    this.marginCallGrace = await f.clearingHouse.marginCallGrace();
    this.marginCallExpiry = await f.clearingHouse.marginCallExpiry();
    this.minPositionNotional = await f.clearingHouse.minPositionNotionalD18();
  }

  /** Re-reads a market's parameters and the margin ratios the risk engine has in use (σ is its domain). */
  async syncRisk(f: Fixture, i: number) {
    this.markets[i].p = await readParams(f, i);
    const [, mmr, imr] = await f.riskManager.ratios(i);
    this.markets[i].mmr = mmr;
    this.markets[i].imr = imr;
    const [windowSec, maxSize] = await f.riskManager.liquidationLimit(i);
    this.liqLimits[i] = { windowSec, maxSize };
  }

  clone(): Model {
    const c = new Model();
    Object.assign(c, this);
    c.collateral = new Map(this.collateral);
    c.positions = new Map([...this.positions].map(([k, v]) => [k, { ...v }]));
    c.markets = this.markets.map((m) => m.clone());
    c.deadlines = new Map(this.deadlines);
    c.liqWindows = this.liqWindows.map((w) => ({ ...w }));
    return c;
  }

  // ----------------------------------------------------------------- simple state

  c(a: string): bigint {
    return this.collateral.get(ethers.getAddress(a)) ?? 0n;
  }
  setC(a: string, v: bigint) {
    this.collateral.set(ethers.getAddress(a), v);
  }
  deposit(a: string, amount: bigint) {
    this.setC(a, this.c(a) + amount);
  }
  pos(a: string, m: number): Pos {
    return this.positions.get(`${ethers.getAddress(a)}:${m}`) ?? { size: 0n, basis: 0n };
  }
  accountMarkets(a: string): number[] {
    return this.markets.map((m) => m.id).filter((m) => this.pos(a, m).size !== 0n);
  }
  bitmap(a: string): bigint {
    return this.accountMarkets(a).reduce((b, m) => b | (1n << BigInt(m)), 0n);
  }
  setPrice(m: number, usd: string) {
    this.markets[m].price = parseUnits(usd, 18);
  }
  setPriceD18(m: number, p: bigint) {
    this.markets[m].price = p;
  }

  // ----------------------------------------------------------------- funding

  pendingIndex(M: MarketM, now: bigint): bigint {
    if (M.last === 0n || M.last === now) return M.index;
    return M.index + fundingIndexDeltaD18(M.skew, M.p.skewScaleD18, M.p.maxFundingRateD18, M.price, now - M.last);
  }

  accrue(m: number, now: bigint) {
    const M = this.markets[m];
    if (M.last === now) return;
    const dt = M.last === 0n ? 0n : now - M.last;
    M.index += fundingIndexDeltaD18(M.skew, M.p.skewScaleD18, M.p.maxFundingRateD18, M.price, dt);
    M.last = now;
  }

  // ----------------------------------------------------------------- margin

  margin(a: string, now: bigint, collateral = this.c(a)) {
    let pnl = 0n;
    let im = 0n;
    let mm = 0n;
    for (const m of this.accountMarkets(a)) {
      const M = this.markets[m];
      const p = this.pos(a, m);
      const r = M.ratios();
      pnl += pnlD18(p.size, p.basis, M.price, this.pendingIndex(M, now));
      im += requirementD18(abs(p.size), M.price, r.imr, M.p.sizeAddOnD18, M.p.skewScaleD18);
      mm += requirementD18(abs(p.size), M.price, r.mmr, M.p.sizeAddOnD18, M.p.skewScaleD18);
    }
    return { equity: collateral * this.scale + pnl, pnl, im, mm };
  }

  deadline(a: string): bigint {
    return this.deadlines.get(ethers.getAddress(a)) ?? 0n;
  }

  /** Healthy ≥ MM > MarginCallable/MarginCalled ≥ hardFloor·MM > Liquidatable (or a margin call past its deadline). */
  status(equity: bigint, mm: bigint, deadline: bigint, now: bigint): bigint {
    if (mm === 0n || equity >= mm) return STATUS.Healthy;
    if (equity < mulDiv(mm, this.hardFloor, WAD)) return STATUS.Liquidatable;
    if (deadline === 0n || now > deadline + this.marginCallExpiry) return STATUS.MarginCallable;
    if (now < deadline) return STATUS.MarginCalled;
    return STATUS.Liquidatable;
  }

  flagMarginCall(a: string, now: bigint): bigint {
    const t = this.margin(a, now);
    const st = this.status(t.equity, t.mm, this.deadline(a), now);
    if (st !== STATUS.MarginCallable) throw new ModelRevert("ClearingHouseCannotFlag", [ethers.getAddress(a), st]);
    const deadline = now + this.marginCallGrace;
    this.deadlines.set(ethers.getAddress(a), deadline);
    return deadline;
  }

  summary(a: string, now: bigint): Summary {
    const collateral = this.c(a);
    const t = this.margin(a, now, collateral);
    const base = min(collateral * this.scale, t.equity < 0n ? 0n : t.equity) - t.im;
    const deadline = this.deadline(a);
    const status = this.status(t.equity, t.mm, deadline, now);
    return {
      collateral,
      unrealizedPnlD18: t.pnl,
      equityD18: t.equity,
      initialRequirementD18: t.im,
      maintenanceRequirementD18: t.mm,
      freeCollateral: base <= 0n ? 0n : base / this.scale,
      healthD18: t.mm === 0n ? MAX_UINT : t.equity <= 0n ? 0n : mulDiv(t.equity, WAD, t.mm),
      liquidatable: status === STATUS.Liquidatable,
      status,
      marginCallDeadline: status === STATUS.MarginCalled || status === STATUS.Liquidatable ? deadline : 0n,
    };
  }

  tradersPnl(now: bigint): bigint {
    let total = 0n;
    for (const M of this.markets) {
      if (M.oiL === 0n && M.oiS === 0n) continue;
      total += pnlD18(M.skew, M.netBasis, M.price, this.pendingIndex(M, now));
    }
    return total;
  }

  navD18(now: bigint): bigint {
    return this.pool * this.scale - this.tradersPnl(now);
  }

  // ----------------------------------------------------------------- settlement (Vault)

  private settle(a: string, pnl: bigint, fee: bigint): { c: bigint; feePaid: bigint; badDebt?: BadDebt } {
    let c = this.c(a);
    let pool = this.pool;
    let badDebt: BadDebt | undefined;
    if (pnl >= 0n) {
      if (pnl > pool) throw new ModelRevert("VaultPoolInsufficient", [pnl, pool]);
      pool -= pnl;
      c += pnl;
    } else {
      const loss = -pnl;
      if (loss <= c) {
        c -= loss;
        pool += loss;
      } else {
        const shortfall = loss - c;
        const fromInsurance = min(shortfall, this.ins);
        this.ins -= fromInsurance;
        pool += c + fromInsurance;
        badDebt = { shortfall, fromInsurance, socialized: shortfall - fromInsurance };
        c = 0n;
      }
    }
    const feePaid = min(fee, c);
    c -= feePaid;
    this.setC(a, c);
    this.pool = pool;
    return { c, feePaid, badDebt };
  }

  private settleTrade(a: string, pnl: bigint, fee: bigint) {
    const s = this.settle(a, pnl, fee);
    const toInsurance = mulDiv(s.feePaid, this.insShare, WAD);
    const toPool = mulDiv(s.feePaid, this.lpShare, WAD);
    const toProtocol = s.feePaid - toInsurance - toPool;
    this.pool += toPool;
    this.ins += toInsurance;
    this.fees += toProtocol;
    return { ...s, toInsurance, toPool, toProtocol };
  }

  // ----------------------------------------------------------------- fills

  private applyFill(a: string, m: number, delta: bigint, fill: bigint) {
    const M = this.markets[m];
    const pos = this.pos(a, m);
    const index = M.index;
    const newSize = pos.size + delta;
    const { basis: newBasis, realized } = nextCostBasis(pos.size, pos.basis, delta, fill, index);
    M.skew += delta;
    M.netBasis += newBasis - pos.basis;
    if (pos.size > 0n) M.oiL -= pos.size;
    else if (pos.size < 0n) M.oiS -= -pos.size;
    if (newSize > 0n) M.oiL += newSize;
    else if (newSize < 0n) M.oiS += -newSize;
    const key = `${ethers.getAddress(a)}:${m}`;
    if (newSize === 0n) {
      this.positions.delete(key);
    } else {
      if (pos.size === 0n && this.accountMarkets(a).length >= MAX_MARKETS_PER_ACCOUNT) {
        throw new ModelRevert("ClearingHouseTooManyMarkets", [ethers.getAddress(a)]);
      }
      this.positions.set(key, { size: newSize, basis: newBasis });
    }
    return { realized, newSize };
  }

  private fillUnchecked(a: string, m: number, delta: bigint, acceptable: bigint, now: bigint): FillResult {
    const M = this.markets[m];
    this.accrue(m, now);
    const pos = this.pos(a, m);
    const price = fillPriceD18(M.price, M.skew, delta, M.p.skewScaleD18);
    if (delta > 0n ? price > acceptable : price < acceptable) {
      throw new ModelRevert("ClearingHouseAcceptablePriceExceeded", [price, acceptable]);
    }
    const newSize = pos.size + delta;
    const increasesRisk = abs(newSize) > abs(pos.size) || (newSize !== 0n && pos.size !== 0n && newSize > 0n !== pos.size > 0n);
    if (increasesRisk && M.breakers !== 0n) throw new ModelRevert("ClearingHouseMarketReduceOnly", [BigInt(m), M.breakers]);
    const fee = tradeFeeD18(M.skew, delta, price, M.p.takerFeeD18, M.p.makerFeeD18);
    const { realized } = this.applyFill(a, m, delta, price);
    if (increasesRisk) {
      const oi = newSize > 0n ? M.oiL : M.oiS;
      const oiNotional = notionalUpD18(oi, M.price);
      // Capacity: the pool's balance less what this market's traders are owed (their losses add nothing).
      let nav = this.pool * this.scale;
      const owed = pnlD18(M.skew, M.netBasis, M.price, M.index);
      if (owed > 0n) nav -= owed;
      const cap = nav <= 0n ? 0n : mulDiv(nav, M.p.oiCapRatioD18, WAD);
      if (oiNotional > cap) throw new ModelRevert("ClearingHouseOpenInterestCap", [BigInt(m), oiNotional, cap]);
    }
    const pnlTokens = toTokensFloor(realized, this.scale);
    const feeTokens = ceilDiv(fee, this.scale);
    const s = this.settleTrade(a, pnlTokens, feeTokens);
    if (increasesRisk) {
      const t = this.margin(a, now, s.c);
      if (t.equity < t.im) throw new ModelRevert("ClearingHouseInsufficientMargin", [ethers.getAddress(a), t.equity, t.im]);
    } else if (this.deadline(a) !== 0n) {
      const t = this.margin(a, now, s.c);
      if (t.equity >= t.mm) this.deadlines.delete(ethers.getAddress(a));
    }
    return {
      price,
      fee,
      realized,
      newSize,
      pnlTokens,
      feeTokens,
      feePaid: s.feePaid,
      toPool: s.toPool,
      toInsurance: s.toInsurance,
      toProtocol: s.toProtocol,
      badDebt: s.badDebt,
    };
  }

  /** Predicts a fill at time `now`; applies it when it succeeds, leaves the model untouched when it reverts. */
  tryFill(a: string, m: number, delta: bigint, acceptable: bigint, now: bigint): { ok: true; r: FillResult } | { ok: false; err: ModelRevert } {
    const c = this.clone();
    try {
      const r = c.fillUnchecked(a, m, delta, acceptable, now);
      Object.assign(this, c);
      return { ok: true, r };
    } catch (e) {
      if (e instanceof ModelRevert) return { ok: false, err: e };
      throw e;
    }
  }

  /** Like tryFill but throws if the model predicts a revert. */
  fill(a: string, m: number, delta: bigint, now: bigint, acceptable?: bigint): FillResult {
    const res = this.tryFill(a, m, delta, acceptable ?? (delta > 0n ? MAX_UINT : 0n), now);
    if (!res.ok) throw res.err;
    return res.r;
  }

  // ----------------------------------------------------------------- liquidation

  /** Effect of closing q of a position in a liquidation (LiquidationMath.closeEffect, from the spec). */
  closeEffect(a: string, m: number, q: bigint) {
    const M = this.markets[m];
    const pos = this.pos(a, m);
    const delta = pos.size > 0n ? -q : q;
    const fill = fillPriceD18(M.price, M.skew, delta, M.p.skewScaleD18);
    const { basis: newBasis, realized } = nextCostBasis(pos.size, pos.basis, delta, fill, M.index);
    const fee = mulDiv(notionalUpD18(q, fill), M.p.liqFeeD18, WAD, true);
    const pnlBefore = pnlD18(pos.size, pos.basis, M.price, M.index);
    const pnlAfter = pnlD18(pos.size + delta, newBasis, M.price, M.index);
    const imBefore = requirementD18(abs(pos.size), M.price, M.imr, M.p.sizeAddOnD18, M.p.skewScaleD18);
    const imAfter = requirementD18(abs(pos.size + delta), M.price, M.imr, M.p.sizeAddOnD18, M.p.skewScaleD18);
    return { delta, fill, fee, dEquity: realized + pnlAfter - pnlBefore - fee, imBefore, imAfter };
  }

  /** Smallest q whose close leaves equity ≥ initial requirement + buffer (|size| if none does): bisection on
   * the exact, rounded effect. The set of passing q is an interval ending at |size| (g is concave), so the
   * predicate is monotone on [0, |size|]. */
  minimalClose(a: string, m: number, equity: bigint, im: bigint, buffer: bigint): bigint {
    const size = abs(this.pos(a, m).size);
    const passes = (q: bigint) => {
      const e = this.closeEffect(a, m, q);
      return equity + e.dEquity >= im - e.imBefore + e.imAfter + buffer;
    };
    if (!passes(size)) return size;
    if (passes(0n)) return 0n;
    let lo = 0n;
    let hi = size;
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      if (passes(mid)) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /** Partial liquidation: riskiest market first (largest maintenance requirement), the minimal close in each
   * until equity ≥ IM + 2 token units, whole positions when the rest would be below minPositionNotional,
   * within each market's rate limit; fee share to the liquidator (capped), rest to insurance. */
  liquidate(a: string, liquidator: string, now: bigint): LiquidationResult {
    const c = this.clone();
    const t = c.margin(a, now);
    const markets = c.accountMarkets(a);
    const st = c.status(t.equity, t.mm, c.deadline(a), now);
    if (st !== STATUS.Liquidatable) throw new ModelRevert("ClearingHouseAccountHealthy", [ethers.getAddress(a), t.equity, t.mm]);
    let equity = t.equity;
    let im = t.im;
    const buffer = 2n * c.scale;
    let pnl = 0n;
    let feeD18 = 0n;
    let closedNotional = 0n;
    const closes: LiquidationResult["closes"] = [];
    const visited = new Set<number>();
    for (let round = 0; round < markets.length; round++) {
      if (equity >= im + buffer) break;
      let best = -1;
      let bestMm = 0n;
      for (const m of markets) {
        if (visited.has(m)) continue;
        const M = c.markets[m];
        const mm = requirementD18(abs(c.pos(a, m).size), M.price, M.mmr, M.p.sizeAddOnD18, M.p.skewScaleD18);
        if (best < 0 || mm > bestMm) [best, bestMm] = [m, mm];
      }
      visited.add(best);
      const M = c.markets[best];
      c.accrue(best, now);
      const size = abs(c.pos(a, best).size);
      let q = c.minimalClose(a, best, equity, im, buffer);
      if (notionalUpD18(size - q, M.price) < c.minPositionNotional) q = size;
      // Rate limit per market and window.
      const lim = c.liqLimits[best];
      let w = c.liqWindows[best];
      if (now >= w.start + lim.windowSec) w = { start: now, size: 0n };
      const left = lim.maxSize > w.size ? lim.maxSize - w.size : 0n;
      if (q > left) q = left;
      w.size += q;
      c.liqWindows[best] = w;
      if (q === 0n) continue;
      const e = c.closeEffect(a, best, q);
      const { realized, newSize } = c.applyFill(a, best, e.delta, e.fill);
      closes.push({ marketId: best, delta: e.delta, fill: e.fill, newSize, realized, fee: e.fee, index: M.index });
      pnl += realized;
      feeD18 += e.fee;
      closedNotional += notionalUpD18(q, e.fill);
      equity += e.dEquity;
      im = im - e.imBefore + e.imAfter;
    }
    if (closedNotional === 0n) throw new ModelRevert("ClearingHouseLiquidationRateLimited", [ethers.getAddress(a)]);
    c.deadlines.delete(ethers.getAddress(a));
    const pnlTokens = toTokensFloor(pnl, c.scale);
    const feeTokens = ceilDiv(feeD18, c.scale);
    const s = c.settle(a, pnlTokens, feeTokens);
    const reward = min(mulDiv(s.feePaid, c.liqShare, WAD), c.liqCapTokens);
    c.setC(liquidator, c.c(liquidator) + reward);
    c.ins += s.feePaid - reward;
    Object.assign(this, c);
    return {
      closes,
      closedNotional,
      remainingMarkets: this.bitmap(a),
      equityAfter: equity,
      imAfter: im,
      pnlTokens,
      feeTokens,
      feePaid: s.feePaid,
      reward,
      toInsurance: s.feePaid - reward,
      badDebt: s.badDebt,
    };
  }
}

export function scaleToD18(v: bigint, decimals: bigint): bigint {
  return decimals <= 18n ? v * 10n ** (18n - decimals) : v / 10n ** (decimals - 18n);
}

/** The RiskParams fields of `RiskManager.marketParams` (shared by the tests' models and the fuzzer). */
export function riskParamsOf(p: RiskParams): RiskParams {
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
  };
}

async function readParams(f: Fixture, i: number): Promise<RiskParams> {
  return riskParamsOf(await f.riskManager.marketParams(i));
}

// ===================================================================== chain glue

/** Timestamp of the block a receipt was mined in. */
export async function tsOf(receipt: { blockNumber: number } | null): Promise<bigint> {
  const b = await ethers.provider.getBlock(receipt!.blockNumber);
  return BigInt(b!.timestamp);
}

export async function latestTs(): Promise<bigint> {
  const b = await ethers.provider.getBlock("latest");
  return BigInt(b!.timestamp);
}

/** Σ of every ledger a fill or liquidation can touch: the given accounts' collateral, pool, insurance, fees. */
export async function ledgerTotal(f: Fixture, accounts: string[]): Promise<bigint> {
  let s = (await f.vault.poolBalance()) + (await f.vault.insuranceFund()) + (await f.vault.protocolFees());
  for (const a of accounts) s += await f.vault.collateralOf(a);
  return s;
}

export interface Ledgers {
  collateral: Record<string, bigint>;
  pool: bigint;
  ins: bigint;
  fees: bigint;
}

export async function ledgers(f: Fixture, accounts: string[]): Promise<Ledgers> {
  const collateral: Record<string, bigint> = {};
  for (const a of accounts) collateral[a] = await f.vault.collateralOf(a);
  return { collateral, pool: await f.vault.poolBalance(), ins: await f.vault.insuranceFund(), fees: await f.vault.protocolFees() };
}

/** Every ledger, position and market aggregate on chain equals the model's, to the wei. */
export async function expectChainMatchesModel(f: Fixture, model: Model, accounts: string[]) {
  expect(await f.vault.poolBalance(), "pool balance").to.equal(model.pool);
  expect(await f.vault.insuranceFund(), "insurance fund").to.equal(model.ins);
  expect(await f.vault.protocolFees(), "protocol fees").to.equal(model.fees);
  for (const a of accounts) {
    expect(await f.vault.collateralOf(a), `collateral of ${a}`).to.equal(model.c(a));
    expect(await f.clearingHouse.accountMarkets(a), `markets of ${a}`).to.equal(model.bitmap(a));
    for (const M of model.markets) {
      const p = await f.clearingHouse.position(a, M.id);
      const e = model.pos(a, M.id);
      expect([p.sizeD18, p.costBasisD18], `position ${a} in ${M.id}`).to.deep.equal([e.size, e.basis]);
    }
  }
  for (const M of model.markets) {
    const s = await f.clearingHouse.marketState(M.id);
    expect(
      [s.skewD18, s.netCostBasisD18, s.oiLongD18, s.oiShortD18, s.fundingIndexD18, s.lastFundingTime],
      `market ${M.id}`,
    ).to.deep.equal([M.skew, M.netBasis, M.oiL, M.oiS, M.index, M.last]);
  }
}

export type Receipt = ContractTransactionReceipt;

/** PositionModified's (account, marketId, sizeDelta, fillPrice, newSize, realizedPnl, fee), by name. */
export function positionModifiedArgs(e: { args: any }) {
  const a = e.args;
  return [a.account, a.marketId, a.sizeDeltaD18, a.fillPriceD18, a.newSizeD18, a.realizedPnlD18, a.feeD18];
}

export interface TradeOutcome {
  orderId: bigint;
  receipt: Receipt;
  now: bigint;
  events: ReturnType<typeof chEvents>;
  /** The model's prediction (already applied to the model when it fills). */
  predicted: ReturnType<Model["tryFill"]>;
}

/** Commits and executes an order through the fixture's `trade`, and predicts it with the model at the
 * execution block's timestamp. Asserts that the chain filled or cancelled exactly as the model said, with
 * the exact PositionModified / cancellation reason, and that the fill was zero-sum across the ledgers. */
export async function tradeAndCheck(
  f: Fixture,
  model: Model,
  trader: HardhatEthersSigner,
  marketId: number,
  delta: bigint,
  acceptable?: bigint,
): Promise<TradeOutcome> {
  const before = await ledgerTotal(f, [trader.address]);
  const { orderId, receipt } = await trade(f, trader, marketId, delta, acceptable);
  const now = await tsOf(receipt);
  const events = chEvents(f, receipt);
  const predicted = model.tryFill(trader.address, marketId, delta, acceptable ?? (delta > 0n ? 2n ** 95n : 0n), now);
  if (predicted.ok) {
    const r = predicted.r;
    const pm = events.find((e) => e.name === "PositionModified");
    expect(pm, "PositionModified emitted").to.not.equal(undefined);
    expect(positionModifiedArgs(pm!)).to.deep.equal([trader.address, BigInt(marketId), delta, r.price, r.newSize, r.realized, r.fee]);
    if ("fundingIndexD18" in pm!.args.toObject()) expect(pm!.args.fundingIndexD18, "index at fill").to.equal(model.markets[marketId].index);
    const ex = events.find((e) => e.name === "OrderExecuted");
    expect([...ex!.args]).to.deep.equal([orderId, trader.address, f.keeper.address, r.price]);
  } else {
    const c = events.find((e) => e.name === "OrderCancelled");
    expect(c, `expected cancellation ${predicted.err.message}`).to.not.equal(undefined);
    const reason = f.clearingHouse.interface.parseError(c!.args.reason);
    expect(reason?.name).to.equal(predicted.err.errName);
    expect([...reason!.args]).to.deep.equal(predicted.err.args);
    expect(events.find((e) => e.name === "PositionModified")).to.equal(undefined);
  }
  expect(await ledgerTotal(f, [trader.address]), "zero-sum").to.equal(before);
  return { orderId, receipt: receipt!, now, events, predicted };
}

/** Like tradeAndCheck, and requires a fill. */
export async function fillAndCheck(
  f: Fixture,
  model: Model,
  trader: HardhatEthersSigner,
  marketId: number,
  delta: bigint,
  acceptable?: bigint,
): Promise<FillResult & { receipt: Receipt; now: bigint }> {
  const o = await tradeAndCheck(f, model, trader, marketId, delta, acceptable);
  if (!o.predicted.ok) throw new Error(`model predicted a cancellation: ${o.predicted.err.message}`);
  return { ...o.predicted.r, receipt: o.receipt, now: o.now };
}

/** Feed answer (8 decimals) for a D18 price, rounded down or up. */
export function feedAnswer(priceD18: bigint, up = false): bigint {
  return up ? ceilDiv(priceD18, 10n ** 10n) : priceD18 / 10n ** 10n;
}

/** Parses the Vault's events of a receipt. */
export function vaultEvents(f: Fixture, receipt: { logs: readonly any[] } | null) {
  return (receipt?.logs ?? [])
    .map((l) => {
      try {
        return f.vault.interface.parseLog(l);
      } catch {
        return null;
      }
    })
    .filter((e): e is NonNullable<typeof e> => e !== null);
}

/** Deposits collateral on chain and in the model. */
export async function depositBoth(f: Fixture, model: Model, trader: HardhatEthersSigner, amount: bigint) {
  await f.vault.connect(trader).deposit(trader.address, amount);
  model.deposit(trader.address, amount);
}

/** Moves a market's oracle price (USD string) on chain and in the model. */
export async function priceBoth(f: Fixture, model: Model, marketId: number, usd: string) {
  await f.priceFeeds[marketId].updateAnswer(parseUnits(usd, 8));
  model.setPrice(marketId, usd);
}

/** Moves a market's oracle price to a D18 value representable by the 8-decimal feed. */
export async function priceBothD18(f: Fixture, model: Model, marketId: number, answer8: bigint) {
  await f.priceFeeds[marketId].updateAnswer(answer8);
  model.setPriceD18(marketId, answer8 * 10n ** 10n);
}

/** Moves a market's volatility feed (percent string), lets the risk engine take it (fixture's setVol pokes),
 * and gives the model the ratios now in use. */
export async function volBoth(f: Fixture, model: Model, marketId: number, percent: string) {
  await setVol(f, marketId, percent);
  await model.syncRisk(f, marketId);
}

/** Re-publishes every feed's current answer so that none is stale (after long time jumps). */
export async function refreshFeeds(f: Fixture) {
  for (const feed of [...f.priceFeeds, ...f.volFeeds]) await feed.updateAnswer((await feed.latestRoundData())[1]);
  for (let m = 0; m < f.priceFeeds.length; m++) await f.riskManager.pokeVolatility(m);
}

/** Liquidates `account` as `liquidator`, predicts it with the model at the block's timestamp, and asserts
 * every event, every ledger and zero-sum across trader, liquidator, pool, insurance and protocol fees. */
export async function liquidateAndCheck(f: Fixture, model: Model, liquidator: HardhatEthersSigner, account: string) {
  const before = await ledgerTotal(f, [account, liquidator.address]);
  const tx = await f.clearingHouse.connect(liquidator).liquidate(account);
  const receipt = (await tx.wait())!;
  const now = await tsOf(receipt);
  const r = model.liquidate(account, liquidator.address, now);
  const ch = chEvents(f, receipt);
  const mods = ch.filter((e) => e.name === "PositionModified").map(positionModifiedArgs);
  expect(mods).to.deep.equal(r.closes.map((c) => [ethers.getAddress(account), BigInt(c.marketId), c.delta, c.fill, c.newSize, c.realized, c.fee]));
  const liq = ch.find((e) => e.name === "Liquidated");
  expect([...liq!.args]).to.deep.equal([ethers.getAddress(account), liquidator.address, r.closedNotional, r.feePaid, r.reward, r.remainingMarkets]);
  const v = vaultEvents(f, receipt);
  const paid = v.find((e) => e.name === "LiquidationFeePaid");
  expect([...paid!.args]).to.deep.equal([ethers.getAddress(account), liquidator.address, r.feePaid, r.reward, r.toInsurance]);
  const bad = v.find((e) => e.name === "BadDebtCovered");
  if (r.badDebt) {
    expect([...bad!.args]).to.deep.equal([ethers.getAddress(account), r.badDebt.shortfall, r.badDebt.fromInsurance, r.badDebt.socialized]);
  } else {
    expect(bad).to.equal(undefined);
  }
  expect(await ledgerTotal(f, [account, liquidator.address]), "liquidation is zero-sum").to.equal(before);
  await expectChainMatchesModel(f, model, [account, liquidator.address]);
  return { ...r, receipt, now };
}

/** Commits an order and returns its id and the commit block's timestamp (optionally at a chosen time). */
export async function commit(
  f: Fixture,
  trader: HardhatEthersSigner,
  marketId: number,
  delta: bigint,
  opts: { acceptable?: bigint; fee?: bigint; at?: bigint; noRound?: boolean } = {},
) {
  if (opts.at !== undefined) await ethers.provider.send("evm_setNextBlockTimestamp", [Number(opts.at)]);
  const fee = opts.fee ?? (await f.clearingHouse.minExecutionFee());
  const acceptable = opts.acceptable ?? (delta > 0n ? 2n ** 95n : 0n);
  const tx = await f.clearingHouse.connect(trader).commitOrder(marketId, delta, acceptable, { value: fee });
  const receipt = (await tx.wait())!;
  const ev = chEvents(f, receipt).find((e) => e.name === "OrderCommitted")!;
  // An order executes only at a Chainlink round published after its commit: publish one (same answer, a
  // heartbeat) in the next block.
  if (!opts.noRound) {
    const [feedAddress] = await f.riskManager.marketFeeds(marketId);
    const feed = MockV3Aggregator__factory.connect(feedAddress, f.admin);
    await feed.updateAnswer(await feed.latestAnswer());
  }
  return { orderId: ev.args.orderId as bigint, ts: await tsOf(receipt), receipt, fee, acceptable };
}

/** The first clearinghouse event called `name` in a receipt. */
export function chEventsOf(f: Fixture, receipt: { logs: readonly any[] } | null, name: string) {
  const e = chEvents(f, receipt).find((x) => x.name === name);
  expect(e, `${name} emitted`).to.not.equal(undefined);
  return e!;
}
