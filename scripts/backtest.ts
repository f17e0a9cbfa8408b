/**
 * Margin-model backtest CLI (docs/BACKTEST.md).
 *
 *   npx ts-node scripts/backtest.ts --prices <csv> [--out <file.json>] [--html <file.html>]
 *       [--windows <dir>] [--warmup <hours>] [--rounds synthetic|close] [--z <z_mm>] [--config <file.json>]
 *       [--chainlink <rounds.csv>] [--no-reference]
 *
 * Defaults: --prices ../shared/data/eth_usd_1h.csv (relative to the repository), --out reports/backtest.json,
 * the HTML next to the JSON, stress windows from <prices dir>/crash_windows (built-in list if absent).
 * Exit codes: 0 = ran (targets met or not, see the JSON), 2 = bad arguments or data.
 */
import * as fs from "fs";
import * as path from "path";
import {
  BacktestDataError,
  DEFAULT_MARGIN_PARAMS,
  DEFAULT_STRESS_WINDOWS,
  MarginParams,
  REFERENCE_MARGIN_PARAMS,
  REFERENCE_VOLATILITY_CONFIG,
  RoundsMode,
  StressWindow,
  ChainlinkCheck,
  chainlinkComparison,
  checkTargets,
  describeParams,
  loadOhlcCsv,
  loadStressWindows,
  parseChainlinkRoundsCsv,
  parseDecimalD18,
  renderHtml,
  runBacktest,
} from "../sdk/backtest";
import { DEFAULT_VOLATILITY_CONFIG, VolatilityConfig, validateVolatilityConfig } from "../sdk/volatility";

const REPO = path.resolve(__dirname, "..");
const DEVIATION_D18 = 5000000000000000n; // 0.5 %

class UsageError extends Error {}

interface Args {
  prices: string;
  out: string;
  html?: string;
  windows?: string;
  warmup: number;
  rounds: RoundsMode;
  z?: string;
  config?: string;
  chainlink?: string;
  reference: boolean;
}

const USAGE = `usage: npx ts-node scripts/backtest.ts --prices <csv> [--out <file.json>] [--html <file.html>]
       [--windows <dir>] [--warmup <hours>] [--rounds synthetic|close] [--z <z_mm>] [--config <file.json>]
       [--chainlink <rounds.csv>] [--no-reference]`;

function parseArgs(argv: string[]): Args {
  const a: Args = {
    prices: path.resolve(REPO, "../shared/data/eth_usd_1h.csv"),
    out: path.resolve(REPO, "reports/backtest.json"),
    warmup: 720,
    rounds: "synthetic",
    reference: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${k} needs a value`);
      return v;
    };
    switch (k) {
      case "--prices":
        a.prices = path.resolve(val());
        break;
      case "--out":
        a.out = path.resolve(val());
        break;
      case "--html":
        a.html = path.resolve(val());
        break;
      case "--windows":
        a.windows = path.resolve(val());
        break;
      case "--warmup": {
        const v = val();
        if (!/^\d+$/.test(v)) throw new UsageError(`--warmup must be a whole number of hours, got "${v}"`);
        a.warmup = Number(v);
        break;
      }
      case "--rounds": {
        const v = val();
        if (v !== "synthetic" && v !== "close") throw new UsageError(`--rounds must be synthetic or close`);
        a.rounds = v;
        break;
      }
      case "--z":
        a.z = val();
        break;
      case "--config":
        a.config = path.resolve(val());
        break;
      case "--chainlink":
        a.chainlink = path.resolve(val());
        break;
      case "--no-reference":
        a.reference = false;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${k}"`);
    }
  }
  return a;
}

const D18_VOL_KEYS = ["excursionWeight", "longRunFloor", "tailThreshold", "tailWeight", "seasonalCap", "initialSigma"];
const SEC_VOL_KEYS = ["periodSec", "longRunHalfLifeSec", "tailHalfLifeSec"];
const D18_MARGIN_KEYS = ["zMm", "liqFee", "mmrMin", "mmrMax", "sigmaMin", "sigmaMax"];

const dec = (k: string, x: unknown): bigint => {
  try {
    return parseDecimalD18(String(x));
  } catch {
    throw new UsageError(`config: ${k} must be a plain decimal (e.g. 0.25), got ${JSON.stringify(x)}`);
  }
};
const int = (k: string, x: unknown): bigint => {
  if (!/^\d+$/.test(String(x))) throw new UsageError(`config: ${k} must be a whole number, got ${JSON.stringify(x)}`);
  return BigInt(String(x));
};

