import { expect } from "chai";
import hre from "hardhat";
import { takeSnapshot, SnapshotRestorer } from "@nomicfoundation/hardhat-network-helpers";
import { mkdtempSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { runScenario, ScenarioResult } from "../../scripts/lib/scenario";
import { scanHealth, STATUS } from "../../scripts/lib/scenario-keeper";
import { writeRunReports } from "../../scripts/lib/report-files";
import { renderText } from "../../scripts/lib/report-text";
import type { RunReport } from "../../scripts/lib/report-types";

/** The report without what legitimately differs between runs (wall-clock time). */
function stable(r: RunReport) {
  return JSON.stringify({ ...r, generatedAt: "", configurations: r.configurations.map((c) => ({ ...c, elapsedMs: 0 })) });
}

describe("npm start — scenario engine (short mode)", function () {
  this.timeout(180_000);
  let snapshot: SnapshotRestorer;
  let result: ScenarioResult;
  const HOURS = 12;

  before(async () => {
    snapshot = await takeSnapshot();
    result = await runScenario(hre, { traders: 10, hours: HOURS, seed: "start-test" });
  });

  after(async () => {
    await snapshot.restore();
  });

  it("runs the dynamic and the static configuration over every hour of the path", () => {
    const r = result.report;
    expect(r.schema).to.equal("sigma.run/1");
    expect(r.configurations.map((c) => c.id)).to.deep.equal(["dynamic", "static"]);
    expect(r.scenario.hours).to.equal(HOURS);
    expect(r.scenario.traders).to.equal(10);
    for (const c of r.configurations) expect(c.hourly.map((h) => h.hour)).to.deep.equal([...Array(HOURS).keys()]);
  });

  it("records price, σ, MMR/IMR, margin calls, liquidations, insurance fund, pool NAV and bad debt every hour", () => {
    for (const c of result.report.configurations) {
      for (const h of c.hourly) {
        for (const k of ["marginCalls", "liquidations", "badDebt", "badDebtCumulative", "insuranceFund", "poolNav"] as const) {
          expect(h[k], `${c.id} h${h.hour} ${k}`).to.be.a("number").and.satisfy(Number.isFinite);
        }
        expect(Object.keys(h.markets)).to.deep.equal(["ETH-PERP", "BTC-PERP"]);
        for (const m of Object.values(h.markets)) {
          expect(m.price).to.be.greaterThan(0);
          expect(m.sigma).to.be.greaterThan(0);
          expect(m.imr).to.be.greaterThan(m.mmr);
          expect(m.mmr).to.be.greaterThan(0);
        }
        expect(h.poolNav).to.be.greaterThan(0);
      }
      expect(c.traders).to.have.length(10);
      expect(c.summary.insuranceStart).to.equal(25_000);
    }
    // The generated path crashes: both configurations see the same prices, and σ moves only in the dynamic one.
    const [dyn, st] = result.report.configurations;
    expect(dyn.hourly.map((h) => h.markets["ETH-PERP"].price)).to.deep.equal(st.hourly.map((h) => h.markets["ETH-PERP"].price));
    expect(dyn.summary.markets["ETH-PERP"].sigmaMax).to.be.greaterThan(dyn.summary.markets["ETH-PERP"].sigmaMin);
    expect(st.summary.markets["ETH-PERP"].sigmaMax).to.equal(st.summary.markets["ETH-PERP"].sigmaMin);
  });

  it("calibrates the static configuration to the dynamic run's average initial margin", () => {
    const [dyn, st] = result.report.configurations;
    for (const sym of ["ETH-PERP", "BTC-PERP"]) {
      expect(st.marketParams[sym].sigmaMin).to.equal(st.marketParams[sym].sigmaMax);
      expect(st.summary.markets[sym].imrAvg).to.be.closeTo(dyn.summary.markets[sym].imrAvg, 1e-5);
    }
  });

  it("liquidates and margin-calls traders during the crash", () => {
    const total = result.report.configurations.reduce((s, c) => s + c.summary.liquidations + c.summary.marginCalls, 0);
    expect(total).to.be.greaterThan(0);
  });

  it("ends with a solvent vault: token balance ≥ Σ collateral + pool balance + insurance fund + protocol fees", async () => {
    for (const w of result.worlds) {
      const { d } = w;
      let collateral = 0n;
      for (const a of new Set([...w.accounts, w.keeper.address, w.admin.address, w.lp.address])) collateral += await d.vault.collateralOf(a);
      const claims = collateral + (await d.vault.poolBalance()) + (await d.vault.insuranceFund()) + (await d.vault.protocolFees());
      expect(await d.token.balanceOf(d.vault.target), w.config.id).to.be.gte(claims);
    }
    for (const c of result.report.configurations) {
      expect(c.invariants.solvent, c.id).to.equal(true);
      expect(c.invariants.skewMatchesPositions, c.id).to.equal(true);
      expect(c.invariants.holds, c.id).to.equal(true);
    }
  });

  it("leaves no account liquidatable after the keeper step", async () => {
    for (const w of result.worlds) {
      const health = await scanHealth(w, w.accounts);
      expect(health.filter((h) => h.status === STATUS.Liquidatable).map((h) => h.account), w.config.id).to.deep.equal([]);
    }
    for (const c of result.report.configurations) {
      expect(c.summary.maxLiquidatableAfterKeeper, c.id).to.equal(0);
      expect(c.summary.keeperErrors, c.id).to.deep.equal([]);
    }
  });

  it("writes run.json and a self-contained run.html, and renders the terminal report", () => {
    const dir = mkdtempSync(join(tmpdir(), "sigma-start-"));
    try {
      const files = writeRunReports(result.report, dir);
      const json = JSON.parse(readFileSync(files.json, "utf8")) as RunReport;
      expect(stable(json)).to.equal(stable(result.report));
      const html = readFileSync(files.html, "utf8");
      expect(html).to.match(/^<!doctype html>/);
      expect((html.match(/<svg /g) ?? []).length).to.be.greaterThanOrEqual(8);
      expect(html).not.to.match(/<script|<link|src="http|href="http/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const text = renderText(result.report);
    for (const s of ["Summary", "Hourly", "Traders", "Invariants", "dynamic", "static"]) expect(text).to.include(s);
  });

  it("is deterministic: the same seed gives the same report", async () => {
    const a = await runScenario(hre, { traders: 4, hours: 8, seed: "determinism" });
    const b = await runScenario(hre, { traders: 4, hours: 8, seed: "determinism" });
    expect(stable(b.report)).to.equal(stable(a.report));
  });
});
