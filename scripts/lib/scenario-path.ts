// Price paths for the scenario engine: a seeded PRNG, the built-in generated stress path, an hourly OHLC CSV
// loader, a correlated second market, the Chainlink-like rounds of each hour and the realized-volatility
// figure the mock volatility feed publishes. Pure functions of their inputs: the same seed and the same file
// always give the same rounds.
import { readFileSync } from "fs";

/** One hourly candle in USD. `t` is the candle's open time (Unix seconds) in the source's clock. */
export interface Candle {
  t: number;
  open: number;
  high: number;
  low: number;
  close: number;
}

/** A price path of one market: warm-up history (seeds the volatility feed, never replayed) then the replay. */
export interface PricePath {
  symbol: string;
  /** Candles before the replay, used only for the trailing realized volatility of the first hours. */
  history: Candle[];
  candles: Candle[];
  /** Where it comes from, for the report. */
  source: string;
}

// ===================================================================== PRNG

/** A small, fast, seedable PRNG (sfc32 seeded through xmur3): deterministic across platforms. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: string | number) {
    const s = String(seed);
    let h = 1779033703 ^ s.length;
    for (let i = 0; i < s.length; i++) {
      h = Math.imul(h ^ s.charCodeAt(i), 3432918353);
      h = (h << 13) | (h >>> 19);
    }
    const next = () => {
      h = Math.imul(h ^ (h >>> 16), 2246822507);
      h = Math.imul(h ^ (h >>> 13), 3266489909);
      return (h ^= h >>> 16) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 15; i++) this.uniform();
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    let t = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    t = (t + this.d) | 0;
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Standard normal (Marsaglia polar method). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u: number, v: number, s: number;
    do {
      u = this.uniform() * 2 - 1;
      v = this.uniform() * 2 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * m;
    return u * m;
  }

  /** Picks from weighted choices. */
  pick<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((s, [, w]) => s + w, 0);
    let x = this.uniform() * total;
    for (const [v, w] of choices) {
      if ((x -= w) < 0) return v;
    }
    return choices[choices.length - 1][0];
  }
}

// ===================================================================== generated stress path

const HOUR = 3600;
const YEAR = 365 * 24 * HOUR;
/** Sub-steps per generated hour (5 minutes each): the candle's high and low come from them. */
const STEPS_PER_HOUR = 12;

/** One regime of the generated path: `hours` long, a total log move, an annualized volatility. */
export interface Phase {
  name: string;
  hours: number;
  /** Total move over the phase as a ratio (−0.25 = −25%); the noise is bridged so the phase ends exactly there. */
  move: number;
  /** Annualized volatility of the 5-minute steps (1 = 100%). */
  vol: number;
}

/**
 * The default stress story over `hours` (≥ 8): calm drift, a first shock (volatility builds), the crash leg
 * (−30% from the pre-shock level over a few hours, with high intra-hour volatility), then a partial recovery
 * as volatility decays. Phase lengths scale with `hours` so a short test run keeps the same shape.
 */
export function stressPhases(hours: number): Phase[] {
  if (hours < 8) throw new Error(`the generated stress path needs at least 8 hours (got ${hours})`);
  const shock = Math.max(1, Math.round(hours * 0.04));
  const crash = Math.max(2, Math.round(hours * 0.08));
  const calm = Math.max(2, Math.round(hours * 0.42));
  const rest = hours - calm - shock - crash;
  const recovery = Math.max(1, Math.round(rest * 0.6));
  const settle = rest - recovery;
  // Shock −6%, crash to −30% of the pre-shock level overall, recovery to about −18%.
  const afterShock = 0.94;
  const afterCrash = 0.7;
  const afterRecovery = 0.82;
  const phases: Phase[] = [
    { name: "calm", hours: calm, move: 0.012, vol: 0.4 },
    { name: "shock", hours: shock, move: afterShock - 1, vol: 1.0 },
    { name: "crash", hours: crash, move: afterCrash / afterShock - 1, vol: 1.8 },
    { name: "recovery", hours: recovery, move: afterRecovery / afterCrash - 1, vol: 1.0 },
  ];
  if (settle > 0) phases.push({ name: "settle", hours: settle, move: 0.005, vol: 0.55 });
  return phases;
}

