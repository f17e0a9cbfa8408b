import { getAddress, Interface } from "ethers";
import type { Logger } from "./log";
import type { KeeperMetrics } from "./metrics";

/** Blocks per log range inside the reorg window (each block's header is read too). */
const DENSE_SPAN = 4;
/** A range that returned more logs than this is halved for the next request. */
const MANY_LOGS = 5_000;

/** A block header, as much of it as the indexer needs. */
export interface BlockRef {
  number: number;
  hash: string;
  parentHash: string;
  timestamp: number;
}

/** A raw log as eth_getLogs returns it (numbers decoded). */
export interface RawLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: number;
  blockHash: string;
  logIndex: number;
  transactionHash?: string;
  removed?: boolean;
}

/** Where the indexer reads the chain: an RPC node in production, an in-memory chain in unit tests. */
export interface ChainSource {
  blockNumber(): Promise<number>;
  block(n: number): Promise<BlockRef | null>;
  /** The protocol's logs (see EventDecoder.filter) in [from, to], any order. */
  logs(from: number, to: number): Promise<RawLog[]>;
}

export interface PendingOrder {
  id: string; // decimal
  account: string;
  marketId: number;
  executableAt: number;
  expiresAt: number;
  block: number;
}

export type ProtocolEvent =
  | { type: "Deposited"; account: string }
  | { type: "PositionModified"; account: string; marketId: number; newSize: bigint }
  | { type: "Liquidated"; account: string; remainingMarkets: bigint }
  | { type: "OrderCommitted"; orderId: bigint; account: string; marketId: number; executableAt: number; expiresAt: number }
  | { type: "OrderExecuted"; orderId: bigint }
  | { type: "OrderCancelled"; orderId: bigint };

const CH_EVENTS = ["PositionModified", "Liquidated", "OrderCommitted", "OrderExecuted", "OrderCancelled"] as const;
const VAULT_EVENTS = ["Deposited"] as const;

/** Decodes the protocol events the index is built from; anything else is ignored. */
export class EventDecoder {
  readonly clearingHouse: string;
  readonly vault: string;
  readonly topics: string[];

  constructor(
    clearingHouse: string,
    vault: string,
    private readonly chIface: Interface,
    private readonly vaultIface: Interface,
  ) {
    this.clearingHouse = getAddress(clearingHouse);
    this.vault = getAddress(vault);
    this.topics = [
      ...CH_EVENTS.map((n) => chIface.getEvent(n)!.topicHash),
      ...VAULT_EVENTS.map((n) => vaultIface.getEvent(n)!.topicHash),
    ];
  }

  /** The eth_getLogs filter (without the block range). */
  filter(): { address: string[]; topics: string[][] } {
    return { address: [this.clearingHouse, this.vault], topics: [this.topics] };
  }

  decode(log: RawLog): ProtocolEvent | null {
    const addr = getAddress(log.address);
    const iface = addr === this.clearingHouse ? this.chIface : addr === this.vault ? this.vaultIface : null;
    if (!iface) return null;
    let parsed;
    try {
      parsed = iface.parseLog({ topics: log.topics, data: log.data });
    } catch {
      return null;
    }
    if (!parsed) return null;
    const a = parsed.args;
    if (addr === this.vault) {
      return parsed.name === "Deposited" ? { type: "Deposited", account: getAddress(a.account) } : null;
    }
    switch (parsed.name) {
      case "PositionModified":
        return { type: "PositionModified", account: getAddress(a.account), marketId: Number(a.marketId), newSize: BigInt(a.newSizeD18) };
      case "Liquidated":
        return { type: "Liquidated", account: getAddress(a.account), remainingMarkets: BigInt(a.remainingMarkets) };
      case "OrderCommitted":
        return {
          type: "OrderCommitted",
          orderId: BigInt(a.orderId),
          account: getAddress(a.account),
          marketId: Number(a.marketId),
          executableAt: Number(a.executableAt),
          expiresAt: Number(a.expiresAt),
        };
      case "OrderExecuted":
        return { type: "OrderExecuted", orderId: BigInt(a.orderId) };
      case "OrderCancelled":
        return { type: "OrderCancelled", orderId: BigInt(a.orderId) };
      default:
        return null;
    }
  }
}

/** How to undo one change to the index (kept for the blocks of the reorg window). */
export type UndoOp =
  | { k: "acct"; a: string; prev: string | null } // account's previous market bitmap (hex), null = absent
  | { k: "ord+"; id: string } // order added
  | { k: "ord-"; o: PendingOrder }; // order removed

