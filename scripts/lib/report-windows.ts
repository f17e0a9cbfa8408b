// The stress-window replay's per-window figures (scripts/replay-windows.ts) and their markdown table.
import type { ConfigurationReport, RunReport } from "./report-types";

export const WINDOWS_SCHEMA = "sigma.windows/1";

export interface WindowConfigFigures {
  /** Accounts liquidated at least once. */
  accountsLiquidated: number;
  /** Liquidation events (partial liquidations of one account count separately). */
  liquidations: number;
  marginCalls: number;
  /** Bad debt (shortfall of liquidated accounts), USDC. */
  badDebt: number;
  /** Part of the bad debt the insurance fund paid. */
  insuranceUsed: number;
  /** Bad debt beyond the insurance fund (socialized to the LP pool). */
  beyondInsurance: number;
  insuranceStart: number;
  insuranceEnd: number;
  poolNavStart: number;
  poolNavEnd: number;
  /** Average IMR per market over the window. */
  imrAvg: Record<string, number>;
  maxLeverageRange: Record<string, [number, number]>;
  solvent: boolean;
  invariantsHold: boolean;
  keeperErrors: number;
}

export interface WindowRow {
  window: string;
  file: string;
  hours: number;
  ethLow: number;
  ethHigh: number;
  ethStart: number;
  ethEnd: number;
  traders: number;
  dynamic: WindowConfigFigures;
  static: WindowConfigFigures;
  targets: {
    /** Dynamic margin: no bad debt beyond the insurance fund. */
    noBadDebtBeyondInsurance: boolean;
    /** Dynamic margin liquidates fewer accounts than static margin at the same average IMR. */
    fewerLiquidatedThanStatic: boolean;
  };
  elapsedMs: number;
}

function figures(c: ConfigurationReport): WindowConfigFigures {
  const s = c.summary;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    accountsLiquidated: s.tradersLiquidated,
    liquidations: s.liquidations,
    marginCalls: s.marginCalls,
    badDebt: r2(s.badDebt),
    insuranceUsed: r2(s.badDebtFromInsurance),
    beyondInsurance: r2(Math.max(0, s.badDebt - s.badDebtFromInsurance)),
    insuranceStart: r2(s.insuranceStart),
    insuranceEnd: r2(s.insuranceEnd),
    poolNavStart: r2(s.poolNavStart),
    poolNavEnd: r2(s.poolNavEnd),
    imrAvg: Object.fromEntries(Object.entries(s.markets).map(([k, m]) => [k, m.imrAvg])),
    maxLeverageRange: Object.fromEntries(Object.entries(s.markets).map(([k, m]) => [k, [r2(m.maxLeverageMin), r2(m.maxLeverageMax)]])),
    solvent: c.invariants.solvent,
    invariantsHold: c.invariants.holds,
    keeperErrors: s.keeperErrors.length,
  };
}

export function windowRow(window: string, file: string, report: RunReport, elapsedMs: number): WindowRow {
  const dyn = report.configurations.find((c) => c.id === "dynamic");
  const st = report.configurations.find((c) => c.id === "static");
  if (!dyn || !st) throw new Error("the report lacks the dynamic or the static configuration");
  const eth = report.scenario.markets[0];
  const d = figures(dyn);
  const s = figures(st);
  return {
    window,
    file,
    hours: report.scenario.hours,
    ethLow: eth.minPrice,
    ethHigh: eth.maxPrice,
    ethStart: eth.startPrice,
    ethEnd: eth.endPrice,
    traders: report.scenario.traders,
    dynamic: d,
    static: s,
    targets: { noBadDebtBeyondInsurance: d.beyondInsurance === 0, fewerLiquidatedThanStatic: d.accountsLiquidated < s.accountsLiquidated },
    elapsedMs,
  };
}

const money = (x: number) => x.toLocaleString("en-US", { maximumFractionDigits: 0 });

export function renderWindowsMarkdown(o: { generatedAt: string; command: string; keeper: string; windows: WindowRow[] }): string {
  const L: string[] = [];
  L.push("## Stress windows: dynamic vs static margin at equal average IMR", "");
  L.push(`\`${o.command}\` — ${o.keeper}; ${o.generatedAt}.`, "");
  L.push(
    "| window | hours | ETH low / high | liquidated accounts dyn / static | bad debt dyn / static (USDC) | insurance used dyn / static | beyond insurance dyn / static | avg IMR ETH (both) | targets |",
    "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
  );
  for (const r of o.windows) {
    const t = [r.targets.noBadDebtBeyondInsurance ? "no bad debt beyond IF ✓" : "**bad debt beyond IF ✗**", r.targets.fewerLiquidatedThanStatic ? "fewer liquidated ✓" : "**fewer liquidated ✗**"].join(", ");
    const imr = (x: number | undefined) => (x === undefined ? "—" : `${(x * 100).toFixed(2)}%`);
    L.push(
      `| ${r.window.replace(/^eth_usd_1h_/, "")} | ${r.hours} | ${money(r.ethLow)} / ${money(r.ethHigh)} | ${r.dynamic.accountsLiquidated} / ${r.static.accountsLiquidated} | ${money(r.dynamic.badDebt)} / ${money(r.static.badDebt)} | ${money(r.dynamic.insuranceUsed)} / ${money(r.static.insuranceUsed)} | ${money(r.dynamic.beyondInsurance)} / ${money(r.static.beyondInsurance)} | ${imr(r.dynamic.imrAvg["ETH-PERP"])} / ${imr(r.static.imrAvg["ETH-PERP"])} | ${t} |`,
    );
  }
  const n = o.windows.length;
  const a = o.windows.filter((r) => r.targets.noBadDebtBeyondInsurance).length;
  const b = o.windows.filter((r) => r.targets.fewerLiquidatedThanStatic).length;
  const inv = o.windows.filter((r) => r.dynamic.invariantsHold && r.static.invariantsHold).length;
  L.push("", `Targets met: no bad debt beyond the insurance fund under dynamic margin in ${a}/${n} windows; fewer liquidated accounts than static margin in ${b}/${n}; invariants (solvency, nothing left liquidatable, skew = Σ positions) hold in ${inv}/${n} windows (both configurations).`, "");
  return L.join("\n");
}
