import { parseUnits } from "ethers";

/** Per-market risk parameters as the RiskManager stores them (see IRiskManager.MarketParams). */
export interface MarketParams {
  zMmD18: bigint;
  zImD18: bigint;
  liqFeeD18: bigint;
  horizonSec: bigint;
  priceMaxAge: bigint;
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
  liquidationPriceMaxAge: bigint;
  volMaxAge: bigint;
  oiCapRatioD18: bigint;
  sigmaBreakerD18: bigint;
  priceJumpBreakerD18: bigint;
  sigmaDecayHalfLife: bigint;
  /** 0 = Chainlink volatility feed, 1 = on-chain estimator over price rounds, 2 = max of both. */
  sigmaSource: bigint;
  liqWindowSec: bigint;
  liqLimitD18: bigint;
}

export interface MarketSpec {
  symbol: string;
  /** Initial oracle price in USD (local mock feeds). */
  price: string;
  /** Initial annualized volatility in percent (local mock feeds). */
  volPercent: string;
  params: MarketParams;
}

const d18 = (x: string) => parseUnits(x, 18);

export const SIGMA_SOURCE = { FEED: 0n, ESTIMATOR: 1n, MAX: 2n } as const;

/** Defaults shared by every market: z_mm = 3, z_im = 5, 1 h horizon, 0.5% liquidation fee (DESIGN.md). */
export function baseParams(overrides: Partial<MarketParams> = {}): MarketParams {
  return {
    zMmD18: d18("3"),
    zImD18: d18("5"),
    liqFeeD18: d18("0.005"),
    horizonSec: 3600n,
    priceMaxAge: 4500n, // Chainlink ETH/USD heartbeat is 3600 s; allow 25% slack for trading and views
    mmrMinD18: d18("0.005"),
    mmrMaxD18: d18("0.25"),
    imrMinD18: d18("0.01"),
    sizeAddOnD18: d18("0.01"),
    sigmaMinD18: d18("0.1"),
    sigmaMaxD18: d18("5"), // the backtest's shortfall improves with room above 300% (docs/BACKTEST.md)
    takerFeeD18: d18("0.0005"),
    makerFeeD18: d18("0.0002"),
    skewScaleD18: d18("100000"),
    maxFundingRateD18: d18("0.03"),
    liquidationPriceMaxAge: 3900n, // stricter for liquidations: heartbeat + 5 min
    volMaxAge: 90000n, // realized-vol feeds update about daily
    oiCapRatioD18: d18("2"),
    sigmaBreakerD18: d18("4"), // σ above 400% turns the market reduce-only
    priceJumpBreakerD18: d18("0.1"), // one Chainlink round moving 10% trips the jump breaker
    sigmaDecayHalfLife: 6n * 3600n, // falls in σ decay with a 6 h half-life; rises apply at once
    sigmaSource: SIGMA_SOURCE.MAX,
    liqWindowSec: 60n,
    liqLimitD18: d18("0.05"), // at most 5% of skewScale liquidated per market per minute
    ...overrides,
  };
}

/** Production defaults: σ = max(Chainlink realized-vol feed, on-chain estimator); z_mm = 4.1 is the
 * maintenance multiplier the backtest calibrated for the on-chain estimator (docs/BACKTEST.md); z_im = 6
 * leaves a margin-call band between maintenance and initial margin. */
const PRODUCTION = { zMmD18: d18("4.1"), zImD18: d18("6") };

export const DEFAULT_MARKETS: MarketSpec[] = [
  { symbol: "ETH-PERP", price: "2000", volPercent: "50", params: baseParams({ ...PRODUCTION, skewScaleD18: d18("100000") }) },
  { symbol: "BTC-PERP", price: "60000", volPercent: "40", params: baseParams({ ...PRODUCTION, skewScaleD18: d18("5000") }) },
];

/** Order of IRiskManager.Param (enum). */
export const PARAM = {
  ZMm: 0,
  ZIm: 1,
  HorizonSec: 2,
  LiqFee: 3,
  MmrMin: 4,
  MmrMax: 5,
  ImrMin: 6,
  SizeAddOn: 7,
  SigmaMin: 8,
  SigmaMax: 9,
  SkewScale: 10,
  TakerFee: 11,
  MakerFee: 12,
  MaxFundingRate: 13,
  OiCapRatio: 14,
  PriceMaxAge: 15,
  LiquidationPriceMaxAge: 16,
  VolMaxAge: 17,
  SigmaBreaker: 18,
  PriceJumpBreaker: 19,
  SigmaDecayHalfLife: 20,
  SigmaSource: 21,
  LiqWindowSec: 22,
  LiqLimit: 23,
} as const;

/** Parameters a scenario may override for every market (not SigmaSource: the scenario's configurations set it). */
const OVERRIDABLE = Object.keys(PARAM).filter((k) => k !== "SigmaSource") as (keyof typeof PARAM)[];

/** The MarketParams field of a Param name: "ImrMin" → "imrMinD18" (a D18 ratio), "HorizonSec" → "horizonSec". */
function paramField(name: keyof typeof PARAM): { field: keyof MarketParams; d18: boolean } {
  const base = name[0].toLowerCase() + name.slice(1);
  const probe = baseParams() as unknown as Record<string, bigint>;
  if (probe[`${base}D18`] !== undefined) return { field: `${base}D18` as keyof MarketParams, d18: true };
  if (probe[base] !== undefined) return { field: base as keyof MarketParams, d18: false };
  throw new Error(`no MarketParams field for ${name}`);
}

/**
 * "ImrMin=0.1,LiqLimit=1" → overrides of every market's parameters: ratios (D18 fields) as decimals (0.1 =
 * 10 %), times and counts as integers. Names are IRiskManager.Param's; the RiskManager checks the bounds.
 */
export function parseParamOverrides(s: string): Partial<MarketParams> {
  const out: Partial<MarketParams> = {};
  for (const part of s.split(",").map((t) => t.trim()).filter(Boolean)) {
    const [name, value] = part.split("=").map((t) => t.trim());
    if (!OVERRIDABLE.includes(name as keyof typeof PARAM)) {
      throw new Error(`unknown or fixed parameter ${name} in --param (one of ${OVERRIDABLE.join(", ")})`);
    }
    const { field, d18: isD18 } = paramField(name as keyof typeof PARAM);
    if (value === undefined || !(isD18 ? /^\d+(\.\d{1,18})?$/ : /^\d+$/).test(value)) {
      throw new Error(`--param ${name} needs ${isD18 ? "a non-negative decimal (0.1 = 10 %)" : "a non-negative integer"} (got ${value})`);
    }
    out[field] = isD18 ? d18(value) : BigInt(value);
  }
  return out;
}