/** Generates hourly candles of the given phases from `startPrice`, deterministic in `seed`. */
export function generateCandles(phases: Phase[], startPrice: number, startTime: number, rng: Rng): Candle[] {
  const out: Candle[] = [];
  let price = startPrice;
  let t = startTime;
  for (const ph of phases) {
    const n = ph.hours * STEPS_PER_HOUR;
    const sd = ph.vol * Math.sqrt(HOUR / STEPS_PER_HOUR / YEAR);
    const steps = Array.from({ length: n }, () => sd * rng.normal());
    // Bridge: spread the gap between the noise's sum and the phase's target over its steps.
    const target = Math.log(1 + ph.move);
    const drift = (target - steps.reduce((s, x) => s + x, 0)) / n;
    for (let h = 0; h < ph.hours; h++) {
      const open = price;
      let high = open;
      let low = open;
      for (let k = 0; k < STEPS_PER_HOUR; k++) {
        price *= Math.exp(steps[h * STEPS_PER_HOUR + k] + drift);
        high = Math.max(high, price);
        low = Math.min(low, price);
      }
      out.push({ t, open, high, low, close: price });
      t += HOUR;
    }
  }
  return out;
}

/** The built-in ETH stress path: `hours` replayed candles plus 24 calm hours of history before them. */
export function generatedStressPath(symbol: string, hours: number, startPrice: number, seed: string): PricePath {
  const rng = new Rng(`${seed}/path/${symbol}`);
  const startTime = 1_700_000_000 - (1_700_000_000 % HOUR);
  const history = generateCandles([{ name: "history", hours: 24, move: 0, vol: 0.4 }], startPrice, startTime - 24 * HOUR, rng);
  const candles = generateCandles(stressPhases(hours), history[history.length - 1].close, startTime, rng);
  return { symbol, history, candles, source: "generated stress path (calm → shock → crash −30% → partial recovery)" };
}

// ===================================================================== CSV

