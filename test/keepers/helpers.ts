/**
 * Helpers for the keeper's end-to-end tests: local nodes (hardhat node, anvil) and keeper processes as
 * children in their own process groups (killed, group and all, in after/afterEach hooks and on exit),
 * free loopback ports, a deployment, traders with positions, and the keeper's logs and metrics.
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { HDNodeWallet, JsonRpcProvider, Network, Wallet, parseUnits, MaxUint256, NonceManager } from "ethers";
import type { Signer } from "ethers";
import { deploySigma, SigmaDeployment, PRICE_FEED_DECIMALS } from "../../scripts/lib/deploy";
import { buildDeploymentFile, writeDeploymentFile } from "../../scripts/lib/deployment-file";

export const ROOT = path.resolve(__dirname, "..", "..");
export const MNEMONIC = "test test test test test test test test test test test junk";

// ------------------------------------------------------------------------------------------ processes

export interface Proc {
  name: string;
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  exitCode: number | null;
  signalCode: NodeJS.Signals | null;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<Proc>();

function killGroup(p: Proc, signal: NodeJS.Signals) {
  if (p.child.pid === undefined) return;
  try {
    process.kill(-p.child.pid, signal);
  } catch {
    try {
      p.child.kill(signal);
    } catch {
      /* gone */
    }
  }
}

process.on("exit", () => {
  for (const p of live) killGroup(p, "SIGKILL");
});

/** Spawns a command in its own process group, keeping its output lines. */
export function spawnProc(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const proc: Proc = {
    name,
    child,
    lines,
    exitCode: null,
    signalCode: null,
    exited: new Promise((resolve) => {
      child.on("exit", (code, sig) => {
        proc.exitCode = code;
        proc.signalCode = sig;
        live.delete(proc);
        resolve(code);
      });
    }),
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      killGroup(proc, signal);
      await Promise.race([proc.exited, delay(10_000)]);
      if (proc.exitCode === null && proc.signalCode === null) {
        killGroup(proc, "SIGKILL");
        await proc.exited;
      }
    },
  };
  const onData = (buf: Buffer, pending: { s: string }) => {
    pending.s += buf.toString("utf8");
    const parts = pending.s.split("\n");
    pending.s = parts.pop()!;
    lines.push(...parts);
    if (lines.length > 20_000) lines.splice(0, lines.length - 20_000);
  };
  const so = { s: "" };
  const se = { s: "" };
  child.stdout!.on("data", (b) => onData(b, so));
  child.stderr!.on("data", (b) => onData(b, se));
  live.add(proc);
  return proc;
}

export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill("SIGKILL")));
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, fn: () => Promise<T | false | null | undefined> | T | false | null | undefined, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ""}`);
    await delay(everyMs);
  }
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const tmpDirs: string[] = [];
process.on("exit", () => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A temporary folder, removed when the test process exits. */
export function tmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `sigma-keeper-${prefix}-`));
  tmpDirs.push(d);
  return d;
}

// ------------------------------------------------------------------------------------------ nodes

export async function rpc(url: string, method: string, params: unknown[] = []): Promise<any> {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });
  const res: any = await new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { "content-type": "application/json" } }, (r) => {
      let data = "";
      r.on("data", (c) => (data += c));
      r.on("end", () => {
        try {
          resolve(JSON.parse(data));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("error", reject);
    req.end(body);
  });
  if (res.error) throw new Error(`${method}: ${res.error.message}`);
  return res.result;
}

export interface Node {
  url: string;
  port: number;
  proc: Proc;
}

async function waitForRpc(url: string, proc: Proc, timeoutMs: number) {
  await waitFor(
    `${proc.name} at ${url}`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`${proc.name} exited: ${proc.lines.slice(-20).join("\n")}`);
      return (await rpc(url, "eth_chainId")) !== undefined;
    },
    timeoutMs,
    100,
  );
}

/** `hardhat node` on 127.0.0.1:<port> (chain id 31337, automine). */
export async function startHardhatNode(port?: number): Promise<Node> {
  const p = port ?? (await freePort());
  const proc = spawnProc(`hardhat-node:${p}`, process.execPath, [
    require.resolve("hardhat/internal/cli/bootstrap.js"),
    "node",
    "--hostname",
    "127.0.0.1",
    "--port",
    String(p),
  ]);
  const url = `http://127.0.0.1:${p}`;
  await waitForRpc(url, proc, 60_000);
  return { url, port: p, proc };
}

