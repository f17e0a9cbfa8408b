import { ZeroAddress } from "ethers";
import { chunk } from "../backoff";
import { isInFlight, Job, JobContext } from "./types";
import type { Action, Outcome } from "../sender";
import type { PendingOrder } from "../indexer";

/**
 * Executes due orders (chain time ≥ commitTime + minDelay) and cancels expired ones (> commitTime + maxAge),
 * oldest first. Each candidate is re-read with order(id) first: an order another keeper already executed
 * or cancelled reads back with account == 0 and is skipped.
 */
export class OrdersJob implements Job {
  readonly name = "orders" as const;
  private params: { minDelay: number; maxAge: number; readAt: number } | null = null;
  /** Orders this keeper executed or cancelled (skipped quietly until their event is indexed). */
  private readonly ours = new Set<string>();
  /** Orders already reported as taken by someone else. */
  private readonly reported = new Set<string>();

  async run(ctx: JobContext): Promise<void> {
    const now = ctx.head.timestamp;
    const all = ctx.indexer.pendingOrders();
    this.prune(all);
    // The event's executableAt is a cheap first filter; the chain's commitTime and minDelay decide.
    const candidates = all.filter((o) => ctx.shard.ownsOrder(o.id) && now >= o.executableAt);
    if (candidates.length === 0) return;
    const { minDelay, maxAge } = await this.loadParams(ctx);
    const ch = ctx.contracts.clearingHouse;

    const onchain: { o: PendingOrder; account: string; commitTime: number }[] = [];
    for (const part of chunk(candidates, 100)) {
      const got = await Promise.all(part.map((o) => ch.order(BigInt(o.id))));
      part.forEach((o, i) => onchain.push({ o, account: got[i].account, commitTime: Number(got[i].commitTime) }));
    }

    const actions: Action[] = [];
    for (const { o, account, commitTime } of onchain) {
      if (account === ZeroAddress) {
        if (!this.ours.has(o.id) && !this.reported.has(o.id)) {
          this.reported.add(o.id);
          ctx.metrics.txsRaced.inc({ job: this.name, action: "order", stage: "precheck" });
          ctx.log.info({ job: this.name, orderId: o.id }, "raced: order already executed or cancelled by another keeper; skipping");
        }
        continue;
      }
      if (now > commitTime + maxAge) actions.push(this.action(ctx, "cancelOrder", o));
      else if (now >= commitTime + minDelay) actions.push(this.action(ctx, "executeOrder", o));
    }
    await this.sendAll(ctx, actions);
  }

  private action(ctx: JobContext, method: "executeOrder" | "cancelOrder", o: PendingOrder): Action {
    return {
      job: this.name,
      action: method === "executeOrder" ? "execute" : "cancel",
      target: `order ${o.id}`,
      contract: ctx.contracts.clearingHouse,
      method,
      args: [BigInt(o.id)],
    };
  }

  private async sendAll(ctx: JobContext, actions: Action[]): Promise<void> {
    const inflight: Promise<Outcome>[] = [];
    for (const a of actions) {
      if (ctx.stopping()) break;
      const orderId = String(a.args[0]);
      let r = await ctx.sender.send(a);
      if (!isInFlight(r) && r.kind === "expired") {
        // The chain says expired (its clock moved on since the head we read): cancel instead.
        r = await ctx.sender.send({ ...a, method: "cancelOrder", action: "cancel" });
      }
      if (isInFlight(r)) {
        this.ours.add(orderId);
        inflight.push(ctx.sender.settle(r));
      } else if (r.kind === "dry-run") this.ours.add(orderId);
      else if (r.kind === "raced") this.reported.add(orderId);
    }
    const outcomes = await Promise.all(inflight);
    for (const o of outcomes) if (o.kind === "raced") ctx.log.debug({ job: this.name, outcome: o }, "order raced on-chain");
  }

  private async loadParams(ctx: JobContext) {
    const fresh = this.params && Date.now() - this.params.readAt < 60_000;
    if (!fresh) {
      const ch = ctx.contracts.clearingHouse;
      const [minDelay, maxAge] = await Promise.all([ch.minDelay(), ch.maxAge()]);
      this.params = { minDelay: Number(minDelay), maxAge: Number(maxAge), readAt: Date.now() };
    }
    return this.params!;
  }

  private prune(pending: PendingOrder[]): void {
    if (this.ours.size === 0 && this.reported.size === 0) return;
    const ids = new Set(pending.map((o) => o.id));
    for (const id of this.ours) if (!ids.has(id)) this.ours.delete(id);
    for (const id of this.reported) if (!ids.has(id)) this.reported.delete(id);
  }
}