/** A processed block of the reorg window: its hash, the logs applied from it and how to undo them. */
export interface RecentBlock {
  n: number;
  h: string;
  logs: number[]; // log indexes applied: with the hash, the (block hash, log index) keys
  undo: UndoOp[];
}

/** The checkpoint file's content. */
export interface IndexSnapshot {
  version: 1;
  chainId: number;
  clearingHouse: string;
  vault: string;
  deploymentBlock: number;
  lastBlock: number;
  lastHash: string | null;
  accounts: [string, string][];
  orders: PendingOrder[];
  recent: RecentBlock[];
  savedAt?: string;
}

export interface IndexerOptions {
  chainId: number;
  deploymentBlock: number;
  confirmations: number;
  logRange: number;
  reorgWindow: number;
  log: Logger;
  metrics?: KeeperMetrics;
}

export interface SyncReport {
  head: number;
  target: number;
  from: number;
  to: number;
  logs: number;
  reorg: { depth: number; rebuilt: boolean } | null;
}

/**
 * Follows the protocol's events in block order from the deployment block, `confirmations` blocks behind
 * the head, and keeps the set of accounts (anyone who deposited or held a position) with their markets,
 * and the pending orders.
 *
 * Reorgs: the hashes of the last `reorgWindow` processed blocks are kept, each with how to undo what it
 * changed. Before going on, the indexer checks that the chain still has its last block; if not it walks
 * back to the newest block the chain still has and undoes everything after it, or rebuilds from the
 * deployment block when the reorg is deeper than the window. Near the head every block's header is read
 * and its parent hash checked, and every log must carry its block's hash; far from the head (catching up)
 * ranges are read in bulk.
 */
export class Indexer {
  private accountsMap = new Map<string, bigint>();
  private ordersMap = new Map<string, PendingOrder>();
  private recent: RecentBlock[] = [];
  private seen = new Set<string>();
  /** Accounts whose collateral or positions changed since the last takeChanges() (bounded by the accounts). */
  private changed = new Set<string>();
  /** Set when the index was rewound, rebuilt, loaded or corrected: every account may have changed. */
  private changedAll = true;
  /** Blocks per eth_getLogs now (adapts to the number of logs returned). */
  private span: number;
  lastBlock: number;
  lastHash: string | null = null;
  /** True when the state changed since the last checkpoint. */
  dirty = false;

  constructor(
    private readonly src: ChainSource,
    readonly decoder: EventDecoder,
    private readonly opts: IndexerOptions,
  ) {
    this.lastBlock = opts.deploymentBlock - 1;
    this.span = opts.logRange;
  }

  // ------------------------------------------------------------------------------------------ queries

  /** Every indexed account. */
  accounts(): string[] {
    return [...this.accountsMap.keys()];
  }

  /** Accounts the index believes have open positions. */
  accountsWithPositions(): string[] {
    const out: string[] = [];
    for (const [a, bits] of this.accountsMap) if (bits !== 0n) out.push(a);
    return out;
  }

  marketsOf(account: string): bigint | undefined {
    return this.accountsMap.get(getAddress(account));
  }

  hasOrder(id: string | bigint): boolean {
    return this.ordersMap.has(String(id));
  }

  /** Pending orders, oldest executable first. */
  pendingOrders(): PendingOrder[] {
    return [...this.ordersMap.values()].sort((x, y) => x.executableAt - y.executableAt || cmpDec(x.id, y.id));
  }

  maxOrderId(): bigint | null {
    let m: bigint | null = null;
    for (const id of this.ordersMap.keys()) if (m === null || BigInt(id) > m) m = BigInt(id);
    return m;
  }

  /**
   * Accounts whose collateral or positions changed (by an applied event) since the previous call, and
   * whether the whole index may have changed (reorg, rebuild, checkpoint load, backstop correction): the
   * liquidation job rescans only these between full scans.
   */
  takeChanges(): { all: boolean; accounts: string[] } {
    const out = { all: this.changedAll, accounts: [...this.changed] };
    this.changed.clear();
    this.changedAll = false;
    return out;
  }

  /** A canonical view of the index (tests compare an incrementally built index with a fresh one). */
  view(): { lastBlock: number; accounts: Record<string, string>; orders: PendingOrder[] } {
    const accounts: Record<string, string> = {};
    for (const a of [...this.accountsMap.keys()].sort()) accounts[a] = "0x" + this.accountsMap.get(a)!.toString(16);
    return { lastBlock: this.lastBlock, accounts, orders: this.pendingOrders() };
  }