/** The anvil binary of @foundry-rs/anvil's platform package (or its JS launcher). */
export function anvilCommand(): { cmd: string; args: string[] } {
  const platformPkg = `@foundry-rs/anvil-${process.platform}-${process.arch === "x64" ? "amd64" : process.arch}`;
  try {
    const dir = path.dirname(require.resolve(`${platformPkg}/package.json`));
    const bin = path.join(dir, "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
    if (fs.existsSync(bin)) return { cmd: bin, args: [] };
  } catch {
    /* fall through */
  }
  const launcher = path.join(ROOT, "node_modules", "@foundry-rs", "anvil", "bin.mjs");
  return { cmd: process.execPath, args: [launcher] };
}

export function anvilAvailable(): boolean {
  const { cmd, args } = anvilCommand();
  return fs.existsSync(args[0] ?? cmd);
}

/** anvil on 127.0.0.1:<port> with the same test mnemonic and chain id 31337. */
export async function startAnvil(port?: number): Promise<Node> {
  const p = port ?? (await freePort());
  const { cmd, args } = anvilCommand();
  const proc = spawnProc(`anvil:${p}`, cmd, [...args, "--host", "127.0.0.1", "--port", String(p), "--chain-id", "31337", "--accounts", "20", "--silent"]);
  const url = `http://127.0.0.1:${p}`;
  await waitForRpc(url, proc, 30_000);
  return { url, port: p, proc };
}

export function provider(url: string): JsonRpcProvider {
  const p = new JsonRpcProvider(url, Network.from(31337), { staticNetwork: Network.from(31337), cacheTimeout: -1 });
  p.pollingInterval = 100;
  return p;
}

/** Hardhat node / anvil default account i (10,000 ETH each). */
export function account(i: number, p: JsonRpcProvider): Wallet {
  const root = HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0");
  return new Wallet(root.deriveChild(i).privateKey, p);
}

// ------------------------------------------------------------------------------------------ protocol

export interface Local {
  url: string;
  dir: string;
  deploymentPath: string;
  d: SigmaDeployment;
  admin: Signer;
  provider: JsonRpcProvider;
}

/** Deploys Sigma with deploySigma and writes <dir>/localhost.json; the LP puts 10M USDC in the pool. */
export async function deployLocal(url: string): Promise<Local> {
  const p = provider(url);
  const admin = new NonceManager(account(0, p));
  const d = await deploySigma(admin);
  const dir = tmpDir("deploy");
  const chainId = Number((await p.getNetwork()).chainId);
  const file = await buildDeploymentFile("localhost", chainId, d);
  const deploymentPath = writeDeploymentFile(dir, file);
  // The admin account is the LP.
  const adminAddr = await admin.getAddress();
  await (await d.token.mint(adminAddr, parseUnits("100000000", 6))).wait();
  await (await d.token.approve(await d.pool.getAddress(), MaxUint256)).wait();
  await (await d.pool.deposit(parseUnits("10000000", 6), adminAddr)).wait();
  return { url, dir, deploymentPath, d, admin, provider: p };
}

export async function increaseTime(url: string, seconds: number): Promise<void> {
  await rpc(url, "evm_increaseTime", [seconds]);
  await rpc(url, "evm_mine", []);
}

export async function setPrice(l: Local, marketId: number, usd: string): Promise<void> {
  await (await l.d.priceFeeds[marketId].updateAnswer(parseUnits(usd, PRICE_FEED_DECIMALS))).wait();
}

/** Commits an order from `trader` and returns its id. */
export async function commitOrder(l: Local, trader: Wallet, marketId: number, size: bigint): Promise<bigint> {
  const ch = l.d.clearingHouse.connect(trader);
  const fee = await ch.minExecutionFee();
  const limit = size > 0n ? 2n ** 95n : 0n;
  const rc = await (await ch.commitOrder(marketId, size, limit, { value: fee })).wait();
  for (const log of rc!.logs) {
    try {
      const ev = ch.interface.parseLog(log);
      if (ev?.name === "OrderCommitted") return ev.args.orderId as bigint;
    } catch {
      /* other contract */
    }
  }
  throw new Error("no OrderCommitted");
}

/**
 * Gives each trader `collateral` USDC in the vault and a long position of `size` ETH (orders executed by
 * the admin, not by a keeper).
 */
export async function openLongs(l: Local, traders: Wallet[], collateralUsd: string, sizeEth: string, marketId = 0): Promise<void> {
  // The admin's transactions one by one (hardhat's automine refuses a nonce that arrives early), then the
  // traders in parallel, each sending its own in order.
  for (const t of traders) await (await l.d.token.mint(t.address, parseUnits(collateralUsd, 6))).wait();
  const ids = await Promise.all(
    traders.map(async (t) => {
      const token = l.d.token.connect(t);
      await (await token.approve(await l.d.vault.getAddress(), MaxUint256)).wait();
      await (await l.d.vault.connect(t).deposit(t.address, parseUnits(collateralUsd, 6))).wait();
      return commitOrder(l, t, marketId, parseUnits(sizeEth, 18));
    }),
  );
  await increaseTime(l.url, Number(await l.d.clearingHouse.minDelay()) + 1);
  await setPrice(l, marketId, await currentPriceUsd(l, marketId)); // refresh the feed's timestamp
  for (const id of ids) {
    await (await l.d.clearingHouse.executeOrder(id)).wait();
    const o = await l.d.clearingHouse.order(id);
    if (o.account !== "0x0000000000000000000000000000000000000000") throw new Error(`order ${id} not executed`);
  }
  for (const t of traders) {
    const bits = await l.d.clearingHouse.accountMarkets(t.address);
    if (bits === 0n) throw new Error(`trader ${t.address} has no position after execution`);
  }
}

export async function currentPriceUsd(l: Local, marketId = 0): Promise<string> {
  const [, answer] = await l.d.priceFeeds[marketId].latestRoundData();
  return (Number(answer) / 10 ** PRICE_FEED_DECIMALS).toString();
}

/** Accounts liquidated by a keeper's mined transactions (its keeper_liquidations_total). */
export async function liquidatedBy(k: KeeperProc): Promise<number> {
  return (await k.metrics()).get("keeper_liquidations_total") ?? 0;
}

/** Liquidated events per account since `fromBlock`. */
export async function liquidations(l: Local, fromBlock = 0): Promise<Map<string, { liquidator: string; block: number }[]>> {
  const ch = l.d.clearingHouse;
  const evs = await ch.queryFilter(ch.filters.Liquidated(), fromBlock, "latest");
  const out = new Map<string, { liquidator: string; block: number }[]>();
  for (const e of evs) {
    const a = (e as any).args.account as string;
    const list = out.get(a) ?? [];
    list.push({ liquidator: (e as any).args.liquidator, block: e.blockNumber });
    out.set(a, list);
  }
  return out;
}

// ------------------------------------------------------------------------------------------ keeper

export interface KeeperProc extends Proc {
  metricsPort: number;
  checkpoint: string;
  logs(): any[];
  waitLog(what: string, pred: (l: any) => boolean, timeoutMs?: number): Promise<any>;
  metrics(): Promise<Map<string, number>>;
  healthz(): Promise<number>;
}

export interface KeeperOpts {
  rpc: string;
  deployment: string;
  key?: string;
  keyFile?: string;
  checkpoint?: string;
  jobs?: string;
  extra?: string[];
  env?: NodeJS.ProcessEnv;
  name?: string;
  /** Node arguments that run the keeper's CLI (default: ts-node on keepers/cli.ts; the benchmark runs the
   * compiled JavaScript, as a deployment would, without the TypeScript compiler in the process). */
  entry?: string[];
}

/** Starts `node -r ts-node/register keepers/cli.ts …` (transpile-only for speed). */
export async function startKeeper(o: KeeperOpts): Promise<KeeperProc> {
  const metricsPort = await freePort();
  const checkpoint = o.checkpoint ?? path.join(tmpDir("ckpt"), "keeper.json");
  const args = [
    ...(o.entry ?? ["-r", "ts-node/register", "keepers/cli.ts"]),
    "--rpc",
    o.rpc,
    "--deployment",
    o.deployment,
    "--jobs",
    o.jobs ?? "orders,liquidations,risk",
    "--confirmations",
    "0",
    "--poll-interval",
    "200",
    "--checkpoint",
    checkpoint,
    "--checkpoint-interval",
    "0",
    "--metrics-port",
    String(metricsPort),
    "--max-backoff",
    "1000",
    "--log-level",
    "debug",
    ...(o.keyFile ? ["--key-file", o.keyFile] : []),
    ...(o.extra ?? []),
  ];
  const env: NodeJS.ProcessEnv = { TS_NODE_TRANSPILE_ONLY: "1", ...o.env };
  if (o.key) env.SIGMA_KEEPER_KEY = o.key;
  else env.SIGMA_KEEPER_KEY = "";
  const proc = spawnProc(o.name ?? "keeper", process.execPath, args, env) as KeeperProc;
  proc.metricsPort = metricsPort;
  proc.checkpoint = checkpoint;
  proc.logs = () =>
    proc.lines
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return null;
        }
      })
      .filter((x) => x !== null);
  proc.waitLog = (what, pred, timeoutMs = 30_000) =>
    waitFor(
      `${proc.name}: ${what}`,
      () => {
        if (proc.exitCode !== null) throw new Error(`${proc.name} exited ${proc.exitCode}:\n${proc.lines.slice(-30).join("\n")}`);
        return proc.logs().find(pred);
      },
      timeoutMs,
      50,
    );
  proc.metrics = async () => parseMetrics(await httpGet(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.body));
  proc.healthz = async () => (await httpGet(`http://127.0.0.1:${metricsPort}/healthz`)).status;
  return proc;
}

