// Self-contained HTML rendering of a run report: inline CSS and SVG charts, no script, no CDN, so the file
// opens anywhere (and can be attached to an issue or a CI artifact as is).
import type { ConfigurationReport, HourRecord, RunReport } from "./report-types";
import { fmt, pct } from "./report-text";

const COLORS: Record<string, string> = { dynamic: "#1f6feb", static: "#d9480f" };
const EXTRA = ["#2f9e44", "#862e9c", "#e67700", "#0b7285"];
const colorOf = (id: string, i: number) => COLORS[id] ?? EXTRA[i % EXTRA.length];

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export interface Series {
  name: string;
  color: string;
  values: (number | null)[];
  dash?: string;
  width?: number;
}

export interface ChartOptions {
  title: string;
  x: number[];
  series: Series[];
  kind?: "line" | "bars";
  yFormat?: (v: number) => string;
  /** Shaded x ranges with a label (e.g. the path's phases). */
  bands?: { from: number; to: number; label: string }[];
  zeroBased?: boolean;
  width?: number;
  height?: number;
}

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.05 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  if (out[out.length - 1] < hi) out.push(out[out.length - 1] + step);
  return out;
}

/** An SVG line or grouped-bar chart. */
export function chart(o: ChartOptions): string {
  const W = o.width ?? 560;
  const H = o.height ?? 260;
  const m = { l: 64, r: 14, t: 44, b: 30 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = o.x.length;
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  let lo = all.length ? Math.min(...all) : 0;
  let hi = all.length ? Math.max(...all) : 1;
  if (o.zeroBased || o.kind === "bars") lo = Math.min(0, lo);
  if (o.kind === "bars") hi = Math.max(hi, 1);
  const ticks = niceTicks(lo, hi);
  lo = ticks[0];
  hi = ticks[ticks.length - 1];
  const yf = o.yFormat ?? ((v: number) => fmt(v));
  const X = (i: number) => m.l + (n <= 1 ? pw / 2 : (i / (n - 1)) * pw);
  const slot = pw / Math.max(1, n);
  const XB = (i: number) => m.l + i * slot;
  const Y = (v: number) => m.t + ph - ((v - lo) / (hi - lo || 1)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(o.title)}">`);
  parts.push(`<text x="${m.l}" y="16" class="ct">${esc(o.title)}</text>`);
  // Legend, on its own line under the title.
  let lx = m.l;
  for (const s of o.series) {
    parts.push(`<line x1="${lx}" y1="29" x2="${lx + 16}" y2="29" stroke="${s.color}" stroke-width="3"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`);
    parts.push(`<text x="${lx + 20}" y="33" class="lg">${esc(s.name)}</text>`);
    lx += 6.5 * s.name.length + 34;
  }
  // Bands: stress phases shaded, every band labelled.
  for (const [k, b] of (o.bands ?? []).entries()) {
    const x1 = o.kind === "bars" ? XB(b.from) : X(b.from);
    const x2 = o.kind === "bars" ? XB(b.to) : X(Math.min(n - 1, b.to));
    if (x2 <= x1) continue;
    const fill = b.label === "crash" ? "band2" : b.label === "shock" ? "band" : "";
    if (fill) parts.push(`<rect x="${x1.toFixed(1)}" y="${m.t}" width="${(x2 - x1).toFixed(1)}" height="${ph}" class="${fill}"/>`);
    else parts.push(`<line x1="${x1.toFixed(1)}" y1="${m.t}" x2="${x1.toFixed(1)}" y2="${m.t + ph}" class="bsep"/>`);
    // Narrow neighbours alternate between two label rows so their labels do not overlap.
    parts.push(`<text x="${(x1 + 3).toFixed(1)}" y="${m.t + (k % 2 ? 22 : 11)}" class="bl">${esc(b.label)}</text>`);
  }
  // Grid and axes.
  for (const t of ticks) {
    const y = Y(t).toFixed(1);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(Y(t) + 4).toFixed(1)}" class="yt">${esc(yf(t))}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(n / 12 / 6) * 6);
  for (let i = 0; i < n; i += xStep) {
    const x = (o.kind === "bars" ? XB(i) + slot / 2 : X(i)).toFixed(1);
    parts.push(`<text x="${x}" y="${H - m.b + 16}" class="xt">${o.x[i]}</text>`);
  }
  parts.push(`<text x="${W - m.r}" y="${H - 2}" class="xl">hour</text>`);
  parts.push(`<line x1="${m.l}" y1="${m.t + ph}" x2="${W - m.r}" y2="${m.t + ph}" class="axis"/>`);
  // Data.
  if (o.kind === "bars") {
    const k = o.series.length;
    const bw = Math.max(1, (slot * 0.8) / k);
    o.series.forEach((s, j) => {
      s.values.forEach((v, i) => {
        if (v === null || v === 0) return;
        const y = Y(Math.max(0, v));
        const h = Math.abs(Y(0) - Y(v));
        parts.push(`<rect x="${(XB(i) + slot * 0.1 + j * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name} h${o.x[i]}: ${yf(v)}`)}</title></rect>`);
      });
    });
  } else {
    for (const s of o.series) {
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || !Number.isFinite(v)) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${X(i).toFixed(1)},${Y(v).toFixed(1)}`;
        pen = true;
      });
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 2}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}><title>${esc(s.name)}</title></path>`);
    }
  }
  parts.push(`</svg>`);
  return parts.join("");
}

function summaryTable(cs: ConfigurationReport[]): string {
  const rows: [string, (c: ConfigurationReport) => string][] = [];
  for (const sym of Object.keys(cs[0].summary.markets)) {
    rows.push([`${sym} σ min / avg / max`, (c) => { const m = c.summary.markets[sym]; return `${pct(m.sigmaMin, 0)} / ${pct(m.sigmaAvg, 0)} / ${pct(m.sigmaMax, 0)}`; }]);
    rows.push([`${sym} avg MMR / IMR`, (c) => `${pct(c.summary.markets[sym].mmrAvg, 2)} / ${pct(c.summary.markets[sym].imrAvg, 2)}`]);
    rows.push([`${sym} max leverage`, (c) => { const m = c.summary.markets[sym]; return m.maxLeverageMin === m.maxLeverageMax ? `${fmt(m.maxLeverageMin, 1)}×` : `${fmt(m.maxLeverageMin, 1)}× – ${fmt(m.maxLeverageMax, 1)}×`; }]);
    rows.push([`${sym} hours reduce-only`, (c) => String(c.summary.markets[sym].reduceOnlyHours)]);
  }
  rows.push(["Margin calls flagged", (c) => fmt(c.summary.marginCalls)]);
  rows.push(["Liquidations (traders hit)", (c) => `${fmt(c.summary.liquidations)} (${c.summary.tradersLiquidated})`]);
  rows.push(["Traders leaving bad debt", (c) => fmt(c.summary.tradersWithBadDebt)]);
  rows.push(["Bad debt (USDC)", (c) => fmt(c.summary.badDebt, 2)]);
  rows.push(["… paid by insurance / pool", (c) => `${fmt(c.summary.badDebtFromInsurance, 2)} / ${fmt(c.summary.badDebtSocialized, 2)}`]);
  rows.push(["Insurance fund start → end (low)", (c) => `${fmt(c.summary.insuranceStart)} → ${fmt(c.summary.insuranceEnd)} (${fmt(c.summary.insuranceMin)})`]);
  rows.push(["Pool NAV start → end (low)", (c) => `${fmt(c.summary.poolNavStart)} → ${fmt(c.summary.poolNavEnd)} (${fmt(c.summary.poolNavMin)})`]);
  rows.push(["LP return", (c) => `${c.summary.lpReturnPct > 0 ? "+" : ""}${fmt(c.summary.lpReturnPct, 2)}%`]);
  rows.push(["Traders' total PnL (USDC)", (c) => fmt(c.summary.tradersPnl)]);
  rows.push(["Orders filled / cancelled", (c) => `${c.summary.ordersExecuted} / ${c.summary.ordersCancelled}`]);
  rows.push(["Top-ups / reductions on margin calls", (c) => `${c.summary.topUps} / ${c.summary.reduces}`]);
  rows.push(["Invariants", (c) => (c.invariants.holds ? "hold" : "VIOLATED")]);
  return `<table><thead><tr><th></th>${cs.map((c, i) => `<th style="color:${colorOf(c.id, i)}">${esc(c.label)}</th>`).join("")}</tr></thead><tbody>${rows
    .map(([label, f]) => `<tr><td class="l">${esc(label)}</td>${cs.map((c) => `<td>${esc(f(c))}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

function tradersTable(cs: ConfigurationReport[]): string {
  const head = `<tr><th class="l">id</th><th class="l">market</th><th class="l">side</th><th class="l">tier</th><th class="l">on margin call</th><th>deposit</th>${cs
    .map((c, i) => `<th style="color:${colorOf(c.id, i)}">${esc(c.id)} entry lev</th><th>calls / liq</th><th>bad debt</th><th>final equity</th><th>PnL</th>`)
    .join("")}</tr>`;
  const body = cs[0].traders
    .map((t, i) => {
      const cells = [t.id, t.market, t.side, t.tier + (t.dipAt ? ` (dip ${pct(t.dipAt, 0)})` : ""), t.behaviour].map((x) => `<td class="l">${esc(x)}</td>`).join("") + `<td>${fmt(t.deposited)}</td>`;
      const per = cs
        .map((c) => {
          const x = c.traders[i];
          const lev = x.entryLeverage !== undefined ? `${fmt(x.entryLeverage, 1)}× of ${fmt(x.entryMaxLeverage ?? 0, 0)}×` : x.entryFailed ? `✗ ${x.entryFailed}` : "no entry";
          return `<td>${esc(lev)}</td><td>${x.marginCalls} / ${x.liquidations}</td><td>${fmt(x.badDebt, 2)}</td><td>${fmt(x.finalEquity, 2)}</td><td class="${x.pnl < 0 ? "neg" : "pos"}">${fmt(x.pnl, 2)}</td>`;
        })
        .join("");
      return `<tr>${cells}${per}</tr>`;
    })
    .join("");
  return `<table class="small"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function hourlyTable(c: ConfigurationReport): string {
  const syms = Object.keys(c.hourly[0]?.markets ?? {});
  const head = `<tr><th>h</th><th class="l">phase</th>${syms.map((s) => `<th>${esc(s)} price</th><th>σ</th><th>MMR</th><th>IMR</th><th>breakers</th>`).join("")}<th>calls</th><th>liq</th><th>bad debt</th><th>insurance</th><th>pool NAV</th><th>traders' uPnL</th></tr>`;
  const body = c.hourly
    .map((h: HourRecord) => {
      const ms = syms.map((s) => { const m = h.markets[s]; return `<td>${fmt(m.price, 2)}</td><td>${pct(m.sigma)}</td><td>${pct(m.mmr, 2)}</td><td>${pct(m.imr, 2)}</td><td>${m.breakers || ""}</td>`; }).join("");
      return `<tr><td>${h.hour}</td><td class="l">${esc(h.phase ?? "")}</td>${ms}<td>${h.marginCalls}</td><td>${h.liquidations}</td><td>${fmt(h.badDebt, 2)}</td><td>${fmt(h.insuranceFund)}</td><td>${fmt(h.poolNav)}</td><td>${fmt(h.tradersUnrealizedPnl)}</td></tr>`;
    })
    .join("");
  return `<table class="small"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

export function renderHtml(report: RunReport): string {
  const s = report.scenario;
  const cs = report.configurations;
  const x = cs[0].hourly.map((h) => h.hour);
  const bands = s.phases.filter((p) => p.name !== "calm").map((p) => ({ from: p.from, to: p.to, label: p.name }));
  const syms = Object.keys(cs[0].hourly[0]?.markets ?? {});
  const perConfig = (f: (h: HourRecord) => number | null, dash?: string) =>
    cs.map((c, i) => ({ name: c.id, color: colorOf(c.id, i), values: c.hourly.map(f), dash }));
  const usd = (v: number) => fmt(v);
  const charts: string[] = [];
  const [main, second] = syms;
  charts.push(chart({ title: `${main} oracle price (hour close), USD`, x, bands, series: [{ name: "close", color: "#343a40", values: cs[0].hourly.map((h) => h.markets[main].price) }, { name: "low", color: "#adb5bd", values: cs[0].hourly.map((h) => h.markets[main].low), width: 1 }], yFormat: usd }));
  charts.push(chart({ title: `${main} σ in use (and the dynamic run's sources)`, x, bands, zeroBased: true, yFormat: (v) => pct(v, 0), series: [
    ...perConfig((h) => h.markets[main].sigma),
    { name: "vol feed", color: "#74c0fc", dash: "4 3", width: 1.5, values: cs[0].hourly.map((h) => h.markets[main].feedSigma) },
    { name: "estimator", color: "#63e6be", dash: "2 2", width: 1.5, values: cs[0].hourly.map((h) => h.markets[main].estimatorSigma) },
  ] }));
  charts.push(chart({ title: `${main} maintenance (solid) and initial (dashed) margin ratio`, x, bands, zeroBased: true, yFormat: (v) => pct(v, 1), series: [
    ...cs.map((c, i) => ({ name: `${c.id} MMR`, color: colorOf(c.id, i), values: c.hourly.map((h) => h.markets[main].mmr) })),
    ...cs.map((c, i) => ({ name: `${c.id} IMR`, color: colorOf(c.id, i), dash: "6 3", values: c.hourly.map((h) => h.markets[main].imr) })),
  ] }));
  if (second) {
    charts.push(chart({ title: `${second} σ in use (and the dynamic run's sources)`, x, bands, zeroBased: true, yFormat: (v) => pct(v, 0), series: [
      ...perConfig((h) => h.markets[second].sigma),
      { name: "vol feed", color: "#74c0fc", dash: "4 3", width: 1.5, values: cs[0].hourly.map((h) => h.markets[second].feedSigma) },
      { name: "estimator", color: "#63e6be", dash: "2 2", width: 1.5, values: cs[0].hourly.map((h) => h.markets[second].estimatorSigma) },
    ] }));
  }
  charts.push(chart({ title: "Liquidations per hour", kind: "bars", x, bands, yFormat: (v) => fmt(v), series: perConfig((h) => h.liquidations) }));
  charts.push(chart({ title: "Margin calls flagged per hour", kind: "bars", x, bands, yFormat: (v) => fmt(v), series: perConfig((h) => h.marginCalls) }));
  charts.push(chart({ title: "Bad debt, cumulative (USDC)", x, bands, zeroBased: true, yFormat: usd, series: perConfig((h) => h.badDebtCumulative) }));
  charts.push(chart({ title: "Insurance fund (USDC)", x, bands, yFormat: usd, series: perConfig((h) => h.insuranceFund) }));
  charts.push(chart({ title: "Pool NAV, LiquidityPool.totalAssets() (USDC)", x, bands, yFormat: usd, series: perConfig((h) => h.poolNav) }));
  charts.push(chart({ title: "Max leverage 1/IMR (×)", x, bands, zeroBased: true, yFormat: (v) => `${fmt(v, 0)}×`, series: perConfig((h) => h.markets[main].maxLeverage) }));

  const cfgList = cs
    .map((c, i) => `<li><b style="color:${colorOf(c.id, i)}">${esc(c.label)}</b> (${esc(c.id)}): ${esc(c.description)}</li>`)
    .join("");
  const marketList = s.markets
    .map((m) => `<li>${esc(m.symbol)}: ${fmt(m.startPrice, 2)} → ${fmt(m.endPrice, 2)} (low ${fmt(m.minPrice, 2)}, high ${fmt(m.maxPrice, 2)}) — ${esc(m.source)}</li>`)
    .join("");
  const invariants = cs
    .map((c) => {
      const v = c.invariants;
      return `<li><b>${esc(c.id)}</b>: vault balance ${fmt(v.vaultTokenBalance, 2)} ≥ Σ collateral ${fmt(v.sumCollateral, 2)} + pool ${fmt(v.poolBalance, 2)} + insurance ${fmt(v.insuranceFund, 2)} + protocol fees ${fmt(v.protocolFees, 2)}: <b>${v.solvent ? "ok" : "violated"}</b> (slack ${esc(v.slackUnits)} token units); accounts liquidatable after the keeper step: ${v.liquidatableAfterKeeper}; skew = Σ positions: ${v.skewMatchesPositions ? "ok" : "violated"}</li>`;
    })
    .join("");
  const css = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#212529;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
.meta{color:#495057}.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:10px}
svg{background:#fff;border:1px solid #e9ecef;border-radius:6px;max-width:100%;height:auto}
.ct{font-size:13px;font-weight:600;fill:#212529}.lg{font-size:11px;fill:#495057}.yt{font-size:10px;fill:#868e96;text-anchor:end}
.xt{font-size:10px;fill:#868e96;text-anchor:middle}.xl{font-size:10px;fill:#adb5bd;text-anchor:end}.grid{stroke:#f1f3f5}.axis{stroke:#adb5bd}
.band{fill:#fff3bf;opacity:.6}.band2{fill:#ffe3e3;opacity:.7}.bsep{stroke:#dee2e6;stroke-dasharray:3 3}.bl{font-size:10px;fill:#868e96}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 8px;text-align:right;border-bottom:1px solid #f1f3f5;white-space:nowrap}
th{background:#f8f9fa;font-weight:600}.l{text-align:left}.small{font-size:12px}.neg{color:#c92a2a}.pos{color:#2b8a3e}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}.scroll{overflow-x:auto}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sigma run — ${esc(cs.map((c) => c.id).join(" vs "))}</title><style>${css}</style></head><body>
<h1>Sigma — dynamic vs static margin through ${s.source === "generated" ? "a generated stress path" : esc(s.source.replace(/^csv:/, ""))}</h1>
<div class="meta">Generated ${esc(report.generatedAt)} · seed ${esc(JSON.stringify(s.seed))} · ${s.hours} hours · ${s.traders} traders (${esc(Object.entries(s.tradersByMarket).map(([m, n]) => `${n} ${m}`).join(", "))}) · LP deposit ${fmt(s.lpDeposit)} USDC · insurance seed ${fmt(s.insuranceSeed)} USDC${s.paramOverrides ? ` · parameters overridden in both configurations: ${esc(s.paramOverrides)}` : ""}</div>
<ul>${cfgList}</ul>
<ul class="meta">${marketList}<li>Rounds: at most ${s.rounds.slotsSec.length} per hour (open, extremes, close at +${s.rounds.slotsSec.map((x) => x / 60).join("/+")} min), intra-hour ones only when they move ≥ ${pct(s.rounds.deviation, 1)}; realized-vol feed (24 h close-to-close) updated hourly.</li><li>Keeper: ${esc(s.keeper)}.</li><li>Static calibration: ${esc(s.staticCalibration)}.</li></ul>
<h2>Summary</h2>${summaryTable(cs)}
<h2>Charts</h2><div class="grid2">${charts.join("\n")}</div>
<h2>Traders</h2><div class="scroll">${tradersTable(cs)}</div>
<h2>Invariants at the end</h2><ul>${invariants}</ul>
<h2>Hourly data</h2>${cs.map((c) => `<details><summary>${esc(c.label)}</summary><div class="scroll">${hourlyTable(c)}</div></details>`).join("")}
<p class="meta">Machine-readable: run.json (schema ${esc(report.schema)}).</p>
</body></html>
`;
}