  // ------------------------------------------------------------------------------------------ sync

  /**
   * Brings the index up to head − confirmations, in bounded ranges (at most `maxRanges` of them, so that a
   * long catch-up lets the jobs run in between). Returns early (to be called again) when the chain moves
   * under it; throws on RPC failure, leaving the index consistent.
   */
  async sync(shouldStop: () => boolean = () => false, knownHead?: number, maxRanges = Infinity): Promise<SyncReport> {
    const head = knownHead ?? (await this.src.blockNumber());
    const target = head - this.opts.confirmations;
    const report: SyncReport = { head, target, from: this.lastBlock + 1, to: this.lastBlock, logs: 0, reorg: null };
    report.reorg = await this.checkReorg();
    let ranges = 0;
    while (this.lastBlock < target && !shouldStop() && ranges++ < maxRanges) {
      const from = this.lastBlock + 1;
      const windowStart = target - this.opts.reorgWindow + 1;
      const dense = from >= windowStart;
      // Near the head a few blocks at a time, far from it up to --log-range; either way fewer blocks after a
      // range that returned many logs (one eth_getLogs answer is held in memory several times over).
      let to = Math.min(target, from + Math.min(this.span, dense ? DENSE_SPAN : this.opts.logRange) - 1);
      if (from < windowStart && to >= windowStart) to = windowStart - 1;

      let headers: Map<number, BlockRef> | null = null;
      if (dense) {
        const nums = range(from, to);
        const got = await Promise.all(nums.map((n) => this.src.block(n)));
        if (got.some((b) => b === null)) break; // the chain got shorter: reorg check on the next call
        headers = new Map(got.map((b) => [b!.number, b!]));
        if (this.lastHash !== null && headers.get(from)!.parentHash !== this.lastHash) {
          const r = await this.handleReorg();
          report.reorg = mergeReorg(report.reorg, r);
          continue;
        }
        let consistent = true;
        for (let n = from + 1; n <= to; n++) if (headers.get(n)!.parentHash !== headers.get(n - 1)!.hash) consistent = false;
        if (!consistent) break; // read across a reorg in progress: next call
      }

      const logs = (await this.src.logs(from, to)).filter((l) => !l.removed);
      if (logs.length > MANY_LOGS) this.span = Math.max(1, Math.floor((to - from + 1) / 2));
      else if (logs.length < MANY_LOGS / 4) this.span = Math.min(this.opts.logRange, this.span * 2);
      logs.sort((x, y) => x.blockNumber - y.blockNumber || x.logIndex - y.logIndex);
      if (headers && logs.some((l) => headers!.get(l.blockNumber)?.hash !== l.blockHash)) break; // logs from another fork

      let toHash: string;
      if (headers) toHash = headers.get(to)!.hash;
      else {
        const b = await this.src.block(to);
        if (!b) break;
        toHash = b.hash;
      }

      // Verified: apply.
      const byBlock = new Map<number, RawLog[]>();
      for (const l of logs) {
        if (l.blockNumber < from || l.blockNumber > to) continue;
        const list = byBlock.get(l.blockNumber) ?? [];
        list.push(l);
        byBlock.set(l.blockNumber, list);
      }
      const blocks = headers ? range(from, to) : [...byBlock.keys()].sort((a, b) => a - b);
      if (!blocks.includes(to)) blocks.push(to);
      for (const n of blocks) {
        const blockLogs = byBlock.get(n) ?? [];
        const hash = headers ? headers.get(n)!.hash : n === to ? toHash : blockLogs[0].blockHash;
        const entry: RecentBlock = { n, h: hash, logs: [], undo: [] };
        for (const l of blockLogs) {
          const key = `${l.blockHash}:${l.logIndex}`;
          if (this.seen.has(key)) continue; // an RPC returned a log twice
          this.seen.add(key);
          entry.logs.push(l.logIndex);
          const ev = this.decoder.decode(l);
          if (ev) this.apply(ev, n, entry.undo);
        }
        this.recent.push(entry);
        report.logs += blockLogs.length;
      }
      this.lastBlock = to;
      this.lastHash = toHash;
      this.trim();
      this.dirty = true;
      report.to = to;
    }
    this.publish(head);
    return report;
  }

