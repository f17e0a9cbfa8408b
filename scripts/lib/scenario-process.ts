// The scenario engine against real processes: a `hardhat node` child on a free 127.0.0.1 port and, per
// configuration, the keeper service (keepers/cli.ts) as a child process with its own key — started with the
// same helpers and the same command line as the keeper's end-to-end tests (test/keepers/helpers.ts).
//
// The engine publishes Chainlink rounds, moves time and acts for the traders; it never pokes, executes or
// liquidates itself. After every batch of rounds its KeeperStep (ProcessKeeper.tick) waits until the keeper
// process has done the work the chain shows — price/volatility rounds folded (pendingRounds = 0 and a
// VolatilityUpdated after the last vol round), due orders executed or cancelled, no account liquidatable or
// margin-callable — then reads what happened from the chain's events.
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import { JsonRpcProvider, JsonRpcSigner, ZeroAddress } from "ethers";
import {
  account,
  delay,
  killAll,
  KeeperProc,
  Node,
  provider as nodeProvider,
  startAnvil,
  startHardhatNode,
  startKeeper,
  anvilAvailable,
} from "../../test/keepers/helpers";
import { buildDeploymentFile, writeDeploymentFile } from "./deployment-file";
import { Health, KeeperStep, OrderOutcome, scanHealth, STATUS, TickReport } from "./scenario-keeper";
import type { World } from "./scenario-world";

export { killAll };
export type { Node, KeeperProc };

export interface LocalNode extends Node {
  kind: "hardhat" | "anvil";
  provider: JsonRpcProvider;
  /** A HardhatRuntimeEnvironment look-alike over the node's RPC: what the scenario engine uses of `hre`. */
  hre: HardhatRuntimeEnvironment;
  accounts: string[];
}

/** Starts `hardhat node` (default) or anvil on a free port (or `port`) of 127.0.0.1. */
export async function startLocalNode(opts: { port?: number; kind?: "hardhat" | "anvil" } = {}): Promise<LocalNode> {
  const kind = opts.kind ?? "hardhat";
  if (kind === "anvil" && !anvilAvailable()) throw new Error("anvil is not installed (@foundry-rs/anvil's platform package is missing)");
  const node = kind === "anvil" ? await startAnvil(opts.port) : await startHardhatNode(opts.port);
  const prov = nodeProvider(node.url);
  prov.pollingInterval = 20;
  const accounts = ((await prov.send("eth_accounts", [])) as string[]).map((a) => a.toLowerCase());
  return { ...node, kind, provider: prov, accounts, hre: rpcHre(prov, accounts, kind) };
}

/** Only what the engine calls: network.provider.send/request, ethers.provider, getSigners, getImpersonatedSigner. */
function rpcHre(prov: JsonRpcProvider, accounts: string[], kind: "hardhat" | "anvil"): HardhatRuntimeEnvironment {
  const signer = (a: string) => new JsonRpcSigner(prov, a);
  const prefix = kind === "anvil" ? "anvil" : "hardhat";
  const send = (method: string, params: unknown[] = []) => prov.send(method.replace(/^hardhat_/, `${prefix}_`), params as unknown[]);
  const shim = {
    network: {
      name: "localhost",
      provider: { send, request: ({ method, params }: { method: string; params?: unknown[] }) => send(method, params ?? []) },
    },
    ethers: {
      provider: prov,
      getSigners: async () => accounts.map(signer),
      getImpersonatedSigner: async (a: string) => {
        await send("hardhat_impersonateAccount", [a]);
        return signer(a);
      },
    },
  };
  return shim as unknown as HardhatRuntimeEnvironment;
}

