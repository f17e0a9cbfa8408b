import * as fs from "fs";
import type { Server } from "http";
import { formatEther, getAddress, Wallet, ZeroAddress, FetchRequest } from "ethers";
import type { Logger } from "./log";
import { KeeperConfig, redactUrl, describeConfig, JobName } from "./config";
import { KeeperMetrics, startMetricsServer } from "./metrics";
import { FailoverProvider, RpcUnavailableError, shortError } from "./rpc";
import { EventDecoder, Indexer, PendingOrder, BlockRef } from "./indexer";
import { readCheckpoint, writeCheckpoint } from "./checkpoint";
import { Capabilities, connectContracts, Contracts, detectCapabilities, logCapabilities, RpcChainSource } from "./chain";
import { TxSender } from "./sender";
import { errorInterface } from "./errors";
import { Shard } from "./shard";
import { backoffDelay, chunk, sleep } from "./backoff";
import { ClearingHouse__factory, RiskManager__factory, Vault__factory } from "../typechain-types";
import type { Job, JobContext } from "./jobs/types";
import { OrdersJob } from "./jobs/orders";
import { LiquidationsJob } from "./jobs/liquidations";
import { RiskJob } from "./jobs/risk";

/** A failed startup check: printed as one clear line, exit code 2. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

const JOB_FACTORIES: Record<JobName, () => Job> = {
  orders: () => new OrdersJob(),
  liquidations: () => new LiquidationsJob(),
  risk: () => new RiskJob(),
};

/** Log ranges per iteration while catching up (the jobs run between batches of ranges). */
const MAX_RANGES_PER_ITERATION = 50;

/**
 * Order of the jobs within one loop iteration: liquidations first (solvency; on a new price round they are
 * the latency that matters), then σ pokes (not waited for: the σ they set is seen by the next iteration's
 * scan as a changed market snapshot), then orders.
 */
const JOB_ORDER: JobName[] = ["liquidations", "risk", "orders"];

/**
 * The keeper service: one loop that brings the index up to date, then runs each job, then checkpoints.
 *
 *   start()  startup checks (chain id, contract code, key funded), checkpoint load, metrics server
 *   run()    loop until stop(): sync index → backstop (periodic) → jobs → checkpoint → sleep
 *   stop()   the current step finishes, the checkpoint is written, run() resolves
 */
export class Keeper {
  readonly metrics: KeeperMetrics;
  provider!: FailoverProvider;
  indexer!: Indexer;
  contracts!: Contracts;
  caps!: Capabilities;
  sender!: TxSender;
  private wallet!: Wallet;
  private source!: RpcChainSource;
  private server: (Server & { boundPort: number }) | null = null;
  private readonly jobs: Job[];
  private readonly shard: Shard;
  private stopping = false;
  private readonly abort = new AbortController();
  private lastLoopOk = 0;
  private lastCheckpointAt = 0;
  private lastBackstopAt = 0;
  private lastBalanceAt = 0;
  private lastLowBalanceWarn = 0;
  private orderScanLow: bigint | null = null;
  private iterations = 0;
  private behind = false;

  constructor(
    readonly config: KeeperConfig,
    readonly log: Logger,
    metrics?: KeeperMetrics,
  ) {
    this.metrics = metrics ?? new KeeperMetrics();
    this.shard = new Shard(config.shard.index, config.shard.count);
    this.jobs = JOB_ORDER.filter((j) => config.jobs.includes(j)).map((j) => JOB_FACTORIES[j]());
  }

  get metricsPort(): number | null {
    return this.server?.boundPort ?? null;
  }

  // ------------------------------------------------------------------------------------------ startup

