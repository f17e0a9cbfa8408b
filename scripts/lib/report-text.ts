// Plain-text rendering of a run report for the terminal: scenario, side-by-side summary of the
// configurations, an hourly table (sampled, plus every hour with events) and the per-trader table.
import type { ConfigurationReport, HourRecord, RunReport, TraderRow } from "./report-types";

/** Number with thousands separators and a fixed number of decimals. */
export function fmt(x: number | undefined, decimals = 0): string {
  if (x === undefined || Number.isNaN(x)) return "–";
  const v = Math.abs(x) < 0.5 * 10 ** -decimals ? 0 : x; // no "-0"
  return v.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}
export const pct = (x: number | undefined, decimals = 1) => (x === undefined ? "–" : `${fmt(x * 100, decimals)}%`);
const signed = (x: number, decimals = 0) => (x > 0 ? "+" : "") + fmt(x, decimals);

type Align = "l" | "r";

/** Renders rows as an aligned plain-text table; `align` per column ("l" or "r", default right). */
export function table(header: string[], rows: string[][], align: Align[] = [], indent = "  "): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    indent +
    cells
      .map((c, i) => ((align[i] ?? "r") === "l" ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), indent + widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

const pair = (a: string, b: string) => `${a} / ${b}`;

/** Hours shown in the hourly table: every `every` hours, the last one, and every hour with events. */
export function sampledHours(hourly: HourRecord[][], every: number): number[] {
  const n = hourly[0]?.length ?? 0;
  const out: number[] = [];
  for (let h = 0; h < n; h++) {
    const eventful = hourly.some((hs) => hs[h].marginCalls > 0 || hs[h].liquidations > 0 || hs[h].badDebt > 0);
    if (h % every === 0 || h === n - 1 || eventful) out.push(h);
  }
  return out;
}

export function renderText(report: RunReport, opts: { hourEvery?: number; maxTraders?: number } = {}): string {
  const s = report.scenario;
  const cs = report.configurations;
  const out: string[] = [];
  const title = `Sigma — ${cs.map((c) => c.id).join(" vs ")} margin through ${s.source === "generated" ? "a generated stress path" : s.source.replace(/^csv:/, "")}`;
  out.push(title, "═".repeat(Math.min(110, title.length)));
  out.push(`  seed ${JSON.stringify(s.seed)} · ${s.hours} h · ${s.traders} traders (${Object.entries(s.tradersByMarket).map(([m, n]) => `${n} ${m}`).join(", ")}) · LP ${fmt(s.lpDeposit)} USDC · insurance seed ${fmt(s.insuranceSeed)} USDC`);
  if (s.paramOverrides) out.push(`  parameters overridden in both configurations: ${s.paramOverrides}`);
  for (const m of s.markets) {
    out.push(`  ${m.symbol.padEnd(9)} ${fmt(m.startPrice, 2)} → ${fmt(m.endPrice, 2)} (low ${fmt(m.minPrice, 2)}, high ${fmt(m.maxPrice, 2)}) — ${m.source}`);
  }
  if (s.phases.length) out.push(`  phases    ${s.phases.map((p) => `${p.name} h${p.from}–${p.to - 1}`).join(", ")}`);
  for (const c of cs) out.push(`  ${c.id.padEnd(9)} ${c.label}: ${c.description}`);
  out.push("");

  // ---------------------------------------------------------------- summary
  const sumRows: string[][] = [];
  const row = (label: string, f: (c: ConfigurationReport) => string) => sumRows.push([label, ...cs.map(f)]);
  for (const sym of Object.keys(cs[0].summary.markets)) {
    row(`${sym} σ min / avg / max`, (c) => {
      const m = c.summary.markets[sym];
      return `${pct(m.sigmaMin, 0)} / ${pct(m.sigmaAvg, 0)} / ${pct(m.sigmaMax, 0)}`;
    });
    row(`${sym} avg MMR / IMR`, (c) => pair(pct(c.summary.markets[sym].mmrAvg, 2), pct(c.summary.markets[sym].imrAvg, 2)));
    row(`${sym} max leverage range`, (c) => {
      const m = c.summary.markets[sym];
      return m.maxLeverageMin === m.maxLeverageMax ? `${fmt(m.maxLeverageMin, 1)}×` : `${fmt(m.maxLeverageMin, 1)}× – ${fmt(m.maxLeverageMax, 1)}×`;
    });
    row(`${sym} hours reduce-only`, (c) => String(c.summary.markets[sym].reduceOnlyHours));
  }
  row("margin calls flagged", (c) => fmt(c.summary.marginCalls));
  row("liquidations (traders hit)", (c) => `${fmt(c.summary.liquidations)} (${c.summary.tradersLiquidated})`);
  row("traders leaving bad debt", (c) => fmt(c.summary.tradersWithBadDebt));
  row("bad debt, USDC", (c) => fmt(c.summary.badDebt, 2));
  row("  paid by insurance / pool", (c) => pair(fmt(c.summary.badDebtFromInsurance, 2), fmt(c.summary.badDebtSocialized, 2)));
  row("insurance fund start → end", (c) => `${fmt(c.summary.insuranceStart)} → ${fmt(c.summary.insuranceEnd)}`);
  row("pool NAV start → end", (c) => `${fmt(c.summary.poolNavStart)} → ${fmt(c.summary.poolNavEnd)}`);
  row("pool NAV low", (c) => fmt(c.summary.poolNavMin));
  row("LP return", (c) => `${signed(c.summary.lpReturnPct, 2)}%`);
  row("traders' total PnL, USDC", (c) => signed(c.summary.tradersPnl));
  row("orders filled / cancelled", (c) => pair(fmt(c.summary.ordersExecuted), fmt(c.summary.ordersCancelled)));
  row("top-ups / reductions on calls", (c) => pair(fmt(c.summary.topUps), fmt(c.summary.reduces)));
  row("liquidatable after keeper (max)", (c) => fmt(c.summary.maxLiquidatableAfterKeeper));
  row("invariants", (c) => (c.invariants.holds ? "hold" : "VIOLATED"));
  out.push("Summary");
  out.push(table(["", ...cs.map((c) => c.id)], sumRows, ["l"]));
  const failures = cs.filter((c) => Object.keys(c.summary.entryFailures).length > 0);
  for (const c of failures) {
    out.push(`  ${c.id}: entries cancelled — ${Object.entries(c.summary.entryFailures).map(([k, v]) => `${v}× ${k}`).join(", ")}`);
  }
  for (const c of cs) if (c.summary.keeperErrors.length) out.push(`  ${c.id}: keeper errors — ${c.summary.keeperErrors.slice(0, 3).join("; ")}`);
  out.push("");

  // ---------------------------------------------------------------- hourly
  const sym = Object.keys(cs[0].hourly[0]?.markets ?? {})[0];
  const hours = sampledHours(cs.map((c) => c.hourly), opts.hourEvery ?? 6);
  const both = (f: (h: HourRecord) => string, h: number) => cs.map((c) => f(c.hourly[h])).join("/");
  const dyn = cs[0];
  const hourRows = hours.map((h) => {
    const d = dyn.hourly[h];
    const m = d.markets[sym];
    return [
      String(h),
      d.phase ?? "",
      fmt(m.price, 1),
      pct(m.sigma, 0) + (m.breakers ? "*" : ""),
      `${pct(m.mmr, 1)}/${pct(m.imr, 1)}`,
      both((x) => String(x.marginCalls), h),
      both((x) => String(x.liquidations), h),
      both((x) => fmt(x.badDebtCumulative), h),
      both((x) => fmt(x.insuranceFund), h),
      both((x) => fmt(x.poolNav), h),
    ];
  });
  const ids = cs.map((c) => c.id.slice(0, 3)).join("/");
  out.push(`Hourly — ${sym}: σ and ratios of ${dyn.id} (${cs.slice(1).map((c) => `${c.id}: σ ${pct(c.summary.markets[sym].sigmaAvg)}, IMR ${pct(c.summary.markets[sym].imrAvg, 2)} throughout`).join("; ")}); * = reduce-only`);
  out.push(`  every ${opts.hourEvery ?? 6} h and every hour with margin calls, liquidations or bad debt; pairs are ${ids}`);
  out.push(table(["h", "phase", "price", "σ", "MMR/IMR", `calls ${ids}`, `liq ${ids}`, `bad debt Σ ${ids}`, `insurance ${ids}`, `pool NAV ${ids}`], hourRows, ["r", "l"]));
  out.push("");

  // ---------------------------------------------------------------- traders
  const maxT = opts.maxTraders ?? 40;
  const traders = cs[0].traders;
  const lev = (t: TraderRow) =>
    t.entryLeverage !== undefined ? `${fmt(t.entryLeverage, 1)}× of ${fmt(t.entryMaxLeverage ?? 0, 0)}` : t.entryFailed ? `✗ ${t.entryFailed.replace(/^ClearingHouse/, "")}` : "no entry";
  const trRows = traders.slice(0, maxT).map((t, i) => {
    const cells = [t.id, t.market, t.side, `${t.tier}${t.dipAt ? ` dip ${pct(t.dipAt, 0)}` : ""}`, t.behaviour, fmt(t.deposited)];
    for (const c of cs) {
      const x = c.traders[i];
      cells.push(lev(x), `${x.marginCalls}/${x.liquidations}`, fmt(x.badDebt), signed(x.pnl));
    }
    return cells;
  });
  const trHeader = ["id", "market", "side", "tier", "on call", "deposit"];
  for (const c of cs) trHeader.push(`${c.id.slice(0, 3)} entry lev`, "calls/liq", "bad debt", "PnL");
  out.push(`Traders — entry leverage (of the max 1/IMR at entry), margin calls / liquidations, bad debt left, PnL in USDC`);
  out.push(table(trHeader, trRows, ["l", "l", "l", "l", "l"]));
  if (traders.length > maxT) out.push(`  … ${traders.length - maxT} more in reports/run.json`);
  out.push("");

  // ---------------------------------------------------------------- invariants
  out.push("Invariants at the end (after the last keeper step)");
  for (const c of cs) {
    const v = c.invariants;
    out.push(
      `  ${c.id.padEnd(8)} vault ${fmt(v.vaultTokenBalance, 2)} ≥ collateral ${fmt(v.sumCollateral, 2)} + pool ${fmt(v.poolBalance, 2)} + insurance ${fmt(v.insuranceFund, 2)} + fees ${fmt(v.protocolFees, 2)}: ${v.solvent ? "ok" : "NO"} (slack ${v.slackUnits} units) · liquidatable left ${v.liquidatableAfterKeeper} · skew = Σ positions: ${v.skewMatchesPositions ? "ok" : "NO"}`,
    );
  }
  return out.join("\n");
}
