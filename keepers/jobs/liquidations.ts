import type { BaseContract } from "ethers";
import { chunk, mapLimit } from "../backoff";
import { isRevert } from "../errors";
import { isInFlight, Job, JobContext } from "./types";
import type { Action, Outcome } from "../sender";

/** IClearingHouse.AccountStatus */
export const STATUS = { Healthy: 0, MarginCallable: 1, MarginCalled: 2, Liquidatable: 3 } as const;

export interface Health {
  account: string;
  equity: bigint;
  maintenance: bigint;
  liquidatable: boolean;
  /** Present on contracts with margin calls. */
  status?: number;
  marginCallDeadline?: bigint;
}

/** healthBatch calls in flight during a scan; liquidation transactions prepared (simulated, estimated, signed) at once. */
const SCAN_PARALLEL = 4;
const SEND_PARALLEL = 8;

/**
 * Evaluates the health of the indexed accounts with positions (of this shard) with one healthBatch view
 * call per batch, then liquidates the liquidatable ones, largest shortfall (maintenance − equity) first,
 * through liquidateBatch where the contract has it. On contracts with margin calls it also flags accounts
 * below maintenance that are not liquidatable yet.
 *
 * What is scanned (where the lens has marketSnapshots and --rescan-interval > 0):
 *  - every account when a market's snapshot changed (new price round, σ, breakers, parameters), when the
 *    index was rewound or rebuilt, and at least every --rescan-interval seconds (funding drifts slowly);
 *    the accounts closest to liquidation at their last scan first, and the liquidations found among them
 *    are sent before the rest is scanned;
 *  - otherwise only the accounts whose positions or collateral changed (indexed events) and those below
 *    maintenance at their last scan (a margin call's deadline can pass without any event).
 */
export class LiquidationsJob implements Job {
  readonly name = "liquidations" as const;
  private warnedMarginCalls = false;
  private lastReported = "";
  /** equity / maintenance at each account's last scan (a float, for ordering only). */
  private ratio = new Map<string, number>();
  /** Accounts below maintenance at their last scan: rescanned every iteration. */
  private readonly watch = new Set<string>();
  /** Accounts changed by indexed events and not rescanned yet. */
  private readonly changed = new Set<string>();
  private marketKey: string | null = null;
  private lastFullScanAt = -Infinity;
  private needFull = true;

