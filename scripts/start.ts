// `npm start`: Sigma's first run. On the in-process Hardhat network it deploys Sigma twice — dynamic margin
// (σ from the Chainlink vol feed and the on-chain estimator) and a static-margin baseline with the same
// average initial margin —, funds an LP, the insurance fund and a few dozen traders, replays a stress price
// path through the Chainlink mock feeds with an in-process keeper, prints a report and writes
// reports/run.json and reports/run.html.
//
// Options come from the environment (`hardhat run` accepts no script arguments) or, when the script is run
// directly (`npx ts-node --transpile-only scripts/start.ts --hours 48`), from the command line:
//   --prices <csv>         SIGMA_PRICES         hourly OHLC CSV (timestamp_unix,open,high,low,close,volume) replayed as ETH-PERP
//   --hours <n>            SIGMA_HOURS          hours of the generated path (default 72) / max hours of the CSV
//   --traders <n>          SIGMA_TRADERS        number of traders (default 32)
//   --seed <s>             SIGMA_SEED           PRNG seed (default "sigma")
//   --static-sigma <x>     SIGMA_STATIC_SIGMA   static σ in percent, one for all markets ("120") or per market
//                                              ("ETH-PERP=120,BTC-PERP=100"); default: calibrated to the same average IMR
//   --out <dir>            SIGMA_OUT            report directory (default reports)
//   --quiet                SIGMA_QUIET=1        no progress on stderr
import hre from "hardhat";
import { relative, resolve } from "path";
import { buildPaths, resolveOptions, runScenario, ProgressEvent } from "./lib/scenario";
import { parseStartArgs, StartArgs, USAGE } from "./lib/scenario-options";
import { renderText, fmt, pct } from "./lib/report-text";
import { writeRunReports } from "./lib/report-files";

/** A one-line progress bar on stderr (a line per quarter when stderr is not a terminal). */
class Progress {
  private lastQuarter = new Map<string, number>();
  private readonly tty: boolean;
  private readonly t0 = Date.now();

  constructor(private readonly quiet: boolean) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  update = (e: ProgressEvent) => {
    if (this.quiet) return;
    const frac = e.hour / e.hours;
    const sym = e.record ? Object.keys(e.record.markets)[0] : undefined;
    const m = sym ? e.record!.markets[sym] : undefined;
    const info = m ? `${sym} ${fmt(m.price, 0)} σ ${pct(m.sigma, 0)} IMR ${pct(m.imr, 1)} · liq ${e.record!.liquidations}` : "";
    const head = `[${e.configIndex + 1}/${e.configCount} ${e.config}]`;
    if (this.tty) {
      const width = 28;
      const full = Math.round(frac * width);
      const bar = "█".repeat(full) + "░".repeat(width - full);
      process.stderr.write(`\r${head} ${bar} ${String(e.hour).padStart(4)}/${e.hours} h  ${info}`.padEnd(110).slice(0, 110));
      if (e.hour === e.hours) process.stderr.write("\n");
    } else {
      const q = Math.floor(frac * 4);
      if (q > (this.lastQuarter.get(e.config) ?? 0) || e.hour === 1) {
        this.lastQuarter.set(e.config, q);
        process.stderr.write(`${head} ${e.hour}/${e.hours} h  ${info}  (${((Date.now() - this.t0) / 1000).toFixed(0)} s)\n`);
      }
    }
  };
}

async function main() {
  let args: StartArgs;
  try {
    args = parseStartArgs(process.argv.slice(2), process.env);
    buildPaths(resolveOptions(args.scenario)); // validate options and the CSV before deploying anything
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
    return;
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const started = Date.now();
  const progress = new Progress(args.quiet);
  if (!args.quiet) process.stderr.write(`Sigma: deploying on the in-process "${hre.network.name}" network and replaying the path…\n`);
  const { report } = await runScenario(hre, { ...args.scenario, onProgress: progress.update });
  console.log(renderText(report));
  const files = writeRunReports(report, resolve(args.out));
  const rel = (p: string) => relative(process.cwd(), p) || p;
  console.log(`\nReports written: ${rel(files.json)}, ${rel(files.html)} (open the HTML in a browser) · ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const broken = report.configurations.filter((c) => !c.invariants.holds);
  if (broken.length > 0) {
    console.error(`Invariants violated in: ${broken.map((c) => c.id).join(", ")} — see the report.`);
    process.exitCode = 1;
  }
  if (args.keepRunning) {
    // The report ran on the in-process network; for trading by hand, a real local node with Sigma, a keeper
    // loop and the web page. It prints the RPC URL, addresses and the page URL, and runs until Ctrl-C.
    const { runDevnet } = await import("./devnet");
    await runDevnet([]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