  async start(): Promise<void> {
    const c = this.config;
    const d = c.deploymentFile;
    this.log.info({ config: describeConfig(c) }, "starting sigma keeper");

    await this.checkEndpoints();
    this.provider = new FailoverProvider(c.rpcUrls, d.chainId, {
      timeoutMs: c.rpcTimeout,
      maxDelayMs: Math.min(5_000, c.maxBackoff),
      log: this.log,
      onError: () => this.metrics.rpcErrors.inc(),
      onFailover: () => this.metrics.rpcFailovers.inc(),
    });
    this.provider.pollingInterval = Math.max(250, Math.min(1_000, c.pollInterval));

    if (c.privateKey) this.wallet = new Wallet(c.privateKey, this.provider);
    else {
      this.wallet = Wallet.createRandom().connect(this.provider) as unknown as Wallet;
      this.log.warn({ address: this.wallet.address }, "dry-run without a key: simulating from an ephemeral address");
    }

    // Contract code: catches a deployment file from another network or a chain that was reset.
    for (const [name, addr] of Object.entries({ clearingHouse: d.contracts.clearingHouse, vault: d.contracts.vault, riskManager: d.contracts.riskManager })) {
      const code = await this.provider.getCode(addr);
      if (code === "0x") {
        throw new StartupError(
          `no contract code at ${name} ${addr} on chain ${d.chainId}: the deployment file ${c.deployment} does not match this chain (wrong network, or the chain was reset)`,
        );
      }
    }

    const balance = await this.provider.getBalance(this.wallet.address);
    this.metrics.ethBalance.set(Number(formatEther(balance)));
    this.log.info({ address: this.wallet.address, keySource: c.keySource ?? "none (dry-run)", balanceEth: formatEther(balance) }, "keeper account");
    if (!c.dryRun && balance === 0n) {
      throw new StartupError(`keeper account ${this.wallet.address} has no ETH on chain ${d.chainId}: fund it (it pays the gas), or run with --dry-run`);
    }

    this.contracts = connectContracts(d, this.wallet);
    this.caps = await detectCapabilities(this.provider, this.contracts);
    logCapabilities(this.log, this.caps, this.contracts);
    if (this.config.jobs.includes("liquidations") && !this.caps.healthBatch) {
      throw new StartupError(
        `the liquidation job needs healthBatch(address[]) on the ${this.contracts.healthVia === "lens" ? "SigmaLens" : "ClearingHouse"}: ${this.caps.missing.healthBatch}`,
      );
    }

    const decoder = new EventDecoder(d.contracts.clearingHouse, d.contracts.vault, ClearingHouse__factory.createInterface(), Vault__factory.createInterface());
    this.source = new RpcChainSource(this.provider, decoder);
    this.indexer = new Indexer(this.source, decoder, {
      chainId: d.chainId,
      deploymentBlock: d.deploymentBlock,
      confirmations: c.confirmations,
      logRange: c.logRange,
      reorgWindow: c.reorgWindow,
      log: this.log,
      metrics: this.metrics,
    });
    this.loadCheckpoint();

    this.sender = new TxSender(this.provider, this.wallet, {
      dryRun: c.dryRun,
      maxFeeGwei: c.maxFeeGwei,
      liquidationMaxFeeGwei: c.liquidationMaxFeeGwei,
      priorityFeeGwei: c.priorityFeeGwei,
      feeBumpPercent: c.feeBumpPercent,
      txTimeoutMs: c.txTimeout * 1000,
      log: this.log,
      metrics: this.metrics,
      errors: errorInterface(ClearingHouse__factory.abi, RiskManager__factory.abi, Vault__factory.abi),
      chainId: BigInt(d.chainId),
    });

    if (c.metrics) {
      this.server = await startMetricsServer(this.metrics, c.metricsHost, c.metricsPort, () => this.health());
      this.log.info({ host: c.metricsHost, port: this.server.boundPort }, "metrics and health server listening (/metrics, /healthz)");
    }
  }

