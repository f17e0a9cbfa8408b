import * as http from "http";
import { AddressInfo } from "net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The keeper's Prometheus metrics, in a registry of its own (several keepers can live in one process in tests). */
export class KeeperMetrics {
  readonly registry = new Registry();
  readonly blocksBehind = new Gauge({ name: "keeper_blocks_behind_head", help: "Chain head minus the last indexed block", registers: [this.registry] });
  readonly lastProcessedBlock = new Gauge({ name: "keeper_last_processed_block", help: "Last block the indexer processed", registers: [this.registry] });
  readonly headBlock = new Gauge({ name: "keeper_head_block", help: "Chain head seen by the keeper", registers: [this.registry] });
  readonly accountsIndexed = new Gauge({ name: "keeper_accounts_indexed", help: "Accounts in the index (deposited or had a position)", registers: [this.registry] });
  readonly accountsActive = new Gauge({ name: "keeper_accounts_with_positions", help: "Indexed accounts with open positions", registers: [this.registry] });
  readonly pendingOrders = new Gauge({ name: "keeper_pending_orders", help: "Pending orders in the index", registers: [this.registry] });
  readonly healthScanSeconds = new Histogram({
    name: "keeper_health_scan_seconds",
    help: "Time of a full health scan (every account of this shard, liquidations found in it sent)",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly accountsScanned = new Counter({
    name: "keeper_accounts_scanned_total",
    help: "Account health evaluations by the liquidation job (scan=full: every account; scan=changed: accounts changed by events or below maintenance)",
    labelNames: ["scan"],
    registers: [this.registry],
  });
  readonly healthBatchCalls = new Counter({ name: "keeper_health_batch_calls_total", help: "healthBatch view calls", registers: [this.registry] });
  readonly simulations = new Counter({
    name: "keeper_simulations_total",
    help: "Simulations (eth_call) before sending, by outcome: ok, raced, wait, expired, failed",
    labelNames: ["job", "action", "outcome"],
    registers: [this.registry],
  });
  readonly txsSent = new Counter({ name: "keeper_txs_sent_total", help: "Transactions broadcast", labelNames: ["job", "action"], registers: [this.registry] });
  readonly txsConfirmed = new Counter({ name: "keeper_txs_confirmed_total", help: "Transactions mined successfully", labelNames: ["job", "action"], registers: [this.registry] });
  readonly txsFailed = new Counter({
    name: "keeper_txs_failed_total",
    help: "Transactions or simulations that failed for a reason other than a lost race",
    labelNames: ["job", "action", "reason"],
    registers: [this.registry],
  });
  readonly txsRaced = new Counter({
    name: "keeper_txs_raced_total",
    help: "Work another keeper did first (simulation or mined transaction reverted for that reason)",
    labelNames: ["job", "action", "stage"],
    registers: [this.registry],
  });
  readonly txsReplaced = new Counter({ name: "keeper_txs_replaced_total", help: "Fee-bump replacements sent", labelNames: ["job", "action"], registers: [this.registry] });
  readonly liquidations = new Counter({ name: "keeper_liquidations_total", help: "Accounts liquidated by this keeper's mined transactions", registers: [this.registry] });
  readonly ethBalance = new Gauge({ name: "keeper_eth_balance", help: "Keeper account ETH balance (ether)", registers: [this.registry] });
  readonly rpcErrors = new Counter({ name: "keeper_rpc_errors_total", help: "Failed JSON-RPC transport attempts", registers: [this.registry] });
  readonly rpcFailovers = new Counter({ name: "keeper_rpc_failovers_total", help: "Switches to another RPC endpoint", registers: [this.registry] });
  readonly reorgs = new Counter({ name: "keeper_reorgs_total", help: "Reorgs detected by the indexer", registers: [this.registry] });
  readonly rebuilds = new Counter({ name: "keeper_index_rebuilds_total", help: "Index rebuilds from the deployment block (reorg deeper than the window)", registers: [this.registry] });
  readonly loopIterations = new Counter({ name: "keeper_loop_iterations_total", help: "Completed loop iterations", registers: [this.registry] });
  readonly loopErrors = new Counter({ name: "keeper_loop_errors_total", help: "Loop iterations that failed", registers: [this.registry] });
  readonly jobErrors = new Counter({ name: "keeper_job_errors_total", help: "Job runs that failed", labelNames: ["job"], registers: [this.registry] });
  readonly lastLoopTimestamp = new Gauge({ name: "keeper_last_loop_timestamp_seconds", help: "Unix time of the last completed loop iteration", registers: [this.registry] });
  readonly checkpointWrites = new Counter({ name: "keeper_checkpoint_writes_total", help: "Checkpoint writes", registers: [this.registry] });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: "keeper_process_" });
  }
}

/** GET /metrics (Prometheus text) and GET /healthz (200 if the loop completed recently, else 503). */
export async function startMetricsServer(
  metrics: KeeperMetrics,
  host: string,
  port: number,
  health: () => { ok: boolean; detail: Record<string, unknown> },
): Promise<http.Server & { boundPort: number }> {
  const server = http.createServer(async (req, res) => {
    try {
      const url = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405).end();
      } else if (url === "/metrics") {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body);
      } else if (url === "/healthz") {
        const h = health();
        res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ ok: h.ok, ...h.detail }) + "\n");
      } else {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics or /healthz\n");
      }
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const boundPort = (server.address() as AddressInfo).port;
  return Object.assign(server, { boundPort });
}
