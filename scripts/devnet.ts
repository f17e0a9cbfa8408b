// A local Sigma that keeps running, for the trader's page (web/):
//   1. starts `hardhat node` on 127.0.0.1:<rpc-port> as a child process (or reuses a node already there),
//   2. deploys Sigma with deploySigma over a JsonRpcProvider and writes <deployments>/localhost.json,
//   3. seeds the liquidity pool and funds the well-known dev accounts with the mock USDC,
//   4. serves the page (scripts/serve.ts) and runs a keeper loop every second: pokes σ when needed, executes
//      due orders (staticCall first, skipping the ones not triggered/ready), cancels expired ones, flags
//      margin calls and liquidates through liquidateBatch; every few seconds it moves the mock ETH/BTC prices
//      a little (a random walk at the market's own volatility),
//   5. stops cleanly on SIGINT/SIGTERM (kills the node it started).
//
// npx ts-node --transpile-only scripts/devnet.ts [--rpc-port 8545] [--web-port 8080] [--deployments deployments]
//   [--price-every 4] [--no-prices] [--accounts 10]
// Environment: SIGMA_RPC_PORT, SIGMA_WEB_PORT, SIGMA_DEPLOYMENTS_DIR.
//
// Dev accounts (hardhat's "test test … junk"): #0 deployer and LP, #19 keeper and price mover, #1..#<accounts-1>
// traders funded with 100,000 mock USDC each. For local use only.
import { spawn, ChildProcess } from "child_process";
import * as path from "path";
import * as http from "http";
import { HDNodeWallet, Interface, JsonRpcProvider, MaxUint256, Network, Wallet, formatUnits, parseUnits } from "ethers";
import { deploySigma, SigmaDeployment } from "./lib/deploy";
import { buildDeploymentFile, writeDeploymentFile } from "./lib/deployment-file";
import { DEFAULT_MARKETS } from "./lib/params";
import { DEV_MNEMONIC, startServer, Served } from "./serve";

const ROOT = path.resolve(__dirname, "..");
const KEEPER_INDEX = 19;
const ORDER_CONDITIONAL = 1;
const STATUS = { Healthy: 0, MarginCallable: 1, MarginCalled: 2, Liquidatable: 3 };
const YEAR = 365 * 24 * 3600;

export interface DevnetOptions {
  rpcPort: number;
  webPort: number;
  deploymentsDir: string;
  priceEverySec: number;
  movePrices: boolean;
  traderAccounts: number;
  log: (msg: string) => void;
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function parseDevnetArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): DevnetOptions {
  const num = (v: string | undefined, d: number, what: string) => {
    if (v === undefined || v === "") return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`invalid ${what}: ${v}`);
    return n;
  };
  return {
    rpcPort: num(argValue(argv, "--rpc-port") ?? env.SIGMA_RPC_PORT, 8545, "--rpc-port"),
    webPort: num(argValue(argv, "--web-port") ?? env.SIGMA_WEB_PORT, 8080, "--web-port"),
    deploymentsDir: path.resolve(argValue(argv, "--deployments") ?? env.SIGMA_DEPLOYMENTS_DIR ?? path.join(ROOT, "deployments")),
    priceEverySec: num(argValue(argv, "--price-every"), 4, "--price-every"),
    movePrices: !argv.includes("--no-prices"),
    traderAccounts: Math.min(num(argValue(argv, "--accounts"), 10, "--accounts"), KEEPER_INDEX),
    log: (m) => console.log(m),
  };
}

