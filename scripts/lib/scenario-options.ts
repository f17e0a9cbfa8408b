// Options of `npm start` (scripts/start.ts): from the environment, since `hardhat run` passes no script
// arguments, or from the command line when the script runs directly under ts-node. Flags win over variables.
import type { ScenarioOptions } from "./scenario";
import { DEFAULT_MARKETS } from "./params";

export interface StartArgs {
  scenario: ScenarioOptions;
  out: string;
  quiet: boolean;
  help: boolean;
  /** After the report, start a local node with Sigma, keepers and the trader's web page (scripts/devnet.ts). */
  keepRunning: boolean;
}

export const USAGE = `Usage: npm start                      (options through environment variables)
       SIGMA_PRICES=../shared/data/crash_windows/eth_usd_1h_2020-03-12.csv npm start
       npx ts-node --transpile-only scripts/start.ts [--prices <csv>] [--hours <n>] [--traders <n>]
           [--seed <s>] [--static-sigma <pct | SYM=pct,...>] [--out <dir>] [--quiet] [--keep-running]
       --keep-running: after the report, leave a local node (127.0.0.1:8545) running with Sigma deployed,
       a keeper loop and the trader's web page (http://127.0.0.1:8080/); Ctrl-C stops everything.`;

const FLAGS: Record<string, string> = {
  "--prices": "SIGMA_PRICES",
  "--hours": "SIGMA_HOURS",
  "--traders": "SIGMA_TRADERS",
  "--seed": "SIGMA_SEED",
  "--static-sigma": "SIGMA_STATIC_SIGMA",
  "--out": "SIGMA_OUT",
};

/** Reads options from argv (flags win) and the environment. */
export function parseStartArgs(argv: string[], env: NodeJS.ProcessEnv): StartArgs {
  const v: Record<string, string | undefined> = {};
  for (const k of Object.values(FLAGS)) v[k] = env[k] === "" ? undefined : env[k];
  let quiet = env.SIGMA_QUIET === "1" || env.SIGMA_QUIET === "true";
  let help = false;
  let keepRunning = env.SIGMA_KEEP_RUNNING === "1";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") continue;
    if (a === "--help" || a === "-h") help = true;
    else if (a === "--quiet") quiet = true;
    else if (a === "--keep-running") keepRunning = true;
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
  const scenario: ScenarioOptions = {
    pricesCsv: v.SIGMA_PRICES,
    hours: int("hours", v.SIGMA_HOURS),
    traders: int("traders", v.SIGMA_TRADERS),
    seed: v.SIGMA_SEED,
    staticSigma: v.SIGMA_STATIC_SIGMA ? parseStaticSigma(v.SIGMA_STATIC_SIGMA) : undefined,
  };
  return { scenario, out: v.SIGMA_OUT ?? "reports", quiet, help, keepRunning };
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
