import { BaseContract, Interface, keccak256, parseUnits, TransactionResponse, Wallet, formatUnits } from "ethers";
import type { JsonRpcProvider, TransactionReceipt, TransactionRequest } from "ethers";
import type { Logger } from "./log";
import type { KeeperMetrics } from "./metrics";
import { classifyRevert, Classification, decodeRevert, DecodedRevert, isAlreadyKnown, isNonceError, isRevert } from "./errors";
import { RpcUnavailableError, shortError } from "./rpc";
import { sleep } from "./backoff";

/** One contract call a job wants made. */
export interface Action {
  job: string;
  action: string;
  /** What it acts on (account or order id), for logs. */
  target: string;
  contract: BaseContract;
  method: string;
  args: unknown[];
  /** Liquidations get the higher fee cap. */
  liquidation?: boolean;
  /**
   * Looks at the simulation's return value; a string means "nothing left to do" (someone else did it)
   * and the action is reported as raced instead of sent.
   */
  nothingToDo?: (result: unknown) => string | null;
}

export type Outcome =
  | { kind: "confirmed"; hash: string; receipt: TransactionReceipt }
  | { kind: "raced"; stage: "simulation" | "tx"; reason: string; hash?: string }
  | { kind: "wait"; reason: string }
  | { kind: "expired"; reason: string }
  | { kind: "failed"; stage: "simulation" | "send" | "tx"; reason: string; hash?: string }
  | { kind: "dry-run"; result: unknown }
  | { kind: "skipped"; reason: string }
  | { kind: "dropped"; reason: string; hash?: string };

export interface SenderOptions {
  dryRun: boolean;
  maxFeeGwei: number;
  liquidationMaxFeeGwei: number;
  priorityFeeGwei?: number;
  feeBumpPercent: number;
  txTimeoutMs: number;
  /** How long the base fee and tip suggestion are reused (ms, default 1000). */
  feeCacheMs?: number;
  /** Gas limit = estimate × (1 + margin). */
  gasMargin?: number;
  log: Logger;
  metrics: KeeperMetrics;
  /** Decodes protocol custom errors (see errorInterface). */
  errors: Interface;
  chainId: bigint;
}

/**
 * One nonce sequence per signer, kept locally so that several transactions can be in flight; resynchronized
 * from the node (`pending` count) after any nonce error, a dropped or replaced transaction, or a restart.
 */
export class NonceManager {
  private next: number | null = null;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly provider: Pick<JsonRpcProvider, "getTransactionCount">,
    readonly address: string,
  ) {}

  take(): Promise<number> {
    const p = this.lock.then(async () => {
      if (this.next === null) this.next = await this.provider.getTransactionCount(this.address, "pending");
      return this.next++;
    });
    this.lock = p.catch(() => undefined);
    return p;
  }

  /** Forgets the local nonce; the next take() reads it from the node. */
  resync(): void {
    this.next = null;
  }

  peek(): number | null {
    return this.next;
  }
}

interface InFlight {
  action: Action;
  nonce: number;
  tx: TransactionRequest;
  responses: TransactionResponse[];
  cap: bigint;
}

/**
 * Simulates, sends and follows the keeper's transactions.
 *
 *   simulate (eth_call) ─ revert ─→ raced (another keeper was first) | wait | expired | failed
 *        │ ok
 *   estimate gas, EIP-1559 fees under the cap (higher for liquidations), nonce, sign, broadcast
 *        │
 *   receipt ─ status 0 ─→ replay at that block: raced | failed
 *        │ timeout → replace with fees bumped by feeBumpPercent (within the cap)
 *        │ TRANSACTION_REPLACED: repriced → our replacement mined; cancelled/replaced → dropped
 *   confirmed
 */
export class TxSender {
  readonly nonces: NonceManager | null;
  private readonly logged = new Map<string, number>();

  constructor(
    private readonly provider: JsonRpcProvider,
    private readonly wallet: Wallet,
    private readonly opts: SenderOptions,
  ) {
    this.nonces = opts.dryRun ? null : new NonceManager(provider, wallet.address);
  }