/** Overrides from a JSON file: { "volatility": {...}, "margin": {...} } with the field names of the output's params. */
function loadConfig(file: string): { vol: VolatilityConfig; margin: MarginParams } {
  if (!fs.existsSync(file)) throw new UsageError(`config file not found: ${file}`);
  let j: { volatility?: Record<string, unknown>; margin?: Record<string, unknown> };
  try {
    j = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`config: ${file} is not valid JSON (${(e as Error).message})`);
  }
  const v: Record<string, unknown> = { ...DEFAULT_VOLATILITY_CONFIG };
  for (const [k, x] of Object.entries(j.volatility ?? {})) {
    if (D18_VOL_KEYS.includes(k)) v[k + "D18"] = dec(k, x);
    else if (SEC_VOL_KEYS.includes(k)) v[k] = int(k, x);
    else if (k === "halfLivesSec" && Array.isArray(x)) v.halfLivesSec = x.map((y) => int(k, y));
    else if (k === "weights" && Array.isArray(x)) v.weightsD18 = x.map((y) => dec(k, y));
    else if (k === "seasonal") v.seasonal = Boolean(x);
    else if (k === "seasonalHalfLifeDays") v.seasonalHalfLifeDays = int(k, x);
    else if (k === "seasonalBaseIndex") v.seasonalBaseIndex = Number(x);
    else throw new UsageError(`config: unknown volatility field "${k}"`);
  }
  const m: Record<string, unknown> = { ...DEFAULT_MARGIN_PARAMS };
  for (const [k, x] of Object.entries(j.margin ?? {})) {
    if (D18_MARGIN_KEYS.includes(k)) m[k + "D18"] = dec(k, x);
    else throw new UsageError(`config: unknown margin field "${k}"`);
  }
  const vol = v as unknown as VolatilityConfig;
  try {
    validateVolatilityConfig(vol);
  } catch (e) {
    throw new UsageError(`config: ${(e as Error).message}`);
  }
  return { vol, margin: m as unknown as MarginParams };
}

