// The liquidation job's scan selection and its hand-rolled healthBatch ABI codec, without a node: the codec
// must agree with ethers' ABI coder on the SigmaLens ABI, and the job must scan every account only on a new
// market snapshot, on an index rebuild, or after --rescan-interval, and otherwise only the changed accounts
// and those below maintenance.
import { expect } from "chai";
import { AbiCoder, getAddress, Interface, toBeHex, zeroPadValue } from "ethers";
import { SigmaLens__factory } from "../../typechain-types";
import { decodeHealthBatch, encodeHealthBatch, LiquidationsJob, summaryLayout } from "../../keepers/jobs/liquidations";
import { KeeperMetrics } from "../../keepers/metrics";
import { silentLogger } from "../../keepers/log";
import { Shard } from "../../keepers/shard";

const addr = (i: number) => getAddress(zeroPadValue(toBeHex(0x2000 + i), 20));
const lensIface = SigmaLens__factory.createInterface() as unknown as Interface;
const LENS = addr(999);

/** A summary tuple in ABI order: collateral, pnl, equity, im, mm, free, health, liquidatable, status, deadline. */
function summary(equity: bigint, mm: bigint, status = 0, deadline = 0n): unknown[] {
  return [1000n, equity - 1000n, equity, mm * 2n, mm, 0n, mm === 0n ? 2n ** 256n - 1n : 1n, status === 3, status, deadline];
}

/** A lens stand-in: answers healthBatch eth_calls from a table, and marketSnapshots from `snapshot`. */
class FakeLens {
  table = new Map<string, unknown[]>();
  snapshot: unknown[] = [[0n, true, new Array(13).fill(1n), 0n]];
  calls: string[][] = [];
  readonly interface = lensIface;
  readonly runner = { call: (tx: { to: string; data: string }) => this.call(tx) };
  async getAddress() {
    return LENS;
  }
  async call(tx: { to: string; data: string }): Promise<string> {
    const [accounts] = lensIface.decodeFunctionData("healthBatch", tx.data) as unknown as [string[]];
    this.calls.push(accounts.map((a) => getAddress(a)));
    return lensIface.encodeFunctionResult("healthBatch", [accounts.map((a) => this.table.get(getAddress(a)) ?? summary(0n, 0n))]);
  }
  getFunction(name: string) {
    if (name !== "marketSnapshots") throw new Error(`unexpected ${name}`);
    return { staticCall: async () => this.snapshot.map((x) => ({ priced: (x as unknown[])[1], risk: (x as unknown[])[2] })) };
  }
}

function context(lens: FakeLens, accounts: string[], changes: { all: boolean; accounts: string[] }[], rescanIntervalSec = 30) {
  const sent: string[][] = [];
  const ctx = {
    head: { number: 1, hash: "0x", parentHash: "0x", timestamp: 1 },
    indexer: {
      takeChanges: () => changes.shift() ?? { all: false, accounts: [] },
      accountsWithPositions: () => [...accounts],
      marketsOf: (a: string) => (accounts.includes(a) ? 1n : 0n),
    },
    sender: {
      address: addr(0),
      send: async (a: { args: unknown[] }) => {
        sent.push((Array.isArray(a.args[0]) ? a.args[0] : [a.args[0]]) as string[]);
        return { kind: "dry-run", result: null };
      },
    },
    contracts: { health: lens, clearingHouse: {} },
    caps: { liquidateBatch: true, flagMarginCall: true, summaryStatus: true, marketSnapshots: true },
    shard: new Shard(0, 1),
    settings: { batchSize: 2, liquidationBatchSize: 50, heartbeatSec: 3600, rescanIntervalSec },
    log: silentLogger(),
    metrics: new KeeperMetrics(),
    stopping: () => false,
  };
  return { ctx: ctx as any, sent };
}

