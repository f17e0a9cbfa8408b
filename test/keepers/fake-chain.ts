import { getAddress, hexlify, Interface, keccak256, randomBytes, toBeHex, zeroPadValue } from "ethers";
import type { BlockRef, ChainSource, RawLog } from "../../keepers/indexer";
import { ClearingHouse__factory, Vault__factory } from "../../typechain-types";

export const CH = getAddress("0x00000000000000000000000000000000000000c1");
export const VAULT = getAddress("0x00000000000000000000000000000000000000a1");
export const chIface: Interface = ClearingHouse__factory.createInterface() as unknown as Interface;
export const vaultIface: Interface = Vault__factory.createInterface() as unknown as Interface;

export type Ev =
  | { t: "deposit"; a: string }
  | { t: "pos"; a: string; m: number; size: bigint }
  | { t: "liq"; a: string; remaining?: bigint }
  | { t: "commit"; id: bigint; a: string; m?: number; at?: number }
  | { t: "exec"; id: bigint; a: string }
  | { t: "cancel"; id: bigint; a: string }
  | { t: "noise" }; // a log the indexer ignores (another contract)

interface FakeBlock extends BlockRef {
  logs: RawLog[];
}

export function addr(i: number): string {
  return getAddress(zeroPadValue(toBeHex(0x1000 + i), 20));
}

/** Encodes a protocol event the way the contracts emit it (the event ABI is the contracts' own). */
export function encode(e: Ev): { address: string; topics: string[]; data: string } {
  const enc = (iface: Interface, name: string, values: unknown[], address: string) => {
    const f = iface.getEvent(name)!;
    const { data, topics } = iface.encodeEventLog(f, values);
    return { address, topics, data };
  };
  const valuesFor = (name: string, byName: Record<string, unknown>) =>
    chIface.getEvent(name)!.inputs.map((p) => (p.name in byName ? byName[p.name] : p.type.startsWith("address") ? addr(0) : p.type === "bool" ? false : p.type === "bytes" ? "0x" : 0n));
  switch (e.t) {
    case "deposit":
      return enc(vaultIface, "Deposited", [e.a, e.a, 1000n], VAULT);
    case "pos":
      return enc(chIface, "PositionModified", valuesFor("PositionModified", { account: e.a, marketId: BigInt(e.m), sizeDeltaD18: e.size, newSizeD18: e.size, fillPriceD18: 1n }), CH);
    case "liq":
      return enc(chIface, "Liquidated", valuesFor("Liquidated", { account: e.a, liquidator: addr(999), remainingMarkets: e.remaining ?? 0n }), CH);
    case "commit":
      return enc(
        chIface,
        "OrderCommitted",
        valuesFor("OrderCommitted", { orderId: e.id, account: e.a, marketId: BigInt(e.m ?? 0), sizeDeltaD18: 1n, executableAt: BigInt(e.at ?? 100), expiresAt: BigInt((e.at ?? 100) + 600) }),
        CH,
      );
    case "exec":
      return enc(chIface, "OrderExecuted", valuesFor("OrderExecuted", { orderId: e.id, account: e.a, keeper: addr(999) }), CH);
    case "cancel":
      return enc(chIface, "OrderCancelled", valuesFor("OrderCancelled", { orderId: e.id, account: e.a, by: addr(999) }), CH);
    case "noise":
      return { address: addr(777), topics: [keccak256("0x01")], data: "0x" };
  }
}

/** An in-memory chain with reorgs, counting the calls the indexer makes. */
export class FakeChain implements ChainSource {
  blocks: FakeBlock[] = [];
  calls = { blockNumber: 0, block: 0, logs: 0 };
  maxLogSpan = 0;
  /** Return every log twice (a misbehaving RPC). */
  duplicateLogs = false;
  /** Fail the next N calls (RPC outage). */
  failNext = 0;

  constructor(genesisBlocks = 1) {
    for (let i = 0; i < genesisBlocks; i++) this.mine([]);
  }

  get head(): number {
    return this.blocks.length - 1;
  }

  mine(events: Ev[]): number {
    const number = this.blocks.length;
    const parentHash = number === 0 ? "0x" + "00".repeat(32) : this.blocks[number - 1].hash;
    const hash = keccak256(hexlify(randomBytes(32)));
    const logs: RawLog[] = events.map((e, i) => ({ ...encode(e), blockNumber: number, blockHash: hash, logIndex: i, transactionHash: hash }));
    this.blocks.push({ number, hash, parentHash, timestamp: 1000 + number, logs });
    return number;
  }

  /** Drops the last `depth` blocks and mines `replacement` blocks in their place. */
  reorg(depth: number, replacement: Ev[][]): void {
    this.blocks.splice(this.blocks.length - depth, depth);
    for (const evs of replacement) this.mine(evs);
  }

  private maybeFail() {
    if (this.failNext > 0) {
      this.failNext--;
      throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    }
  }

  async blockNumber(): Promise<number> {
    this.calls.blockNumber++;
    this.maybeFail();
    return this.head;
  }

  async block(n: number): Promise<BlockRef | null> {
    this.calls.block++;
    this.maybeFail();
    const b = this.blocks[n];
    return b ? { number: b.number, hash: b.hash, parentHash: b.parentHash, timestamp: b.timestamp } : null;
  }

  async logs(from: number, to: number): Promise<RawLog[]> {
    this.calls.logs++;
    this.maybeFail();
    this.maxLogSpan = Math.max(this.maxLogSpan, to - from + 1);
    const out: RawLog[] = [];
    for (let n = from; n <= Math.min(to, this.head); n++) {
      for (const l of this.blocks[n].logs) {
        if (l.address !== CH && l.address !== VAULT) continue;
        out.push(l);
        if (this.duplicateLogs) out.push({ ...l });
      }
    }
    return out.reverse(); // any order: the indexer sorts
  }
}
