// End-to-end test of the trader's page: starts scripts/devnet.ts (hardhat node + deploy + keeper loop + page
// server) on free ports, drives Debian's headless Chromium through playwright-core, picks a dev account, mints
// and deposits test USDC, places a market order and waits for the keeper loop to fill it; then places a limit
// order far from the market, sees it pending and cancels it. Screenshot: /tmp/sigma-page.png.
//
// Needs /usr/bin/chromium (apt-get install -y chromium) and playwright-core (never downloads a browser).
import { expect } from "chai";
import { spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = path.resolve(__dirname, "..", "..");
const SCREENSHOT = "/tmp/sigma-page.png";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

interface Devnet {
  child: ChildProcess;
  lines: string[];
  pageUrl: string;
  exited: Promise<void>;
}

async function startDevnet(dir: string): Promise<Devnet> {
  const [rpcPort, webPort] = [await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    ["-r", "ts-node/register", "scripts/devnet.ts", "--rpc-port", String(rpcPort), "--web-port", String(webPort), "--deployments", dir],
    { cwd: ROOT, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const lines: string[] = [];
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const pageUrl = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`devnet did not start in 120 s:\n${lines.join("\n")}`)), 120_000);
    const onData = (c: Buffer) => {
      for (const l of c.toString().split("\n")) {
        if (!l.trim()) continue;
        lines.push(l);
        const m = /^Page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(l);
        if (m) {
          clearTimeout(t);
          resolve(m[1]);
        }
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`devnet exited (${code}):\n${lines.join("\n")}`));
    });
  });
  return { child, lines, pageUrl, exited };
}

/** Waits until the element shows `text` (substring). */
function waitText(page: any, selector: string, text: string, timeout: number): Promise<void> {
  return page.locator(selector, { hasText: text }).waitFor({ timeout });
}

async function stopDevnet(d: Devnet | undefined): Promise<void> {
  if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill("SIGTERM"); // the devnet stops its keeper loop, its server and the node it started
  const done = await Promise.race([d.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
  if (!done) d.child.kill("SIGKILL");
}

describe("web: the trader's page end to end (headless Chromium)", function () {
  this.timeout(240_000);
  let devnet: Devnet | undefined;
  let context: any;
  let userDataDir: string | undefined;
  let deployDir: string | undefined;
  const consoleErrors: string[] = [];

  after(async () => {
    await context?.close().catch(() => undefined);
    await stopDevnet(devnet);
    for (const d of [userDataDir, deployDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it("mints, deposits, places a market order the keeper fills, and cancels a limit order", async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`      skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);
      this.skip();
    }
    let chromium: any;
    try {
      chromium = require("playwright-core").chromium;
    } catch {
      console.log("      skipped: playwright-core is not installed (npm install playwright-core)");
      this.skip();
    }
    deployDir = fs.mkdtempSync(path.join(os.tmpdir(), "sigma-web-deploy-"));
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sigma-web-chromium-"));
    devnet = await startDevnet(deployDir);

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1400, height: 1000 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m: any) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e: Error) => consoleErrors.push(e.message));
    try {
      await page.goto(devnet.pageUrl);
      // Markets load without an account.
      await page.waitForSelector('#markets tr[data-market="ETH-PERP"]', { timeout: 20_000 });
      expect(await page.locator("#dev-picker").isVisible()).to.equal(true);
      expect(await page.locator(".warn-tag").innerText()).to.contain("LOCAL DEV KEY");

      // Dev account #3 (funded with 100,000 USDC by the devnet).
      const opt = await page.locator("#dev-account option").nth(3).getAttribute("value");
      await page.selectOption("#dev-account", opt);
      await waitText(page, "#wallet-usdc", "100,000", 20_000);
      expect(await page.locator("#status").innerText()).to.equal("Healthy");

      await page.fill("#amount", "5000");
      await page.click("#mint");
      await waitText(page, "#banner", "Minted", 20_000);
      await page.click("#deposit");
      await waitText(page, "#banner", "Deposited", 20_000);
      await waitText(page, "#collateral", "$5,000.00", 10_000);

      // Market order: buy 20 ETH-PERP (~8× on $5,000) with 1% slippage.
      await page.selectOption("#t-market", "0");
      await page.selectOption("#t-type", "market");
      await page.selectOption("#t-side", "buy");
      await page.fill("#t-size", "20");
      await page.fill("#t-slip", "1");
      await page.click("#t-submit");
      await waitText(page, "#banner", "committed", 20_000);
      // The keeper loop executes it after minDelay (5 s); the page shows the position.
      await page.waitForSelector('#positions tr[data-market="ETH-PERP"]', { timeout: 60_000 });
      expect(await page.locator('#positions tr[data-market="ETH-PERP"] .size').innerText()).to.equal("+20");
      await waitText(page, "#history", "filled at", 20_000);
      await page.waitForSelector("#orders tr.empty", { timeout: 20_000 });
      const cells = await page.locator('#positions tr[data-market="ETH-PERP"] td').allInnerTexts();
      expect(cells[3]).to.match(/^\$[\d,]+\.\d\d$/); // entry (break-even)
      expect(cells[5]).to.match(/^\$[\d,]+\.\d\d$/); // liquidation price
      expect(await page.locator("#im").innerText()).to.not.equal("$0.00");

      // Limit buy far below the market: pending, then cancelled by its owner.
      await page.selectOption("#t-type", "limit");
      await page.fill("#t-size", "1");
      await page.fill("#t-trigger", "1000");
      await page.click("#t-submit");
      await page.waitForSelector("#orders tr[data-order]", { timeout: 20_000 });
      expect(await page.locator("#orders tr[data-order] td").nth(5).innerText()).to.contain("≤ $1,000.00");
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      await page.click("#orders tr[data-order] button");
      await waitText(page, "#banner", "cancelled", 20_000);
      await page.waitForSelector("#orders tr.empty", { timeout: 20_000 });
      expect(consoleErrors, consoleErrors.join("\n")).to.deep.equal([]);
    } catch (e) {
      await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch(() => undefined);
      console.log(`page errors:\n${consoleErrors.join("\n")}\ndevnet output (tail):\n${devnet.lines.slice(-30).join("\n")}`);
      throw e;
    }
  });
});
