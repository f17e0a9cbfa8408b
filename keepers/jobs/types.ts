import type { BlockRef, Indexer } from "../indexer";
import type { TxSender, Outcome } from "../sender";
import type { Contracts, Capabilities } from "../chain";
import type { Shard } from "../shard";
import type { Logger } from "../log";
import type { KeeperMetrics } from "../metrics";
import type { Deployment, JobName } from "../config";

export interface JobSettings {
  batchSize: number;
  liquidationBatchSize: number;
  heartbeatSec: number;
  /** Liquidation job: seconds between full health scans without a new price/σ round (0: every iteration). */
  rescanIntervalSec?: number;
}

/** What a job gets on every loop iteration. */
export interface JobContext {
  /** The chain's latest block: "now" is its timestamp (what the contracts compare against). */
  head: BlockRef;
  indexer: Indexer;
  sender: TxSender;
  contracts: Contracts;
  caps: Capabilities;
  shard: Shard;
  deployment: Deployment;
  settings: JobSettings;
  log: Logger;
  metrics: KeeperMetrics;
  stopping: () => boolean;
}

export interface Job {
  readonly name: JobName;
  run(ctx: JobContext): Promise<void>;
}

export function isInFlight(x: unknown): x is { nonce: number } {
  return typeof x === "object" && x !== null && "responses" in x;
}

export type { Outcome };
