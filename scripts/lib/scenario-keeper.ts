// The scenario engine's keeper step. The engine calls `tick` after every batch of oracle rounds and after
// traders act; a KeeperStep does what the keeper service's jobs do on a new block: poke σ (risk job), execute
// due orders (orders job), liquidate the liquidatable accounts largest shortfall first through liquidateBatch
// and flag margin calls (liquidations job). InProcessKeeper runs those jobs inside this process against the
// world's contracts; a later implementation can drive the real keeper service over RPC instead.
import { ZeroAddress } from "ethers";
import { MockV3Aggregator__factory } from "../../typechain-types";
import { parseLogs, revertName, World } from "./scenario-world";

/** IClearingHouse.AccountStatus */
export const STATUS = { Healthy: 0, MarginCallable: 1, MarginCalled: 2, Liquidatable: 3 } as const;
export const STATUS_NAME = ["healthy", "margin-callable", "margin-called", "liquidatable"] as const;
/** ClearingHouse order flags. */
const ORDER_CONDITIONAL = 1;
const ORDER_TRIGGER_ABOVE = 2;

export interface Health {
  account: string;
  collateral: bigint;
  equityD18: bigint;
  initialD18: bigint;
  maintenanceD18: bigint;
  status: number;
  marginCallDeadline: bigint;
}

export interface OrderOutcome {
  orderId: bigint;
  account: string;
  filled: boolean;
  /** Custom error name when cancelled at execution, "expired" when cancelled after maxAge. */
  reason?: string;
  fillPriceD18?: bigint;
}

/** What one keeper tick did, and the accounts' health after it. */
export interface TickReport {
  pokes: number;
  orders: OrderOutcome[];
  liquidationTxs: number;
  accountsLiquidated: number;
  marginCallsFlagged: number;
  /** Times the keeper waited a liquidation window because of the per-market rate limit. */
  rateLimitWaits: number;
  errors: string[];
  /** Health of every account after the tick (the last scan). */
  health: Health[];
  /** Accounts still liquidatable after the tick (should be 0). */
  liquidatableAfter: number;
}

/** The keeper step the engine calls; implementations keep their own state (cursors, last rounds seen). */
export interface KeeperStep {
  readonly name: string;
  /** The keeper's account when it is not the engine's second signer (a keeper process with its own key). */
  readonly address?: string;
  tick(w: World): Promise<TickReport>;
  /** Called right after the deployment, before the population is funded (a keeper process starts there). */
  deployed?(d: World["d"]): void;
  /** Called once the configuration's run is over (a keeper process may be stopped there). */
  finish?(w: World): Promise<void>;
}

export interface InProcessKeeperOptions {
  /** Re-poke a market without new rounds when the contract says it would change something, at most this often. */
  heartbeatSec?: number;
  /** Accounts per liquidateBatch call. */
  batchSize?: number;
  /** Upper bound on rate-limit waits per tick. */
  maxWaits?: number;
}

/** Health of `accounts` with one SigmaLens.healthBatch view call per chunk (what the liquidation job does). */
export async function scanHealth(w: World, accounts: string[], chunk = 200): Promise<Health[]> {
  const out: Health[] = [];
  for (let i = 0; i < accounts.length; i += chunk) {
    const part = accounts.slice(i, i + chunk);
    const res = await w.d.lens.healthBatch(part);
    res.forEach((s, k) =>
      out.push({
        account: part[k],
        collateral: s.collateral,
        equityD18: s.equityD18,
        initialD18: s.initialRequirementD18,
        maintenanceD18: s.maintenanceRequirementD18,
        status: Number(s.status),
        marginCallDeadline: s.marginCallDeadline,
      }),
    );
  }
  return out;
}

export class InProcessKeeper implements KeeperStep {
  readonly name = "in-process";
  private readonly lastVolRound = new Map<number, bigint>();
  private readonly lastPoke = new Map<number, number>();
  private orderCursor = 0n;
  private readonly pending = new Set<bigint>();
  private readonly orderAccount = new Map<bigint, string>();
  private readonly known = new Map<string, Health>();
  private lastScan?: { block: number; time: number; health: Health[] };
  private readonly heartbeatSec: number;
  private readonly batchSize: number;
  private readonly maxWaits: number;

  constructor(opts: InProcessKeeperOptions = {}) {
    this.heartbeatSec = opts.heartbeatSec ?? 1800;
    this.batchSize = opts.batchSize ?? 50;
    this.maxWaits = opts.maxWaits ?? 60;
  }

