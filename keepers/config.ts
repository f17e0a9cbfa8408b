import * as fs from "fs";
import * as path from "path";
import { Command, Option } from "commander";
import { z } from "zod";
import { isAddress, isHexString, Wallet } from "ethers";

/** A configuration error: printed as-is (one line per problem) and the process exits non-zero. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

export const JOB_NAMES = ["orders", "liquidations", "risk"] as const;
export type JobName = (typeof JOB_NAMES)[number];

// ------------------------------------------------------------------------------------------ deployment file

const address = z.string().refine((s) => isAddress(s), { message: "not an address" });

/** The subset of deployments/<network>.json (scripts/lib/deployment-file.ts) the keeper relies on. */
export const DeploymentSchema = z.object({
  network: z.string().min(1),
  chainId: z.number().int().positive(),
  deploymentBlock: z.number().int().min(0),
  contracts: z.object({
    clearingHouse: address,
    vault: address,
    riskManager: address,
    collateral: address.optional(),
    liquidityPool: address.optional(),
    /** SigmaLens (read-only helpers, healthBatch) on deployments that have it. */
    lens: address.optional(),
  }),
  markets: z
    .array(
      z.object({
        marketId: z.number().int().min(0),
        symbol: z.string(),
        priceFeed: address.optional(),
        volFeed: address.optional(),
      }),
    )
    .default([]),
});
export type Deployment = z.infer<typeof DeploymentSchema>;

export function loadDeployment(file: string): Deployment {
  if (!fs.existsSync(file)) {
    throw new ConfigError([`--deployment: file not found: ${file} (deploy first: npx hardhat run scripts/deploy.ts --network <name>)`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError([`--deployment: ${file} is not valid JSON (${(e as Error).message})`]);
  }
  const r = DeploymentSchema.safeParse(json);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => `--deployment: ${file}: field "${i.path.join(".") || "(root)"}": ${i.message}`));
  }
  return r.data;
}

// ------------------------------------------------------------------------------------------ options

