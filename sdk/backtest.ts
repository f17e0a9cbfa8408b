/**
 * VaR-style backtest of Sigma's margin model over an hourly OHLC history (docs/BACKTEST.md).
 *
 * For each hour t after the warm-up, σ_t comes from the on-chain estimator (sdk/volatility.ts) fed with the
 * Chainlink rounds a feed would have published up to the close of candle t; MMR_t follows MarginMath.sol.
 * A long breaches when the next candle's low is further below close_t than MMR_t, a short when its high is
 * further above; the shortfall is the excess. The dynamic model is compared with the best static ratios in
 * hindsight. Every number comes from integer (D18) arithmetic, so a run is deterministic.
 */
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_VOLATILITY_CONFIG,
  HOUR,
  VolatilityConfig,
  VolatilityEstimator,
  WAD,
  YEAR,
  isqrt,
  mulDiv,
  mulDivUp,
} from "./volatility";

// ---------------------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------------------

/** One OHLC candle; prices in D18, `t` = open time (Unix seconds). */
export interface Candle {
  t: bigint;
  o: bigint;
  h: bigint;
  l: bigint;
  c: bigint;
}

/** Raised for a missing or malformed price file; the CLI prints the message and exits non-zero. */
export class BacktestDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BacktestDataError";
  }
}

const DECIMAL = /^\d+(\.\d+)?$/;

/** Parses a non-negative decimal string ("1234.5678") into D18 exactly (digits beyond 18 decimals: error). */
export function parseDecimalD18(s: string): bigint {
  if (!DECIMAL.test(s)) throw new RangeError(`not a plain non-negative decimal: "${s}"`);
  const [i, f = ""] = s.split(".");
  if (f.length > 18) throw new RangeError(`more than 18 decimals: "${s}"`);
  return BigInt(i) * WAD + BigInt(f.padEnd(18, "0"));
}

/**
 * Parses `timestamp_unix,open,high,low,close[,volume]` (header required). Checks: numeric fields, prices
 * > 0, low ≤ min(open, close) is not required (aggregated data may violate it) but low ≤ high is, and
 * timestamps strictly increase.
 */
export function parseOhlcCsv(text: string, source = "prices"): Candle[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new BacktestDataError(`${source}: empty file`);
  const header = lines[0].split(",").map((x) => x.trim().toLowerCase());
  const want = ["timestamp_unix", "open", "high", "low", "close"];
  if (want.some((w, i) => header[i] !== w)) {
    throw new BacktestDataError(
      `${source}: header must start with ${want.join(",")} (got "${lines[0].slice(0, 80)}")`,
    );
  }
  const out: Candle[] = [];
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].split(",").map((x) => x.trim());
    const where = `${source}:${i + 1}`;
    if (f.length < 5) throw new BacktestDataError(`${where}: expected at least 5 columns, got ${f.length}`);
    if (!/^\d+$/.test(f[0])) throw new BacktestDataError(`${where}: bad timestamp "${f[0]}"`);
    let o: bigint, h: bigint, l: bigint, c: bigint;
    try {
      [o, h, l, c] = f.slice(1, 5).map(parseDecimalD18);
    } catch (e) {
      throw new BacktestDataError(`${where}: ${(e as Error).message}`);
    }
    if (o <= 0n || h <= 0n || l <= 0n || c <= 0n) throw new BacktestDataError(`${where}: prices must be > 0`);
    if (l > h) throw new BacktestDataError(`${where}: low ${f[3]} above high ${f[2]}`);
    const t = BigInt(f[0]);
    if (out.length > 0 && t <= out[out.length - 1].t) {
      throw new BacktestDataError(`${where}: timestamps must increase (${t} after ${out[out.length - 1].t})`);
    }
    out.push({ t, o, h, l, c });
  }
  if (out.length < 3) throw new BacktestDataError(`${source}: need at least 3 candles, got ${out.length}`);
  return out;
}

/** Reads and parses a price CSV; a missing file is a BacktestDataError. */
export function loadOhlcCsv(file: string): Candle[] {
  if (!fs.existsSync(file)) throw new BacktestDataError(`price file not found: ${file}`);
  return parseOhlcCsv(fs.readFileSync(file, "utf8"), file);
}

/** A stress window [start, end) in Unix seconds. */
export interface StressWindow {
  name: string;
  start: number;
  end: number;
}

/** The six windows of ../shared/data/crash_windows (README), used when the directory is not available. */
export const DEFAULT_STRESS_WINDOWS: readonly StressWindow[] = Object.freeze([
  { name: "2020-03-12", start: 1583798400, end: 1584403200 },
  { name: "2021-05-19", start: 1621209600, end: 1621641600 },
  { name: "2022-06-13", start: 1654819200, end: 1655683200 },
  { name: "2022-11-08", start: 1667692800, end: 1668211200 },
  { name: "2024-08-05", start: 1722643200, end: 1722988800 },
  { name: "2025-10-10", start: 1759881600, end: 1760313600 },
]);

/**
 * Windows from a crash_windows directory: one per `*_<name>.csv`, [first candle open, last candle open +
 * candle length). Sorted by start.
 */
