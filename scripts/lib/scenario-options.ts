// Options of `npm start` (scripts/start.ts): from the environment, since `hardhat run` passes no script
// arguments, or from the command line when the script runs directly under ts-node. Flags win over variables.
import type { ScenarioOptions } from "./scenario";
import { DEFAULT_MARKETS, parseParamOverrides } from "./params";

export interface StartArgs {
  scenario: ScenarioOptions;
  out: string;
  quiet: boolean;
  help: boolean;
  /** After the report, leave the local node and the keeper processes running (Ctrl-C stops them). */
  keepRunning: boolean;
  /** The engine's own keeper step on Hardhat's in-process network instead of a node + keeper processes. */
  inProcess: boolean;
  /** Short mode (tests, smoke): 8 hours, 8 traders unless given. */
  short: boolean;
  /** RPC port of the local node (default: a free port; 8545 when free with --keep-running). */
  rpcPort?: number;
}

export const USAGE = `Usage: npm start [-- options]
       npm start -- --prices ../shared/data/crash_windows/eth_usd_1h_2020-03-12.csv --hours 48
  --prices <csv>        hourly OHLC CSV (timestamp_unix,open,high,low,close[,volume]) replayed as ETH-PERP
  --skip-hours <n>      start the CSV replay this many hours in (the skipped hours only feed the volatility history)
  --hours <n>           hours of the generated path (default 24; 72 with --in-process) / max hours of the CSV
  --traders <n>         number of traders (default 32)
  --seed <s>            PRNG seed (default "sigma")
  --leverage <mode>     absolute (default: each trader's leverage in ×, the same under both margins, capped at
                        1/IMR at entry) or relative (max/high tiers: a fraction of each configuration's 1/IMR)
  --param <k=v,…>       override risk parameters of every market in both configurations (IRiskManager.Param
                        names; ratios as decimals): "ImrMin=0.1" caps entry leverage at 10×
  --static-sigma <x>    static σ in percent ("120" or "ETH-PERP=120,BTC-PERP=100"); default: the dynamic run's average IMR
  --out <dir>           report directory (default reports)
  --short               short mode: 8 hours, 8 traders (unless given)
  --rpc-port <n>        port of the local node on 127.0.0.1 (default: a free port; 8545 if free with --keep-running)
  --keep-running        after the report, leave the node and both keeper processes running (RPC URL, addresses and
                        deployment files printed); Ctrl-C stops everything
  --in-process          no node, no keeper process: Hardhat's in-process network and the engine's own keeper step
  --quiet               no progress on stderr
Every option also reads from the environment: SIGMA_PRICES, SIGMA_SKIP_HOURS, SIGMA_HOURS, SIGMA_TRADERS,
SIGMA_SEED, SIGMA_LEVERAGE, SIGMA_STATIC_SIGMA, SIGMA_OUT, SIGMA_RPC_PORT, SIGMA_SHORT=1, SIGMA_QUIET=1, SIGMA_KEEP_RUNNING=1,
SIGMA_IN_PROCESS=1 (flags win).`;

const FLAGS: Record<string, string> = {
  "--prices": "SIGMA_PRICES",
  "--hours": "SIGMA_HOURS",
  "--traders": "SIGMA_TRADERS",
  "--seed": "SIGMA_SEED",
  "--static-sigma": "SIGMA_STATIC_SIGMA",
  "--param": "SIGMA_PARAMS",
  "--out": "SIGMA_OUT",
  "--skip-hours": "SIGMA_SKIP_HOURS",
  "--rpc-port": "SIGMA_RPC_PORT",
  "--leverage": "SIGMA_LEVERAGE",
};

/** Reads options from argv (flags win) and the environment. */
export function parseStartArgs(argv: string[], env: NodeJS.ProcessEnv): StartArgs {
  const v: Record<string, string | undefined> = {};
  for (const k of Object.values(FLAGS)) v[k] = env[k] === "" ? undefined : env[k];
  let quiet = env.SIGMA_QUIET === "1" || env.SIGMA_QUIET === "true";
  let help = false;
  let keepRunning = env.SIGMA_KEEP_RUNNING === "1";
  let inProcess = env.SIGMA_IN_PROCESS === "1";
  let short = env.SIGMA_SHORT === "1";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") continue;
    if (a === "--help" || a === "-h") help = true;
    else if (a === "--quiet") quiet = true;
    else if (a === "--keep-running") keepRunning = true;
    else if (a === "--in-process") inProcess = true;
    else if (a === "--short") short = true;
    else {
      const [flag, inline] = a.split("=", 2) as [string, string | undefined];
      const key = FLAGS[flag];
      if (!key) throw new Error(`unknown option ${a}\n${USAGE}`);
      const value = inline ?? argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      v[key] = value;
    }
  }
  const int = (name: string, x: string | undefined) => {
    if (x === undefined) return undefined;
    const n = Number(x);
    if (!Number.isInteger(n)) throw new Error(`${name} must be an integer (got ${x})`);
    return n;
  };
  let hours = int("hours", v.SIGMA_HOURS);
  let traders = int("traders", v.SIGMA_TRADERS);
  if (short) {
    hours ??= 8;
    traders ??= 8;
  }
  // The default run drives real processes (a node, a keeper service per configuration): a 24-hour path keeps
  // it to a couple of minutes. The in-process engine replays the 72-hour path in about the same time.
  if (!v.SIGMA_PRICES && hours === undefined && !inProcess) hours = 24;
  if (keepRunning && inProcess) throw new Error("--keep-running needs the node: drop --in-process");
  const scenario: ScenarioOptions = {
    pricesCsv: v.SIGMA_PRICES,
    skipHours: int("skip-hours", v.SIGMA_SKIP_HOURS),
    hours,
    traders,
    seed: v.SIGMA_SEED,
    leverage: parseLeverage(v.SIGMA_LEVERAGE),
    staticSigma: v.SIGMA_STATIC_SIGMA ? parseStaticSigma(v.SIGMA_STATIC_SIGMA) : undefined,
    params: v.SIGMA_PARAMS ? parseParamOverrides(v.SIGMA_PARAMS) : undefined,
  };
  return { scenario, out: v.SIGMA_OUT ?? "reports", quiet, help, keepRunning, inProcess, short, rpcPort: int("rpc-port", v.SIGMA_RPC_PORT) };
}

function parseLeverage(x: string | undefined): "absolute" | "relative" | undefined {
  if (x === undefined) return undefined;
  if (x !== "absolute" && x !== "relative") throw new Error(`--leverage must be absolute or relative (got ${x})`);
  return x;
}

/** "120" → every market at 120%; "ETH-PERP=120,BTC-PERP=100" → per market. Returns fractions. */
export function parseStaticSigma(s: string): Record<string, number> {
  const out: Record<string, number> = {};
  const symbols = DEFAULT_MARKETS.map((m) => m.symbol);
  const check = (x: string) => {
    const n = Number(x);
    if (!(n >= 1 && n <= 500)) throw new Error(`static σ must be a percentage in 1..500 (got ${x})`);
    return n / 100;
  };
  if (!s.includes("=")) {
    for (const sym of symbols) out[sym] = check(s);
    return out;
  }
  for (const part of s.split(",")) {
    const [sym, x] = part.split("=").map((t) => t.trim());
    if (!symbols.includes(sym)) throw new Error(`unknown market ${sym} in static σ (markets: ${symbols.join(", ")})`);
    out[sym] = check(x);
  }
  for (const sym of symbols) if (out[sym] === undefined) throw new Error(`static σ missing for ${sym}`);
  return out;
}
