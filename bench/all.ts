/**
 * All benchmarks: `npx hardhat run bench/gas.ts` and bench/keeper.ts as child processes, then
 * reports/bench.md with gas per operation (reports/gas.json, targets from bench/gas.ts) and the keeper
 * figures (reports/keeper.json) against their targets.
 *
 *   npm run bench            (ts-node --transpile-only bench/all.ts)
 *   BENCH_SKIP_RUN=1 ...     only rebuild reports/bench.md from the existing JSON files
 *                            (BENCH_GAS_EXIT / BENCH_KEEPER_EXIT: the exit codes to show)
 *   BENCH_WINDOWS=1 ...      also run the stress-window replay in-process (scripts/replay-windows.ts
 *                            --in-process --out reports/windows-in-process.json, ~10 min); the tables of
 *                            every reports/windows*.md present are appended, newest first
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const REPORTS = path.join(ROOT, "reports");

function run(name: string, cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    console.log(`\n=== ${name}: ${cmd} ${args.join(" ")}`);
    const t = Date.now();
    const child = spawn(cmd, args, { cwd: ROOT, stdio: "inherit", env: { ...process.env, TS_NODE_TRANSPILE_ONLY: "1" } });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    child.on("exit", (code, sig) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      console.log(`=== ${name}: exit ${code ?? sig} after ${((Date.now() - t) / 1000).toFixed(0)} s`);
      resolve(code ?? 1);
    });
  });
}

/** The TARGETS table of bench/gas.ts, read from its source (running it would run the benchmark). */
function gasTargets(): Record<string, number> {
  const src = fs.readFileSync(path.join(ROOT, "bench", "gas.ts"), "utf8");
  const m = /const TARGETS[^=]*=\s*\{([\s\S]*?)\};/.exec(src);
  const out: Record<string, number> = {};
  if (!m) return out;
  for (const line of m[1].split("\n")) {
    const x = /^\s*(\w+)\s*:\s*([\d_]+)/.exec(line);
    if (x) out[x[1]] = Number(x[2].replace(/_/g, ""));
  }
  return out;
}

function readJson(file: string): any | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}

const fmt = (n: number) => n.toLocaleString("en-US");

/** The stress-window replays (scripts/replay-windows.ts: reports/windows*.json with their .md), newest first. */
function windowsSection(): string[] {
  const files = fs.existsSync(REPORTS)
    ? fs
        .readdirSync(REPORTS)
        .filter((f) => /^windows.*\.md$/.test(f))
        .map((f) => path.join(REPORTS, f))
        .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)
    : [];
  if (files.length === 0) return ["## Stress windows", "", "_no reports/windows.md: run `npm run replay:windows` (or `BENCH_WINDOWS=1 npm run bench`)_", ""];
  const out: string[] = [];
  for (const md of files) out.push(fs.readFileSync(md, "utf8").trim(), "", `(from ${path.relative(ROOT, md)}, written ${fs.statSync(md).mtime.toISOString()})`, "");
  return out;
}

