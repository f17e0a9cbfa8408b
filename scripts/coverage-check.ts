/**
 * Fails (exit 1) when contract coverage is under the project's floor: 95% of lines, 85% of branches
 * (mocks excluded by .solcover.js). Reads coverage/coverage-summary.json written by `hardhat coverage`.
 */
import * as fs from "fs";
import * as path from "path";

const LINES = Number(process.env.COVERAGE_MIN_LINES ?? 95);
const BRANCHES = Number(process.env.COVERAGE_MIN_BRANCHES ?? 85);
const file = path.join(__dirname, "..", "coverage", "coverage-summary.json");
if (!fs.existsSync(file)) {
  console.error(`coverage-check: ${file} not found; run \`npm run coverage\``);
  process.exit(1);
}
const total = JSON.parse(fs.readFileSync(file, "utf8")).total;
const lines = Number(total.lines.pct);
const branches = Number(total.branches.pct);
console.log(`coverage: lines ${lines}% (floor ${LINES}%), branches ${branches}% (floor ${BRANCHES}%)`);
if (lines < LINES || branches < BRANCHES) {
  console.error("coverage-check: below the floor");
  process.exit(1);
}