/** Every option, its flag and its help text: the single source for `--help` and for error messages. */
const OPTIONS: { key: string; flags: string; help: string; def?: string }[] = [
  { key: "rpc", flags: "--rpc <urls>", help: "JSON-RPC URL(s), comma-separated; the first is preferred, the others are failovers" },
  { key: "network", flags: "--network <name>", help: "take the RPC URL from hardhat.config.ts networks.<name>.url (instead of --rpc)" },
  { key: "deployment", flags: "--deployment <file>", help: "deployment file written by scripts/deploy.ts (deployments/<network>.json)" },
  { key: "jobs", flags: "--jobs <list>", help: "jobs to run, comma-separated: orders, liquidations, risk", def: "orders,liquidations,risk" },
  { key: "keyFile", flags: "--key-file <path>", help: "file holding the keeper's private key (hex); otherwise env SIGMA_KEEPER_KEY. Never logged" },
  { key: "confirmations", flags: "--confirmations <n>", help: "index only blocks this deep below the head (reorg safety)", def: "2" },
  { key: "pollInterval", flags: "--poll-interval <ms>", help: "pause between two loop iterations", def: "2000" },
  { key: "logRange", flags: "--log-range <blocks>", help: "maximum block span of one eth_getLogs request", def: "2000" },
  { key: "reorgWindow", flags: "--reorg-window <blocks>", help: "recent blocks whose hashes are kept to rewind a reorg; deeper reorgs rebuild from the deployment block", def: "64" },
  { key: "batchSize", flags: "--batch-size <n>", help: "accounts per healthBatch view call in the liquidation scan", def: "200" },
  { key: "liquidationBatchSize", flags: "--liquidation-batch-size <n>", help: "accounts per liquidateBatch transaction where the contract has it (1: one liquidate per account)", def: "50" },
  { key: "rescanInterval", flags: "--rescan-interval <s>", help: "liquidation job: health scan of every account at least this often; in between, every account on a new price or σ round, else only accounts whose positions or collateral changed and those below maintenance (0: every account every iteration)", def: "30" },
  { key: "maxFeeGwei", flags: "--max-fee-gwei <gwei>", help: "EIP-1559 maxFeePerGas cap for order execution, cancels, pokes and margin calls", def: "50" },
  { key: "liquidationMaxFeeGwei", flags: "--liquidation-max-fee-gwei <gwei>", help: "higher maxFeePerGas cap for liquidations (they protect solvency)", def: "200" },
  { key: "priorityFeeGwei", flags: "--priority-fee-gwei <gwei>", help: "maxPriorityFeePerGas; default: the node's eth_maxPriorityFeePerGas suggestion, capped by the fee cap" },
  { key: "feeBumpPercent", flags: "--fee-bump-percent <pct>", help: "fee increase of a replacement for a transaction not mined within --tx-timeout (≥ 10)", def: "20" },
  { key: "txTimeout", flags: "--tx-timeout <s>", help: "seconds to wait for a receipt before replacing the transaction with higher fees", def: "60" },
  { key: "metricsPort", flags: "--metrics-port <port>", help: "port of the HTTP server with GET /metrics (Prometheus) and GET /healthz", def: "9464" },
  { key: "metricsHost", flags: "--metrics-host <host>", help: "address the metrics server binds to", def: "127.0.0.1" },
  { key: "healthMaxAge", flags: "--health-max-age <s>", help: "/healthz answers 503 when the loop has not completed for this long", def: "60" },
  { key: "checkpoint", flags: "--checkpoint <file>", help: "index checkpoint file (default .keeper/<network>-<chainId>[-shard-i-of-n].json)" },
  { key: "checkpointInterval", flags: "--checkpoint-interval <s>", help: "minimum seconds between checkpoint writes while the index changes (always written on shutdown)", def: "5" },
  { key: "shard", flags: "--shard <i/n>", help: "handle only accounts with keccak256(account) mod n == i, orders with orderId mod n == i, markets with marketId mod n == i", def: "0/1" },
  { key: "heartbeat", flags: "--heartbeat <s>", help: "risk job: poke each market's volatility at least this often even without new rounds", def: "3600" },
  { key: "backstopInterval", flags: "--backstop-interval <s>", help: "re-read pending orders and accounts' markets on-chain this often, so a missed event cannot hide work", def: "300" },
  { key: "rpcTimeout", flags: "--rpc-timeout <ms>", help: "timeout of one JSON-RPC request before failing over", def: "10000" },
  { key: "maxBackoff", flags: "--max-backoff <ms>", help: "cap of the exponential backoff (with jitter) after RPC or loop failures", def: "15000" },
  { key: "minBalanceEth", flags: "--min-balance-eth <eth>", help: "log a warning when the keeper's ETH balance falls below this", def: "0.05" },
  { key: "logLevel", flags: "--log-level <level>", help: "trace, debug, info, warn, error", def: "info" },
];

const FLAG_OF: Record<string, string> = Object.fromEntries(OPTIONS.map((o) => [o.key, o.flags.split(" ")[0]]));
FLAG_OF.dryRun = "--dry-run";
FLAG_OF.once = "--once";
FLAG_OF.metrics = "--no-metrics";
FLAG_OF.key = "key (--key-file / SIGMA_KEEPER_KEY)";

export function buildProgram(): Command {
  const program = new Command()
    .name("sigma-keeper")
    .description(
      "Sigma keeper: indexes the protocol's events and runs the orders, liquidations and risk jobs.\n" +
        "Example: npx ts-node keepers/cli.ts --rpc http://127.0.0.1:8545 --deployment deployments/localhost.json --jobs orders,liquidations",
    )
    .helpOption("-h, --help", "show this help")
    .allowExcessArguments(false)
    .showHelpAfterError(false);
  for (const o of OPTIONS) {
    const opt = new Option(o.flags, o.help);
    if (o.def !== undefined) opt.default(o.def);
    program.addOption(opt);
  }
  program.addOption(new Option("--dry-run", "simulate every action but never send a transaction (no key or balance needed)"));
  program.addOption(new Option("--once", "run one iteration (index, jobs, checkpoint) and exit"));
  program.addOption(new Option("--no-metrics", "do not start the metrics/health HTTP server"));
  program.addHelpText(
    "after",
    "\nEnvironment:\n  SIGMA_KEEPER_KEY   the keeper's private key when --key-file is not given (never logged)\n" +
      "\nExit codes: 0 after SIGTERM/SIGINT (checkpoint written), 2 bad configuration or failed startup check, 1 fatal error.",
  );
  return program;
}

// ------------------------------------------------------------------------------------------ config schema

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);

