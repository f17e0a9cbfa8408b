// Runs the scenario (dynamic vs static margin) on a local node with one keeper-service process per
// configuration: what `npm start` and `npm run replay:windows` do by default. The in-process variant (the
// engine's own keeper step on Hardhat's in-process network) stays available for speed.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runScenario, ScenarioOptions, ScenarioResult } from "./scenario";
import { killAll, LocalNode, ProcessKeeper, startLocalNode } from "./scenario-process";
import type { ConfigurationSpec } from "./scenario-world";

export interface NodeRunOptions {
  /** RPC port of the node on 127.0.0.1 (default: a free port). */
  port?: number;
  /** Reuse this node instead of starting one. */
  node?: LocalNode;
  /** Leave the keepers running after their configuration (for --keep-running). */
  keepKeepers?: boolean;
  /** Where the keepers' deployment files go (default: a temporary folder). */
  deploymentDir?: string;
  /** Network-name prefix of the deployment files: <prefix>-<configuration>.json. */
  prefix?: string;
  /** First default account of the node used as a keeper key (one per configuration: base, base + 1). */
  keyBase?: number;
  log?: (msg: string) => void;
}

export interface NodeRun {
  result: ScenarioResult;
  node: LocalNode;
  keepers: ProcessKeeper[];
  deploymentDir: string;
  /** Stops the keepers and the node this run started. */
  close(): Promise<void>;
}

export const KEEPER_PROCESS_LABEL =
  "keeper service (keepers/cli.ts) as a separate process per configuration, on a local hardhat node: after every batch of rounds the engine waits until it has poked σ, executed due orders, flagged margin calls and liquidated (liquidateBatch, largest shortfall first)";

/** Starts a node (unless given), runs both configurations with a keeper process each, returns the result. */
export async function runScenarioOnNode(opts: ScenarioOptions, n: NodeRunOptions = {}): Promise<NodeRun> {
  const log = n.log ?? (() => undefined);
  const startedNode = !n.node;
  const node = n.node ?? (await startLocalNode({ port: n.port }));
  if (startedNode) log(`node: hardhat node on ${node.url} (pid ${node.proc.child.pid})`);
  const deploymentDir = n.deploymentDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "sigma-start-"));
  const keepers: ProcessKeeper[] = [];
  const prefix = n.prefix ?? "sigma-start";
  const close = async () => {
    await Promise.all(keepers.map((k) => k.stop()));
    if (startedNode) await node.proc.kill("SIGKILL");
  };
  try {
    const result = await runScenario(node.hre, {
      ...opts,
      sharedChain: true,
      keeperLabel: KEEPER_PROCESS_LABEL,
      keeper: (spec: ConfigurationSpec, i: number) => {
        const k = new ProcessKeeper({ node, keyIndex: (n.keyBase ?? 5) + i, deploymentDir, network: `${prefix}-${spec.id}` });
        const started = k.start.bind(k);
        k.start = async (w) => {
          await started(w);
          log(`keeper: ${spec.id} — pid ${k.proc!.child.pid}, account ${k.address}, metrics http://127.0.0.1:${k.proc!.metricsPort}/metrics`);
        };
        if (!n.keepKeepers) {
          const stop = k.stop.bind(k);
          (k as { finish?: () => Promise<void> }).finish = () => stop();
        }
        keepers.push(k);
        return k;
      },
    });
    return { result, node, keepers, deploymentDir, close };
  } catch (e) {
    for (const k of keepers) if (k.proc) log(`----- last lines of ${k.proc.name} -----\n${k.proc.lines.slice(-20).join("\n")}`);
    await close();
    throw e;
  }
}

/** Kills every child process (node, keepers) on Ctrl-C / SIGTERM, then exits. */
export function killChildrenOnSignals(): void {
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: stopping the node and the keepers…\n`);
    void killAll().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
}

/** Runs a CLI's `main`, then exits with `process.exitCode` (1 on an exception) once stdout is flushed: the
 * children are gone by then (and the helpers' exit hook kills any left), and a piped report is not cut. */
export function runMain(main: () => Promise<void>): void {
  const exit = (code: number) => process.stdout.write("", () => process.exit(code));
  main()
    .then(() => exit(Number(process.exitCode ?? 0)))
    .catch((e) => {
      console.error(e);
      exit(1);
    });
}