export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (r) => {
      let data = "";
      r.on("data", (c) => (data += c));
      r.on("end", () => resolve({ status: r.statusCode ?? 0, body: data }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Prometheus text → "name{labels}" → value; also sums per bare name under "name". */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    out.set(m[1] + (m[2] ?? ""), v);
    if (m[2]) out.set(m[1], (out.get(m[1]) ?? 0) + v);
    else out.set(m[1], v);
  }
  return out;
}

/** Sum of a metric over the label sets that contain every given `k="v"`. */
export function metricSum(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of m) {
    if (!k.startsWith(name + "{")) continue;
    if (Object.entries(labels).every(([lk, lv]) => k.includes(`${lk}="${lv}"`))) sum += v;
  }
  return sum;
}

/** Prints the last lines of each process when a test failed (mocha afterEach: `dumpOnFailure(this, procs)`). */
export function dumpOnFailure(ctx: Mocha.Context, procs: Proc[], n = 80): void {
  if (ctx.currentTest?.state !== "failed") return;
  for (const p of procs) {
    console.log(`----- last ${n} lines of ${p.name} (exit ${p.exitCode ?? p.signalCode ?? "running"}) -----`);
    console.log(p.lines.slice(-n).join("\n"));
  }
}

/** A TCP proxy on 127.0.0.1 in front of an RPC node, which the test can take down and bring back. */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }

  /** Refuses new connections and cuts the open ones. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
