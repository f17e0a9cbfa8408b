// End-to-end replay of the stress windows (../shared/data/crash_windows/*.csv, hourly ETH/USD): for each
// window, the `npm start` scenario — Sigma deployed twice (dynamic margin, and static margin calibrated to the
// dynamic run's average initial margin), an LP, the insurance fund and the same trader population (a spread
// wanting 2–20×, the same figure under both margins, capped at 1/IMR at entry; --leverage relative: the former
// population whose max/high tiers take a fraction of each configuration's maximum), keepers running — and per window: accounts liquidated,
// bad debt, the insurance fund used for it and the bad debt beyond the insurance fund, under both margins.
// The population and every parameter are the same for every window (nothing is tuned per window).
//
//   npm run replay:windows -- [--data-dir ../shared/data/crash_windows] [--out reports/windows.json]
//       [--only 2020-03-12] [--hours n] [--skip-hours n] [--traders n] [--seed s] [--leverage absolute|relative]
//       [--in-process] [--quiet]
//
// Default: a local hardhat node and, per configuration, the keeper service as a separate process (as
// `npm start`). --in-process: Hardhat's in-process network with the engine's own keeper step (same jobs,
// several times faster). Writes <out> (JSON) and the same name with .md (a table), and each window's full
// run report under <out dir>/windows/<window>.json.
import * as fs from "fs";
import * as path from "path";
import type { ScenarioOptions } from "./lib/scenario";
import { MarketParams, parseParamOverrides } from "./lib/params";
import type { LeverageMode } from "./lib/scenario-agents";
import type { RunReport } from "./lib/report-types";
import { killChildrenOnSignals, runMain, runScenarioOnNode } from "./lib/scenario-run";
import { startLocalNode, LocalNode } from "./lib/scenario-process";
import { windowRow, WindowRow, renderWindowsMarkdown, WINDOWS_SCHEMA } from "./lib/report-windows";

interface Args {
  dataDir: string;
  out: string;
  only?: string;
  hours?: number;
  skipHours?: number;
  traders?: number;
  seed?: string;
  leverage: LeverageMode;
  params?: Partial<MarketParams>;
  inProcess: boolean;
  quiet: boolean;
}

const USAGE = `npm run replay:windows -- [--data-dir ../shared/data/crash_windows] [--out reports/windows.json]
    [--only <substring of the file name>] [--hours n] [--skip-hours n] [--traders n] [--seed s] [--leverage absolute|relative]
    [--param ImrMin=0.1,…] [--in-process] [--quiet]`;

function parse(argv: string[]): Args {
  const a: Args = { dataDir: path.resolve("..", "shared", "data", "crash_windows"), out: "reports/windows.json", leverage: "absolute", inProcess: false, quiet: false };
  const num = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer (got ${v})`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === "--") continue;
    else if (f === "--data-dir") a.dataDir = path.resolve(argv[++i]);
    else if (f === "--out") a.out = argv[++i];
    else if (f === "--only") a.only = argv[++i];
    else if (f === "--hours") a.hours = num(f, argv[++i]);
    else if (f === "--skip-hours") a.skipHours = num(f, argv[++i]);
    else if (f === "--traders") a.traders = num(f, argv[++i]);
    else if (f === "--seed") a.seed = argv[++i];
    else if (f === "--param") a.params = parseParamOverrides(argv[++i] ?? "");
    else if (f === "--leverage") {
      const v = argv[++i];
      if (v !== "absolute" && v !== "relative") throw new Error(`--leverage must be absolute or relative (got ${v})`);
      a.leverage = v;
    } else if (f === "--in-process") a.inProcess = true;
    else if (f === "--quiet") a.quiet = true;
    else if (f === "--help" || f === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${f}\n${USAGE}`);
  }
  return a;
}