function render(status: { gas: number | null; keeper: number | null }): string {
  const gas = readJson(path.join(REPORTS, "gas.json")) as Record<string, number> | null;
  const keeper = readJson(path.join(REPORTS, "keeper.json"));
  const targets = gasTargets();
  const cpu = os.cpus()[0]?.model?.trim() ?? "unknown";
  const L: string[] = [];
  L.push("# Sigma benchmarks", "");
  L.push(`- date: ${new Date().toISOString()}`);
  L.push(`- machine: nproc ${os.cpus().length}, CPU ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}`);
  if (status.gas !== null) L.push(`- \`hardhat run bench/gas.ts\`: exit ${status.gas}`);
  if (status.keeper !== null) L.push(`- \`bench/keeper.ts\`: exit ${status.keeper}`);
  L.push("");

  L.push("## Gas per operation", "");
  const gasFile = path.join(REPORTS, "gas.json");
  if (gas) {
    const when = fs.statSync(gasFile).mtime.toISOString();
    if (status.gas !== null && status.gas !== 0) L.push(`**bench/gas.ts failed in this run: the figures below are STALE, from reports/gas.json written ${when}.**`, "");
    else L.push(`reports/gas.json written ${when}.`, "");
  }
  if (!gas) L.push("_reports/gas.json missing_");
  else {
    L.push("| operation | gasUsed | target | |", "| --- | ---: | ---: | --- |");
    for (const [k, v] of Object.entries(gas)) {
      const t = targets[k];
      const verdict = t ? (v <= t ? "ok" : "**over**") : "";
      L.push(`| ${k} | ${fmt(v)} | ${t ? `≤ ${fmt(t)}` : ""} | ${verdict} |`);
    }
    const noTarget = Object.entries(targets).filter(([k, t]) => !t || !(k in gas));
    if (noTarget.length) L.push("", `(bench/gas.ts lists targets without a value: ${noTarget.map(([k, t]) => `${k} = ${t}`).join(", ")})`);
  }
  L.push("");

  L.push("## Keeper", "");
  if (!keeper) L.push("_reports/keeper.json missing_");
  else {
    const t = keeper.targets ?? {};
    const rows: [string, string, number | null, string, "higher" | "lower"][] = [
      ["accountsScannedPerSecond", "health scan (SigmaLens.healthBatch)", keeper.accountsScannedPerSecond, "accounts/s", "higher"],
      ["blocksToLiquidation", "price round → liquidation", keeper.blocksToLiquidation, "blocks", "lower"],
      ["cascadeBlocks", "cascade: round → none liquidatable", keeper.cascadeBlocks, "blocks", "lower"],
      ["peakRssMB", "keeper peak RSS (VmHWM)", keeper.peakRssMB, "MB", "lower"],
    ];
    L.push(`${fmt(keeper.accounts)} accounts with open positions; ${keeper.details?.node ?? ""}.`);
    if (keeper.machine?.loadAvg1mAtStart !== undefined)
      L.push(`1-minute load average during the keeper run: ${keeper.machine.loadAvg1mAtStart} at start, ${keeper.machine.loadAvg1mAtEnd} at end, on ${keeper.machine.nproc} CPUs (other work on the machine shares them).`);
    L.push("");
    L.push("| metric | what | value | target | |", "| --- | --- | ---: | ---: | --- |");
    for (const [k, what, v, unit, better] of rows) {
      const target = t[k];
      const ok = v !== null && v !== undefined && (better === "higher" ? v >= target : v <= target);
      L.push(`| ${k} | ${what} | ${v === null || v === undefined ? "n/a" : fmt(v)} ${unit} | ${better === "higher" ? "≥" : "≤"} ${fmt(target)} | ${ok ? "ok" : "**miss**"} |`);
    }
    const d = keeper.details ?? {};
    L.push("");
    if (d.scan) {
      L.push(
        `- scan: ${d.scan.method}; runs ${d.scan.directSecondsRuns?.join(", ")} s; the keeper's own scans (its keeper_health_scan_seconds histogram, quiet chain) averaged ${d.scan.keeperHistogramMeanSeconds} s (${fmt(d.scan.keeperHistogramAccountsPerSecond ?? 0)} accounts/s); healthBatch costs ${fmt(d.scan.healthBatchGasPerAccount ?? 0)} gas per account on the node.`,
      );
    }
    if (d.liquidation) L.push(`- one liquidation: ${d.liquidation.market}, round ${d.liquidation.round} in block ${d.liquidation.roundBlock}, liquidated in block ${d.liquidation.liquidationBlock}.`);
    if (d.cascade) {
      L.push(
        `- cascade: ${d.cascade.group}; ${d.cascade.round}; ${d.cascade.liquidatableAtRound} liquidatable at the round (others ${d.cascade.othersLiquidatableAtRound}); per block after the round: ${(d.cascade.liquidatablePerBlock ?? []).map((x: any) => `${x.blocksAfterRound}:${x.liquidatable}`).join(" ")}; ${d.cascade.liquidatedEvents} Liquidated events.`,
        `- **benchmark-only parameter**: ${d.cascade.rateLimitNote}.`,
      );
    }
    if (d.keeper) L.push(`- keeper: ${d.keeper}; setup ${d.setupSeconds} s; keeper indexed all accounts ${d.keeperIndexSeconds} s after start.`);
    if (d.rss) L.push(`- RSS: VmHWM ${d.rss.vmHWMMB} MB, sampled VmRSS max ${d.rss.sampledMaxVmRSSMB} MB.`);
    if (d.keeperMetrics) L.push(`- keeper metrics at the end: ${Object.entries(d.keeperMetrics).map(([k, v]) => `${k} ${v}`).join(", ")}.`);
    L.push(`- measured ${keeper.date}.`);
  }
  L.push("");
  L.push(...windowsSection());
  return L.join("\n");
}

async function main() {
  const status = {
    gas: process.env.BENCH_GAS_EXIT ? Number(process.env.BENCH_GAS_EXIT) : (null as number | null),
    keeper: process.env.BENCH_KEEPER_EXIT ? Number(process.env.BENCH_KEEPER_EXIT) : (null as number | null),
  };
  if (!process.env.BENCH_SKIP_RUN) {
    status.gas = await run("gas", process.execPath, [require.resolve("hardhat/internal/cli/bootstrap.js"), "run", "bench/gas.ts"]);
    status.keeper = await run("keeper", process.execPath, ["-r", "ts-node/register", "bench/keeper.ts"]);
  }
  if (process.env.BENCH_WINDOWS === "1") {
    await run("windows", process.execPath, ["-r", "ts-node/register", "scripts/replay-windows.ts", "--in-process", "--quiet", "--out", "reports/windows-in-process.json"]);
  }
  const md = render(status);
  fs.mkdirSync(REPORTS, { recursive: true });
  fs.writeFileSync(path.join(REPORTS, "bench.md"), md);
  console.log("\n" + md);
  console.log(`written ${path.relative(process.cwd(), path.join(REPORTS, "bench.md"))}`);
  if (status.gas || status.keeper) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