  get address(): string {
    return this.wallet.address;
  }

  /** Simulation only: the call as the keeper would send it, now. */
  async simulate(a: Action): Promise<{ ok: true; result: unknown } | { ok: false; cls: Classification; revert: DecodedRevert }> {
    try {
      const result = await a.contract.getFunction(a.method).staticCall(...a.args, { from: this.wallet.address });
      this.opts.metrics.simulations.inc({ job: a.job, action: a.action, outcome: "ok" });
      return { ok: true, result };
    } catch (e) {
      if (!isRevert(e)) throw e; // RPC trouble: the loop retries later
      const revert = decodeRevert(e, this.opts.errors);
      const cls = classifyRevert(revert.name);
      this.opts.metrics.simulations.inc({ job: a.job, action: a.action, outcome: cls });
      return { ok: false, cls, revert };
    }
  }

  /** Simulates, and unless that fails or this is a dry run, sends; then waits for the outcome. */
  async execute(a: Action): Promise<Outcome> {
    const sent = await this.send(a);
    if ("kind" in sent) return sent;
    return this.settle(sent);
  }

  /** Simulates and broadcasts; returns the in-flight transaction, or the outcome when nothing was sent. */
  async send(a: Action): Promise<InFlight | Outcome> {
    const key = `${a.action}:${a.target}`;
    const cool = this.cooldown.get(key);
    if (cool && Date.now() < cool.until) return { kind: "skipped", reason: "cooldown after failed simulation" };
    const out = await this.sendOnce(a);
    if ("kind" in out && out.kind === "failed" && out.stage === "simulation") {
      // An unexpected revert usually repeats: back off this target (30 s, doubling, up to 10 min) instead of
      // failing every iteration.
      const n = (cool?.n ?? 0) + 1;
      this.cooldown.set(key, { n, until: Date.now() + Math.min(600_000, 30_000 * 2 ** (n - 1)) });
      if (this.cooldown.size > 10_000) this.cooldown.clear();
    } else if (cool) this.cooldown.delete(key);
    return out;
  }

  private readonly cooldown = new Map<string, { n: number; until: number }>();