  /** Checks that the chain still has our last block; rewinds if not. */
  private async checkReorg(): Promise<SyncReport["reorg"]> {
    if (this.lastHash === null) return null;
    const b = await this.src.block(this.lastBlock);
    if (b && b.hash === this.lastHash) return null;
    return this.handleReorg();
  }

  private async handleReorg(): Promise<{ depth: number; rebuilt: boolean }> {
    this.opts.metrics?.reorgs.inc();
    const oldLast = this.lastBlock;
    while (this.recent.length > 0) {
      const e = this.recent[this.recent.length - 1];
      const b = await this.src.block(e.n);
      if (b && b.hash === e.h) {
        this.lastBlock = e.n;
        this.lastHash = e.h;
        this.dirty = true;
        this.opts.log.warn({ depth: oldLast - e.n, from: oldLast, to: e.n, ancestor: e.h }, "reorg detected: index rewound");
        return { depth: oldLast - e.n, rebuilt: false };
      }
      this.undo(e);
      this.recent.pop();
    }
    this.opts.log.warn(
      { from: oldLast, deploymentBlock: this.opts.deploymentBlock, window: this.opts.reorgWindow },
      "reorg deeper than the window: rebuilding the index from the deployment block",
    );
    this.opts.metrics?.rebuilds.inc();
    this.reset();
    return { depth: oldLast - this.lastBlock, rebuilt: true };
  }

  /** Forgets everything (the next sync rebuilds from the deployment block). */
  reset(): void {
    this.changed.clear();
    this.changedAll = true;
    this.accountsMap.clear();
    this.ordersMap.clear();
    this.recent = [];
    this.seen.clear();
    this.lastBlock = this.opts.deploymentBlock - 1;
    this.lastHash = null;
    this.dirty = true;
  }

  private apply(ev: ProtocolEvent, block: number, undo: UndoOp[]): void {
    if (ev.type === "Deposited" || ev.type === "PositionModified" || ev.type === "Liquidated") this.changed.add(ev.account);
    switch (ev.type) {
      case "Deposited":
        this.setAccount(ev.account, this.accountsMap.get(ev.account) ?? 0n, undo);
        break;
      case "PositionModified": {
        const prev = this.accountsMap.get(ev.account) ?? 0n;
        const bit = 1n << BigInt(ev.marketId);
        this.setAccount(ev.account, ev.newSize === 0n ? prev & ~bit : prev | bit, undo);
        break;
      }
      case "Liquidated":
        // A partial liquidation leaves positions: the event carries the account's remaining market bitmap.
        this.setAccount(ev.account, ev.remainingMarkets, undo);
        break;
      case "OrderCommitted":
        this.addOrder(
          { id: ev.orderId.toString(), account: ev.account, marketId: ev.marketId, executableAt: ev.executableAt, expiresAt: ev.expiresAt, block },
          undo,
        );
        break;
      case "OrderExecuted":
      case "OrderCancelled":
        this.removeOrder(ev.orderId.toString(), undo);
        break;
    }
  }

  private setAccount(account: string, bits: bigint, undo: UndoOp[]): void {
    const had = this.accountsMap.has(account);
    const prev = this.accountsMap.get(account);
    if (had && prev === bits) return;
    undo.push({ k: "acct", a: account, prev: had ? hex(prev!) : null });
    this.accountsMap.set(account, bits);
  }

  private addOrder(o: PendingOrder, undo: UndoOp[]): void {
    if (this.ordersMap.has(o.id)) return;
    undo.push({ k: "ord+", id: o.id });
    this.ordersMap.set(o.id, o);
  }

  private removeOrder(id: string, undo: UndoOp[]): void {
    const o = this.ordersMap.get(id);
    if (!o) return;
    undo.push({ k: "ord-", o });
    this.ordersMap.delete(id);
  }

  private undo(e: RecentBlock): void {
    // Undone deposits leave no undo op (collateral is not indexed): treat every account as changed.
    if (e.logs.length > 0 || e.undo.length > 0) this.changedAll = true;
    for (let i = e.undo.length - 1; i >= 0; i--) {
      const op = e.undo[i];
      if (op.k === "acct") {
        if (op.prev === null) this.accountsMap.delete(op.a);
        else this.accountsMap.set(op.a, BigInt(op.prev));
      } else if (op.k === "ord+") this.ordersMap.delete(op.id);
      else this.ordersMap.set(op.o.id, op.o);
    }
    for (const li of e.logs) this.seen.delete(`${e.h}:${li}`);
    this.dirty = true;
  }