  /** Every URL must be on the deployment's chain; unreachable ones are tolerated if one answers. */
  private async checkEndpoints(): Promise<void> {
    const want = this.config.deploymentFile.chainId;
    const deadline = Date.now() + 60_000;
    for (let attempt = 0; ; attempt++) {
      let reachable = 0;
      const errors: string[] = [];
      for (const url of this.config.rpcUrls) {
        try {
          const id = await rawChainId(url, this.config.rpcTimeout);
          reachable++;
          if (id !== want) {
            throw new StartupError(
              `chain id mismatch: RPC ${redactUrl(url)} is on chain ${id}, the deployment file ${this.config.deployment} is for chain ${want} (${this.config.deploymentFile.network})`,
            );
          }
        } catch (e) {
          if (e instanceof StartupError) throw e;
          errors.push(`${redactUrl(url)}: ${shortError(e)}`);
        }
      }
      if (reachable > 0) {
        for (const err of errors) this.log.warn({ err }, "RPC endpoint unreachable at startup (kept as a failover)");
        return;
      }
      if (Date.now() > deadline || this.stopping) throw new StartupError(`no RPC endpoint reachable: ${errors.join("; ")}`);
      this.log.warn({ errors, attempt }, "no RPC endpoint reachable yet; retrying");
      await sleep(backoffDelay(attempt, 500, 5_000), this.abort.signal);
    }
  }

  private loadCheckpoint(): void {
    const file = this.config.checkpointPath;
    const identity = this.identity();
    let snap;
    try {
      snap = readCheckpoint(file);
    } catch (e) {
      const aside = `${file}.corrupt-${Date.now()}`;
      try {
        fs.renameSync(file, aside);
      } catch {
        /* ignore */
      }
      this.log.warn({ file, movedTo: aside, err: shortError(e) }, "checkpoint unreadable: rebuilding the index from the deployment block");
      return;
    }
    if (!snap) {
      this.log.info({ file, from: this.config.deploymentFile.deploymentBlock }, "no checkpoint: indexing from the deployment block");
      return;
    }
    const refused = this.indexer.loadSnapshot(snap, identity);
    if (refused) {
      this.log.warn({ file, why: refused }, "checkpoint not usable: indexing from the deployment block");
      return;
    }
    this.log.info(
      { file, lastBlock: snap.lastBlock, accounts: snap.accounts.length, orders: snap.orders.length, savedAt: snap.savedAt },
      "resuming from checkpoint",
    );
  }

  private identity() {
    const d = this.config.deploymentFile;
    return { clearingHouse: getAddress(d.contracts.clearingHouse), vault: getAddress(d.contracts.vault) };
  }

  // ------------------------------------------------------------------------------------------ loop