export interface ProcessKeeperOptions {
  node: LocalNode;
  /** Index of the node's default account the keeper signs with (1, 2, … — 0 is the deployer). */
  keyIndex: number;
  /** Where the deployment file for the keeper is written (<dir>/<network>.json). */
  deploymentDir: string;
  /** Network name in the deployment file (also the keeper's default checkpoint name). */
  network: string;
  /** Keeper --poll-interval (ms). */
  pollMs?: number;
  /** Longest wait for the keeper to finish the work of one step. */
  settleTimeoutMs?: number;
  /** Extra keeper CLI flags. */
  extra?: string[];
}

/** Drives the keeper service running as a separate process (see the file comment). */
export class ProcessKeeper implements KeeperStep {
  readonly name = "keeper-process";
  readonly address: string;
  readonly key: string;
  proc?: KeeperProc;
  deploymentPath?: string;
  private lastBlock = 0;
  private orderCursor = 0n;
  private readonly pending = new Set<bigint>();
  private readonly volNeed = new Map<number, number>();
  private minDelay = 0;
  private maxAge = 0;
  private readonly pollMs: number;
  private readonly settleTimeoutMs: number;

  constructor(private readonly o: ProcessKeeperOptions) {
    const w = account(o.keyIndex, o.node.provider);
    this.address = w.address;
    this.key = w.privateKey;
    this.pollMs = o.pollMs ?? 25;
    this.settleTimeoutMs = o.settleTimeoutMs ?? 20_000;
  }

  private starting?: Promise<void>;

  /** Starts the keeper process as soon as the contracts exist (it boots while the population is funded). */
  deployed(d: World["d"]): void {
    this.starting = this.start({ d } as World);
    this.starting.catch(() => undefined); // awaited (and thrown) by the first tick
  }