  private async sendOnce(a: Action): Promise<InFlight | Outcome> {
    // Fees first (cached briefly), so that as little time as possible passes between the simulation and
    // the broadcast: that gap is the window in which another keeper's transaction can land first.
    const cap = parseUnits(String(a.liquidation ? this.opts.liquidationMaxFeeGwei : this.opts.maxFeeGwei), "gwei");
    const fees = this.opts.dryRun ? null : await this.fees(cap);
    const sim = await this.simulate(a);
    if (!sim.ok) return this.reportSimulationFailure(a, sim.cls, sim.revert);
    const idle = a.nothingToDo?.(sim.result) ?? null;
    if (idle !== null) return this.reportSimulationFailure(a, "raced", { name: idle, args: [], data: null, message: idle });
    if (this.opts.dryRun || !this.nonces) {
      this.opts.log.info({ job: a.job, action: a.action, target: a.target, result: stringify(sim.result) }, "dry-run: simulation ok, not sending");
      return { kind: "dry-run", result: sim.result };
    }

    const data = a.contract.interface.encodeFunctionData(a.method, a.args);
    const to = await a.contract.getAddress();
    let gas: bigint;
    try {
      gas = await this.provider.estimateGas({ from: this.wallet.address, to, data });
    } catch (e) {
      if (!isRevert(e)) throw e;
      const revert = decodeRevert(e, this.opts.errors);
      return this.reportSimulationFailure(a, classifyRevert(revert.name), revert);
    }
    const margin = this.opts.gasMargin ?? 0.25;
    const gasLimit = gas + (gas * BigInt(Math.round(margin * 100))) / 100n;

    if (!fees) {
      this.opts.log.warn({ job: a.job, action: a.action, target: a.target, capGwei: formatUnits(cap, "gwei") }, "base fee above the fee cap: not sending");
      return { kind: "skipped", reason: "fee-cap" };
    }

    for (let attempt = 0; attempt < 3; attempt++) {
      const nonce = await this.nonces.take();
      const tx: TransactionRequest = {
        to,
        data,
        nonce,
        gasLimit,
        maxFeePerGas: fees.maxFeePerGas,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
        chainId: this.opts.chainId,
        type: 2,
        value: 0n,
      };
      try {
        const resp = await this.broadcast(tx);
        this.opts.metrics.txsSent.inc({ job: a.job, action: a.action });
        this.opts.log.info(
          { job: a.job, action: a.action, target: a.target, hash: resp.hash, nonce, maxFeeGwei: formatUnits(fees.maxFeePerGas, "gwei") },
          "transaction sent",
        );
        return { action: a, nonce, tx, responses: [resp], cap };
      } catch (e) {
        if (isNonceError(e)) {
          this.opts.log.warn({ job: a.job, action: a.action, nonce, err: shortError(e) }, "nonce error: resynchronizing the nonce");
          this.nonces.resync();
          continue;
        }
        this.nonces.resync();
        if (isRevert(e)) {
          const revert = decodeRevert(e, this.opts.errors);
          return this.reportSimulationFailure(a, classifyRevert(revert.name), revert);
        }
        if (e instanceof RpcUnavailableError) throw e; // every endpoint is down: the loop backs off
        const reason = /insufficient funds/i.test(String((e as Error).message)) ? "insufficient-funds" : "send-error";
        this.opts.metrics.txsFailed.inc({ job: a.job, action: a.action, reason });
        this.opts.log.error({ job: a.job, action: a.action, target: a.target, err: shortError(e) }, "could not send transaction");
        return { kind: "failed", stage: "send", reason };
      }
    }
    this.opts.metrics.txsFailed.inc({ job: a.job, action: a.action, reason: "nonce" });
    return { kind: "failed", stage: "send", reason: "nonce errors persisted" };
  }

  /** Signs and broadcasts; a resend the node already has counts as sent. */
  private async broadcast(tx: TransactionRequest): Promise<TransactionResponse> {
    const signed = await this.wallet.signTransaction(tx);
    const hash = keccak256(signed);
    try {
      return await this.provider.broadcastTransaction(signed);
    } catch (e) {
      if (isAlreadyKnown(e) || isNonceError(e)) {
        // Our own earlier attempt may have reached the node before its answer was lost.
        const known = await this.provider.getTransaction(hash).catch(() => null);
        if (known) return known;
      }
      throw e;
    }
  }