  private trim(): void {
    const keepFrom = this.lastBlock - this.opts.reorgWindow;
    while (this.recent.length > 1 && this.recent[0].n <= keepFrom) {
      const e = this.recent.shift()!;
      for (const li of e.logs) this.seen.delete(`${e.h}:${li}`);
    }
  }

  // ------------------------------------------------------------------------------------------ backstop

  /**
   * Applies on-chain state read at exactly `atBlock` (the last indexed block) where it disagrees with the
   * index: a missed event must not hide work. The corrections are undone like events if that block is
   * reorged away. Ignored when the index has moved since the read.
   */
  applyCorrections(
    atBlock: number,
    atHash: string | null,
    c: { accounts?: Map<string, bigint>; addOrders?: PendingOrder[]; removeOrders?: string[] },
  ): number {
    if (atBlock !== this.lastBlock || atHash !== this.lastHash || this.recent.length === 0) return 0;
    const entry = this.recent[this.recent.length - 1];
    const before = entry.undo.length;
    for (const [a, bits] of c.accounts ?? []) {
      const acct = getAddress(a);
      const cur = this.accountsMap.get(acct);
      if (cur !== bits && !(cur === undefined && bits === 0n)) this.setAccount(acct, bits, entry.undo);
    }
    for (const o of c.addOrders ?? []) this.addOrder(o, entry.undo);
    for (const id of c.removeOrders ?? []) this.removeOrder(id, entry.undo);
    const n = entry.undo.length - before;
    if (n > 0) {
      this.changedAll = true;
      this.dirty = true;
      this.publish();
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------ checkpoint

  toSnapshot(identity: { clearingHouse: string; vault: string }): IndexSnapshot {
    return {
      version: 1,
      chainId: this.opts.chainId,
      clearingHouse: identity.clearingHouse,
      vault: identity.vault,
      deploymentBlock: this.opts.deploymentBlock,
      lastBlock: this.lastBlock,
      lastHash: this.lastHash,
      accounts: [...this.accountsMap].map(([a, b]) => [a, hex(b)]),
      orders: [...this.ordersMap.values()],
      recent: this.recent,
      savedAt: new Date().toISOString(),
    };
  }

  /** Loads a snapshot; returns why it was refused (then the index is left empty), or null. */
  loadSnapshot(s: IndexSnapshot, identity: { clearingHouse: string; vault: string }): string | null {
    if (s.version !== 1) return `unknown checkpoint version ${s.version}`;
    if (s.chainId !== this.opts.chainId) return `checkpoint is for chain ${s.chainId}, not ${this.opts.chainId}`;
    if (getAddress(s.clearingHouse) !== getAddress(identity.clearingHouse) || getAddress(s.vault) !== getAddress(identity.vault))
      return "checkpoint is for another deployment (contract addresses differ)";
    if (s.deploymentBlock !== this.opts.deploymentBlock) return "checkpoint is for another deployment block";
    this.reset();
    for (const [a, b] of s.accounts) this.accountsMap.set(getAddress(a), BigInt(b));
    for (const o of s.orders) this.ordersMap.set(o.id, o);
    this.recent = s.recent.map((e) => ({ ...e, logs: e.logs ?? [], undo: e.undo ?? [] }));
    for (const e of this.recent) for (const li of e.logs) this.seen.add(`${e.h}:${li}`);
    this.lastBlock = s.lastBlock;
    this.lastHash = s.lastHash;
    this.dirty = false;
    this.publish();
    return null;
  }

  private publish(head?: number): void {
    const m = this.opts.metrics;
    if (!m) return;
    m.accountsIndexed.set(this.accountsMap.size);
    m.accountsActive.set(this.accountsWithPositions().length);
    m.pendingOrders.set(this.ordersMap.size);
    m.lastProcessedBlock.set(this.lastBlock);
    if (head !== undefined) {
      m.headBlock.set(head);
      m.blocksBehind.set(Math.max(0, head - this.lastBlock));
    }
  }
}

function mergeReorg(a: SyncReport["reorg"], b: { depth: number; rebuilt: boolean }): SyncReport["reorg"] {
  if (!a) return b;
  return { depth: Math.max(a.depth, b.depth), rebuilt: a.rebuilt || b.rebuilt };
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let n = from; n <= to; n++) out.push(n);
  return out;
}

function hex(b: bigint): string {
  return "0x" + b.toString(16);
}

function cmpDec(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
