import { isInFlight, Job, JobContext } from "./types";
import type { Outcome } from "../sender";

/**
 * Pokes each market's volatility (RiskManager.pokeVolatility) when the contract reports new Chainlink
 * rounds to fold in (pendingRounds > 0), and at least every heartbeat so the σ decay advances. The keeper
 * never submits a number: the contract reads the rounds itself. Skipped, with one log line, on
 * deployments without these functions.
 */
export class RiskJob implements Job {
  readonly name = "risk" as const;
  private readonly lastPoke = new Map<number, number>();
  private warned = false;
  private readonly startedAt = Math.floor(Date.now() / 1000);

  async run(ctx: JobContext): Promise<void> {
    if (!ctx.caps.pokeVolatility) {
      if (!this.warned) {
        this.warned = true;
        ctx.log.info({ job: this.name, why: ctx.caps.missing.pokeVolatility }, "risk job: RiskManager.pokeVolatility unavailable; skipping");
      }
      return;
    }
    const now = ctx.head.timestamp;
    const rm = ctx.contracts.riskManager as unknown as {
      getFunction(name: string): { staticCall(...a: unknown[]): Promise<bigint> };
    };
    const markets = ctx.deployment.markets.filter((m) => ctx.shard.ownsMarket(m.marketId));
    const inflight: Promise<Outcome>[] = [];
    for (const m of markets) {
      if (ctx.stopping()) break;
      let pending: bigint | null = null;
      if (ctx.caps.pendingRounds) pending = await rm.getFunction("pendingRounds").staticCall(m.marketId);
      const last = this.lastPoke.get(m.marketId) ?? this.startedAt;
      const heartbeatDue = now - last >= ctx.settings.heartbeatSec;
      // Without pendingRounds every loop would poke: only the heartbeat applies then.
      if (!(pending !== null && pending > 0n) && !heartbeatDue) continue;
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