  async tick(w: World): Promise<TickReport> {
    await w.clock.sync();
    const r: TickReport = {
      pokes: 0,
      orders: [],
      liquidationTxs: 0,
      accountsLiquidated: 0,
      marginCallsFlagged: 0,
      rateLimitWaits: 0,
      errors: [],
      health: [],
      liquidatableAfter: 0,
    };
    await this.risk(w, r);
    // Event-driven like the service: with no new event, no due deadline and no order waiting since the last
    // scan, nothing but a little funding can have moved, so the last scan stands until the heartbeat.
    if (r.pokes === 0 && this.pending.size === 0 && this.lastScan && (await this.quietSince(w, this.lastScan))) {
      r.health = this.lastScan.health;
      return r;
    }
    await this.orders(w, r);
    // Liquidate, then flag margin calls; flagging takes blocks too, so re-check until nothing is liquidatable.
    let health = await this.liquidate(w, r);
    for (let pass = 0; pass < 4; pass++) {
      const callable = health.filter((h) => h.status === STATUS.MarginCallable);
      for (const h of callable) {
        const res = await w.clock.trySend(() => w.d.clearingHouse.connect(w.keeper).flagMarginCall(h.account));
        if (res.receipt) r.marginCallsFlagged++;
      }
      if (callable.length > 0) health = await this.scan(w);
      if (!health.some((h) => h.status === STATUS.Liquidatable)) break;
      health = await this.liquidate(w, r);
    }
    r.health = health;
    r.liquidatableAfter = health.filter((h) => h.status === STATUS.Liquidatable).length;
    this.lastScan = { block: await w.hre.ethers.provider.getBlockNumber(), time: w.clock.lastMined, health };
    return r;
  }

  /** Accounts worth a health check: those with positions (or not seen yet) and those with an order pending.
   * A flat account can be neither margin-called nor liquidated. */
  private watched(w: World): string[] {
    const withOrders = new Set([...this.pending].map((id) => this.orderAccount.get(id)?.toLowerCase()));
    return w.accounts.filter((a) => {
      const h = this.known.get(a.toLowerCase());
      // healthBatch answers all zeros for an account it cannot price (e.g. a stale feed): keep watching it.
      const flat = h !== undefined && h.maintenanceD18 === 0n && h.collateral > 0n;
      return !flat || withOrders.has(a.toLowerCase());
    });
  }

  /** Drops a finished order; its account's health is unknown again (it may have a position now). */
  private forget(id: bigint): void {
    const a = this.orderAccount.get(id);
    if (a) this.known.delete(a.toLowerCase());
    this.orderAccount.delete(id);
    this.pending.delete(id);
  }

  private async scan(w: World): Promise<Health[]> {
    const health = await scanHealth(w, this.watched(w));
    for (const h of health) this.known.set(h.account.toLowerCase(), h);
    return health;
  }

  /** True when none of the world's contracts or feeds logged anything since `last`, no margin-call deadline
   * fell in between and the heartbeat has not elapsed. */
  private async quietSince(w: World, last: { block: number; time: number; health: Health[] }): Promise<boolean> {
    const now = w.clock.lastMined;
    if (now - last.time >= this.heartbeatSec) return false;
    for (const h of last.health) {
      const d = Number(h.marginCallDeadline);
      if (d > 0 && d > last.time - 1 && d <= now + 1) return false;
    }
    const latest = await w.hre.ethers.provider.getBlockNumber();
    if (latest <= last.block) return true;
    const address = [
      w.d.clearingHouse.target,
      w.d.vault.target,
      w.d.pool.target,
      w.d.riskManager.target,
      ...w.d.priceFeeds.map((f) => f.target),
      ...w.d.volFeeds.map((f) => f.target),
    ] as string[];
    const logs = await w.hre.ethers.provider.send("eth_getLogs", [{ fromBlock: "0x" + (last.block + 1).toString(16), toBlock: "latest", address }]);
    return (logs as unknown[]).length === 0;
  }

  /** Risk job: poke σ on every new price or volatility round, and on a heartbeat when a poke would matter. */
  private async risk(w: World, r: TickReport): Promise<void> {
    const rm = w.d.riskManager.connect(w.keeper);
    for (const m of w.markets) {
      const volFeed = MockV3Aggregator__factory.connect(w.d.markets[m.marketId].volFeed, w.keeper);
      const volRound = (await volFeed.latestRoundData())[0];
      let pending = await rm.pendingRounds(m.marketId);
      const newVol = this.lastVolRound.get(m.marketId) !== volRound;
      const heartbeat = w.clock.next - (this.lastPoke.get(m.marketId) ?? 0) >= this.heartbeatSec;
      if (!(pending > 0n || newVol || (heartbeat && (await rm.pokeNeeded(m.marketId))))) continue;
      // A poke folds at most MAX_ROUNDS_PER_POKE rounds: poke again while rounds remain.
      for (let i = 0; i < 8; i++) {
        const res = await w.clock.trySend(() => rm.pokeVolatility(m.marketId));
        if (res.error) {
          r.errors.push(`pokeVolatility(${m.symbol}): ${res.error}`);
          break;
        }
        r.pokes++;
        pending = await rm.pendingRounds(m.marketId);
        if (pending === 0n) break;
      }
      this.lastVolRound.set(m.marketId, volRound);
      this.lastPoke.set(m.marketId, w.clock.lastMined);
    }
  }

