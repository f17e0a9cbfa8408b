// One "world" of the scenario engine: a Sigma deployment on the in-process Hardhat chain with its own
// simulated clock. Every transaction goes through SimClock.send, which pins the block timestamp, so a run is
// deterministic: the same seed and path give the same blocks, whatever the wall clock does.
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import type { ContractTransactionReceipt, ContractTransactionResponse, Interface, Log } from "ethers";
import { formatUnits } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import type { SigmaDeployment } from "./deploy";
import type { PricePath } from "./scenario-path";

/** Simulated time: `next` is the timestamp the next block gets; blocks are mined only through this class. */
export class SimClock {
  lastMined: number;
  next: number;

  /**
   * `shared`: other processes (the keeper service) mine blocks on the same node too, at the node's own clock;
   * then every block is stamped no earlier than the chain's latest block, and a timestamp another sender took
   * first is retried. Runs are then no longer deterministic to the block.
   */
  constructor(
    private readonly hre: HardhatRuntimeEnvironment,
    lastMined: number,
    private readonly shared = false,
  ) {
    this.lastMined = lastMined;
    this.next = lastMined + 1;
  }

  /** Shared chain: catches up with blocks others mined. */
  private async catchUp(): Promise<void> {
    if (!this.shared) return;
    const b = (await this.hre.network.provider.send("eth_getBlockByNumber", ["latest", false])) as { timestamp: string };
    const ts = Number(b.timestamp);
    if (ts > this.lastMined) this.lastMined = ts;
    if (this.next <= ts) this.next = ts + 1;
  }

  /** Pins the next block's timestamp (retrying on a shared chain when another sender got there first). */
  private async pin(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await this.catchUp();
      try {
        await this.hre.network.provider.send("evm_setNextBlockTimestamp", [this.next]);
        return;
      } catch (e) {
        if (!this.shared || attempt >= 5) throw e;
      }
    }
  }

  /** Moves the clock forward to `t` (never backward). */
  advanceTo(t: number): void {
    if (t > this.next) this.next = t;
  }

  advance(seconds: number): void {
    this.next += seconds;
  }

  /** Mines an empty block at `next` if time moved since the last block, so views see the current time. */
  async sync(): Promise<void> {
    await this.catchUp();
    if (this.next <= this.lastMined + 1) return;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.hre.network.provider.send("evm_mine", [this.next]);
        break;
      } catch (e) {
        if (!this.shared || attempt >= 5) throw e;
        await this.catchUp();
      }
    }
    this.lastMined = this.next;
    this.next += 1;
  }

  /** Sends a transaction in a block stamped `next` and waits for it. Throws if it reverts. */
  async send(fn: () => Promise<ContractTransactionResponse>): Promise<ContractTransactionReceipt> {
    await this.pin();
    const tx = await fn();
    const rc = await tx.wait();
    if (!rc) throw new Error("transaction dropped");
    this.lastMined = this.next;
    this.next += 1;
    return rc;
  }

  /** Like `send`, but a revert returns the error's message instead of throwing. */
  async trySend(fn: () => Promise<ContractTransactionResponse>): Promise<{ receipt?: ContractTransactionReceipt; error?: string }> {
    try {
      return { receipt: await this.send(fn) };
    } catch (e) {
      return { error: revertName(e) };
    }
  }
}

/** The custom error name of a revert when ethers decoded it, else the message's first line. */
export function revertName(e: unknown): string {
  const err = e as { revert?: { name?: string }; shortMessage?: string; message?: string };
  return err.revert?.name ?? err.shortMessage ?? String(err.message ?? e).split("\n")[0];
}

/** A configuration run by the engine (e.g. Sigma's dynamic margin, or the static-margin baseline). */
export interface ConfigurationSpec {
  id: string;
  label: string;
  description: string;
  /** Fixed σ per market symbol (annualized, 1 = 100%) for a static configuration; absent for dynamic. */
  staticSigma?: Record<string, number>;
}

export interface WorldMarket {
  marketId: number;
  symbol: string;
  path: PricePath;
  /** Last price published on the mock feed (USD), for the deviation threshold. */
  lastPublished: number;
}

export interface World {
  hre: HardhatRuntimeEnvironment;
  config: ConfigurationSpec;
  d: SigmaDeployment;
  clock: SimClock;
  admin: HardhatEthersSigner;
  keeper: HardhatEthersSigner;
  lp: HardhatEthersSigner;
  traders: HardhatEthersSigner[];
  /** Trader addresses, index-aligned with `traders` (the keeper's account list). */
  accounts: string[];
  markets: WorldMarket[];
  /** 10^(18 − token decimals). */
  scale: bigint;
  tokenDecimals: number;
  /** Block at which the path replay started (events are collected from here). */
  startBlock: number;
  /** Chain time of hour 0 of the path. */
  t0: number;
}

/** Parses the logs of `receipt` (or a log list) that `iface` knows. */
export function parseLogs(iface: Interface, logs: readonly Log[]) {
  const out = [];
  for (const l of logs) {
    try {
      const ev = iface.parseLog(l);
      if (ev) out.push(ev);
    } catch {
      /* another contract's log */
    }
  }
  return out;
}

/** D18 → number. */
export const n18 = (x: bigint) => Number(formatUnits(x, 18));
/** Token units → number of tokens. */
export const nTok = (x: bigint, decimals: number) => Number(formatUnits(x, decimals));
/** Rounds for JSON (keeps reports small and stable). */
export const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
