// `npm start` end to end, in short mode: a real local node and one keeper-service process per configuration,
// as child processes of scripts/start.ts. Exit 0, valid report files with both configurations, the keeper
// processes did the work, and no child is left running — also after Ctrl-C.
import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { delay, spawnProc, Proc, waitFor, killAll } from "../keepers/helpers";
import type { RunReport } from "../../scripts/lib/report-types";

function startArgs(...extra: string[]) {
  return ["-r", "ts-node/register", "scripts/start.ts", ...extra];
}

/** Pids the run printed for its node and keepers. */
function childPids(p: Proc): number[] {
  const pids: number[] = [];
  for (const l of p.lines) {
    const m = /^(?:node: hardhat node on \S+ \(pid (\d+)\)|keeper: \S+ — pid (\d+),)/.exec(l);
    if (m) pids.push(Number(m[1] ?? m[2]));
  }
  return pids;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("npm start — real node and keeper processes (short mode)", function () {
  this.timeout(240_000);
  const out = mkdtempSync(join(tmpdir(), "sigma-start-e2e-"));
  let run: Proc;
  let report: RunReport;

  before(async () => {
    run = spawnProc("npm-start", process.execPath, startArgs("--short", "--out", out), { TS_NODE_TRANSPILE_ONLY: "1" });
    const t = setTimeout(() => void run.kill("SIGKILL"), 220_000);
    await run.exited;
    clearTimeout(t);
  });

  after(async () => {
    rmSync(out, { recursive: true, force: true });
    await killAll();
  });

  it("exits 0 by itself", () => {
    expect(run.exitCode, run.lines.slice(-40).join("\n")).to.equal(0);
  });

  it("started a node and one keeper process per configuration, and none is left running", async () => {
    const pids = childPids(run);
    expect(pids, run.lines.slice(0, 20).join("\n")).to.have.length(3);
    await waitFor("children gone", () => pids.every((p) => !alive(p)), 10_000);
  });

  it("writes run.json with both configurations, replayed by the keeper service", () => {
    report = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(report.schema).to.equal("sigma.run/1");
    expect(report.configurations.map((c) => c.id)).to.deep.equal(["dynamic", "static"]);
    expect(report.scenario.hours).to.equal(8);
    expect(report.scenario.keeper).to.match(/keeper service \(keepers\/cli\.ts\) as a separate process/);
    for (const c of report.configurations) {
      expect(c.hourly).to.have.length(8);
      expect(c.invariants.holds, c.id).to.equal(true);
      expect(c.invariants.solvent, c.id).to.equal(true);
      expect(c.summary.maxLiquidatableAfterKeeper, c.id).to.equal(0);
      expect(c.summary.keeperErrors, c.id).to.deep.equal([]);
      // The keeper process executed the entries and poked σ every hour.
      expect(c.summary.ordersExecuted, c.id).to.be.greaterThan(0);
      expect(c.hourly.every((h) => h.pokes > 0), c.id).to.equal(true);
    }
    const [dyn, st] = report.configurations;
    expect(st.summary.markets["ETH-PERP"].imrAvg).to.be.closeTo(dyn.summary.markets["ETH-PERP"].imrAvg, 1e-3);
    expect(report.configurations.reduce((s, c) => s + c.summary.liquidations + c.summary.marginCalls, 0)).to.be.greaterThan(0);
  });

  it("writes a self-contained run.html with charts for both configurations", () => {
    const html = readFileSync(join(out, "run.html"), "utf8");
    expect(html).to.match(/^<!doctype html>/);
    expect((html.match(/<svg /g) ?? []).length).to.be.greaterThanOrEqual(8);
    expect(html).to.include("dynamic").and.to.include("static");
    expect(html).not.to.match(/<script|<link|src="http|href="http/i);
  });

  it("prints the summary", () => {
    const text = run.lines.join("\n");
    for (const s of ["Summary", "Invariants", "dynamic", "static", "Reports written"]) expect(text).to.include(s);
  });

  it("Ctrl-C stops the run and kills the node and the keepers", async () => {
    const out2 = mkdtempSync(join(tmpdir(), "sigma-start-int-"));
    try {
      const p = spawnProc("npm-start-int", process.execPath, startArgs("--short", "--out", out2), { TS_NODE_TRANSPILE_ONLY: "1" });
      await waitFor("the dynamic keeper", () => p.exitCode === null && p.lines.some((l) => l.startsWith("keeper: dynamic")), 120_000);
      await delay(500);
      const pids = childPids(p);
      expect(pids).to.have.length(2);
      process.kill(p.child.pid!, "SIGINT"); // the script only (its children sit in their own process groups)
      await Promise.race([p.exited, delay(20_000)]);
      expect(p.exitCode, p.lines.slice(-20).join("\n")).to.equal(130);
      await waitFor("children gone", () => pids.every((x) => !alive(x)), 10_000);
      expect(existsSync(join(out2, "run.json"))).to.equal(false);
    } finally {
      rmSync(out2, { recursive: true, force: true });
    }
  });
});
