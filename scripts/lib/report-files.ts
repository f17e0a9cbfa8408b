// Writes a run report as reports/run.json and reports/run.html (the directory is created when missing).
import { mkdirSync, renameSync, writeFileSync } from "fs";
import { join } from "path";
import type { RunReport } from "./report-types";
import { renderHtml } from "./report-html";

export interface WrittenReports {
  json: string;
  html: string;
}

/** Writes `<dir>/<name>.json` and `<dir>/<name>.html`, each through a temporary file and a rename. */
export function writeRunReports(report: RunReport, dir: string, name = "run"): WrittenReports {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${name}.json`);
  const html = join(dir, `${name}.html`);
  atomicWrite(json, JSON.stringify(report, null, 2) + "\n");
  atomicWrite(html, renderHtml(report));
  return { json, html };
}

function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}