export function loadStressWindows(dir: string, candleSec = 3600): StressWindow[] {
  if (!fs.existsSync(dir)) throw new BacktestDataError(`stress-window directory not found: ${dir}`);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".csv")).sort();
  if (files.length === 0) throw new BacktestDataError(`no *.csv stress windows in ${dir}`);
  const out = files.map((f) => {
    const candles = parseOhlcCsv(fs.readFileSync(path.join(dir, f), "utf8"), path.join(dir, f));
    const m = /_([^_]+)\.csv$/.exec(f);
    return {
      name: m ? m[1] : f.replace(/\.csv$/, ""),
      start: Number(candles[0].t),
      end: Number(candles[candles.length - 1].t) + candleSec,
    };
  });
  return out.sort((a, b) => a.start - b.start);
}

// ---------------------------------------------------------------------------------------------------------
// Chainlink rounds synthesized from candles
// ---------------------------------------------------------------------------------------------------------

/** A round as the estimator sees it. */
export interface Round {
  priceD18: bigint;
  t: bigint;
}

export type RoundsMode = "synthetic" | "close";

/**
 * Rounds a deviation-threshold feed (deviation `devD18`, heartbeat = the candle) would have published
 * during one candle, given the last published answer. An approximation of the real feed:
 *  - path: open → low → high → close for a rising candle (close ≥ open), open → high → low → close
 *    otherwise, straight lines, time spread over the candle in proportion to the distance travelled;
 *  - a gap between the last answer and the open is crossed at the candle's open time;
 *  - whenever the path reaches last·(1 + dev) (or last·(1 − dev)) a round is published at exactly that
 *    price, ⌊last·(1e18 ± dev)/1e18⌋, at t0 + ⌊len · distanceSoFar / totalDistance⌋;
 *  - the close is always published at the candle's end (stands in for the 1 h heartbeat).
 * Mode "close" publishes only the close.
 */
