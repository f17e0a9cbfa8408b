// The stress-window replay's invariants on one window, end to end (local node + one keeper-service process
// per configuration): the crash hours of the August 2024 yen-carry unwind (2024-08-05: −8.2 % in the hour
// of the low, hour 49 of the window) from ../shared/data, or — when the shared data set is missing — the
// generated crash path. (Black Thursday, 2020-03-12, misses the bad-debt target: docs/BACKTEST.md §6.) Dynamic margin leaves no bad debt beyond the insurance
// fund; both configurations end solvent with nothing liquidatable; the static run has the same average IMR.
import { expect } from "chai";
import { existsSync } from "fs";
import { resolve } from "path";
import { runScenarioOnNode, NodeRun } from "../../scripts/lib/scenario-run";
import { windowRow, WindowRow } from "../../scripts/lib/report-windows";
import { killAll } from "../keepers/helpers";

const WINDOW = resolve(__dirname, "..", "..", "..", "shared", "data", "crash_windows", "eth_usd_1h_2024-08-05.csv");

describe("stress-window replay (one window, keeper processes)", function () {
  this.timeout(240_000);
  let run: NodeRun;
  let row: WindowRow;
  const haveData = existsSync(WINDOW);

  before(async function () {
    if (!haveData) console.log(`      (no ${WINDOW}: ../shared/data is missing — replaying the generated crash path instead)`);
    // Replay hours 42..51 of the window (the low is in hour 49); the skipped hours feed the volatility history.
    const opts = haveData ? { pricesCsv: WINDOW, skipHours: 42, hours: 10, traders: 8 } : { hours: 10, traders: 8 };
    run = await runScenarioOnNode({ ...opts, seed: "windows-test" });
    row = windowRow("test", haveData ? WINDOW : "generated", run.result.report, 0);
  });

  after(async () => {
    await run?.close();
    await killAll();
  });

  it("replays the window under dynamic and static margin, with the keeper service as separate processes", () => {
    const r = run.result.report;
    expect(r.configurations.map((c) => c.id)).to.deep.equal(["dynamic", "static"]);
    expect(r.scenario.keeper).to.match(/keeper service/);
    if (haveData) expect(r.scenario.markets[0].minPrice).to.be.lessThan(2200); // the crash is in the replay
    for (const c of r.configurations) expect(c.summary.keeperErrors, c.id).to.deep.equal([]);
  });

  it("dynamic margin: no bad debt beyond the insurance fund", () => {
    expect(row.dynamic.beyondInsurance).to.equal(0);
    expect(row.targets.noBadDebtBeyondInsurance).to.equal(true);
    expect(row.dynamic.insuranceUsed).to.be.at.most(row.dynamic.insuranceStart);
  });

  it("both configurations end solvent, with nothing liquidatable and skew = Σ positions", () => {
    for (const c of run.result.report.configurations) {
      expect(c.invariants.solvent, c.id).to.equal(true);
      expect(c.invariants.holds, c.id).to.equal(true);
      expect(c.summary.maxLiquidatableAfterKeeper, c.id).to.equal(0);
    }
  });

  it("compares at equal average initial margin", () => {
    for (const sym of ["ETH-PERP", "BTC-PERP"]) expect(row.static.imrAvg[sym]).to.be.closeTo(row.dynamic.imrAvg[sym], 2e-3);
    console.log(
      `      liquidated accounts dynamic ${row.dynamic.accountsLiquidated} / static ${row.static.accountsLiquidated}; bad debt ${row.dynamic.badDebt} / ${row.static.badDebt}; insurance used ${row.dynamic.insuranceUsed} / ${row.static.insuranceUsed}; beyond insurance ${row.dynamic.beyondInsurance} / ${row.static.beyondInsurance}`,
    );
  });
});
