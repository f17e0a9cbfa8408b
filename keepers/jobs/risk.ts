import { Contract } from "ethers";
import { isInFlight, Job, JobContext } from "./types";
import type { Outcome } from "../sender";

type Untyped = { getFunction(name: string): { staticCall(...a: unknown[]): Promise<unknown> } };

const AGGREGATOR_ABI = ["function latestRoundData() view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)"];

/**
 * Keeps each market's σ current with RiskManager.pokeVolatility, which reads the Chainlink rounds itself:
 * the keeper never submits a number.
 *  - at once on every new price round (pendingRounds > 0) or new volatility-feed round;
 *  - otherwise at most once per --heartbeat, when the contract says a poke would change something
 *    (pokeNeeded: σ still decaying, σ getting old); on contracts without pokeNeeded, every heartbeat.
 * Skipped, with one log line, on deployments without pokeVolatility.
 */
export class RiskJob implements Job {
  readonly name = "risk" as const;
  private readonly lastPoke = new Map<number, number>();
  private warned = false;
  private startedAt: number | null = null;
  private readonly lastVolRound = new Map<number, bigint>();
  private readonly feeds = new Map<string, Contract>();
  /** Markets with a poke in flight: not poked again until it settles. */
  private readonly inflight = new Map<number, Promise<Outcome>>();
  /**
   * Markets whose poke folds no round although rounds are pending, and stay pending: the contract's cursor
   * must move past rounds it cannot use (after an admin `setMarketFeeds`, or rounds older than the last one
   * folded). Value: the pendingRounds seen then. The next poke is sent even though it folds nothing.
   */
  private readonly cursorOnly = new Map<number, bigint>();

  /** The volatility feed's latest round id (null without a feed or when it cannot be read). */
  private async volRound(ctx: JobContext, feed: string | undefined): Promise<bigint | null> {
    if (!feed) return null;
    try {
      let c = this.feeds.get(feed);
      if (!c) this.feeds.set(feed, (c = new Contract(feed, AGGREGATOR_ABI, ctx.contracts.riskManager.runner)));
      const r = await c.latestRoundData();
      return BigInt(r[0]);
    } catch {
      return null;
    }
  }

  async run(ctx: JobContext): Promise<void> {
    if (!ctx.caps.pokeVolatility) {
      if (!this.warned) {
        this.warned = true;
        ctx.log.info({ job: this.name, why: ctx.caps.missing.pokeVolatility }, "risk job: RiskManager.pokeVolatility unavailable; skipping");
      }
      return;
    }
    const now = ctx.head.timestamp;
    // Check every market once at start (a poke happens only if needed), then per heartbeat.
    this.startedAt ??= now - ctx.settings.heartbeatSec;
    const rm = ctx.contracts.riskManager as unknown as Untyped;
    const markets = ctx.deployment.markets.filter((m) => ctx.shard.ownsMarket(m.marketId));
    for (const m of markets) {
      if (ctx.stopping()) break;
      if (this.inflight.has(m.marketId)) continue;
      const readPending = async () =>
        ctx.caps.pendingRounds ? BigInt((await rm.getFunction("pendingRounds").staticCall(m.marketId)) as bigint) : 0n;
      const pending = await readPending();
      const cursorOnly = pending > 0n && this.cursorOnly.get(m.marketId) === pending;
      if (!cursorOnly) this.cursorOnly.delete(m.marketId);
      const volRound = await this.volRound(ctx, m.volFeed);
      if (volRound !== null && !this.lastVolRound.has(m.marketId)) this.lastVolRound.set(m.marketId, volRound);
      const newVolRound = volRound !== null && this.lastVolRound.get(m.marketId) !== volRound;
      const heartbeatDue = now - (this.lastPoke.get(m.marketId) ?? this.startedAt) >= ctx.settings.heartbeatSec;
      let due = pending > 0n || newVolRound;
      let why = pending > 0n ? `pendingRounds=${pending}` : "new volatility round";
      if (!due && heartbeatDue) {
        due = ctx.caps.pokeNeeded ? Boolean(await rm.getFunction("pokeNeeded").staticCall(m.marketId)) : true;
        why = "heartbeat";
        if (!due) this.lastPoke.set(m.marketId, now); // nothing to do: check again next heartbeat
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
        // Rounds were pending but another keeper's poke folded them first: a poke now would change nothing.
        // (Unless the rounds are still pending after such a simulation: see `cursorOnly`.)
        nothingToDo: cursorOnly
          ? undefined
          : (folded) => (pending > 0n && !newVolRound && BigInt(folded as bigint) === 0n ? "NoRoundsLeft" : null),
      });
      if (!isInFlight(r) && r.kind === "raced" && r.reason === "NoRoundsLeft") {
        // Raced, or a cursor that only a poke folding nothing can move: the latter leaves the rounds pending.
        const after = await readPending();
        if (after > 0n) {
          this.cursorOnly.set(m.marketId, after);
          ctx.log.info({ job: this.name, market: m.symbol, pendingRounds: String(after) }, "rounds pending that no poke folds: poking to move the cursor");
        }
      }
      if (isInFlight(r)) {
        // Not awaited: the liquidation job runs in the same iteration (its scan picks up the new σ once the
        // poke is mined, as a changed market snapshot).
        const settled = ctx.sender
          .settle(r)
          .then((o) => {
            if (o.kind === "confirmed" || o.kind === "raced") {
              this.lastPoke.set(m.marketId, now);
              if (volRound !== null) this.lastVolRound.set(m.marketId, volRound);
            }
            return o;
          })
          .catch((e): Outcome => {
            ctx.log.warn({ job: this.name, market: m.symbol, err: String((e as Error)?.message ?? e) }, "lost track of a poke");
            return { kind: "failed", stage: "tx", reason: "settle-error" };
          })
          .finally(() => this.inflight.delete(m.marketId));
        this.inflight.set(m.marketId, settled);
      } else if (r.kind === "raced" || r.kind === "dry-run") {
        this.lastPoke.set(m.marketId, now);
        if (volRound !== null) this.lastVolRound.set(m.marketId, volRound);
      }
    }
  }

  /** Resolves when every poke sent so far has settled (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.inflight.values()]);
  }
}