export const ShardSchema = z
  .string()
  .regex(/^\d+\/\d+$/, { message: 'expected "i/n", e.g. 0/2' })
  .transform((s) => {
    const [index, count] = s.split("/").map(Number);
    return { index, count };
  })
  .refine((s) => s.count >= 1 && s.index < s.count, { message: "needs n ≥ 1 and 0 ≤ i < n" });

const urlList = z
  .string()
  .transform((s) => s.split(",").map((u) => u.trim()).filter(Boolean))
  .pipe(
    z
      .array(
        z.string().refine((u) => /^https?:\/\/[^\s/]+/.test(u) && URL.canParse(u), { message: "not an http(s) URL" }),
      )
      .min(1, { message: "at least one URL" }),
  );

export const RawConfigSchema = z
  .object({
    rpc: urlList.optional(),
    network: z.string().min(1).optional(),
    deployment: z.string({ message: "required (path to deployments/<network>.json)" }).min(1),
    jobs: z
      .string()
      .transform((s) => s.split(",").map((j) => j.trim()).filter(Boolean))
      .pipe(z.array(z.enum(JOB_NAMES, { message: `unknown job; expected ${JOB_NAMES.join(", ")}` })).min(1)),
    keyFile: z.string().min(1).optional(),
    dryRun: z.boolean().default(false),
    once: z.boolean().default(false),
    metrics: z.boolean().default(true),
    confirmations: int(0, 10_000),
    pollInterval: int(10, 3_600_000),
    logRange: int(1, 1_000_000),
    reorgWindow: int(1, 10_000),
    batchSize: int(1, 10_000),
    liquidationBatchSize: int(1, 1_000),
    rescanInterval: num(0, 86_400),
    maxFeeGwei: num(0, 1e6).refine((x) => x > 0, { message: "must be > 0" }),
    liquidationMaxFeeGwei: num(0, 1e6).refine((x) => x > 0, { message: "must be > 0" }),
    priorityFeeGwei: num(0, 1e6).optional(),
    feeBumpPercent: int(10, 1_000),
    txTimeout: num(1, 86_400),
    metricsPort: int(0, 65_535),
    metricsHost: z.string().min(1),
    healthMaxAge: num(1, 86_400),
    checkpoint: z.string().min(1).optional(),
    checkpointInterval: num(0, 86_400),
    shard: ShardSchema,
    heartbeat: num(1, 30 * 86_400),
    backstopInterval: num(1, 30 * 86_400),
    rpcTimeout: int(100, 600_000),
    maxBackoff: int(10, 3_600_000),
    minBalanceEth: num(0, 1e9),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]),
  })
  .superRefine((c, ctx) => {
    if (!c.rpc && !c.network) ctx.addIssue({ code: "custom", path: ["rpc"], message: "required: give --rpc <url>[,<url>…] or --network <name>" });
    if (c.rpc && c.network) ctx.addIssue({ code: "custom", path: ["network"], message: "give either --rpc or --network, not both" });
    if (c.liquidationMaxFeeGwei < c.maxFeeGwei)
      ctx.addIssue({ code: "custom", path: ["liquidationMaxFeeGwei"], message: "must be ≥ --max-fee-gwei (liquidations get the higher cap)" });
    if (c.priorityFeeGwei !== undefined && c.priorityFeeGwei > c.maxFeeGwei)
      ctx.addIssue({ code: "custom", path: ["priorityFeeGwei"], message: "must be ≤ --max-fee-gwei" });
  });

export type RawConfig = z.infer<typeof RawConfigSchema>;

/** The keeper's resolved configuration. */
export interface KeeperConfig extends Omit<RawConfig, "rpc" | "checkpoint" | "keyFile"> {
  rpcUrls: string[];
  checkpointPath: string;
  deploymentFile: Deployment;
  /** Undefined only in dry-run mode without a key (an ephemeral address is used for simulations). */
  privateKey?: string;
  keySource?: string;
}

/** Validates parsed command-line options; throws ConfigError with one line per bad field. */
export function validateOptions(opts: Record<string, unknown>): RawConfig {
  const r = RawConfigSchema.safeParse(opts);
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => {
        const key = String(i.path[0] ?? "");
        const flag = FLAG_OF[key] ?? key;
        const given = key && opts[key] !== undefined && key !== "keyFile" ? ` (got ${JSON.stringify(opts[key])})` : "";
        return `${flag}: ${i.message}${given}`;
      }),
    );
  }
  return r.data;
}