  /** Writes the deployment file and starts `keepers/cli.ts` on it; resolves after its first loop iteration. */
  async start(w: World): Promise<void> {
    const file = await buildDeploymentFile(this.o.network, 31337, w.d);
    this.deploymentPath = writeDeploymentFile(this.o.deploymentDir, file);
    this.proc = await startKeeper({
      rpc: this.o.node.url,
      deployment: this.deploymentPath,
      key: this.key,
      name: `keeper:${this.o.network}`,
      extra: [
        "--poll-interval",
        String(this.pollMs),
        "--log-level",
        "info",
        "--liquidation-batch-size",
        "20",
        "--tx-timeout",
        "30",
        // Workaround: the keeper's index drops an account on any Liquidated event, even a partial liquidation
        // that leaves a position (keepers/indexer.ts); the backstop re-reads accountMarkets and restores it.
        "--backstop-interval",
        "1",
        // No fsync of the checkpoint after every iteration (the e2e helpers' 0): this keeper is short-lived.
        "--checkpoint-interval",
        "10",
        ...(this.o.extra ?? []),
      ],
    });
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`keeper exited ${this.proc.exitCode}:\n${this.proc.lines.slice(-30).join("\n")}`);
      try {
        const m = await this.proc.metrics();
        if ((m.get("keeper_loop_iterations_total") ?? 0) >= 1) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`keeper did not complete an iteration in 90 s:\n${this.proc.lines.slice(-30).join("\n")}`);
      await delay(100);
    }
    const ch = w.d.clearingHouse;
    this.minDelay = Number(await ch.minDelay());
    this.maxAge = Number(await ch.maxAge());
    this.lastBlock = w.d.deploymentBlock - 1;
  }

  async stop(): Promise<void> {
    await this.proc?.kill("SIGTERM");
  }

  async tick(w: World): Promise<TickReport> {
    if (!this.starting) this.starting = this.start(w);
    await this.starting;
    await w.clock.sync();
    const prov = w.hre.ethers.provider;
    const r: TickReport = { pokes: 0, orders: [], liquidationTxs: 0, accountsLiquidated: 0, marginCallsFlagged: 0, rateLimitWaits: 0, errors: [], health: [], liquidatableAfter: 0 };
    await this.noteVolRounds(w);
    const t0 = Date.now();
    let head = await prov.getBlockNumber();
    let idleSince = Date.now();
    let health: Health[] = [];
    let windowSec: number | undefined;
    for (let round = 0; ; round++) {
      // Let the keeper finish an iteration that began after the latest block (cheap: its own /metrics),
      // then read the chain once.
      await this.waitIterations(await prov.getBlockNumber(), round === 0 ? 0 : this.pollMs);
      if (this.proc!.exitCode !== null || this.proc!.signalCode !== null) {
        throw new Error(`keeper process exited (${this.proc!.exitCode ?? this.proc!.signalCode}):\n${this.proc!.lines.slice(-30).join("\n")}`);
      }
      const work = await this.work(w);
      health = work.health;
      if (work.total === 0) break;
      const now = await prov.getBlockNumber();
      if (now !== head) {
        head = now;
        idleSince = Date.now();
      }
      if (Date.now() - t0 > this.settleTimeoutMs) {
        r.errors.push(`keeper did not finish in ${this.settleTimeoutMs / 1000} s: ${work.describe}`);
        break;
      }
      // Only liquidations left and the keeper idle: the per-market liquidation rate limit (the keeper
      // retries next window); simulated time moves on by one window, as the in-process keeper does.
      const waits = work.onlyLiquidations ? await this.liquidationWaits() : undefined;
      const rateLimited = waits !== undefined && this.lastWaits !== undefined && waits > this.lastWaits;
      if (waits !== undefined) this.lastWaits = waits;
      if (work.onlyLiquidations && (rateLimited || Date.now() - idleSince > 4_000)) {
        if (r.rateLimitWaits >= 60) {
          r.errors.push(`liquidations still pending after 60 rate-limit windows`);
          break;
        }
        windowSec ??= Number((await w.d.riskManager.liquidationLimit(0))[0]);
        r.rateLimitWaits++;
        w.clock.advance(Math.max(1, windowSec));
        await w.clock.sync();
        idleSince = Date.now();
      }
    }
    await this.collect(w, r);
    r.health = health;
    r.liquidatableAfter = health.filter((h) => h.status === STATUS.Liquidatable).length;
    return r;
  }

  private lastWaits?: number;

  /**
   * Waits until the keeper completed a loop iteration whose index reached the chain's head as of now (its
   * jobs then ran on that state or later): read from its own /metrics, at most 3 s.
   */
  private async waitIterations(head: number, minMs: number): Promise<void> {
    const t0 = Date.now();
    if (minMs > 0) await delay(minMs);
    let target: number | undefined;
    while (Date.now() - t0 < 3_000) {
      let m: Map<string, number>;
      try {
        m = await this.proc!.metrics();
      } catch {
        return void (await delay(4 * this.pollMs));
      }
      const done = m.get("keeper_loop_iterations_total") ?? 0;
      if (target === undefined && (m.get("keeper_last_processed_block") ?? -1) >= head) target = done + 1;
      if (target !== undefined && done >= target) return;
      await delay(10);
    }
  }

  /** The keeper's count of liquidation simulations answered "not now" (rate limit, stale oracle, pause). */
  private async liquidationWaits(): Promise<number | undefined> {
    try {
      const m = await this.proc!.metrics();
      let n = 0;
      for (const [k, v] of m) if (k.startsWith("keeper_simulations_total{") && k.includes('job="liquidations"') && k.includes('outcome="wait"')) n += v;
      return n;
    } catch {
      return undefined;
    }
  }

  /** Vol-feed rounds published since the last step: the keeper must poke after them. */
  private async noteVolRounds(w: World): Promise<void> {
    const prov = w.hre.ethers.provider;
    const head = await prov.getBlockNumber();
    if (head <= this.lastBlock) return;
    for (const m of w.markets) {
      const feed = w.d.volFeeds[m.marketId];
      const logs = await prov.getLogs({ address: feed.target as string, fromBlock: this.lastBlock + 1, toBlock: head });
      if (logs.length > 0) this.volNeed.set(m.marketId, Math.max(...logs.map((l) => l.blockNumber)));
    }
  }

  /** Work the chain shows for a keeper right now. */
  private async work(w: World) {
    const { d } = w;
    const prov = w.hre.ethers.provider;
    const parts: string[] = [];
    let rounds = 0;
    for (const m of w.markets) {
      const p = Number(await d.riskManager.pendingRounds(m.marketId));
      if (p > 0) {
        rounds += p;
        parts.push(`${m.symbol} pendingRounds ${p}`);
        continue;
      }
      const need = this.volNeed.get(m.marketId);
      if (need !== undefined) {
        const evs = await d.riskManager.queryFilter(d.riskManager.filters.VolatilityUpdated(m.marketId), need + 1, "latest");
        if (evs.length > 0) this.volNeed.delete(m.marketId);
        else {
          rounds++;
          parts.push(`${m.symbol} vol round not folded`);
        }
      }
    }
    const ch = d.clearingHouse;
    const next = await ch.nextOrderId();
    for (; this.orderCursor < next; this.orderCursor++) this.pending.add(this.orderCursor);
    let orders = 0;
    if (this.pending.size > 0) {
      const now = (await prov.getBlock("latest"))!.timestamp;
      for (const id of [...this.pending]) {
        const o = await ch.order(id);
        if (o.account === ZeroAddress) {
          this.pending.delete(id);
          continue;
        }
        const commit = Number(o.commitTime);
        const conditional = (Number(o.flags) & 1) !== 0;
        if (now > commit + this.maxAge || (!conditional && now >= commit + this.minDelay)) orders++;
      }
      if (orders > 0) parts.push(`${orders} due orders`);
    }
    const health = await scanHealth(w, w.accounts);
    const liquidatable = health.filter((h) => h.status === STATUS.Liquidatable).length;
    const callable = health.filter((h) => h.status === STATUS.MarginCallable).length;
    if (liquidatable) parts.push(`${liquidatable} liquidatable`);
    if (callable) parts.push(`${callable} margin-callable`);
    return {
      total: rounds + orders + liquidatable + callable,
      onlyLiquidations: liquidatable > 0 && rounds + orders + callable === 0,
      health,
      describe: parts.join(", "),
    };
  }

  /** What happened on chain since the last step (any sender: here only the keeper process acts). */
  private async collect(w: World, r: TickReport): Promise<void> {
    const { d } = w;
    const ch = d.clearingHouse;
    const head = await w.hre.ethers.provider.getBlockNumber();
    const from = this.lastBlock + 1;
    if (head < from) return;
    const [executed, cancelled, liquidated, flagged, pokes] = await Promise.all([
      ch.queryFilter(ch.filters.OrderExecuted(), from, head),
      ch.queryFilter(ch.filters.OrderCancelled(), from, head),
      ch.queryFilter(ch.filters.Liquidated(), from, head),
      ch.queryFilter(ch.filters.MarginCallFlagged(), from, head),
      d.riskManager.queryFilter(d.riskManager.filters.VolatilityUpdated(), from, head),
    ]);
    const out: OrderOutcome[] = [];
    for (const e of executed) out.push({ orderId: e.args.orderId, account: e.args.account, filled: true, fillPriceD18: e.args.fillPriceD18 });
    for (const e of cancelled) {
      const reason = e.args.reason as string;
      let name = reason === "0x" ? "expired" : "cancelled";
      try {
        if (reason !== "0x") name = ch.interface.parseError(reason)?.name ?? name;
      } catch {
        /* not one of ours */
      }
      out.push({ orderId: e.args.orderId, account: e.args.account, filled: false, reason: name });
    }
    r.orders = out;
    r.accountsLiquidated = liquidated.length;
    r.liquidationTxs = new Set(liquidated.map((e) => e.transactionHash)).size;
    r.marginCallsFlagged = flagged.length;
    r.pokes = pokes.length;
    this.lastBlock = head;
  }
}