  /** Orders job: executes every due order (conditional ones once their trigger is met), cancels expired ones
   * (refunding the trader). */
  private async orders(w: World, r: TickReport): Promise<void> {
    const ch = w.d.clearingHouse.connect(w.keeper);
    const next = await ch.nextOrderId();
    for (; this.orderCursor < next; this.orderCursor++) this.pending.add(this.orderCursor);
    if (this.pending.size === 0) return;
    const minDelay = Number(await ch.minDelay());
    const maxAge = Number(await ch.maxAge());
    for (const id of [...this.pending].sort((a, b) => (a < b ? -1 : 1))) {
      const o = await ch.order(id);
      if (o.account === ZeroAddress) {
        this.forget(id); // executed or cancelled by someone else
        continue;
      }
      this.orderAccount.set(id, o.account);
      const conditional = (Number(o.flags) & ORDER_CONDITIONAL) !== 0;
      const trigger = conditional ? await ch.orderTrigger(id) : undefined;
      const commit = Number(o.commitTime);
      const expiresAt = trigger ? Number(trigger.expiresAt) : commit + maxAge;
      const at = w.clock.next;
      if (at > expiresAt) {
        const res = await w.clock.trySend(() => ch.cancelOrder(id));
        if (res.receipt) r.orders.push({ orderId: id, account: o.account, filled: false, reason: "expired" });
        this.forget(id);
        continue;
      }
      if (at < commit + minDelay) continue;
      if (trigger) {
        let price: bigint;
        try {
          price = await w.d.riskManager.priceD18(o.marketId);
        } catch {
          continue; // no usable price: the order waits
        }
        const above = (Number(o.flags) & ORDER_TRIGGER_ABOVE) !== 0;
        if (above ? price < trigger.triggerPriceD18 : price > trigger.triggerPriceD18) continue;
      }
      const res = await w.clock.trySend(() => ch.executeOrder(id));
      if (!res.receipt) {
        // An unusable oracle reverts the execution (the order waits); anything else is reported.
        r.errors.push(`executeOrder(${id}): ${res.error}`);
        continue;
      }
      this.forget(id);
      for (const ev of parseLogs(ch.interface, res.receipt.logs)) {
        if (ev.name === "OrderExecuted") {
          r.orders.push({ orderId: id, account: o.account, filled: true, fillPriceD18: ev.args.fillPriceD18 });
        } else if (ev.name === "OrderCancelled") {
          const reason = ev.args.reason as string;
          let name = "cancelled";
          try {
            name = ch.interface.parseError(reason)?.name ?? name;
          } catch {
            /* not one of ours */
          }
          r.orders.push({ orderId: id, account: o.account, filled: false, reason: name });
        }
      }
    }
  }

  /** Liquidation job: liquidateBatch over the liquidatable accounts, largest shortfall first; when the
   * per-market rate limit stops progress, wait one liquidation window and go on. */
  private async liquidate(w: World, r: TickReport): Promise<Health[]> {
    const ch = w.d.clearingHouse.connect(w.keeper);
    let health = await this.scan(w);
    for (let guard = 0; guard < this.maxWaits + 10; guard++) {
      const todo = health
        .filter((h) => h.status === STATUS.Liquidatable)
        .map((h) => ({ account: h.account, shortfall: h.maintenanceD18 - h.equityD18 }))
        .sort((a, b) => (b.shortfall > a.shortfall ? 1 : b.shortfall < a.shortfall ? -1 : a.account.localeCompare(b.account)));
      if (todo.length === 0) return health;
      let progress = 0;
      for (let i = 0; i < todo.length; i += this.batchSize) {
        const list = todo.slice(i, i + this.batchSize).map((x) => x.account);
        const res = await w.clock.trySend(() => ch.liquidateBatch(list));
        if (!res.receipt) {
          r.errors.push(`liquidateBatch: ${res.error}`);
          return health;
        }
        r.liquidationTxs++;
        const n = parseLogs(ch.interface, res.receipt.logs).filter((e) => e.name === "Liquidated").length;
        progress += n;
        r.accountsLiquidated += n;
      }
      if (progress === 0) {
        // Every market these accounts need has used its liquidation allowance: wait for the next window.
        if (r.rateLimitWaits >= this.maxWaits) return health;
        r.rateLimitWaits++;
        const [windowSec] = await w.d.riskManager.liquidationLimit(0);
        w.clock.advance(Number(windowSec));
        await w.clock.sync();
      }
      health = await this.scan(w);
    }
    return health;
  }
}