/** Parses argv (without node and script) into validated options. Throws ConfigError, or CommanderError for --help. */
export function parseArgs(argv: string[]): RawConfig {
  const program = buildProgram();
  program.exitOverride();
  program.configureOutput({ writeErr: () => undefined, writeOut: (s) => process.stdout.write(s) });
  try {
    program.parse(argv, { from: "user" });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.code === "commander.version") throw e;
    throw new ConfigError([(err.message ?? String(e)).replace(/^error: /, "")]);
  }
  return validateOptions(program.opts());
}

/** Reads the private key from --key-file or SIGMA_KEEPER_KEY. The key's value never appears in an error. */
export function loadKey(keyFile: string | undefined, env: NodeJS.ProcessEnv): { key?: string; source?: string } {
  let raw: string | undefined;
  let source: string | undefined;
  if (keyFile) {
    if (!fs.existsSync(keyFile)) throw new ConfigError([`--key-file: file not found: ${keyFile}`]);
    raw = fs.readFileSync(keyFile, "utf8").trim();
    source = `key file ${keyFile}`;
    if (raw.length === 0) throw new ConfigError([`--key-file: ${keyFile} is empty`]);
  } else if (env.SIGMA_KEEPER_KEY !== undefined && env.SIGMA_KEEPER_KEY.trim() !== "") {
    raw = env.SIGMA_KEEPER_KEY.trim();
    source = "env SIGMA_KEEPER_KEY";
  }
  if (raw === undefined) return {};
  const hex = raw.startsWith("0x") ? raw : `0x${raw}`;
  if (!isHexString(hex, 32)) throw new ConfigError([`key: ${source} does not hold a 32-byte hex private key`]);
  try {
    new Wallet(hex);
  } catch {
    throw new ConfigError([`key: ${source} does not hold a valid secp256k1 private key`]);
  }
  return { key: hex, source };
}

export function defaultCheckpointPath(d: Deployment, shard: { index: number; count: number }, cwd = process.cwd()): string {
  const suffix = shard.count > 1 ? `-shard-${shard.index}-of-${shard.count}` : "";
  return path.join(cwd, ".keeper", `${d.network}-${d.chainId}${suffix}.json`);
}

/**
 * Turns validated options into the keeper's configuration: reads the deployment file and the key.
 * `rpcUrls` must already be resolved (from --rpc, or --network through the Hardhat config).
 */
export function resolveConfig(raw: RawConfig, rpcUrls: string[], env: NodeJS.ProcessEnv = process.env): KeeperConfig {
  const deploymentFile = loadDeployment(raw.deployment);
  const { key, source } = loadKey(raw.keyFile, env);
  if (!key && !raw.dryRun) {
    throw new ConfigError([`key: missing: give --key-file <path> or set SIGMA_KEEPER_KEY (or use --dry-run)`]);
  }
  const { rpc: _rpc, checkpoint, keyFile: _kf, ...rest } = raw;
  return {
    ...rest,
    rpcUrls,
    checkpointPath: checkpoint ?? defaultCheckpointPath(deploymentFile, raw.shard),
    deploymentFile,
    privateKey: key,
    keySource: source,
  };
}

/** The options worth logging at startup (no key). */
export function describeConfig(c: KeeperConfig): Record<string, unknown> {
  const { privateKey: _k, deploymentFile, ...rest } = c;
  return {
    ...rest,
    rpcUrls: c.rpcUrls.map(redactUrl),
    deployment: { network: deploymentFile.network, chainId: deploymentFile.chainId, clearingHouse: deploymentFile.contracts.clearingHouse },
  };
}

/** Hides credentials in URLs (user:pass@ and API-key-looking path segments or query strings). */
export function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.username || url.password) {
      url.username = "***";
      url.password = "";
    }
    if (url.search) url.search = "?***";
    url.pathname = url.pathname
      .split("/")
      .map((seg) => (seg.length >= 16 && /[0-9]/.test(seg) && /[a-zA-Z]/.test(seg) ? "***" : seg))
      .join("/");
    return url.toString().replace(/\/$/, u.endsWith("/") ? "/" : "");
  } catch {
    return "<invalid url>";
  }
}