  /** Runs until stop() (or one iteration with --once). Resolves after the final checkpoint. */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      const ok = await this.iteration();
      failures = ok ? 0 : failures + 1;
      if (this.config.once) {
        if (!ok) process.exitCode = 1;
        break;
      }
      if (this.stopping) break;
      if (ok && this.behind) continue; // catching up: no pause
      const delay = ok ? this.config.pollInterval : backoffDelay(failures, Math.max(this.config.pollInterval, 250), this.config.maxBackoff);
      await sleep(delay, this.abort.signal);
    }
    this.checkpoint(true);
  }

  /** One loop iteration; false when it failed (logged). */
  async iteration(): Promise<boolean> {
    try {
      const report = await this.indexer.sync(() => this.stopping, undefined, MAX_RANGES_PER_ITERATION);
      this.behind = this.indexer.lastBlock < report.target;
      if (report.reorg) this.log.warn({ ...report.reorg, lastBlock: this.indexer.lastBlock }, "index corrected after a reorg");
      if (report.to >= report.from) this.log.debug({ from: report.from, to: report.to, logs: report.logs, head: report.head }, "indexed");
      if (this.stopping) return true;

      // Only when caught up: the reads are made at the last indexed block, which a non-archive node keeps
      // only for recent blocks.
      if (!this.behind && Date.now() - this.lastBackstopAt >= this.config.backstopInterval * 1000 && this.indexer.lastHash !== null) {
        this.lastBackstopAt = Date.now();
        try {
          await this.backstop();
        } catch (e) {
          if (e instanceof RpcUnavailableError) throw e;
          this.log.warn({ err: shortError(e) }, "backstop failed; retrying at the next interval");
        }
      }

      const head = await this.source.block("latest");
      if (!head) throw new Error("node returned no latest block");
      const ctx = this.jobContext(head);
      for (const job of this.jobs) {
        if (this.stopping) break;
        try {
          await job.run(ctx);
        } catch (e) {
          if (e instanceof RpcUnavailableError) throw e;
          this.metrics.jobErrors.inc({ job: job.name });
          this.log.error({ job: job.name, err: shortError(e) }, "job failed; continuing with the next");
        }
      }
      await this.updateBalance();
      this.checkpoint(false);
      this.lastLoopOk = Date.now();
      this.iterations++;
      this.metrics.loopIterations.inc();
      this.metrics.lastLoopTimestamp.set(Math.floor(this.lastLoopOk / 1000));
      return true;
    } catch (e) {
      this.metrics.loopErrors.inc();
      this.log.warn({ err: shortError(e), rpc: redactUrl(this.provider.currentUrl) }, "loop iteration failed; backing off");
      return false;
    }
  }

  private jobContext(head: BlockRef): JobContext {
    return {
      head,
      indexer: this.indexer,
      sender: this.sender,
      contracts: this.contracts,
      caps: this.caps,
      shard: this.shard,
      deployment: this.config.deploymentFile,
      settings: { batchSize: this.config.batchSize, liquidationBatchSize: this.config.liquidationBatchSize, heartbeatSec: this.config.heartbeat, rescanIntervalSec: this.config.rescanInterval },
      log: this.log,
      metrics: this.metrics,
      stopping: () => this.stopping,
    };
  }

  /**
   * Re-reads, at the last indexed block, every indexed account's markets, every pending order, and the
   * most recent order ids, and corrects the index where it disagrees (a missed event cannot hide work).
   * Uses the ClearingHouse's Multicall in view mode: one eth_call per few hundred reads.
   */
  async backstop(): Promise<void> {
    const at = this.indexer.lastBlock;
    const atHash = this.indexer.lastHash;
    const ch = this.contracts.clearingHouse;
    const iface = ch.interface;
    const to = await ch.getAddress();
    // Every read at block `at`: through the ClearingHouse's Multicall when it has one (one eth_call per
    // few hundred reads), else as individual eth_calls (ethers batches them into few HTTP requests).
    const read = async (calls: string[]) => {
      const out: string[] = [];
      for (const part of chunk(calls, this.caps.multicall ? 300 : 100)) {
        if (this.caps.multicall) out.push(...((await ch.getFunction("multicall").staticCall(part, { blockTag: at })) as string[]));
        else out.push(...(await Promise.all(part.map((data) => this.provider.call({ to, data, blockTag: at })))));
      }
      return out;
    };

    const accounts = this.indexer.accounts();
    const bitmaps = await read(accounts.map((a) => iface.encodeFunctionData("accountMarkets", [a])));
    const accountFix = new Map<string, bigint>();
    accounts.forEach((a, i) => {
      const bits = BigInt(iface.decodeFunctionResult("accountMarkets", bitmaps[i])[0]);
      if (bits !== this.indexer.marketsOf(a)) accountFix.set(a, bits);
    });

    const pending = this.indexer.pendingOrders();
    const orderData = await read(pending.map((o) => iface.encodeFunctionData("order", [BigInt(o.id)])));
    const removeOrders: string[] = [];
    pending.forEach((o, i) => {
      const [ord] = iface.decodeFunctionResult("order", orderData[i]);
      if (ord.account === ZeroAddress) removeOrders.push(o.id);
    });

    // Orders whose OrderCommitted was missed: only recent ids can still be live (they expire after maxAge).
    const [r0, r1, r2] = await read([
      iface.encodeFunctionData("nextOrderId"),
      iface.encodeFunctionData("minDelay"),
      iface.encodeFunctionData("maxAge"),
    ]);
    const next = BigInt(iface.decodeFunctionResult("nextOrderId", r0)[0]);
    const minDelay = BigInt(iface.decodeFunctionResult("minDelay", r1)[0]);
    const maxAge = BigInt(iface.decodeFunctionResult("maxAge", r2)[0]);
    const low = this.orderScanLow ?? (next > 1000n ? next - 1000n : 0n);
    const ids: bigint[] = [];
    for (let id = low; id < next; id++) if (!this.indexer.hasOrder(id)) ids.push(id);
    const found = await read(ids.map((id) => iface.encodeFunctionData("order", [id])));
    const addOrders: PendingOrder[] = [];
    ids.forEach((id, i) => {
      const [ord] = iface.decodeFunctionResult("order", found[i]);
      if (ord.account === ZeroAddress) return;
      const t = Number(ord.commitTime);
      addOrders.push({ id: id.toString(), account: getAddress(ord.account), marketId: Number(ord.marketId), executableAt: t + Number(minDelay), expiresAt: t + Number(maxAge), block: at });
    });

    const n = this.indexer.applyCorrections(at, atHash, { accounts: accountFix, addOrders, removeOrders });
    if (n > 0) {
      this.log.warn(
        { at, accounts: accountFix.size, addedOrders: addOrders.length, removedOrders: removeOrders.length },
        "backstop: on-chain state disagreed with the index (missed events?); corrected",
      );
    } else this.log.debug({ at, accounts: accounts.length, orders: pending.length }, "backstop: index agrees with the chain");
    // Ids below `next` that are not live now will never become live: scan from `next` on.
    if (at === this.indexer.lastBlock) this.orderScanLow = next;
  }

  private async updateBalance(): Promise<void> {
    if (Date.now() - this.lastBalanceAt < 15_000) return;
    this.lastBalanceAt = Date.now();
    const bal = await this.provider.getBalance(this.wallet.address);
    this.metrics.ethBalance.set(Number(formatEther(bal)));
    if (!this.config.dryRun && Number(formatEther(bal)) < this.config.minBalanceEth && Date.now() - this.lastLowBalanceWarn > 600_000) {
      this.lastLowBalanceWarn = Date.now();
      this.log.warn({ address: this.wallet.address, balanceEth: formatEther(bal), minBalanceEth: this.config.minBalanceEth }, "keeper balance low: top it up");
    }
  }

  /** Writes the checkpoint if the index changed (at most every --checkpoint-interval unless forced). */
  checkpoint(force: boolean): void {
    if (!this.indexer || !this.indexer.dirty) return;
    if (!force && Date.now() - this.lastCheckpointAt < this.config.checkpointInterval * 1000) return;
    try {
      writeCheckpoint(this.config.checkpointPath, this.indexer.toSnapshot(this.identity()));
      this.indexer.dirty = false;
      this.lastCheckpointAt = Date.now();
      this.metrics.checkpointWrites.inc();
      this.log.debug({ file: this.config.checkpointPath, lastBlock: this.indexer.lastBlock }, "checkpoint written");
    } catch (e) {
      this.log.error({ file: this.config.checkpointPath, err: shortError(e) }, "could not write the checkpoint");
    }
  }

  health(): { ok: boolean; detail: Record<string, unknown> } {
    const age = this.lastLoopOk ? (Date.now() - this.lastLoopOk) / 1000 : null;
    const ok = age !== null && age <= this.config.healthMaxAge;
    return {
      ok,
      detail: {
        lastLoopAgeSec: age,
        iterations: this.iterations,
        lastProcessedBlock: this.indexer?.lastBlock ?? null,
        rpc: this.provider ? redactUrl(this.provider.currentUrl) : null,
        stopping: this.stopping,
      },
    };
  }

  /** Asks the loop to finish its current step; run() then writes the checkpoint and resolves. */
  stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ reason }, "stopping: finishing the current step");
    this.abort.abort();
  }

  async close(): Promise<void> {
    if (this.server) {
      const closed = new Promise<void>((r) => this.server!.close(() => r()));
      this.server.closeAllConnections();
      await closed;
    }
    this.provider?.destroy();
  }
}

async function rawChainId(url: string, timeoutMs: number): Promise<number> {
  const req = new FetchRequest(url);
  req.timeout = timeoutMs;
  req.setThrottleParams({ maxAttempts: 1 });
  req.body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] });
  req.setHeader("content-type", "application/json");
  const resp = await req.send();
  resp.assertOk();
  const body = resp.bodyJson as { result?: string; error?: { message?: string } };
  if (!body?.result) throw new Error(`eth_chainId failed: ${body?.error?.message ?? "no result"}`);
  return Number(BigInt(body.result));
}