export function windowFiles(dir: string, only?: string): string[] {
  if (!fs.existsSync(dir)) {
    throw new Error(`no data directory ${dir}: pass --data-dir <folder with eth_usd_1h_<day>.csv files> (the shared data set lives in ../shared/data/crash_windows)`);
  }
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".csv") && (!only || f.includes(only)))
    .sort()
    .map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`no CSV file${only ? ` matching "${only}"` : ""} in ${dir}`);
  return files;
}

async function main() {
  let args: Args;
  let files: string[];
  try {
    args = parse(process.argv.slice(2));
    files = windowFiles(args.dataDir, args.only);
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
    return;
  }
  const say = (m: string) => {
    if (!args.quiet) process.stderr.write(m + "\n");
  };
  const t0 = Date.now();
  const rows: WindowRow[] = [];
  const outDir = path.dirname(path.resolve(args.out));
  fs.mkdirSync(path.join(outDir, "windows"), { recursive: true });
  let node: LocalNode | undefined;
  let hre: any;
  if (args.inProcess) hre = (await import("hardhat")).default;
  else {
    killChildrenOnSignals();
    node = await startLocalNode();
    say(`node: hardhat node on ${node.url}`);
  }
  try {
    for (const [i, file] of files.entries()) {
      const name = path.basename(file, ".csv");
      const started = Date.now();
      const opts: ScenarioOptions = {
        pricesCsv: file,
        hours: args.hours,
        skipHours: args.skipHours,
        traders: args.traders,
        seed: args.seed,
        leverage: args.leverage,
        params: args.params,
        onProgress: (e) => {
          if (!args.quiet && (e.hour % 24 === 0 || e.hour === e.hours)) say(`  [${i + 1}/${files.length} ${name}] ${e.config} ${e.hour}/${e.hours} h  (${((Date.now() - started) / 1000).toFixed(0)} s)`);
        },
      };
      say(`[${i + 1}/${files.length}] ${name}`);
      let report: RunReport;
      if (hre) {
        const { runScenario } = await import("./lib/scenario");
        report = (await runScenario(hre, opts)).report;
      } else {
        const run = await runScenarioOnNode(opts, { node, prefix: `sigma-window-${name}`, log: say });
        report = run.result.report;
        await run.close();
      }
      fs.writeFileSync(path.join(outDir, "windows", `${name}.json`), JSON.stringify(report, null, 1) + "\n");
      const row = windowRow(name, file, report, Date.now() - started);
      rows.push(row);
      say(
        `  → liquidated accounts dynamic ${row.dynamic.accountsLiquidated} / static ${row.static.accountsLiquidated}; bad debt ${row.dynamic.badDebt.toFixed(2)} / ${row.static.badDebt.toFixed(2)}; beyond insurance ${row.dynamic.beyondInsurance.toFixed(2)} / ${row.static.beyondInsurance.toFixed(2)}`,
      );
    }
  } finally {
    if (node) await node.proc.kill("SIGKILL");
  }
  const out = {
    schema: WINDOWS_SCHEMA,
    generatedAt: new Date().toISOString(),
    command: `npm run replay:windows -- ${process.argv.slice(2).join(" ")}`.trim(),
    leverage: args.leverage,
    keeper: args.inProcess ? "in-process keeper step (engine)" : "keeper service (keepers/cli.ts), one process per configuration, local hardhat node",
    elapsedMs: Date.now() - t0,
    windows: rows,
  };
  fs.writeFileSync(path.resolve(args.out), JSON.stringify(out, null, 2) + "\n");
  const md = renderWindowsMarkdown(out);
  const mdFile = path.resolve(args.out).replace(/\.json$/, "") + ".md";
  fs.writeFileSync(mdFile, md);
  console.log(md);
  console.log(`written ${path.relative(process.cwd(), path.resolve(args.out))}, ${path.relative(process.cwd(), mdFile)} · ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (rows.some((r) => !r.dynamic.invariantsHold || !r.static.invariantsHold)) process.exitCode = 1;
}

if (require.main === module) runMain(main);