/** Reads an hourly OHLC CSV (`timestamp_unix,open,high,low,close[,volume]`, header optional). */
export function loadOhlcCsv(file: string, symbol = "ETH-PERP"): PricePath {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read the prices file ${file}: ${(e as Error).message}`);
  }
  const rows = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  const candles: Candle[] = [];
  for (const [i, line] of rows.entries()) {
    const cols = line.split(",");
    if (i === 0 && isNaN(Number(cols[0]))) {
      const want = ["timestamp_unix", "open", "high", "low", "close"];
      const got = cols.slice(0, 5).map((c) => c.trim().toLowerCase());
      if (want.some((w, k) => got[k] !== w)) {
        throw new Error(`${file}: expected columns ${want.join(",")}[,volume], got ${cols.join(",")}`);
      }
      continue;
    }
    const [t, open, high, low, close] = cols.slice(0, 5).map(Number);
    if ([t, open, high, low, close].some((x) => !Number.isFinite(x)) || open <= 0 || high <= 0 || low <= 0 || close <= 0) {
      throw new Error(`${file}:${i + 1}: not a valid OHLC row: ${line}`);
    }
    // Some index exports have open/close slightly outside [low, high]: widen, as the data README does.
    candles.push({ t, open, close, high: Math.max(high, open, close), low: Math.min(low, open, close) });
  }
  if (candles.length < 2) throw new Error(`${file}: needs at least 2 hourly rows`);
  for (let i = 1; i < candles.length; i++) {
    if (candles[i].t <= candles[i - 1].t) throw new Error(`${file}: timestamps must increase (row ${i + 1})`);
  }
  return { symbol, history: [], candles, source: `csv ${file}` };
}

// ===================================================================== correlated market

/**
 * A second market's path driven by the first: each hourly log move is `beta` times the driver's plus
 * independent noise of `noiseVol` (annualized); highs and lows scale the driver's intra-hour range by `beta`.
 * Used for BTC-PERP, for which no data is bundled.
 */
export function correlatedPath(driver: PricePath, symbol: string, startPrice: number, beta: number, noiseVol: number, seed: string): PricePath {
  const rng = new Rng(`${seed}/path/${symbol}`);
  const sd = noiseVol * Math.sqrt(HOUR / YEAR);
  const all = [...driver.history, ...driver.candles];
  const out: Candle[] = [];
  let prev = startPrice;
  for (const c of all) {
    const open = prev;
    const close = open * Math.exp(beta * Math.log(c.close / c.open) + sd * rng.normal());
    const up = Math.exp(beta * Math.log(c.high / Math.max(c.open, c.close)));
    const down = Math.exp(beta * Math.log(c.low / Math.min(c.open, c.close)));
    out.push({ t: c.t, open, close, high: Math.max(open, close) * up, low: Math.min(open, close) * down });
    prev = close;
  }
  return {
    symbol,
    history: out.slice(0, driver.history.length),
    candles: out.slice(driver.history.length),
    source: `synthetic: β=${beta} × ${driver.symbol} hourly moves + ${Math.round(noiseVol * 100)}% vol noise`,
  };
}

// ===================================================================== rounds and realized volatility

/** A Chainlink-like round inside an hour: seconds after the hour starts and the answer in USD. */
export interface Round {
  offset: number;
  price: number;
}

/** Offsets of the four intra-hour slots (open, first extreme, second extreme, close). */
export const ROUND_SLOTS = [0, 15 * 60, 30 * 60, 45 * 60] as const;
/** Seconds between the rounds a fast move publishes (one block each). */
export const STEP_ROUND_SEC = 12;
/** At most this many rounds per move between two slot points (steps grow beyond it). */
export const MAX_STEP_ROUNDS = 40;

/**
 * Rounds of one candle, as a Chainlink feed with a deviation threshold would publish them: the price goes
 * open → the extreme met first (the high for a falling hour, the low for a rising one) → the other extreme
 * → close, one leg per slot. A leg moving less than `deviation` from the last published answer publishes
 * nothing (but the close, always published: the heartbeat); a larger leg publishes a round every time the
 * price has moved `deviation` from the last one, as a deviation-triggered feed does in a fast market: n =
 * ⌊|ln(p/last)| / |ln(1 ± deviation)|⌋ rounds in equal geometric steps ending at p (at most MAX_STEP_ROUNDS),
 * one block (STEP_ROUND_SEC) apart from the slot's start. A −17 % hour thus arrives as ~37 rounds, not one
 * gap the keepers cannot act inside. Returns the slot index with each round.
 */
export function candleRounds(c: Candle, lastPublished: number, deviation: number): (Round & { slot: number })[] {
  const falling = c.close < c.open;
  const points = [c.open, falling ? c.high : c.low, falling ? c.low : c.high, c.close];
  const out: (Round & { slot: number })[] = [];
  let last = lastPublished;
  points.forEach((p, slot) => {
    const isClose = slot === points.length - 1;
    if (!(isClose || Math.abs(p / last - 1) >= deviation)) return;
    // Steps of exactly `deviation` up (×(1 + d)) or down (×(1 − d)) fit n times into the leg.
    const stepLog = Math.abs(Math.log(p > last ? 1 + deviation : 1 - deviation));
    const n = Math.min(MAX_STEP_ROUNDS, Math.max(1, Math.floor(Math.abs(Math.log(p / last)) / stepLog)));
    for (let k = 1; k <= n; k++) {
      out.push({ slot, offset: ROUND_SLOTS[slot] + (k - 1) * STEP_ROUND_SEC, price: k === n ? p : last * (p / last) ** (k / n) });
    }
    last = p;
  });
  return out;
}

/**
 * Annualized realized volatility in percent from the last `window` hourly close-to-close log returns of
 * `closes` (what a Chainlink realized-volatility feed publishes, e.g. a 24 h window). Null with fewer than
 * `minReturns` returns.
 */
export function realizedVolPercent(closes: number[], window = 24, minReturns = 6): number | null {
  const xs = closes.slice(-(window + 1));
  if (xs.length - 1 < minReturns) return null;
  let sum = 0;
  for (let i = 1; i < xs.length; i++) {
    const r = Math.log(xs[i] / xs[i - 1]);
    sum += r * r;
  }
  const variancePerHour = sum / (xs.length - 1);
  return Math.sqrt(variancePerHour * 24 * 365) * 100;
}