function pad(s: string, n: number) {
  return s.length >= n ? s : " ".repeat(n - s.length) + s;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  let vol = DEFAULT_VOLATILITY_CONFIG;
  let margin = DEFAULT_MARGIN_PARAMS;
  if (args.config) ({ vol, margin } = loadConfig(args.config));
  if (args.z) margin = { ...margin, zMmD18: dec("--z", args.z) };

  const candles = loadOhlcCsv(args.prices);
  let windows: readonly StressWindow[] = DEFAULT_STRESS_WINDOWS;
  let windowsSource = "built-in (../shared/data/README.md)";
  const wdir = args.windows ?? path.join(path.dirname(args.prices), "crash_windows");
  if (args.windows || fs.existsSync(wdir)) {
    windows = loadStressWindows(wdir);
    windowsSource = path.relative(process.cwd(), wdir) || wdir;
  }

  const result = runBacktest(candles, {
    volatility: vol,
    margin,
    warmupHours: args.warmup,
    rounds: args.rounds,
    deviationD18: DEVIATION_D18,
    windows,
    keepSeries: true,
  });
  const targets = checkTargets(result);
  const reference = args.reference
    ? runBacktest(candles, {
        volatility: REFERENCE_VOLATILITY_CONFIG,
        margin: REFERENCE_MARGIN_PARAMS,
        warmupHours: args.warmup,
        rounds: "close",
        windows,
      })
    : undefined;

  let chainlinkCheck: (ChainlinkCheck & { file: string }) | undefined;
  if (args.chainlink) {
    if (!fs.existsSync(args.chainlink)) throw new BacktestDataError(`Chainlink rounds file not found: ${args.chainlink}`);
    const rounds = parseChainlinkRoundsCsv(fs.readFileSync(args.chainlink, "utf8"), args.chainlink);
    chainlinkCheck = {
      file: path.relative(process.cwd(), args.chainlink) || args.chainlink,
      ...chainlinkComparison(candles, rounds, { volatility: vol, margin, warmupHours: args.warmup, deviationD18: DEVIATION_D18 }),
    };
  }

  const file = path.relative(process.cwd(), args.prices) || args.prices;
  const { series: _series, exact, ...core } = result;
  const json = {
    file,
    rows: core.rows,
    warmupHours: core.warmupHours,
    horizonHours: core.horizonHours,
    params: describeParams(vol, margin, args.rounds, DEVIATION_D18),
    roundsFed: core.roundsFed,
    skippedObservations: core.skippedObservations,
    windowsSource,
    overall: core.overall,
    windows: core.windows,
    targets,
    exact,
    chainlinkCheck,
    reference: reference
      ? {
          description: "plain EWMA of hourly squared close-to-close returns, 24 h half-life, z = 4, no fee, MMR ≥ 0.5 %",
          params: describeParams(REFERENCE_VOLATILITY_CONFIG, REFERENCE_MARGIN_PARAMS, "close", DEVIATION_D18),
          overall: reference.overall,
          windows: reference.windows,
        }
      : undefined,
  };
  const htmlFile = args.html ?? args.out.replace(/\.json$/i, "") + ".html";
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.mkdirSync(path.dirname(htmlFile), { recursive: true });
  fs.writeFileSync(args.out, JSON.stringify(json, null, 2) + "\n");
  fs.writeFileSync(
    htmlFile,
    renderHtml({
      file,
      command: "npx ts-node scripts/backtest.ts " + process.argv.slice(2).join(" "),
      result,
      targets,
      reference,
      windows,
    }),
  );

  const f = (x: number | null, d = 3) => (x === null ? "—" : x.toFixed(d));
  const p = (x: number) => (x * 100).toFixed(2) + "%";
  const line = (name: string, m: typeof result.overall, tgtSf: number) =>
    `${name.padEnd(11)}${pad(String(m.observations), 7)}${pad(String(m.breachesDynamic), 7)}${pad(
      String(m.breachesStaticSameBreaches),
      7,
    )}${pad(p(m.avgDynamicMmr), 8)}${pad(f(m.capitalRatio), 8)}${pad(f(m.shortfallRatio), 8)}${
      m.observations === 0 ? "  n/a (outside the file)" : m.shortfallRatio !== null && m.shortfallRatio <= tgtSf ? "  ok" : "  MISS"
    }`;
  console.log(
    `${file}: ${core.rows} rows, warm-up ${core.warmupHours} h, ${core.roundsFed} rounds (${args.rounds}), windows: ${windowsSource}`,
  );
  console.log(
    `static (a) same breaches ${p(result.overall.staticMmrSameBreaches)}, static (b) same average ${p(
      result.overall.staticMmrSameAvg,
    )}`,
  );
  console.log(`${"".padEnd(11)}${pad("hours", 7)}${pad("B dyn", 7)}${pad("B stat", 7)}${pad("avgMMR", 8)}${pad("cap", 8)}${pad("sfr", 8)}`);
  console.log(line("overall", result.overall, targets.shortfallRatioMax));
  for (const w of result.windows) console.log(line(w.name, w, targets.windowShortfallRatioMax));
  if (reference) {
    console.log(
      `reference EWMA 24h z=4: breaches ${reference.overall.breachesDynamic}, capitalRatio ${f(
        reference.overall.capitalRatio,
      )}, shortfallRatio ${f(reference.overall.shortfallRatio)}`,
    );
  }
  if (chainlinkCheck) {
    const c = chainlinkCheck;
    console.log(
      `real Chainlink rounds ${c.from.slice(0, 10)}→${c.to.slice(0, 10)} (${c.hours} h): σ real/synthetic median ${c.sigmaRatioMedian} (p10 ${c.sigmaRatioP10}, p90 ${c.sigmaRatioP90}); breaches ${c.real.breaches} vs ${c.synthetic.breaches}, shortfall ${c.real.shortfall.toFixed(4)} vs ${c.synthetic.shortfall.toFixed(4)}`,
    );
  }
  console.log(
    `targets: capitalRatio ≤ ${targets.capitalRatioMax} ${targets.capitalRatioMet ? "met" : "MISSED"}, shortfallRatio ≤ ${
      targets.shortfallRatioMax
    } ${targets.shortfallRatioMet ? "met" : "MISSED"}, windows ≤ ${targets.windowShortfallRatioMax} ${
      Object.values(targets.windowsMet).every(Boolean) ? "met" : "MISSED"
    } → ${targets.met ? "ALL MET" : "NOT ALL MET"}`,
  );
  console.log(`wrote ${path.relative(process.cwd(), args.out)} and ${path.relative(process.cwd(), htmlFile)}`);
}

try {
  main();
} catch (e) {
  if (e instanceof UsageError) {
    console.error(`backtest: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  if (e instanceof BacktestDataError) {
    console.error(`backtest: ${e.message}`);
    process.exit(2);
  }
  throw e;
}