describe("keeper liquidation job", () => {
  it("healthBatch codec: calldata and return data agree with ethers' ABI coder", () => {
    const accounts = [addr(1), addr(2), addr(3)];
    const layout = summaryLayout({ interface: lensIface } as any)!;
    expect(layout).to.deep.equal({ selector: lensIface.getFunction("healthBatch")!.selector, words: 10, equity: 2, maintenance: 4, liquidatable: 7, status: 8, deadline: 9 });
    expect(encodeHealthBatch(layout.selector, accounts)).to.equal(lensIface.encodeFunctionData("healthBatch", [accounts]));
    const ret = lensIface.encodeFunctionResult("healthBatch", [[summary(-5n * 10n ** 18n, 7n), summary(123n, 0n), summary(9n, 10n, 2, 1_700_000_000n)]]);
    expect(decodeHealthBatch(ret, accounts, layout)).to.deep.equal([
      { account: accounts[0], equity: -5n * 10n ** 18n, maintenance: 7n, liquidatable: false, status: 0, marginCallDeadline: 0n },
      { account: accounts[1], equity: 123n, maintenance: 0n, liquidatable: false, status: 0, marginCallDeadline: 0n },
      { account: accounts[2], equity: 9n, maintenance: 10n, liquidatable: false, status: 2, marginCallDeadline: 1_700_000_000n },
    ]);
    expect(() => decodeHealthBatch(ret, accounts.slice(0, 2), layout)).to.throw("healthBatch returned 3 summaries for 2 accounts");
    expect(AbiCoder.defaultAbiCoder().decode(["uint256"], ret.slice(0, 66))[0]).to.equal(32n);
  });

  it("scans every account only on a new market snapshot (riskiest first), else the changed and below-maintenance ones", async () => {
    const lens = new FakeLens();
    const [a1, a2, a3, a4, a5] = [1, 2, 3, 4, 5].map(addr);
    const all = [a1, a2, a3, a4, a5];
    lens.table.set(a1, summary(200n, 100n)); // ratio 2
    lens.table.set(a2, summary(90n, 100n, 2, 77n)); // margin called: watched
    lens.table.set(a3, summary(110n, 100n)); // ratio 1.1
    lens.table.set(a4, summary(500n, 100n)); // ratio 5
    lens.table.set(a5, summary(300n, 100n)); // ratio 3
    const { ctx, sent } = context(lens, all, [{ all: true, accounts: [] }, { all: false, accounts: [a4] }, { all: false, accounts: [] }]);
    const job = new LiquidationsJob();

    await job.run(ctx); // first run: everything, in index order, in batches of 2
    expect(lens.calls).to.deep.equal([[a1, a2], [a3, a4], [a5]]);
    lens.calls = [];
    await job.run(ctx); // no new snapshot: a4 (changed) and a2 (below maintenance)
    expect(lens.calls.flat().sort()).to.deep.equal([a2, a4].sort());
    lens.calls = [];

    // A new price round: every account, the riskiest at the last scan first (first wave: batchSize × 4).
    lens.snapshot = [[0n, true, new Array(13).fill(2n), 0n]];
    lens.table.set(a3, summary(10n, 100n, 3)); // now liquidatable
    await job.run(ctx);
    expect(lens.calls).to.deep.equal([[a2, a3], [a1, a5], [a4]]);
    expect(sent).to.deep.equal([[a3]]);
    expect(await ctx.metrics.registry.getSingleMetricAsString("keeper_accounts_scanned_total")).to.include('keeper_accounts_scanned_total{scan="full"} 10');
  });

  it("stops a full scan when the market snapshot changes under it, and starts over riskiest first", async () => {
    const lens = new FakeLens();
    const accounts = [1, 2, 3, 4, 5, 6].map(addr);
    accounts.forEach((a, i) => lens.table.set(a, summary(BigInt(600 - i * 50), 100n))); // ratios 6, 5.5, … 3.5
    const { ctx } = context(lens, accounts, [{ all: true, accounts: [] }]);
    ctx.settings.batchSize = 1; // waves of 4 calls of 1 account
    const job = new LiquidationsJob();
    const call = lens.call.bind(lens);
    lens.call = async (tx) => {
      const out = await call(tx);
      if (lens.calls.length === 4) lens.snapshot = [[0n, true, new Array(13).fill(3n), 0n]]; // a new round
      return out;
    };
    await job.run(ctx);
    expect(lens.calls.flat()).to.deep.equal(accounts.slice(0, 4)); // the second wave was not scanned
    lens.calls = [];
    await job.run(ctx); // a full scan again, riskiest (lowest ratio) first: the two never scanned, then by ratio
    expect(lens.calls.flat()).to.deep.equal([accounts[4], accounts[5], accounts[3], accounts[2], accounts[1], accounts[0]]);
    expect(await ctx.metrics.registry.getSingleMetricAsString("keeper_health_scan_seconds")).to.include("keeper_health_scan_seconds_count 1");
  });

  it("with --rescan-interval 0 scans every account on every iteration", async () => {
    const lens = new FakeLens();
    const accounts = [addr(1), addr(2), addr(3)];
    const { ctx } = context(lens, accounts, [], 0);
    const job = new LiquidationsJob();
    await job.run(ctx);
    await job.run(ctx);
    expect(lens.calls.flat()).to.deep.equal([...accounts, ...accounts]);
  });
});