  /** Waits for an in-flight transaction; replaces it with higher fees when it is not mined in time. */
  async settle(f: InFlight): Promise<Outcome> {
    const a = f.action;
    const labels = { job: a.job, action: a.action };
    let timeouts = 0;
    let rpcErrors = 0;
    for (;;) {
      const resp = f.responses[f.responses.length - 1];
      try {
        const receipt = await resp.wait(1, this.opts.txTimeoutMs);
        if (!receipt) throw new Error("no receipt");
        this.opts.metrics.txsConfirmed.inc(labels);
        this.opts.log.info(
          { job: a.job, action: a.action, target: a.target, hash: receipt.hash, block: receipt.blockNumber, gasUsed: receipt.gasUsed.toString() },
          "transaction confirmed",
        );
        return { kind: "confirmed", hash: receipt.hash, receipt };
      } catch (e) {
        const err = e as { code?: string; reason?: string; receipt?: TransactionReceipt | null };
        if (err.code === "TRANSACTION_REPLACED") {
          if (err.reason === "repriced" && err.receipt) {
            // One of our own fee-bumped copies was mined.
            if (err.receipt.status === 1) {
              this.opts.metrics.txsConfirmed.inc(labels);
              this.opts.log.info({ ...labels, target: a.target, hash: err.receipt.hash }, "transaction confirmed (replacement)");
              return { kind: "confirmed", hash: err.receipt.hash, receipt: err.receipt };
            }
            return this.reverted(f, err.receipt);
          }
          this.nonces?.resync();
          this.opts.log.warn({ ...labels, target: a.target, reason: err.reason, nonce: f.nonce }, "transaction replaced by another with the same nonce: dropped");
          this.opts.metrics.txsFailed.inc({ ...labels, reason: "replaced" });
          return { kind: "dropped", reason: err.reason ?? "replaced", hash: resp.hash };
        }
        if (err.code === "CALL_EXCEPTION" && err.receipt) return this.reverted(f, err.receipt);
        if (err.code === "TIMEOUT") {
          timeouts++;
          const bumped = await this.replace(f).catch((re) => {
            this.opts.log.warn({ ...labels, err: shortError(re) }, "replacement failed");
            return false;
          });
          if (!bumped && timeouts >= 3) {
            this.nonces?.resync();
            this.opts.metrics.txsFailed.inc({ ...labels, reason: "stuck" });
            this.opts.log.error({ ...labels, target: a.target, nonce: f.nonce, hashes: f.responses.map((r) => r.hash) }, "transaction not mined; giving up on it for now");
            return { kind: "failed", stage: "tx", reason: "stuck", hash: resp.hash };
          }
          continue;
        }
        // RPC trouble while waiting: the transaction may still be mined; keep waiting a while.
        if (++rpcErrors > 5) {
          this.opts.metrics.txsFailed.inc({ ...labels, reason: "unknown-status" });
          this.opts.log.error({ ...labels, target: a.target, err: shortError(e) }, "lost track of a transaction");
          this.nonces?.resync();
          return { kind: "failed", stage: "tx", reason: "unknown-status", hash: resp.hash };
        }
        await sleep(Math.min(5_000, 250 * 2 ** rpcErrors));
      }
    }
  }

  /** Sends the same transaction (same nonce) with fees raised by feeBumpPercent, within the cap. */
  private async replace(f: InFlight): Promise<boolean> {
    const bump = (x: bigint) => (x * BigInt(100 + this.opts.feeBumpPercent) + 99n) / 100n;
    const maxFee = bump(BigInt(f.tx.maxFeePerGas!));
    if (maxFee > f.cap) {
      this.opts.log.warn({ job: f.action.job, action: f.action.action, nonce: f.nonce }, "transaction not mined and fees already at the cap: waiting");
      return false;
    }
    const tip = bump(BigInt(f.tx.maxPriorityFeePerGas!));
    f.tx = { ...f.tx, maxFeePerGas: maxFee, maxPriorityFeePerGas: tip > maxFee ? maxFee : tip };
    const resp = await this.broadcast(f.tx);
    f.responses.push(resp);
    this.opts.metrics.txsReplaced.inc({ job: f.action.job, action: f.action.action });
    this.opts.log.warn(
      { job: f.action.job, action: f.action.action, nonce: f.nonce, hash: resp.hash, maxFeeGwei: formatUnits(maxFee, "gwei") },
      "transaction not mined in time: replaced with higher fees",
    );
    return true;
  }

  /** A mined transaction reverted: replay it on the state after its block to learn why. */
  private async reverted(f: InFlight, receipt: TransactionReceipt): Promise<Outcome> {
    const a = f.action;
    let revert: DecodedRevert = { name: null, args: [], data: null, message: "reverted" };
    try {
      await this.provider.call({ from: this.wallet.address, to: f.tx.to as string, data: f.tx.data as string, blockTag: receipt.blockNumber });
      revert.message = "reverted on-chain but succeeds on replay (out of gas?)";
    } catch (e) {
      revert = decodeRevert(e, this.opts.errors);
    }
    const cls = classifyRevert(revert.name);
    if (cls === "raced") {
      this.opts.metrics.txsRaced.inc({ job: a.job, action: a.action, stage: "tx" });
      this.opts.log.info({ job: a.job, action: a.action, target: a.target, hash: receipt.hash, reason: revert.name }, "raced: another keeper was first (transaction reverted)");
      return { kind: "raced", stage: "tx", reason: revert.name ?? "", hash: receipt.hash };
    }
    this.opts.metrics.txsFailed.inc({ job: a.job, action: a.action, reason: revert.name ?? "reverted" });
    this.opts.log.error({ job: a.job, action: a.action, target: a.target, hash: receipt.hash, reason: revert.name, message: revert.message }, "transaction reverted");
    return { kind: "failed", stage: "tx", reason: revert.name ?? revert.message, hash: receipt.hash };
  }