export function candleRounds(
  lastPublishedD18: bigint,
  k: Candle,
  candleSec: bigint,
  devD18: bigint,
  mode: RoundsMode,
): Round[] {
  const out: Round[] = [];
  if (mode === "synthetic") {
    const pathPts = k.c >= k.o ? [k.o, k.l, k.h, k.c] : [k.o, k.h, k.l, k.c];
    const abs = (x: bigint) => (x < 0n ? -x : x);
    const total = abs(pathPts[1] - pathPts[0]) + abs(pathPts[2] - pathPts[1]) + abs(pathPts[3] - pathPts[2]);
    let p = lastPublishedD18;
    let cum = 0n;
    const segs: [bigint, bigint, boolean][] = [[lastPublishedD18, pathPts[0], true]];
    for (let i = 1; i < 4; i++) segs.push([pathPts[i - 1], pathPts[i], false]);
    for (const [a, b, gap] of segs) {
      const at = (dist: bigint) => (gap || total === 0n ? k.t : k.t + (candleSec * (cum + dist)) / total);
      if (b > a) {
        for (;;) {
          const x = (p * (WAD + devD18)) / WAD;
          if (x > b || x <= p) break;
          out.push({ priceD18: x, t: at(x - a) });
          p = x;
        }
      } else if (b < a) {
        for (;;) {
          const x = (p * (WAD - devD18)) / WAD;
          if (x < b || x >= p) break;
          out.push({ priceD18: x, t: at(a - x) });
          p = x;
        }
      }
      if (!gap) cum += b > a ? b - a : a - b;
    }
  }
  out.push({ priceD18: k.c, t: k.t + candleSec });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Margin (mirror of contracts/libraries/MarginMath.sol)
// ---------------------------------------------------------------------------------------------------------

/** Margin parameters (D18 except horizonSec). σ is clamped to [sigmaMin, sigmaMax] first (RiskManager). */
export interface MarginParams {
  zMmD18: bigint;
  liqFeeD18: bigint;
  mmrMinD18: bigint;
  mmrMaxD18: bigint;
  sigmaMinD18: bigint;
  sigmaMaxD18: bigint;
  horizonSec: bigint;
}

/** Proposed ETH-PERP maintenance parameters: z_mm = 4.1, liqFee 0.5 %, MMR in [0.5 %, 25 %], σ ∈ [10 %, 300 %]. */
export const DEFAULT_MARGIN_PARAMS: MarginParams = Object.freeze({
  zMmD18: 4_100000000000000000n,
  liqFeeD18: 5000000000000000n,
  mmrMinD18: 5000000000000000n,
  mmrMaxD18: 250000000000000000n,
  sigmaMinD18: 100000000000000000n,
  sigmaMaxD18: 3_000000000000000000n,
  horizonSec: 3600n,
});

/** MarginMath.sqrtHorizonD18: ⌊√(horizon·1e36/YEAR)⌋. */
export function sqrtHorizonD18(horizonSec: bigint): bigint {
  return isqrt(mulDiv(horizonSec, WAD * WAD, YEAR));
}

/** RiskManager σ clamp, then MarginMath: MMR = min(max(⌈⌈z·σ/1e18⌉·√h/1e18⌉ + liqFee, mmrMin), mmrMax). */
export function mmrD18(sigmaD18: bigint, p: MarginParams, sqrtHD18 = sqrtHorizonD18(p.horizonSec)): bigint {
  let s = sigmaD18;
  if (s < p.sigmaMinD18) s = p.sigmaMinD18;
  if (s > p.sigmaMaxD18) s = p.sigmaMaxD18;
  const move = mulDivUp(mulDivUp(p.zMmD18, s, WAD), sqrtHD18, WAD);
  let m = move + p.liqFeeD18;
  if (m < p.mmrMinD18) m = p.mmrMinD18;
  if (m > p.mmrMaxD18) m = p.mmrMaxD18;
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// Backtest
// ---------------------------------------------------------------------------------------------------------

export interface BacktestOptions {
  volatility?: VolatilityConfig;
  margin?: MarginParams;
  /** Hours skipped before scoring (estimator warm-up). */
  warmupHours?: number;
  rounds?: RoundsMode;
  /** Deviation threshold of the synthesized feed (D18). */
  deviationD18?: bigint;
  windows?: readonly StressWindow[];
  /** Keep per-hour series for charts. */
  keepSeries?: boolean;
}

/** Scores of one set of observations (all ratios as decimals; D18 values also as strings). */
export interface Metrics {
  observations: number;
  breachesDynamic: number;
  breachesStaticSameBreaches: number;
  staticMmrSameBreaches: number;
  avgDynamicMmr: number;
  capitalRatio: number | null;
  breachesStaticSameAvg: number;
  staticMmrSameAvg: number;
  shortfallDynamic: number;
  shortfallStatic: number;
  shortfallRatio: number | null;
  maxDynamicMmr: number;
  maxAdverseMove: number;
}

export interface WindowMetrics extends Metrics {
  name: string;
  start: string;
  end: string;
}

export interface Series {
  t: number[];
  close: number[];
  sigma: number[];
  mmr: number[];
  down: number[];
  up: number[];
}

export interface BacktestResult {
  rows: number;
  warmupHours: number;
  horizonHours: number;
  roundsMode: RoundsMode;
  roundsFed: number;
  skippedObservations: number;
  overall: Metrics;
  windows: WindowMetrics[];
  /** D18 integers behind the headline numbers (exact, for diffing). */
  exact: {
    staticMmrSameBreachesD18: string;
    staticMmrSameAvgD18: string;
    avgDynamicMmrD18: string;
    shortfallDynamicD18: string;
    shortfallStaticD18: string;
  };
  series?: Series;
}

const toNum = (x: bigint, decimals = 8): number => Number((x * 10n ** BigInt(decimals)) / WAD) / 10 ** decimals;

/** a/b rounded down to 1e-6; 0/0 = 0; x/0 (x > 0) = null. */
export function ratio(a: bigint, b: bigint): number | null {
  if (b === 0n) return a === 0n ? 0 : null;
  return Number((a * 1_000_000n) / b) / 1_000_000;
}

/** σ_t and MMR_t for every candle t (after feeding the rounds of candles 0..t), plus the round count. */
export function dynamicMmrPath(
  candles: readonly Candle[],
  opts: BacktestOptions = {},
): { sigma: bigint[]; mmr: bigint[]; roundsFed: number } {
  const cfg = opts.volatility ?? DEFAULT_VOLATILITY_CONFIG;
  const mp = opts.margin ?? DEFAULT_MARGIN_PARAMS;
  const mode = opts.rounds ?? "synthetic";
  const dev = opts.deviationD18 ?? 5000000000000000n;
  const candleSec = mp.horizonSec;
  const sqrtH = sqrtHorizonD18(mp.horizonSec);
  const est = new VolatilityEstimator(cfg);
  const sigma: bigint[] = new Array(candles.length);
  const mmr: bigint[] = new Array(candles.length);
  let last = 0n;
  let roundsFed = 0;
  for (let i = 0; i < candles.length; i++) {
    const k = candles[i];
    // The first candle only seeds the feed with its close.
    const rs = i === 0 ? [{ priceD18: k.c, t: k.t + candleSec }] : candleRounds(last, k, candleSec, dev, mode);
    for (const r of rs) est.update(r.priceD18, r.t);
    roundsFed += rs.length;
    last = rs[rs.length - 1].priceD18;
    // σ_t is read at the close of candle t (= the open of candle t + 1).
    sigma[i] = est.sigmaD18(k.t + candleSec);
    mmr[i] = mmrD18(sigma[i], mp, sqrtH);
  }
  return { sigma, mmr, roundsFed };
}

/** Adverse moves over candle t + 1 relative to close_t, D18, floored at 0: [long (down), short (up)]. */
export function adverseMoves(ct: bigint, next: Candle): [bigint, bigint] {
  const down = ct > next.l ? mulDiv(ct - next.l, WAD, ct) : 0n;
  const up = next.h > ct ? mulDiv(next.h - ct, WAD, ct) : 0n;
  return [down, up];
}

interface Obs {
  t: number; // index of candle t
  mmr: bigint;
  down: bigint;
  up: bigint;
}

function score(obs: readonly Obs[], sA: bigint, sB: bigint): { m: Metrics; avg: bigint; sfD: bigint; sfS: bigint } {
  let sum = 0n;
  let bd = 0;
  let bsA = 0;
  let bsB = 0;
  let sfD = 0n;
  let sfS = 0n;
  let maxM = 0n;
  let maxMove = 0n;
  for (const o of obs) {
    sum += o.mmr;
    if (o.mmr > maxM) maxM = o.mmr;
    for (const x of [o.down, o.up]) {
      if (x > maxMove) maxMove = x;
      if (x > o.mmr) {
        bd++;
        sfD += x - o.mmr;
      }
      if (x > sA) bsA++;
      if (x > sB) {
        bsB++;
        sfS += x - sB;
      }
    }
  }
  const avg = obs.length > 0 ? sum / BigInt(obs.length) : 0n;
  return {
    avg,
    sfD,
    sfS,
    m: {
      observations: obs.length,
      breachesDynamic: bd,
      breachesStaticSameBreaches: bsA,
      staticMmrSameBreaches: toNum(sA),
      avgDynamicMmr: toNum(avg),
      capitalRatio: obs.length > 0 ? ratio(avg, sA) : null,
      breachesStaticSameAvg: bsB,
      staticMmrSameAvg: toNum(sB),
      shortfallDynamic: toNum(sfD),
      shortfallStatic: toNum(sfS),
      shortfallRatio: obs.length > 0 ? ratio(sfD, sfS) : null,
      maxDynamicMmr: toNum(maxM),
      maxAdverseMove: toNum(maxMove),
    },
  };
}

const iso = (s: number) => new Date(s * 1000).toISOString().replace(".000Z", "Z");

/**
 * Runs the backtest. Observation t (t ≥ warm-up, t + 1 < rows, candle t + 1 starting exactly one horizon
 * after candle t) pairs MMR_t with the long and short adverse moves of candle t + 1.
 * Static baselines, calibrated over all observations:
 *  (a) staticMmrSameBreaches = the smallest ratio s with #(moves > s) ≤ breachesDynamic, i.e. the
 *      (B + 1)-th largest move (0 when B ≥ #moves); capitalRatio = avgDynamicMmr / s;
 *  (b) staticMmrSameAvg = avgDynamicMmr (⌊ΣMMR/n⌋); shortfallRatio = Σ(move − MMR)⁺ / Σ(move − s)⁺.
 * A window contains observation t when candle t + 1 opens in [start, end); it is scored with the global
 * static ratios.
 */
export function runBacktest(candles: readonly Candle[], opts: BacktestOptions = {}): BacktestResult {
  const mp = opts.margin ?? DEFAULT_MARGIN_PARAMS;
  const warmup = opts.warmupHours ?? 720;
  const windows = opts.windows ?? DEFAULT_STRESS_WINDOWS;
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`warmupHours must be a non-negative integer`);
  if (mp.horizonSec !== HOUR) {
    // The breach is measured on the next hourly candle: the horizon is one candle.
    throw new RangeError(`this backtest scores a 1 h liquidation horizon on hourly candles (horizonSec = 3600)`);
  }
  const { sigma, mmr, roundsFed } = dynamicMmrPath(candles, opts);
  const obs: Obs[] = [];
  let skipped = 0;
  for (let t = warmup; t + 1 < candles.length; t++) {
    if (candles[t + 1].t - candles[t].t !== mp.horizonSec) {
      skipped++;
      continue;
    }
    const [down, up] = adverseMoves(candles[t].c, candles[t + 1]);
    obs.push({ t, mmr: mmr[t], down, up });
  }
  if (obs.length === 0) {
    throw new BacktestDataError(`no observations: ${candles.length} rows, warm-up ${warmup} h`);
  }

  // Breaches of the dynamic model fix static (a); its average fixes static (b).
  let bd = 0;
  let sum = 0n;
  const moves: bigint[] = [];
  for (const o of obs) {
    sum += o.mmr;
    if (o.down > o.mmr) bd++;
    if (o.up > o.mmr) bd++;
    moves.push(o.down, o.up);
  }
  moves.sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  const sA = bd < moves.length ? moves[bd] : 0n;
  const sB = sum / BigInt(obs.length);

  const all = score(obs, sA, sB);
  const wm: WindowMetrics[] = windows.map((w) => {
    const inW = obs.filter((o) => {
      const s = Number(candles[o.t + 1].t);
      return s >= w.start && s < w.end;
    });
    return { name: w.name, start: iso(w.start), end: iso(w.end), ...score(inW, sA, sB).m };
  });

  const result: BacktestResult = {
    rows: candles.length,
    warmupHours: warmup,
    horizonHours: Number(mp.horizonSec) / 3600,
    roundsMode: opts.rounds ?? "synthetic",
    roundsFed,
    skippedObservations: skipped,
    overall: all.m,
    windows: wm,
    exact: {
      staticMmrSameBreachesD18: sA.toString(),
      staticMmrSameAvgD18: sB.toString(),
      avgDynamicMmrD18: all.avg.toString(),
      shortfallDynamicD18: all.sfD.toString(),
      shortfallStaticD18: all.sfS.toString(),
    },
  };
  if (opts.keepSeries) {
    result.series = {
      t: obs.map((o) => Number(candles[o.t + 1].t)),
      close: obs.map((o) => toNum(candles[o.t].c, 6)),
      sigma: obs.map((o) => toNum(sigma[o.t], 6)),
      mmr: obs.map((o) => toNum(o.mmr)),
      down: obs.map((o) => toNum(o.down)),
      up: obs.map((o) => toNum(o.up)),
    };
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Real Chainlink rounds versus the synthesized feed
// ---------------------------------------------------------------------------------------------------------

/**
 * Parses `roundId,answer,startedAt,updatedAt,answeredInRound` (AggregatorV3Interface.getRoundData rows) into
 * rounds (answer scaled from `decimals` to D18, time = updatedAt), in file order.
 */
export function parseChainlinkRoundsCsv(text: string, source = "rounds", decimals = 8): Round[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const header = (lines[0] ?? "").split(",").map((x) => x.trim());
  if (header[1] !== "answer" || header[3] !== "updatedAt") {
    throw new BacktestDataError(`${source}: header must be roundId,answer,startedAt,updatedAt,answeredInRound`);
  }
  const scale = 10n ** BigInt(18 - decimals);
  const out: Round[] = [];
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].split(",").map((x) => x.trim());
    if (!/^\d+$/.test(f[1] ?? "") || !/^\d+$/.test(f[3] ?? "")) throw new BacktestDataError(`${source}:${i + 1}: bad row`);
    const r = { priceD18: BigInt(f[1]) * scale, t: BigInt(f[3]) };
    if (r.priceD18 === 0n) throw new BacktestDataError(`${source}:${i + 1}: answer must be > 0`);
    if (out.length > 0 && r.t < out[out.length - 1].t) throw new BacktestDataError(`${source}:${i + 1}: updatedAt goes back`);
    out.push(r);
  }
  if (out.length < 2) throw new BacktestDataError(`${source}: need at least 2 rounds`);
  return out;
}

export interface ChainlinkCheck {
  from: string;
  to: string;
  hours: number;
  realRounds: number;
  synthesizedRounds: number;
  sigmaMeanReal: number;
  sigmaMeanSynthetic: number;
  sigmaRatioP10: number;
  sigmaRatioMedian: number;
  sigmaRatioP90: number;
  real: { breaches: number; avgMmr: number; shortfall: number };
  synthetic: { breaches: number; avgMmr: number; shortfall: number };
}

/**
 * Over the hours the real rounds cover, runs two estimators side by side from the same start: one fed the
 * real rounds (updatedAt ≤ close of candle t), one fed the rounds synthesized from the candles. After the
 * warm-up, compares σ_t and scores both MMR paths against candle t + 1 (same breach definition).
 */
export function chainlinkComparison(
  candles: readonly Candle[],
  rounds: readonly Round[],
  opts: { volatility?: VolatilityConfig; margin?: MarginParams; warmupHours?: number; deviationD18?: bigint } = {},
): ChainlinkCheck {
  const cfg = opts.volatility ?? DEFAULT_VOLATILITY_CONFIG;
  const mp = opts.margin ?? DEFAULT_MARGIN_PARAMS;
  const warm = opts.warmupHours ?? 720;
  const dev = opts.deviationD18 ?? 5000000000000000n;
  const len = mp.horizonSec;
  const first = candles.findIndex((k) => k.t >= rounds[0].t);
  if (first < 1) throw new BacktestDataError("the Chainlink rounds do not overlap the candles");
  const real = new VolatilityEstimator(cfg);
  const syn = new VolatilityEstimator(cfg);
  syn.update(candles[first - 1].c, candles[first - 1].t + len);
  let last = candles[first - 1].c;
  let j = 0;
  let synCount = 1;
  const sqrtH = sqrtHorizonD18(mp.horizonSec);
  const rows: { t: bigint; sR: bigint; sS: bigint; mR: bigint; mS: bigint; dn: bigint; up: bigint }[] = [];
  for (let i = first; i + 1 < candles.length; i++) {
    const k = candles[i];
    const end = k.t + len;
    if (end > rounds[rounds.length - 1].t) break;
    while (j < rounds.length && rounds[j].t <= end) {
      real.update(rounds[j].priceD18, rounds[j].t);
      j++;
    }
    const rs = candleRounds(last, k, len, dev, "synthetic");
    for (const r of rs) syn.update(r.priceD18, r.t);
    synCount += rs.length;
    last = k.c;
    if (candles[i + 1].t - k.t !== len) continue;
    const sR = real.sigmaD18(end);
    const sS = syn.sigmaD18(end);
    const [dn, up] = adverseMoves(k.c, candles[i + 1]);
    rows.push({ t: k.t, sR, sS, mR: mmrD18(sR, mp, sqrtH), mS: mmrD18(sS, mp, sqrtH), dn, up });
  }
  const obs = rows.slice(warm);
  if (obs.length === 0) throw new BacktestDataError("the Chainlink rounds cover less than the warm-up");
  const q = (xs: bigint[], f: number) => xs[Math.min(xs.length - 1, Math.floor(f * xs.length))];
  const ratios = obs.map((o) => (o.sR * WAD) / (o.sS === 0n ? 1n : o.sS)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const side = (key: "mR" | "mS") => {
    let b = 0;
    let sf = 0n;
    let sum = 0n;
    for (const o of obs) {
      sum += o[key];
      for (const x of [o.dn, o.up]) {
        if (x > o[key]) {
          b++;
          sf += x - o[key];
        }
      }
    }
    return { breaches: b, avgMmr: toNum(sum / BigInt(obs.length)), shortfall: toNum(sf) };
  };
  const mean = (key: "sR" | "sS") => toNum(obs.reduce((a, o) => a + o[key], 0n) / BigInt(obs.length), 6);
  return {
    from: iso(Number(obs[0].t)),
    to: iso(Number(obs[obs.length - 1].t + len)),
    hours: obs.length,
    realRounds: j,
    synthesizedRounds: synCount,
    sigmaMeanReal: mean("sR"),
    sigmaMeanSynthetic: mean("sS"),
    sigmaRatioP10: toNum(q(ratios, 0.1), 4),
    sigmaRatioMedian: toNum(q(ratios, 0.5), 4),
    sigmaRatioP90: toNum(q(ratios, 0.9), 4),
    real: side("mR"),
    synthetic: side("mS"),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Targets, JSON, reference model
// ---------------------------------------------------------------------------------------------------------

export const TARGETS = Object.freeze({ capitalRatioMax: 0.75, shortfallRatioMax: 0.45, windowShortfallRatioMax: 0.5 });

export interface TargetReport {
  capitalRatioMax: number;
  shortfallRatioMax: number;
  windowShortfallRatioMax: number;
  capitalRatioMet: boolean;
  shortfallRatioMet: boolean;
  /** Per stress window that has observations (a window outside the history is listed in windowsNotCovered). */
  windowsMet: Record<string, boolean>;
  windowsNotCovered: string[];
  met: boolean;
}

export function checkTargets(r: BacktestResult): TargetReport {
  const le = (x: number | null, max: number) => x !== null && x <= max;
  const windowsMet: Record<string, boolean> = {};
  const windowsNotCovered: string[] = [];
  for (const w of r.windows) {
    if (w.observations === 0) windowsNotCovered.push(w.name);
    else windowsMet[w.name] = le(w.shortfallRatio, TARGETS.windowShortfallRatioMax);
  }
  const capitalRatioMet = le(r.overall.capitalRatio, TARGETS.capitalRatioMax);
  const shortfallRatioMet = le(r.overall.shortfallRatio, TARGETS.shortfallRatioMax);
  return {
    ...TARGETS,
    capitalRatioMet,
    shortfallRatioMet,
    windowsMet,
    windowsNotCovered,
    met: capitalRatioMet && shortfallRatioMet && Object.values(windowsMet).every(Boolean),
  };
}

/** The plain estimator quoted in the issue: EWMA of hourly squared close-to-close returns, 24 h half-life. */
export const REFERENCE_VOLATILITY_CONFIG: VolatilityConfig = Object.freeze({
  ...DEFAULT_VOLATILITY_CONFIG,
  halfLivesSec: Object.freeze([24n * HOUR]),
  weightsD18: Object.freeze([WAD]),
  excursionWeightD18: 0n,
  longRunFloorD18: 0n,
  tailWeightD18: 0n,
  seasonal: false,
  seasonalBaseIndex: 0,
});

/** ... with z = 4, no fee, MMR ≥ 0.5 %, no σ clamp, fed hourly closes only. */
export const REFERENCE_MARGIN_PARAMS: MarginParams = Object.freeze({
  ...DEFAULT_MARGIN_PARAMS,
  zMmD18: 4n * WAD,
  liqFeeD18: 0n,
  sigmaMinD18: 0n,
  sigmaMaxD18: 1000n * WAD,
});

/** JSON-friendly parameters: bigint → decimal string (D18 values as decimals). */
export function describeParams(v: VolatilityConfig, m: MarginParams, mode: RoundsMode, devD18: bigint) {
  const dec = (x: bigint) => toNum(x, 18);
  return {
    rounds: mode,
    deviationThreshold: dec(devD18),
    volatility: {
      periodSec: Number(v.periodSec),
      halfLivesSec: v.halfLivesSec.map(Number),
      weights: v.weightsD18.map(dec),
      excursionWeight: dec(v.excursionWeightD18),
      longRunHalfLifeSec: Number(v.longRunHalfLifeSec),
      longRunFloor: dec(v.longRunFloorD18),
      tailHalfLifeSec: Number(v.tailHalfLifeSec),
      tailThreshold: dec(v.tailThresholdD18),
      tailWeight: dec(v.tailWeightD18),
      seasonal: v.seasonal,
      seasonalHalfLifeDays: Number(v.seasonalHalfLifeDays),
      seasonalBaseIndex: v.seasonalBaseIndex,
      seasonalCap: dec(v.seasonalCapD18),
      initialSigma: dec(v.initialSigmaD18),
    },
    margin: {
      zMm: dec(m.zMmD18),
      liqFee: dec(m.liqFeeD18),
      mmrMin: dec(m.mmrMinD18),
      mmrMax: dec(m.mmrMaxD18),
      sigmaMin: dec(m.sigmaMinD18),
      sigmaMax: dec(m.sigmaMaxD18),
      horizonSec: Number(m.horizonSec),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// HTML report (self-contained inline SVG)
// ---------------------------------------------------------------------------------------------------------

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const pct = (x: number | null, d = 2) => (x === null ? "—" : (x * 100).toFixed(d) + "%");
const fx = (x: number | null, d = 3) => (x === null ? "—" : x.toFixed(d));

interface Line {
  xs: number[];
  ys: number[];
  color: string;
  width?: number;
  dash?: string;
}

function svgChart(opts: {
  title: string;
  width: number;
  height: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  lines: Line[];
  bars?: { xs: number[]; ys: number[]; color: string; w: number }[];
  marks?: { xs: number[]; ys: number[]; color: string }[];
  yFmt: (y: number) => string;
  xFmt: (x: number) => string;
  xTicks: number[];
}): string {
  const { width: W, height: H } = opts;
  const L = 58,
    R = 12,
    T = 24,
    B = 26;
  const sx = (x: number) => L + ((x - opts.x0) / (opts.x1 - opts.x0 || 1)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - opts.y0) / (opts.y1 - opts.y0 || 1)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${L}" y="15" font-size="13" font-weight="bold">${esc(opts.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const y = opts.y0 + ((opts.y1 - opts.y0) * i) / 4;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`);
    parts.push(
      `<text x="${L - 4}" y="${(sy(y) + 4).toFixed(1)}" font-size="10" text-anchor="end">${esc(opts.yFmt(y))}</text>`,
    );
  }
  for (const x of opts.xTicks) {
    parts.push(`<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#f3f3f3"/>`);
    parts.push(
      `<text x="${sx(x).toFixed(1)}" y="${H - B + 14}" font-size="10" text-anchor="middle">${esc(opts.xFmt(x))}</text>`,
    );
  }
  for (const b of opts.bars ?? []) {
    let d = "";
    for (let i = 0; i < b.xs.length; i++) {
      const y = Math.min(b.ys[i], opts.y1);
      if (y <= opts.y0) continue;
      d += `M${sx(b.xs[i]).toFixed(1)} ${sy(opts.y0).toFixed(1)}V${sy(y).toFixed(1)}`;
    }
    if (d) parts.push(`<path d="${d}" stroke="${b.color}" stroke-width="${b.w}" fill="none"/>`);
  }
  for (const l of opts.lines) {
    let d = "";
    for (let i = 0; i < l.xs.length; i++) {
      d += `${i === 0 ? "M" : "L"}${sx(l.xs[i]).toFixed(1)} ${sy(Math.min(l.ys[i], opts.y1)).toFixed(1)}`;
    }
    parts.push(
      `<path d="${d}" stroke="${l.color}" stroke-width="${l.width ?? 1}" fill="none"${
        l.dash ? ` stroke-dasharray="${l.dash}"` : ""
      }/>`,
    );
  }
  for (const m of opts.marks ?? []) {
    for (let i = 0; i < m.xs.length; i++) {
      parts.push(
        `<circle cx="${sx(m.xs[i]).toFixed(1)}" cy="${sy(Math.min(m.ys[i], opts.y1)).toFixed(1)}" r="2.2" fill="${
          m.color
        }"/>`,
      );
    }
  }
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`);
  parts.push(`</svg>`);
  return parts.join("");
}

/** Per-bucket (max, mean) downsampling for the full-history chart. */
function buckets(xs: number[], ys: number[], n: number): { x: number[]; max: number[]; mean: number[] } {
  const size = Math.max(1, Math.ceil(xs.length / n));
  const x: number[] = [],
    max: number[] = [],
    mean: number[] = [];
  for (let i = 0; i < xs.length; i += size) {
    let m = -Infinity,
      s = 0,
      k = 0;
    for (let j = i; j < Math.min(xs.length, i + size); j++) {
      if (ys[j] > m) m = ys[j];
      s += ys[j];
      k++;
    }
    x.push(xs[i]);
    max.push(m);
    mean.push(s / k);
  }
  return { x, max, mean };
}

function metricsRow(label: string, m: Metrics): string {
  return `<tr><td>${esc(label)}</td><td>${m.observations}</td><td>${m.breachesDynamic}</td><td>${
    m.breachesStaticSameBreaches
  }</td><td>${pct(m.avgDynamicMmr)}</td><td>${pct(m.staticMmrSameBreaches)}</td><td><b>${fx(
    m.capitalRatio,
  )}</b></td><td>${pct(m.staticMmrSameAvg)}</td><td>${fx(m.shortfallDynamic, 4)}</td><td>${fx(
    m.shortfallStatic,
    4,
  )}</td><td><b>${fx(m.shortfallRatio)}</b></td></tr>`;
}

/** A self-contained HTML report (no scripts, no external resources). */
export function renderHtml(report: {
  file: string;
  command?: string;
  result: BacktestResult;
  targets: TargetReport;
  reference?: BacktestResult;
  windows: readonly StressWindow[];
}): string {
  const r = report.result;
  const s = r.series;
  const yearTicks = (x0: number, x1: number) => {
    const out: number[] = [];
    for (let y = new Date(x0 * 1000).getUTCFullYear() + 1; ; y++) {
      const t = Date.UTC(y, 0, 1) / 1000;
      if (t > x1) break;
      out.push(t);
    }
    return out;
  };
  const charts: string[] = [];
  if (s && s.t.length > 1) {
    const x0 = s.t[0],
      x1 = s.t[s.t.length - 1];
    const mv = s.down.map((d, i) => Math.max(d, s.up[i]));
    const bm = buckets(s.t, s.mmr, 1400);
    const bv = buckets(s.t, mv, 1400);
    const ymax = Math.min(0.2, Math.max(...bv.max, ...bm.max) * 1.05);
    charts.push(
      svgChart({
        title: "Dynamic MMR per bucket: mean (dark blue), max (light blue); static (a) red dash, (b) orange dash; grey: largest adverse move",
        width: 1100,
        height: 320,
        x0,
        x1,
        y0: 0,
        y1: ymax,
        bars: [{ xs: bv.x, ys: bv.max, color: "#c9c9c9", w: 1 }],
        lines: [
          { xs: bm.x, ys: bm.max, color: "#a9c4ee", width: 1 },
          { xs: bm.x, ys: bm.mean, color: "#1f4fa0", width: 1.2 },
          { xs: [x0, x1], ys: [r.overall.staticMmrSameBreaches, r.overall.staticMmrSameBreaches], color: "#d62728", dash: "5 3" },
          { xs: [x0, x1], ys: [r.overall.staticMmrSameAvg, r.overall.staticMmrSameAvg], color: "#ff9f1c", dash: "5 3" },
        ],
        yFmt: (y) => (y * 100).toFixed(1) + "%",
        xFmt: (x) => String(new Date(x * 1000).getUTCFullYear()),
        xTicks: yearTicks(x0, x1),
      }),
    );
    const bs = buckets(s.t, s.sigma, 1400);
    charts.push(
      svgChart({
        title: "σ (annualized, bucket mean) fed to the margin formula",
        width: 1100,
        height: 200,
        x0,
        x1,
        y0: 0,
        y1: Math.max(...bs.mean) * 1.05,
        lines: [{ xs: bs.x, ys: bs.mean, color: "#2ca02c" }],
        yFmt: (y) => (y * 100).toFixed(0) + "%",
        xFmt: (x) => String(new Date(x * 1000).getUTCFullYear()),
        xTicks: yearTicks(x0, x1),
      }),
    );
    for (const w of report.windows) {
      const idx: number[] = [];
      for (let i = 0; i < s.t.length; i++) if (s.t[i] >= w.start && s.t[i] < w.end) idx.push(i);
      if (idx.length === 0) continue;
      const xs = idx.map((i) => s.t[i]);
      const down = idx.map((i) => s.down[i]);
      const up = idx.map((i) => s.up[i]);
      const mm = idx.map((i) => s.mmr[i]);
      const ym = Math.max(...down, ...up, ...mm) * 1.08;
      const br = idx.filter((i) => s.down[i] > s.mmr[i] || s.up[i] > s.mmr[i]);
      const dayTicks: number[] = [];
      for (let t = Math.ceil(w.start / 86400) * 86400; t < w.end; t += 86400) dayTicks.push(t);
      const wm = r.windows.find((x) => x.name === w.name);
      charts.push(
        svgChart({
          title: `${w.name}: MMR (blue), long (red) / short (green) adverse moves, breaches (dots); shortfallRatio ${fx(
            wm?.shortfallRatio ?? null,
          )}`,
          width: 1100,
          height: 260,
          x0: w.start,
          x1: w.end,
          y0: 0,
          y1: ym,
          bars: [
            { xs: xs.map((x) => x + 600), ys: down, color: "#e57373", w: 3 },
            { xs: xs.map((x) => x + 2400), ys: up, color: "#66bb6a", w: 3 },
          ],
          lines: [
            { xs, ys: mm, color: "#1f5fbf", width: 1.5 },
            { xs: [w.start, w.end], ys: [r.overall.staticMmrSameBreaches, r.overall.staticMmrSameBreaches], color: "#d62728", dash: "5 3" },
            { xs: [w.start, w.end], ys: [r.overall.staticMmrSameAvg, r.overall.staticMmrSameAvg], color: "#ff9f1c", dash: "5 3" },
          ],
          marks: [{ xs: br.map((i) => s.t[i] + 1800), ys: br.map((i) => Math.max(s.down[i], s.up[i])), color: "#000" }],
          yFmt: (y) => (y * 100).toFixed(1) + "%",
          xFmt: (x) => new Date(x * 1000).toISOString().slice(5, 10),
          xTicks: dayTicks,
        }),
      );
    }
  }
  const t = report.targets;
  const ok = (b: boolean) => (b ? `<span style="color:#2a7d2a">met</span>` : `<span style="color:#c62828">missed</span>`);
  const head =
    "<tr><th></th><th>hours</th><th>breaches dyn</th><th>breaches static(a)</th><th>avg dyn MMR</th><th>static (a)</th><th>capitalRatio</th><th>static (b)</th><th>shortfall dyn</th><th>shortfall static(b)</th><th>shortfallRatio</th></tr>";
  const rows = [metricsRow("overall", r.overall), ...r.windows.map((w) => metricsRow(w.name, w))].join("");
  const ref = report.reference
    ? `<h2>Reference: plain EWMA (24 h half-life, z = 4, closes only)</h2><table>${head}${metricsRow(
        "overall",
        report.reference.overall,
      )}${report.reference.windows.map((w) => metricsRow(w.name, w)).join("")}</table>`
    : "";
  return `<!doctype html><html><head><meta charset="utf-8"><title>Sigma margin backtest</title>
<style>body{font-family:system-ui,sans-serif;margin:20px;color:#222}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child{text-align:left}svg{display:block;margin:12px 0}</style>
</head><body>
<h1>Sigma margin backtest</h1>
<p>File <code>${esc(report.file)}</code>, ${r.rows} hourly rows, warm-up ${r.warmupHours} h, horizon ${
    r.horizonHours
  } h, rounds: ${r.roundsMode} (${r.roundsFed} fed). Breach: the next candle's low (long) or high (short) moves
further from close<sub>t</sub> than MMR<sub>t</sub>. Static (a): same breaches as the dynamic model; static (b): same
average MMR; both calibrated on the whole history.${report.command ? ` Command: <code>${esc(report.command)}</code>.` : ""}</p>
<p>Targets: capitalRatio ≤ ${t.capitalRatioMax} ${ok(t.capitalRatioMet)}; shortfallRatio ≤ ${t.shortfallRatioMax} ${ok(
    t.shortfallRatioMet,
  )}; every window ≤ ${t.windowShortfallRatioMax} ${ok(Object.values(t.windowsMet).every(Boolean))}.</p>
<table>${head}${rows}</table>
${ref}
${charts.join("\n")}
</body></html>
`;
}
