import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { Wallet } from "ethers";
import { mapLimit } from "../../keepers/backoff";
import {
  account,
  deployLocal,
  killAll,
  Local,
  Node,
  openLongs,
  setPrice,
  spawnProc,
  startHardhatNode,
  tmpDir,
  liquidations,
} from "./helpers";

interface Run {
  code: number | null;
  out: string;
}

/** Runs the CLI to completion (killed after 60 s). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const p = spawnProc("cli", process.execPath, ["-r", "ts-node/register", "keepers/cli.ts", ...args], {
    TS_NODE_TRANSPILE_ONLY: "1",
    SIGMA_KEEPER_KEY: "",
    ...env,
  });
  const t = setTimeout(() => p.kill("SIGKILL"), 60_000);
  await p.exited;
  clearTimeout(t);
  return { code: p.exitCode, out: p.lines.join("\n") };
}

describe("keeper CLI: configuration and startup checks", function () {
  this.timeout(180_000);
  let node: Node;
  let l: Local;
  let dir: string;
  const runs: Record<string, Run> = {};
  const funded = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"; // hardhat account 2
  const unfunded = Wallet.createRandom().privateKey;

  before(async () => {
    node = await startHardhatNode();
    l = await deployLocal(node.url);
    dir = tmpDir("cli");
    const d = JSON.parse(fs.readFileSync(l.deploymentPath, "utf8"));
    const write = (name: string, content: unknown) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, typeof content === "string" ? content : JSON.stringify(content));
      return f;
    };
    const wrongChain = write("wrong-chain.json", { ...d, chainId: 1 });
    const badField = write("bad-field.json", { ...d, contracts: { ...d.contracts, clearingHouse: "0x1234" } });
    const notJson = write("not-json.json", "{ nope");
    const noCode = write("no-code.json", { ...d, contracts: { ...d.contracts, clearingHouse: Wallet.createRandom().address } });
    const badKeyFile = write("bad.key", "this-is-not-a-key-SECRETSECRET");
    const goodKeyFile = write("good.key", funded.slice(2) + "\n");
    // A liquidatable account for the dry run.
    await openLongs(l, [account(10, l.provider)], "10000", "75");
    await setPrice(l, 0, "1880");

    const base = (deployment: string) => ["--rpc", node.url, "--deployment", deployment, "--no-metrics", "--confirmations", "0"];
    const cases: [string, string[], NodeJS.ProcessEnv?][] = [
      ["help", ["--help"]],
      ["missing deployment", base(path.join(dir, "nope.json")).concat(["--key-file", goodKeyFile])],
      ["not json", base(notJson).concat(["--key-file", goodKeyFile])],
      ["bad field", base(badField).concat(["--key-file", goodKeyFile])],
      ["wrong chain", base(wrongChain).concat(["--key-file", goodKeyFile])],
      ["no code", base(noCode).concat(["--key-file", goodKeyFile])],
      ["missing key", base(l.deploymentPath)],
      ["bad key file", base(l.deploymentPath).concat(["--key-file", badKeyFile])],
      ["unfunded", base(l.deploymentPath), { SIGMA_KEEPER_KEY: unfunded }],
      ["bad options", ["--rpc", "ftp://x", "--deployment", l.deploymentPath, "--confirmations", "-1", "--shard", "2/2", "--jobs", "orders,foo"]],
      ["fee caps", ["--rpc", node.url, "--deployment", l.deploymentPath, "--max-fee-gwei", "300", "--liquidation-max-fee-gwei", "100"]],
      ["no rpc", ["--deployment", l.deploymentPath]],
      ["dry run once", base(l.deploymentPath).concat(["--dry-run", "--once", "--checkpoint", path.join(dir, "dry.json")])],
      ["once with key", base(l.deploymentPath).concat(["--once", "--jobs", "orders", "--checkpoint", path.join(dir, "once.json")]), { SIGMA_KEEPER_KEY: funded }],
    ];
    const results = await mapLimit(cases, 3, ([, args, env]) => cli(args, env));
    cases.forEach(([name], i) => (runs[name] = results[i]));
  });
  after(async () => {
    await killAll();
  });

  it("--help explains every option and exits 0", () => {
    const r = runs["help"];
    expect(r.code).to.equal(0);
    for (const flag of [
      "--rpc", "--network", "--deployment", "--jobs", "--key-file", "--dry-run", "--confirmations", "--poll-interval", "--max-fee-gwei",
      "--liquidation-max-fee-gwei", "--metrics-port", "--metrics-host", "--checkpoint", "--shard", "--batch-size", "--heartbeat",
      "--log-range", "--backstop-interval", "SIGMA_KEEPER_KEY",
    ]) {
      expect(r.out, flag).to.include(flag);
    }
  });

  it("refuses a missing deployment file with a clear error and exit code 2", () => {
    expect(runs["missing deployment"].code).to.equal(2);
    expect(runs["missing deployment"].out).to.match(/--deployment: file not found: .*nope\.json/);
  });

  it("refuses an invalid deployment file, naming the bad field", () => {
    expect(runs["not json"].code).to.equal(2);
    expect(runs["not json"].out).to.include("is not valid JSON");
    expect(runs["bad field"].code).to.equal(2);
    expect(runs["bad field"].out).to.match(/field "contracts\.clearingHouse": not an address/);
  });

  it("refuses an RPC on another chain than the deployment file's", () => {
    expect(runs["wrong chain"].code).to.equal(2);
    expect(runs["wrong chain"].out).to.match(/chain id mismatch: RPC .* is on chain 31337, the deployment file .* is for chain 1/);
  });

  it("refuses a deployment file whose contracts have no code on this chain", () => {
    expect(runs["no code"].code).to.equal(2);
    expect(runs["no code"].out).to.include("no contract code at clearingHouse");
  });

  it("refuses to start without a key, or with a key file that holds no key (without echoing it)", () => {
    expect(runs["missing key"].code).to.equal(2);
    expect(runs["missing key"].out).to.include("key: missing: give --key-file <path> or set SIGMA_KEEPER_KEY");
    expect(runs["bad key file"].code).to.equal(2);
    expect(runs["bad key file"].out).to.include("does not hold a 32-byte hex private key");
    expect(runs["bad key file"].out).not.to.include("SECRETSECRET");
  });

  it("refuses an unfunded key unless --dry-run", () => {
    const r = runs["unfunded"];
    expect(r.code).to.equal(2);
    expect(r.out).to.include(`keeper account ${new Wallet(unfunded).address} has no ETH on chain 31337`);
  });

  it("reports every bad option on its own line, by flag", () => {
    const r = runs["bad options"];
    expect(r.code).to.equal(2);
    expect(r.out).to.match(/--rpc: .*not an http\(s\) URL/);
    expect(r.out).to.match(/--confirmations: .*>=\s*0|--confirmations: .*too small/i);
    expect(r.out).to.match(/--shard: needs n ≥ 1 and 0 ≤ i < n/);
    expect(r.out).to.match(/--jobs: unknown job/);
    console.log(r.out.split("\n").map((x) => "        " + x).join("\n"));
    expect(runs["fee caps"].code).to.equal(2);
    expect(runs["fee caps"].out).to.match(/--liquidation-max-fee-gwei: must be ≥ --max-fee-gwei/);
    expect(runs["no rpc"].code).to.equal(2);
    expect(runs["no rpc"].out).to.include("--rpc: required");
  });

  it("--dry-run --once simulates the liquidation, sends nothing, exits 0", async () => {
    const r = runs["dry run once"];
    expect(r.code, r.out.slice(-3000)).to.equal(0);
    expect(r.out).to.include("dry-run: simulation ok, not sending");
    expect((await liquidations(l, 0)).size).to.equal(0);
  });

  it("never logs the private key", () => {
    const r = runs["once with key"];
    expect(r.code, r.out.slice(-3000)).to.equal(0);
    expect(r.out).to.include("keeper account");
    for (const run of Object.values(runs)) {
      expect(run.out.toLowerCase()).not.to.include(funded.slice(2).toLowerCase());
      expect(run.out.toLowerCase()).not.to.include(unfunded.slice(2).toLowerCase());
    }
  });
});