  async run(ctx: JobContext): Promise<void> {
    const changes = ctx.indexer.takeChanges();
    if (changes.all) this.needFull = true;
    for (const a of changes.accounts) this.changed.add(a);

    const intervalMs = (ctx.settings.rescanIntervalSec ?? 0) * 1000;
    const key = intervalMs > 0 && ctx.caps.marketSnapshots ? await this.marketsKey(ctx) : null;
    const full = this.needFull || key === null || key !== this.marketKey || Date.now() - this.lastFullScanAt >= intervalMs;
    const has = (a: string) => ctx.shard.ownsAccount(a) && (ctx.indexer.marketsOf(a) ?? 0n) !== 0n;
    let accounts: string[];
    if (full) {
      accounts = ctx.indexer.accountsWithPositions().filter((a) => ctx.shard.ownsAccount(a));
      // Riskiest first (never scanned: first of all).
      const r = (a: string) => this.ratio.get(a) ?? -Infinity;
      accounts.sort((x, y) => r(x) - r(y));
    } else {
      accounts = [...new Set([...this.watch, ...this.changed])].filter(has);
    }
    for (const a of this.watch) if (!has(a)) this.watch.delete(a);

    const t0 = process.hrtime.bigint();
    // A full scan goes in waves of SCAN_PARALLEL calls; before each wave after the first it re-reads the
    // market snapshots and stops if they changed (a new round while scanning): the next iteration starts
    // over with the riskiest accounts instead of finishing a scan made at the old prices.
    const waves = full ? chunk(accounts, ctx.settings.batchSize * SCAN_PARALLEL) : [accounts];
    const nextRatio = full ? new Map<string, number>() : this.ratio;
    const inflight: Promise<void>[] = [];
    let liquidatableCount = 0;
    let scanned = 0;
    let interrupted = false;
    try {
      for (let w = 0; w < waves.length; w++) {
        if (waves[w].length === 0 || ctx.stopping()) continue;
        if (w > 0 && key !== null && (await this.marketsKey(ctx)) !== key) {
          interrupted = true;
          break;
        }
        const health = await this.scan(ctx, waves[w]);
        scanned += waves[w].length;
        for (const h of health) this.record(h, nextRatio);
        liquidatableCount += await this.act(ctx, health, inflight);
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      ctx.metrics.accountsScanned.inc({ scan: full ? "full" : "changed" }, scanned);
      if (interrupted) {
        for (const [a, r] of nextRatio) this.ratio.set(a, r);
        this.needFull = true;
      } else if (full) {
        ctx.metrics.healthScanSeconds.observe(seconds);
        this.ratio = nextRatio;
        this.marketKey = key;
        this.lastFullScanAt = Date.now();
        this.needFull = false;
      } else for (const a of [...this.ratio.keys()]) if (!has(a)) this.ratio.delete(a);
      if (!interrupted) this.changed.clear();
      ctx.log.debug(
        { job: this.name, scan: full ? "full" : "changed", accounts: scanned, of: accounts.length, interrupted, liquidatable: liquidatableCount, seconds },
        "health scan",
      );
    } finally {
      await Promise.all(inflight);
    }
  }

  /** What a full scan depends on: every market's snapshot except the funding index; null when unreadable. */
  private async marketsKey(ctx: JobContext): Promise<string | null> {
    try {
      const snaps = (await ctx.contracts.health.getFunction("marketSnapshots").staticCall()) as { priced: boolean; risk: unknown[] }[];
      return snaps.map((x) => `${x.priced}:${[...x.risk].map(String).join(",")}`).join(";");
    } catch (e) {
      if (!isRevert(e)) throw e;
      return null;
    }
  }

  private record(h: Health, ratio: Map<string, number>): void {
    const below = h.liquidatable || (h.status !== undefined && h.status !== STATUS.Healthy) || (h.maintenance > 0n && h.equity < h.maintenance);
    if (below) this.watch.add(h.account);
    else this.watch.delete(h.account);
    // An all-zero summary (market not priceable now) sorts first at the next full scan.
    ratio.set(h.account, h.maintenance === 0n ? (h.equity === 0n ? -Infinity : Infinity) : Number((h.equity * 10_000n) / h.maintenance) / 10_000);
  }

  /** Sends the liquidations (and margin-call flags) a scan found; their settlement is pushed to `inflight`. */
  private async act(ctx: JobContext, health: Health[], inflight: Promise<void>[]): Promise<number> {
    const liquidatable = health
      .filter((h) => h.liquidatable || h.status === STATUS.Liquidatable)
      .map((h) => ({ ...h, shortfall: h.maintenance - h.equity }))
      .sort((x, y) => (y.shortfall > x.shortfall ? 1 : y.shortfall < x.shortfall ? -1 : x.account.localeCompare(y.account)));
    if (liquidatable.length > 0) {
      const summary = `${liquidatable.length}:${liquidatable[0].account}:${liquidatable[liquidatable.length - 1].account}`;
      if (summary !== this.lastReported) {
        ctx.log.info(
          { job: this.name, liquidatable: liquidatable.length, worst: { account: liquidatable[0].account, shortfallD18: liquidatable[0].shortfall.toString() } },
          "liquidatable accounts found",
        );
      }
      this.lastReported = summary; // logged again only when the set changes
    }

    const actions: Action[] = [];
    const ch = ctx.contracts.clearingHouse;
    if (ctx.caps.liquidateBatch && ctx.settings.liquidationBatchSize > 1 && liquidatable.length > 1) {
      for (const part of chunk(liquidatable, ctx.settings.liquidationBatchSize)) actions.push(this.batchAction(ctx, part.map((h) => h.account)));
    } else {
      for (const h of liquidatable) {
        actions.push({ job: this.name, action: "liquidate", target: h.account, contract: ch, method: "liquidate", args: [h.account], liquidation: true });
      }
    }

    // Margin calls: between the hard floor and maintenance, no live margin call (status MarginCallable).
    const callable = health.filter((h) => h.status === STATUS.MarginCallable);
    if (callable.length > 0) {
      if (ctx.caps.flagMarginCall && ctx.caps.summaryStatus) {
        for (const h of callable) {
          actions.push({ job: this.name, action: "flagMarginCall", target: h.account, contract: ch, method: "flagMarginCall", args: [h.account] });
        }
      } else if (!this.warnedMarginCalls) {
        this.warnedMarginCalls = true;
        ctx.log.info({ job: this.name }, "margin calls: flagMarginCall not available on this deployment; skipping that path");
      }
    }
    await this.sendAll(ctx, actions, inflight);
    return liquidatable.length;
  }

  /** One healthBatch call per batch (a few in flight); a batch that reverts is split in halves. */
  async scan(ctx: JobContext, accounts: string[]): Promise<Health[]> {
    const parts = chunk(accounts, ctx.settings.batchSize);
    const results = await mapLimit(parts, SCAN_PARALLEL, (part) => this.healthBatch(ctx, part));
    return results.flat();
  }

  private async healthBatch(ctx: JobContext, accounts: string[]): Promise<Health[]> {
    try {
      ctx.metrics.healthBatchCalls.inc();
      const layout = summaryLayout(ctx.contracts.health);
      const provider = runnerProvider(ctx.contracts.health);
      if (layout && provider) {
        // Hand-rolled ABI: ethers' generic decoder takes ~0.5 ms per AccountSummary, several times the node's
        // time to compute it.
        const to = await ctx.contracts.health.getAddress();
        const ret = await provider(to, encodeHealthBatch(layout.selector, accounts));
        return decodeHealthBatch(ret, accounts, layout);
      }
      const out = (await ctx.contracts.health.getFunction("healthBatch").staticCall(accounts)) as Record<string, unknown>[];
      return out.map((x, i) => {
        return {
          account: accounts[i],
          equity: BigInt(x.equityD18 as bigint),
          maintenance: BigInt(x.maintenanceRequirementD18 as bigint),
          liquidatable: Boolean(x.liquidatable),
          status: x.status !== undefined ? Number(x.status) : undefined,
          marginCallDeadline: x.marginCallDeadline !== undefined ? BigInt(x.marginCallDeadline as bigint) : undefined,
        };
      });
    } catch (e) {
      if (!isRevert(e) || accounts.length === 1) {
        if (accounts.length === 1 && isRevert(e)) {
          ctx.log.warn({ job: this.name, account: accounts[0] }, "healthBatch reverts for this account; skipped");
          return [];
        }
        throw e;
      }
      const mid = Math.ceil(accounts.length / 2);
      return [...(await this.healthBatch(ctx, accounts.slice(0, mid))), ...(await this.healthBatch(ctx, accounts.slice(mid)))];
    }
  }

  private batchAction(ctx: JobContext, list: string[]): Action {
    return {
      job: this.name,
      action: "liquidateBatch",
      target: list.length === 1 ? list[0] : `${list[0]}+${list.length - 1}`,
      contract: ctx.contracts.clearingHouse,
      method: "liquidateBatch",
      args: [list],
      liquidation: true,
      // liquidateBatch skips accounts that are no longer liquidatable: none left means we lost the race.
      nothingToDo: (r) => (BigInt((r as unknown[])[0] as bigint) === 0n ? "NoneLiquidatable" : null),
    };
  }

  /**
   * Simulates and broadcasts up to SEND_PARALLEL actions at once (the nonce manager orders them). A batch
   * whose simulation fails for an unexpected reason is split in halves and retried at once, so one account
   * the contract cannot liquidate now does not hold back the others (the sender backs off only that one).
   */
  private async sendAll(ctx: JobContext, actions: Action[], inflight: Promise<void>[]): Promise<void> {
    const sendOne = async (a: Action): Promise<void> => {
      if (ctx.stopping()) return;
      const r = await ctx.sender.send(a);
      if (isInFlight(r)) inflight.push(ctx.sender.settle(r).then((o) => this.account(ctx, a, o)));
      else if (r.kind === "failed" && r.stage === "simulation" && a.action === "liquidateBatch") {
        const list = a.args[0] as string[];
        if (list.length < 2) return;
        const mid = Math.ceil(list.length / 2);
        ctx.log.info({ job: this.name, accounts: list.length, reason: r.reason }, "liquidateBatch simulation failed: retrying in halves");
        await Promise.all([sendOne(this.batchAction(ctx, list.slice(0, mid))), sendOne(this.batchAction(ctx, list.slice(mid)))]);
      }
    };
    await mapLimit(actions, SEND_PARALLEL, sendOne);
  }

  /** Counts the accounts our mined transactions liquidated; a batch that liquidated none lost its race. */
  private account(ctx: JobContext, a: Action, o: Outcome): void {
    if (o.kind !== "confirmed" || (a.action !== "liquidate" && a.action !== "liquidateBatch")) return;
    const ch = ctx.contracts.clearingHouse;
    let n = 0;
    for (const log of o.receipt.logs) {
      try {
        const ev = ch.interface.parseLog(log);
        if (ev?.name === "Liquidated" && ev.args.liquidator === ctx.sender.address) n++;
      } catch {
        /* another contract's log */
      }
    }
    ctx.metrics.liquidations.inc(n);
    if (n === 0) {
      ctx.metrics.txsRaced.inc({ job: this.name, action: a.action, stage: "tx" });
      ctx.log.info({ job: this.name, action: a.action, hash: o.hash }, "raced: the batch found nothing left to liquidate");
    } else ctx.log.info({ job: this.name, action: a.action, liquidated: n, hash: o.hash }, "liquidated");
  }
}

/** Where the fields the job reads sit in healthBatch's return (an array of static AccountSummary tuples). */
export interface SummaryLayout {
  selector: string;
  /** 32-byte words per summary. */
  words: number;
  equity: number;
  maintenance: number;
  liquidatable: number;
  status: number | null;
  deadline: number | null;
}

const layouts = new WeakMap<object, SummaryLayout | null>();

/** The layout from the contract's ABI; null when a field is missing or not a static word (then ethers decodes). */
export function summaryLayout(health: BaseContract): SummaryLayout | null {
  if (layouts.has(health)) return layouts.get(health)!;
  let out: SummaryLayout | null = null;
  try {
    const f = health.interface.getFunction("healthBatch");
    const comps = f?.outputs?.[0]?.arrayChildren?.components ?? [];
    const staticWord = /^(u?int\d*|bool|address|bytes32)$/;
    const idx = (name: string) => comps.findIndex((c) => c.name === name);
    if (f && comps.length > 0 && comps.every((c) => staticWord.test(c.type))) {
      const [e, m, l, st, dl] = ["equityD18", "maintenanceRequirementD18", "liquidatable", "status", "marginCallDeadline"].map(idx);
      if (e >= 0 && m >= 0 && l >= 0) {
        out = { selector: f.selector, words: comps.length, equity: e, maintenance: m, liquidatable: l, status: st >= 0 ? st : null, deadline: dl >= 0 ? dl : null };
      }
    }
  } catch {
    out = null;
  }
  layouts.set(health, out);
  return out;
}

type CallFn = (to: string, data: string) => Promise<string>;

/** eth_call through the contract's provider: the raw JSON-RPC `send` where there is one (no per-byte
 * re-encoding of a large answer), else `call`. */
function runnerProvider(c: BaseContract): CallFn | null {
  const r = c.runner as { provider?: unknown } | null;
  const p = (r && typeof r === "object" && "provider" in r && r.provider ? r.provider : r) as {
    send?: (method: string, params: unknown[]) => Promise<string>;
    call?: (tx: { to: string; data: string }) => Promise<string>;
  } | null;
  if (!p) return null;
  if (typeof p.send === "function") return (to, data) => p.send!("eth_call", [{ to, data }, "latest"]);
  if (typeof p.call === "function") return (to, data) => p.call!({ to, data });
  return null;
}

/** healthBatch(address[]) calldata. */
export function encodeHealthBatch(selector: string, accounts: string[]): string {
  const parts: string[] = [selector, (32).toString(16).padStart(64, "0"), accounts.length.toString(16).padStart(64, "0")];
  for (const a of accounts) parts.push(a.slice(2).toLowerCase().padStart(64, "0"));
  return parts.join("");
}

const TWO_255 = 1n << 255n;
const TWO_256 = 1n << 256n;

/** Decodes healthBatch's return data (offset, length, then `words` words per summary). */
export function decodeHealthBatch(ret: string, accounts: string[], l: SummaryLayout): Health[] {
  const hex = ret.startsWith("0x") ? ret.slice(2) : ret;
  const word = (i: number) => hex.slice(i * 64, i * 64 + 64);
  const base = Number(BigInt("0x" + word(0))) / 32;
  const n = Number(BigInt("0x" + word(base)));
  if (n !== accounts.length || hex.length < (base + 1 + n * l.words) * 64) {
    throw new Error(`healthBatch returned ${n} summaries for ${accounts.length} accounts`);
  }
  const out: Health[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const w0 = base + 1 + i * l.words;
    const eq = BigInt("0x" + word(w0 + l.equity));
    out[i] = {
      account: accounts[i],
      equity: eq >= TWO_255 ? eq - TWO_256 : eq,
      maintenance: BigInt("0x" + word(w0 + l.maintenance)),
      liquidatable: BigInt("0x" + word(w0 + l.liquidatable)) !== 0n,
      status: l.status === null ? undefined : Number(BigInt("0x" + word(w0 + l.status))),
      marginCallDeadline: l.deadline === null ? undefined : BigInt("0x" + word(w0 + l.deadline)),
    };
  }
  return out;
}
