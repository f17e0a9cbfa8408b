// `npm start`: Sigma's first run. It starts a local node (`hardhat node` as a child process on a free port of
// 127.0.0.1), deploys Sigma twice on it — dynamic margin (σ from the Chainlink vol feed and the on-chain
// estimator) and a static-margin baseline with the same average initial margin —, starts the keeper service
// (keepers/cli.ts) as a separate process for each deployment, funds an LP, the insurance fund and a
// population of traders, replays a stress price path through the Chainlink mock feeds (the keeper processes
// poke σ, execute the orders, flag margin calls and liquidate), prints a report and writes reports/run.json
// and reports/run.html. It exits 0 when the invariants hold and kills its children on exit and on Ctrl-C;
// `--keep-running` leaves the node and the keepers up instead. `--in-process` runs the same scenario on
// Hardhat's in-process network with the engine's own keeper step (no child processes).
//
//   npm start [-- --short | --prices <csv> [--skip-hours n] [--hours n] | --keep-running | --in-process | --help]
// Options: scripts/lib/scenario-options.ts (USAGE).
import { relative, resolve } from "path";
import { buildPaths, resolveOptions, runScenario, ProgressEvent } from "./lib/scenario";
import { parseStartArgs, StartArgs, USAGE } from "./lib/scenario-options";
import { renderText, fmt, pct } from "./lib/report-text";
import { writeRunReports } from "./lib/report-files";
import { killChildrenOnSignals, runMain, runScenarioOnNode } from "./lib/scenario-run";
import { freePort } from "../test/keepers/helpers";
import type { RunReport } from "./lib/report-types";

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
  const say = (m: string) => {
    if (!args.quiet) process.stderr.write(m + "\n");
  };
  let report: RunReport;
  let close: () => Promise<void> = async () => undefined;
  let keepAlive: (() => void) | undefined;
  if (args.inProcess) {
    say("Sigma: deploying on Hardhat's in-process network (engine's own keeper step) and replaying the path…");
    const hre = (await import("hardhat")).default;
    report = (await runScenario(hre, { ...args.scenario, onProgress: progress.update })).report;
  } else {
    killChildrenOnSignals();
    let port = args.rpcPort;
    if (port === undefined && args.keepRunning) port = (await portFree(8545)) ? 8545 : await freePort();
    say("Sigma: starting a local node and, per configuration, a deployment and a keeper-service process…");
    const run = await runScenarioOnNode({ ...args.scenario, onProgress: progress.update }, {
      port,
      keepKeepers: args.keepRunning,
      deploymentDir: args.keepRunning ? resolve(args.out, "deployments") : undefined,
      log: say,
    });
    report = run.result.report;
    close = run.close;
    if (args.keepRunning) {
      keepAlive = () => {
        const lines = [
          "",
          "Left running (Ctrl-C stops everything):",
          `  RPC            ${run.node.url}   (chain id 31337, hardhat node pid ${run.node.proc.child.pid})`,
        ];
        for (const [i, k] of run.keepers.entries()) {
          const w = run.result.worlds[i];
          const a = w.d;
          lines.push(
            `  ${w.config.id.padEnd(13)}  deployment ${rel(k.deploymentPath!)}`,
            `                 ClearingHouse ${a.clearingHouse.target}  Vault ${a.vault.target}  RiskManager ${a.riskManager.target}`,
            `                 LiquidityPool ${a.pool.target}  SigmaLens ${a.lens.target}  USDC (mock) ${a.token.target}`,
            `                 ETH/USD feed ${a.priceFeeds[0].target}  BTC/USD feed ${a.priceFeeds[1].target}`,
            `                 keeper pid ${k.proc!.child.pid}, account ${k.address}, metrics http://127.0.0.1:${k.proc!.metricsPort}/metrics`,
          );
        }
        lines.push(`  keeper again: npm run keeper -- --rpc ${run.node.url} --deployment ${rel(run.keepers[0].deploymentPath!)} --confirmations 0 (with SIGMA_KEEPER_KEY)`);
        console.log(lines.join("\n"));
      };
    }
  }
  console.log(renderText(report));
  const files = writeRunReports(report, resolve(args.out));
  console.log(`\nReports written: ${rel(files.json)}, ${rel(files.html)} (open the HTML in a browser) · ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const broken = report.configurations.filter((c) => !c.invariants.holds);
  if (broken.length > 0) {
    console.error(`Invariants violated in: ${broken.map((c) => c.id).join(", ")} — see the report.`);
    process.exitCode = 1;
  }
  if (keepAlive) {
    keepAlive();
    await new Promise(() => undefined); // until SIGINT/SIGTERM (killChildrenOnSignals)
  }
  await close();
}

const rel = (p: string) => relative(process.cwd(), p) || p;

async function portFree(port: number): Promise<boolean> {
  const net = await import("net");
  return new Promise((r) => {
    const s = net.createServer();
    s.once("error", () => r(false));
    s.listen(port, "127.0.0.1", () => s.close(() => r(true)));
  });
}

runMain(main);
