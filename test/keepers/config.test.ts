import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { Wallet } from "ethers";
import { buildProgram, ConfigError, defaultCheckpointPath, loadDeployment, loadKey, parseArgs, redactUrl, resolveConfig } from "../../keepers/config";
import { Shard, accountShard } from "../../keepers/shard";
import { backoffDelay } from "../../keepers/backoff";
import { addr } from "./fake-chain";
import { tmpDir } from "./helpers";

function deploymentFile(dir: string, patch: Record<string, unknown> = {}): string {
  const f = path.join(dir, `d-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(
    f,
    JSON.stringify({
      network: "localhost",
      chainId: 31337,
      deploymentBlock: 3,
      contracts: { clearingHouse: addr(1), vault: addr(2), riskManager: addr(3), collateral: addr(4), liquidityPool: addr(5) },
      markets: [{ marketId: 0, symbol: "ETH-PERP", priceFeed: addr(6), volFeed: addr(7) }],
      ...patch,
    }),
  );
  return f;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("keeper configuration", () => {
  const dir = tmpDir("cfg");

  it("parses a minimal command line with documented defaults", () => {
    const raw = parseArgs(["--rpc", "http://127.0.0.1:8545,http://127.0.0.1:8546", "--deployment", "x.json"]);
    expect(raw.rpc).to.deep.equal(["http://127.0.0.1:8545", "http://127.0.0.1:8546"]);
    expect(raw.jobs).to.deep.equal(["orders", "liquidations", "risk"]);
    expect(raw).to.include({ confirmations: 2, pollInterval: 2000, batchSize: 200, maxFeeGwei: 50, liquidationMaxFeeGwei: 200, metricsPort: 9464, metricsHost: "127.0.0.1", dryRun: false, metrics: true });
    expect(raw.shard).to.deep.equal({ index: 0, count: 1 });
  });

  it("reports one clear line per bad field, naming its flag", () => {
    const p = problems(() =>
      parseArgs(["--rpc", "localhost:8545", "--deployment", "x.json", "--confirmations", "two", "--shard", "1/1", "--jobs", "liquidate", "--batch-size", "0", "--metrics-port", "70000", "--log-level", "loud"]),
    );
    expect(p.find((x) => x.startsWith("--rpc:"))).to.include("not an http(s) URL");
    expect(p.find((x) => x.startsWith("--confirmations:"))).to.include('"two"');
    expect(p.find((x) => x.startsWith("--shard:"))).to.include("0 ≤ i < n");
    expect(p.find((x) => x.startsWith("--jobs:"))).to.include("unknown job");
    expect(p.some((x) => x.startsWith("--batch-size:"))).to.equal(true);
    expect(p.some((x) => x.startsWith("--metrics-port:"))).to.equal(true);
    expect(p.some((x) => x.startsWith("--log-level:"))).to.equal(true);
    expect(problems(() => parseArgs(["--deployment", "x.json"]))).to.deep.equal(["--rpc: required: give --rpc <url>[,<url>…] or --network <name>"]);
    expect(problems(() => parseArgs(["--rpc", "http://a", "--network", "localhost", "--deployment", "x"]))[0]).to.include("not both");
    expect(problems(() => parseArgs(["--rpc", "http://a", "--deployment", "x", "--max-fee-gwei", "10", "--liquidation-max-fee-gwei", "5"]))[0]).to.include("--liquidation-max-fee-gwei");
    expect(problems(() => parseArgs(["--rpc", "http://a", "--deployment", "x", "--bogus"]))[0]).to.include("--bogus");
  });

  it("--help documents every option", () => {
    const help = buildProgram().helpInformation();
    for (const opt of buildProgram().options) expect(help).to.include(opt.long!);
    expect(help).to.include("SIGMA_KEEPER_KEY");
  });

  it("validates the deployment file", () => {
    expect(loadDeployment(deploymentFile(dir)).contracts.clearingHouse).to.equal(addr(1));
    expect(problems(() => loadDeployment(path.join(dir, "missing.json")))[0]).to.include("file not found");
    expect(problems(() => loadDeployment(deploymentFile(dir, { chainId: "31337" })))[0]).to.include('field "chainId"');
    expect(problems(() => loadDeployment(deploymentFile(dir, { contracts: { clearingHouse: "0x12", vault: addr(2), riskManager: addr(3) } })))[0]).to.include('"contracts.clearingHouse": not an address');
  });

  it("reads the key from a file or SIGMA_KEEPER_KEY, never echoing a bad one, and requires one unless --dry-run", () => {
    const w = Wallet.createRandom();
    const kf = path.join(dir, "k");
    fs.writeFileSync(kf, w.privateKey.slice(2) + "\n");
    expect(loadKey(kf, {}).key).to.equal(w.privateKey);
    expect(loadKey(undefined, { SIGMA_KEEPER_KEY: w.privateKey }).key).to.equal(w.privateKey);
    expect(loadKey(undefined, {}).key).to.equal(undefined);
    const bad = path.join(dir, "bad");
    fs.writeFileSync(bad, "0xnot-a-key-but-a-secret");
    const p = problems(() => loadKey(bad, {}));
    expect(p[0]).to.include("does not hold a 32-byte hex private key");
    expect(p.join()).to.not.include("secret");
    const raw = parseArgs(["--rpc", "http://a", "--deployment", deploymentFile(dir)]);
    expect(problems(() => resolveConfig(raw, ["http://a"], {}))[0]).to.include("key: missing");
    const dry = resolveConfig(parseArgs(["--rpc", "http://a", "--deployment", deploymentFile(dir), "--dry-run"]), ["http://a"], {});
    expect(dry.privateKey).to.equal(undefined);
    const c = resolveConfig(raw, ["http://a"], { SIGMA_KEEPER_KEY: w.privateKey });
    expect(c.checkpointPath).to.equal(defaultCheckpointPath(c.deploymentFile, c.shard));
  });

  it("hides credentials in logged RPC URLs", () => {
    expect(redactUrl("https://user:pw@rpc.example/v2/abcdef0123456789abcdef")).to.equal("https://***@rpc.example/v2/***");
    expect(redactUrl("http://127.0.0.1:8545")).to.equal("http://127.0.0.1:8545");
    expect(redactUrl("https://rpc.example/?apikey=zzz")).to.equal("https://rpc.example/?***");
  });

  it("shards accounts by keccak256(account) mod n, orders by id mod n; every item has exactly one owner", () => {
    const shards = [0, 1, 2].map((i) => new Shard(i, 3));
    for (let i = 0; i < 60; i++) {
      const a = addr(i);
      expect(shards.filter((s) => s.ownsAccount(a))).to.have.length(1);
      expect(shards[accountShard(a, 3)].ownsAccount(a)).to.equal(true);
      expect(shards.filter((s) => s.ownsOrder(BigInt(i))).map((s) => s.index)).to.deep.equal([i % 3]);
    }
    expect(Shard.all().ownsAccount(addr(1))).to.equal(true);
    expect(() => new Shard(2, 2)).to.throw();
  });

  it("backs off exponentially with jitter, capped", () => {
    const lo = () => 0;
    const hi = () => 0.999999;
    expect(backoffDelay(0, 100, 5000, lo)).to.equal(50);
    expect(backoffDelay(3, 100, 5000, hi)).to.equal(800);
    expect(backoffDelay(20, 100, 5000, hi)).to.equal(5000);
    expect(backoffDelay(20, 100, 5000, lo)).to.equal(2500);
  });
});