  private reportSimulationFailure(a: Action, cls: Classification, revert: DecodedRevert): Outcome {
    const ctx = { job: a.job, action: a.action, target: a.target, reason: revert.name ?? revert.message };
    switch (cls) {
      case "raced":
        this.opts.metrics.txsRaced.inc({ job: a.job, action: a.action, stage: "simulation" });
        this.opts.log.info(ctx, "raced: already done by another keeper (simulation reverted)");
        return { kind: "raced", stage: "simulation", reason: revert.name ?? "" };
      case "wait":
        this.throttled("debug", `${a.action}:${a.target}:${revert.name}`, ctx, "not possible yet; will retry");
        return { kind: "wait", reason: revert.name ?? "" };
      case "expired":
        return { kind: "expired", reason: revert.name ?? "" };
      default:
        this.opts.metrics.txsFailed.inc({ job: a.job, action: a.action, reason: `simulation:${revert.name ?? "unknown"}` });
        this.throttled("error", `${a.action}:${a.target}:${revert.name}`, { ...ctx, message: revert.message, args: stringify(revert.args) }, "simulation failed: not sending");
        return { kind: "failed", stage: "simulation", reason: revert.name ?? revert.message };
    }
  }

  /** EIP-1559 fees: maxFee = min(cap, 2·baseFee + tip). Null when the base fee alone exceeds the cap. */
  async fees(cap: bigint): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | null> {
    const { baseFee, suggestedTip } = await this.feeData();
    let tip: bigint;
    if (this.opts.priorityFeeGwei !== undefined) tip = parseUnits(String(this.opts.priorityFeeGwei), "gwei");
    else tip = suggestedTip;
    if (baseFee > cap) return null;
    let maxFee = 2n * baseFee + tip;
    if (maxFee > cap) maxFee = cap;
    if (tip > maxFee - baseFee) tip = maxFee - baseFee;
    return { maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
  }

  private feeCache: { at: number; baseFee: bigint; suggestedTip: bigint } | null = null;

  /** Base fee of the latest block and the node's tip suggestion, cached for a second. */
  private async feeData(): Promise<{ baseFee: bigint; suggestedTip: bigint }> {
    if (this.feeCache && Date.now() - this.feeCache.at < (this.opts.feeCacheMs ?? 1_000)) return this.feeCache;
    const block = await this.provider.send("eth_getBlockByNumber", ["latest", false]);
    const baseFee = block?.baseFeePerGas ? BigInt(block.baseFeePerGas) : 0n;
    let suggestedTip = parseUnits("1", "gwei");
    if (this.opts.priorityFeeGwei === undefined) {
      try {
        suggestedTip = BigInt(await this.provider.send("eth_maxPriorityFeePerGas", []));
      } catch {
        /* node without the method: 1 gwei */
      }
    }
    this.feeCache = { at: Date.now(), baseFee, suggestedTip };
    return this.feeCache;
  }

  /** Logs at `level` once per key per minute, at debug otherwise (a persistent failure repeats every loop). */
  private throttled(level: "debug" | "error" | "warn" | "info", key: string, obj: object, msg: string) {
    const now = Date.now();
    const last = this.logged.get(key) ?? 0;
    if (now - last > 60_000) {
      this.logged.set(key, now);
      this.opts.log[level](obj, msg);
    } else this.opts.log.debug(obj, msg);
    if (this.logged.size > 10_000) this.logged.clear();
  }
}

export function stringify(x: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
  } catch {
    return String(x);
  }
}
