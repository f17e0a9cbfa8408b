import { isInFlight, Job, JobContext } from "./types";
import type { Outcome } from "../sender";

type Untyped = { getFunction(name: string): { staticCall(...a: unknown[]): Promise<unknown> } };

/**
 * Keeps each market's σ current with RiskManager.pokeVolatility, which reads the Chainlink rounds itself:
 * the keeper never submits a number. A market is poked when the contract says a poke would change
 * something (pokeNeeded: new price or volatility rounds, σ still decaying, σ getting old). On contracts
 * without pokeNeeded it is poked when pendingRounds > 0, and at least every --heartbeat seconds.
 * Skipped, with one log line, on deployments without pokeVolatility.
 */
export class RiskJob implements Job {
  readonly name = "risk" as const;
  private readonly lastPoke = new Map<number, number>();
  private warned = false;
  private startedAt: number | null = null;

  async run(ctx: JobContext): Promise<void> {
    if (!ctx.caps.pokeVolatility) {
      if (!this.warned) {
        this.warned = true;
        ctx.log.info({ job: this.name, why: ctx.caps.missing.pokeVolatility }, "risk job: RiskManager.pokeVolatility unavailable; skipping");
      }
      return;
    }
    const now = ctx.head.timestamp;
    this.startedAt ??= now;
    const rm = ctx.contracts.riskManager as unknown as Untyped;
    const markets = ctx.deployment.markets.filter((m) => ctx.shard.ownsMarket(m.marketId));
    const inflight: Promise<Outcome>[] = [];
    for (const m of markets) {
      if (ctx.stopping()) break;
      let due: boolean;
      let why: string;
      if (ctx.caps.pokeNeeded) {
        due = Boolean(await rm.getFunction("pokeNeeded").staticCall(m.marketId));
        why = "pokeNeeded";
      } else {
        const pending = ctx.caps.pendingRounds ? BigInt((await rm.getFunction("pendingRounds").staticCall(m.marketId)) as bigint) : 0n;
        const heartbeatDue = now - (this.lastPoke.get(m.marketId) ?? this.startedAt) >= ctx.settings.heartbeatSec;
        due = pending > 0n || heartbeatDue;
        why = pending > 0n ? `pendingRounds=${pending}` : "heartbeat";
      }
      if (!due) continue;
      ctx.log.debug({ job: this.name, market: m.symbol, why }, "poke due");
      const r = await ctx.sender.send({
        job: this.name,
        action: "pokeVolatility",
        target: m.symbol,
        contract: ctx.contracts.riskManager,
        method: "pokeVolatility",
        args: [m.marketId],
      });
      if (isInFlight(r)) {
        inflight.push(
          ctx.sender.settle(r).then((o) => {
            if (o.kind === "confirmed" || o.kind === "raced") this.lastPoke.set(m.marketId, now);
            return o;
          }),
        );
      } else if (r.kind === "raced" || r.kind === "dry-run") this.lastPoke.set(m.marketId, now);
    }
    await Promise.all(inflight);
  }
}
