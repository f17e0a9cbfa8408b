#!/usr/bin/env node
/**
 * Sigma keeper CLI.
 *
 *   npx ts-node keepers/cli.ts --rpc http://127.0.0.1:8545 --deployment deployments/localhost.json \
 *       --jobs orders,liquidations,risk --key-file ./keeper.key
 *
 * `--help` lists every option; docs/KEEPER.md is the operator's guide.
 * Exit codes: 0 after SIGTERM/SIGINT or --once, 2 configuration or startup check failed, 1 fatal error.
 */
import { ConfigError, parseArgs, resolveConfig, RawConfig } from "./config";
import { createLogger } from "./log";
import { Keeper, StartupError } from "./service";

/** Resolves --network <name> through hardhat.config.ts (loaded only then: it is slow). */
function urlsFromHardhatNetwork(name: string): string[] {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const hre = require("hardhat");
  const nets = hre.config.networks as Record<string, { url?: string }>;
  const net = nets[name];
  if (!net) throw new ConfigError([`--network: unknown network "${name}"; hardhat.config.ts has: ${Object.keys(nets).join(", ")}`]);
  if (!net.url) {
    throw new ConfigError([`--network: "${name}" is Hardhat's in-process network, which a keeper cannot reach: run \`npx hardhat node\` and use --network localhost`]);
  }
  return [net.url];
}

function fail(code: number, lines: string[]): never {
  for (const l of lines) process.stderr.write(`sigma-keeper: ${l}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  let raw: RawConfig;
  try {
    raw = parseArgs(argv);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.help") process.exit(0);
    if (e instanceof ConfigError) fail(2, ["configuration error:", ...e.problems.map((p) => `  ${p}`), "see --help"]);
    throw e;
  }

  const log = createLogger(raw.logLevel);
  let keeper: Keeper;
  try {
    const urls = raw.rpc ?? urlsFromHardhatNetwork(raw.network!);
    keeper = new Keeper(resolveConfig(raw, urls), log);
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal({ problems: e.problems }, "configuration error");
      fail(2, ["configuration error:", ...e.problems.map((p) => `  ${p}`), "see --help"]);
    }
    throw e;
  }

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      keeper.stop(sig);
      // If the current step hangs (an RPC call with every endpoint down), do not hang the shutdown.
      setTimeout(() => {
        log.warn("shutdown took too long: writing the checkpoint and exiting");
        keeper.checkpoint(true);
        process.exit(0);
      }, 30_000).unref();
    } else {
      log.warn({ signal: sig }, "second signal: exiting now");
      keeper.checkpoint(true);
      process.exit(130);
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    await keeper.start();
  } catch (e) {
    if (e instanceof StartupError) {
      log.fatal({ err: e.message }, "startup check failed");
      await keeper.close().catch(() => undefined);
      fail(2, [e.message]);
    }
    throw e;
  }
  await keeper.run();
  await keeper.close();
  log.info({ exitCode: process.exitCode ?? 0 }, "keeper stopped");
  process.exit(process.exitCode ?? 0);
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`sigma-keeper: fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
