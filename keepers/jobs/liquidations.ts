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

/**
 * Evaluates the health of every indexed account with positions (of this shard) with one healthBatch view
 * call per batch, then liquidates the liquidatable ones, largest shortfall (maintenance − equity) first,
 * through liquidateBatch where the contract has it. On contracts with margin calls it also flags accounts
 * below maintenance that are not liquidatable yet.
 */
export class LiquidationsJob implements Job {
  readonly name = "liquidations" as const;
  private warnedMarginCalls = false;
  private lastReported = "";

  async run(ctx: JobContext): Promise<void> {
    const accounts = ctx.indexer.accountsWithPositions().filter((a) => ctx.shard.ownsAccount(a));
    if (accounts.length === 0) return;
    const t0 = process.hrtime.bigint();
    const health = await this.scan(ctx, accounts);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    ctx.metrics.healthScanSeconds.observe(seconds);

    const liquidatable = health
      .filter((h) => h.liquidatable || h.status === STATUS.Liquidatable)
      .map((h) => ({ ...h, shortfall: h.maintenance - h.equity }))
      .sort((x, y) => (y.shortfall > x.shortfall ? 1 : y.shortfall < x.shortfall ? -1 : x.account.localeCompare(y.account)));
    ctx.log.debug({ job: this.name, accounts: accounts.length, liquidatable: liquidatable.length, seconds }, "health scan");
    const summary = liquidatable.map((h) => h.account).join(",");
    if (liquidatable.length > 0 && summary !== this.lastReported) {
      ctx.log.info(
        { job: this.name, liquidatable: liquidatable.length, worst: { account: liquidatable[0].account, shortfallD18: liquidatable[0].shortfall.toString() } },
        "liquidatable accounts found",
      );
    }
    this.lastReported = summary; // logged again only when the set changes

    const actions: Action[] = [];
    const ch = ctx.contracts.clearingHouse;
    if (ctx.caps.liquidateBatch && ctx.settings.liquidationBatchSize > 1 && liquidatable.length > 1) {
      for (const part of chunk(liquidatable, ctx.settings.liquidationBatchSize)) {
        const list = part.map((h) => h.account);
        actions.push({
          job: this.name,
          action: "liquidateBatch",
          target: list.join(","),
          contract: ch,
          method: "liquidateBatch",
          args: [list],
          liquidation: true,
          // liquidateBatch skips accounts that are no longer liquidatable: none left means we lost the race.
          nothingToDo: (r) => (BigInt((r as unknown[])[0] as bigint) === 0n ? "NoneLiquidatable" : null),
        });
      }
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
    await this.sendAll(ctx, actions);
  }

  /** One healthBatch call per batch (a few in flight); a batch that reverts is split in halves. */
  async scan(ctx: JobContext, accounts: string[]): Promise<Health[]> {
    const parts = chunk(accounts, ctx.settings.batchSize);
    const results = await mapLimit(parts, 4, (part) => this.healthBatch(ctx, part));
    return results.flat();
  }

  private async healthBatch(ctx: JobContext, accounts: string[]): Promise<Health[]> {
    try {
      ctx.metrics.healthBatchCalls.inc();
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

  private async sendAll(ctx: JobContext, actions: Action[]): Promise<void> {
    const inflight: Promise<void>[] = [];
    for (const a of actions) {
      if (ctx.stopping()) break;
      const r = await ctx.sender.send(a);
      if (isInFlight(r)) inflight.push(ctx.sender.settle(r).then((o) => this.account(ctx, a, o)));
    }
    await Promise.all(inflight);
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