function rpcCall(url: string, method: string, params: unknown[] = []): Promise<any> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });
    const u = new URL(url);
    const req = http.request({ hostname: u.hostname, port: u.port, path: "/", method: "POST", headers: { "content-type": "application/json" } }, (r) => {
      let s = "";
      r.on("data", (c) => (s += c));
      r.on("end", () => {
        try {
          const j = JSON.parse(s);
          j.error ? reject(new Error(j.error.message)) : resolve(j.result);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("error", reject);
    req.setTimeout(2000, () => req.destroy(new Error("timeout")));
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Devnet {
  node?: ChildProcess;
  nodeStartedHere = false;
  rpcUrl: string;
  provider!: JsonRpcProvider;
  d!: SigmaDeployment;
  server?: Served;
  deploymentPath = "";
  private stopping = false;
  private loop?: Promise<void>;
  private readonly pending = new Set<bigint>();
  private orderCursor = 0n;
  private readonly watched = new Set<string>();
  private lastPriceMove = 0;
  private keeper!: Wallet;
  private nodeExit?: Promise<void>;

  constructor(readonly o: DevnetOptions) {
    this.rpcUrl = `http://127.0.0.1:${o.rpcPort}`;
  }

  private wallet(i: number): Wallet {
    const w = HDNodeWallet.fromPhrase(DEV_MNEMONIC, undefined, "m/44'/60'/0'/0").deriveChild(i);
    return new Wallet(w.privateKey, this.provider);
  }

  async startNode(): Promise<void> {
    try {
      const id = await rpcCall(this.rpcUrl, "eth_chainId");
      if (Number(id) !== 31337) throw new Error(`a node with chain id ${Number(id)} is already on ${this.rpcUrl}; pick another --rpc-port`);
      this.o.log(`Reusing the node already running on ${this.rpcUrl}`);
      return;
    } catch (e) {
      if ((e as Error).message.includes("chain id")) throw e;
    }
    // `npx hardhat node --hostname 127.0.0.1 --port <p>`, without the npx wrapper so that stopping is clean.
    const child = spawn(
      process.execPath,
      [require.resolve("hardhat/internal/cli/bootstrap.js"), "node", "--hostname", "127.0.0.1", "--port", String(this.o.rpcPort)],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env } },
    );
    this.node = child;
    this.nodeStartedHere = true;
    let out = "";
    const keep = (c: Buffer) => {
      out = (out + c.toString()).slice(-4000);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    this.nodeExit = new Promise((r) => child.once("exit", () => r()));
    let exited = false;
    child.once("exit", () => {
      exited = true;
      if (!this.stopping) {
        this.o.log(`hardhat node exited unexpectedly:\n${out}`);
        void this.stop(1);
      }
    });
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (exited) throw new Error(`hardhat node failed to start:\n${out}`);
      try {
        await rpcCall(this.rpcUrl, "eth_chainId");
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`hardhat node did not answer on ${this.rpcUrl}:\n${out}`);
        await sleep(200);
      }
    }
    this.o.log(`Started hardhat node on ${this.rpcUrl} (pid ${child.pid})`);
  }

  async deploy(): Promise<void> {
    this.provider = new JsonRpcProvider(this.rpcUrl, Network.from(31337), { staticNetwork: Network.from(31337), cacheTimeout: -1 });
    this.provider.pollingInterval = 200;
    const deployer = this.wallet(0);
    this.keeper = this.wallet(KEEPER_INDEX);
    this.d = await deploySigma(deployer);
    const file = await buildDeploymentFile("localhost", 31337, this.d);
    this.deploymentPath = writeDeploymentFile(this.o.deploymentsDir, file);
    const dec = Number(await this.d.token.decimals());
    const units = (x: number) => parseUnits(String(x), dec);
    // LP liquidity: open interest is capped at a multiple of pool NAV.
    await (await this.d.token.mint(deployer.address, units(10_000_000))).wait();
    await (await this.d.token.approve(this.d.pool.target, MaxUint256)).wait();
    await (await this.d.pool.deposit(units(10_000_000), deployer.address)).wait();
    for (let i = 1; i < this.o.traderAccounts; i++) {
      const a = this.wallet(i).address;
      await (await this.d.token.mint(a, units(100_000))).wait();
      this.watched.add(a.toLowerCase());
    }
    this.orderCursor = await this.d.clearingHouse.nextOrderId();
  }

  /** One keeper tick: σ pokes, due orders, margin calls and liquidations. Errors are logged, never thrown. */
  async tick(): Promise<void> {
    const ch = this.d.clearingHouse.connect(this.keeper);
    const rm = this.d.riskManager.connect(this.keeper);
    // Risk: poke σ where a poke would change something (new price rounds, decay, age).
    for (const m of this.d.markets) {
      try {
        for (let i = 0; i < 4 && (await rm.pokeNeeded(m.marketId)); i++) {
          await (await rm.pokeVolatility(m.marketId)).wait();
          if ((await rm.pendingRounds(m.marketId)) === 0n) break;
        }
      } catch (e) {
        this.o.log(`keeper: poke ${m.symbol} failed: ${short(e)}`);
      }
    }
    // Orders: every pending one; simulate first, skip those that revert (not ready / not triggered / no price).
    const next = await ch.nextOrderId();
    for (; this.orderCursor < next; this.orderCursor++) this.pending.add(this.orderCursor);
    const now = (await this.provider.getBlock("latest"))!.timestamp;
    const maxAge = Number(await ch.maxAge());
    for (const id of [...this.pending].sort((a, b) => (a < b ? -1 : 1))) {
      try {
        const o = await ch.order(id);
        if (o.account === "0x0000000000000000000000000000000000000000") {
          this.pending.delete(id);
          continue;
        }
        this.watched.add(o.account.toLowerCase());
        const conditional = (Number(o.flags) & ORDER_CONDITIONAL) !== 0;
        const expiresAt = conditional ? Number((await ch.orderTrigger(id)).expiresAt) : Number(o.commitTime) + maxAge;
        if (now + 1 > expiresAt) {
          await (await ch.cancelOrder(id)).wait();
          this.pending.delete(id);
          this.o.log(`keeper: order #${id} expired, cancelled (fee refunded)`);
          continue;
        }
        try {
          await ch.executeOrder.staticCall(id);
        } catch {
          continue; // not ready, not triggered, or no usable price: try again next tick
        }
        const rc = await (await ch.executeOrder(id)).wait();
        this.pending.delete(id);
        for (const log of rc!.logs) {
          const ev = safeParse(ch.interface, log);
          if (ev?.name === "OrderExecuted") this.o.log(`keeper: order #${id} filled at ${formatUnits(ev.args.fillPriceD18, 18)}`);
          if (ev?.name === "OrderCancelled") this.o.log(`keeper: order #${id} cancelled at execution (${errName(ch.interface, ev.args.reason)})`);
        }
      } catch (e) {
        this.o.log(`keeper: order #${id}: ${short(e)}`);
      }
    }
    // Liquidations: flag margin calls on MarginCallable accounts, liquidate the Liquidatable ones.
    try {
      const accounts = [...this.watched];
      if (accounts.length > 0) {
        const health = await this.d.lens.healthBatch(accounts);
        const liq = accounts.filter((_, i) => Number(health[i].status) === STATUS.Liquidatable);
        for (const [i, a] of accounts.entries()) {
          if (Number(health[i].status) !== STATUS.MarginCallable) continue;
          try {
            await (await ch.flagMarginCall(a)).wait();
            this.o.log(`keeper: margin call flagged on ${a}`);
          } catch (e) {
            this.o.log(`keeper: flagMarginCall ${a}: ${short(e)}`);
          }
        }
        if (liq.length > 0 && (await rm.liquidationsAllowed())) {
          const rc = await (await ch.liquidateBatch(liq)).wait();
          const n = rc!.logs.filter((l) => safeParse(ch.interface, l)?.name === "Liquidated").length;
          if (n > 0) this.o.log(`keeper: liquidated ${n} account(s)`);
        }
      }
    } catch (e) {
      this.o.log(`keeper: liquidation scan: ${short(e)}`);
    }
  }

  /** Moves each mock price feed by a random step at the market's own volatility (so σ stays sensible). */
  async movePrices(): Promise<void> {
    const dt = this.o.priceEverySec;
    for (const [i, feed] of this.d.priceFeeds.entries()) {
      const vol = Number(DEFAULT_MARKETS[i]?.volPercent ?? "50") / 100;
      const step = vol * Math.sqrt(dt / YEAR);
      const [, answer] = await feed.latestRoundData();
      const z = gaussian();
      const factor = Math.exp(step * z);
      const next = BigInt(Math.round(Number(answer) * factor));
      await (await feed.connect(this.keeper).updateAnswer(next)).wait();
    }
  }

  async run(): Promise<void> {
    this.loop = (async () => {
      while (!this.stopping) {
        const t0 = Date.now();
        try {
          if (this.o.movePrices && t0 - this.lastPriceMove >= this.o.priceEverySec * 1000) {
            this.lastPriceMove = t0;
            await this.movePrices();
          }
          await this.tick();
        } catch (e) {
          if (!this.stopping) this.o.log(`keeper: tick failed: ${short(e)}`);
        }
        const wait = 1000 - (Date.now() - t0);
        if (wait > 0 && !this.stopping) await sleep(wait);
      }
    })();
  }

  async start(): Promise<void> {
    await this.startNode();
    await this.deploy();
    const notes: Record<number, string> = { 0: "deployer / LP", [KEEPER_INDEX]: "keeper" };
    this.server = await startServer({
      port: this.o.webPort,
      rpcUrl: this.rpcUrl,
      deploymentFile: this.deploymentPath,
      devAccountIndexes: Array.from({ length: this.o.traderAccounts - 1 }, (_, i) => i + 1),
      devAccountNotes: notes,
    });
    await this.run();
  }

  summary(): string {
    const f = require(this.deploymentPath);
    const lines = [
      `Sigma devnet is running (chain 31337).`,
      `  RPC:        ${this.rpcUrl}`,
      `  Deployment: ${path.relative(process.cwd(), this.deploymentPath) || this.deploymentPath}`,
      ...Object.entries(f.contracts as Record<string, string>).map(([k, v]) => `  ${k.padEnd(14)}${v}`),
      ...this.d.markets.map((m) => `  market ${m.marketId}    ${m.symbol}  price feed ${m.priceFeed}`),
      `  Dev accounts #1..#${this.o.traderAccounts - 1} hold 100,000 mock USDC each (hardhat's "test test … junk" keys — local only).`,
      `Page: ${this.server?.url}`,
      `Ctrl-C stops everything.`,
    ];
    return lines.join("\n");
  }

  async stop(code = 0): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.race([this.loop, sleep(5000)]);
    await this.server?.close().catch(() => undefined);
    this.provider?.destroy();
    if (this.node && this.nodeStartedHere && this.node.exitCode === null && this.node.pid) {
      try {
        process.kill(-this.node.pid, "SIGTERM"); // the node's own process group (detached)
      } catch {
        /* already gone */
      }
      await Promise.race([this.nodeExit, sleep(3000)]);
      if (this.node.exitCode === null && this.node.signalCode === null) {
        try {
          process.kill(-this.node.pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
    process.exitCode = code;
  }
}

function safeParse(iface: Interface, log: { topics: readonly string[]; data: string }) {
  try {
    return iface.parseLog(log);
  } catch {
    return null;
  }
}

function errName(iface: Interface, data: string): string {
  try {
    return iface.parseError(data)?.name ?? "unknown";
  } catch {
    return data === "0x" ? "expired" : "unknown";
  }
}

function short(e: unknown): string {
  const x = e as { shortMessage?: string; message?: string };
  return (x.shortMessage ?? x.message ?? String(e)).split("\n")[0].slice(0, 200);
}

function gaussian(): number {
  const u = 1 - Math.random();
  const v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}


/** Runs the devnet until SIGINT/SIGTERM (what `npm run devnet` and `npm start -- --keep-running` call). */
export async function runDevnet(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Promise<Devnet> {
  const dn = new Devnet(parseDevnetArgs(argv, env));
  const stop = () => {
    console.log("Stopping the devnet…");
    void dn.stop().then(() => process.exit());
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await dn.start();
  } catch (e) {
    await dn.stop(1);
    throw e;
  }
  console.log(dn.summary());
  return dn;
}

if (require.main === module) {
  runDevnet().catch((e) => {
    console.error(`devnet failed: ${(e as Error).message ?? e}`);
    process.exit(process.exitCode || 1);
  });
}
