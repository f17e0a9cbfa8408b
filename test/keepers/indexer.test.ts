import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import fc from "fast-check";
import { EventDecoder, Indexer, IndexerOptions } from "../../keepers/indexer";
import { readCheckpoint, writeCheckpoint } from "../../keepers/checkpoint";
import { silentLogger } from "../../keepers/log";
import { addr, CH, chIface, Ev, FakeChain, VAULT, vaultIface } from "./fake-chain";
import { tmpDir } from "./helpers";

const identity = { clearingHouse: CH, vault: VAULT };
const decoder = new EventDecoder(CH, VAULT, chIface, vaultIface);

function indexer(chain: FakeChain, o: Partial<IndexerOptions> = {}): Indexer {
  return new Indexer(chain, decoder, {
    chainId: 31337,
    deploymentBlock: 1,
    confirmations: 0,
    logRange: 1000,
    reorgWindow: 64,
    log: silentLogger(),
    ...o,
  });
}

/** The index a fresh indexer builds from the chain as it is now (the reference). */
async function fresh(chain: FakeChain, o: Partial<IndexerOptions> = {}) {
  const ix = indexer(chain, o);
  await ix.sync();
  return ix.view();
}

const A = addr(1);
const B = addr(2);
const C = addr(3);

describe("keeper indexer", () => {
  it("builds accounts (deposits and positions, with their markets) and pending orders from events", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }, { t: "noise" }]);
    chain.mine([{ t: "commit", id: 0n, a: B, at: 105 }, { t: "commit", id: 1n, a: C, at: 103 }]);
    chain.mine([{ t: "exec", id: 0n, a: B }, { t: "pos", a: B, m: 0, size: 5n }, { t: "pos", a: B, m: 3, size: -2n }]);
    chain.mine([{ t: "commit", id: 2n, a: A }, { t: "cancel", id: 2n, a: A }, { t: "pos", a: C, m: 1, size: 1n }]);
    chain.mine([{ t: "pos", a: B, m: 0, size: 0n }, { t: "liq", a: C }]);
    const ix = indexer(chain);
    const r = await ix.sync();
    expect(r.to).to.equal(chain.head);
    expect(ix.view().accounts).to.deep.equal({ [A]: "0x0", [B]: "0x8", [C]: "0x0" });
    expect(ix.accountsWithPositions()).to.deep.equal([B]);
    expect(ix.pendingOrders().map((o) => o.id)).to.deep.equal(["1"]);
    expect(ix.pendingOrders()[0]).to.include({ account: C, executableAt: 103, expiresAt: 703, marketId: 0 });
  });

  it("keeps a partially liquidated account with the markets the Liquidated event says remain", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "pos", a: A, m: 0, size: 5n }, { t: "pos", a: A, m: 2, size: -3n }, { t: "pos", a: B, m: 1, size: 4n }]);
    // A: market 0 closed by the liquidation (PositionModified to 0), market 2 reduced but open; B: fully closed.
    chain.mine([{ t: "pos", a: A, m: 0, size: 0n }, { t: "pos", a: A, m: 2, size: -1n }, { t: "liq", a: A, remaining: 4n }]);
    chain.mine([{ t: "pos", a: B, m: 1, size: 0n }, { t: "liq", a: B, remaining: 0n }]);
    const ix = indexer(chain);
    await ix.sync();
    expect(ix.view().accounts).to.deep.equal({ [A]: "0x4", [B]: "0x0" });
    expect(ix.accountsWithPositions()).to.deep.equal([A]);
  });

  it("stays `confirmations` blocks behind the head and reads logs in bounded ranges", async () => {
    const chain = new FakeChain();
    for (let i = 0; i < 250; i++) chain.mine(i % 10 === 0 ? [{ t: "deposit", a: addr(i) }] : []);
    // Deposits in blocks 1, 11, …, 241; the head is 250.
    const ix = indexer(chain, { confirmations: 10, logRange: 40, reorgWindow: 16 });
    await ix.sync();
    expect(ix.lastBlock).to.equal(chain.head - 10);
    expect(chain.maxLogSpan).to.be.at.most(40);
    expect(ix.accounts().length).to.equal(25 - 1); // the deposit in block 241 is not 10 blocks deep yet
    // Far from the head only range ends are read; near the head every header is (to check parent links).
    expect(chain.calls.block).to.be.lessThan(60);
  });

  it("applies a log an RPC returns twice only once (key: block hash, log index)", async () => {
    const chain = new FakeChain();
    chain.duplicateLogs = true;
    chain.mine([{ t: "commit", id: 7n, a: A }]);
    chain.mine([{ t: "exec", id: 7n, a: A }, { t: "commit", id: 8n, a: A }]);
    const ix = indexer(chain);
    await ix.sync();
    expect(ix.pendingOrders().map((o) => o.id)).to.deep.equal(["8"]);
  });

  it("rewinds a shallow reorg that removes indexed events and applies the new branch", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }]);
    chain.mine([{ t: "commit", id: 0n, a: A }]);
    const ix = indexer(chain);
    await ix.sync();
    chain.mine([{ t: "deposit", a: B }, { t: "exec", id: 0n, a: A }]);
    chain.mine([{ t: "pos", a: A, m: 2, size: 1n }]);
    await ix.sync();
    expect(ix.accounts()).to.include(B);
    expect(ix.pendingOrders()).to.deep.equal([]);

    chain.reorg(2, [[{ t: "deposit", a: C }], [], []]);
    const r = await ix.sync(); // the same instance must notice
    expect(r.reorg).to.deep.equal({ depth: 2, rebuilt: false });
    expect(ix.view()).to.deep.equal(await fresh(chain));
    expect(ix.accounts()).to.not.include(B);
    expect(ix.pendingOrders().map((o) => o.id)).to.deep.equal(["0"]);
  });

  it("reports the accounts changed by events since the last takeChanges, and everything after a reorg", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }]);
    const ix = indexer(chain);
    await ix.sync();
    // The first call after a (re)build: everything may have changed.
    expect(ix.takeChanges()).to.deep.equal({ all: true, accounts: [A] });
    expect(ix.takeChanges()).to.deep.equal({ all: false, accounts: [] });
    chain.mine([{ t: "pos", a: B, m: 1, size: 5n }, { t: "commit", id: 0n, a: C }]);
    chain.mine([{ t: "deposit", a: A }, { t: "liq", a: B }]);
    await ix.sync();
    // A deposit changes collateral but not the market bitmap: still reported. An order commit is not.
    expect(ix.takeChanges()).to.deep.equal({ all: false, accounts: [B, A] });
    chain.reorg(1, [[]]);
    await ix.sync();
    expect(ix.takeChanges()).to.deep.equal({ all: true, accounts: [] });
  });

  it("rebuilds from the deployment block when a reorg is deeper than the window", async () => {
    const chain = new FakeChain();
    for (let i = 0; i < 20; i++) chain.mine([{ t: "deposit", a: addr(i) }]);
    const ix = indexer(chain, { reorgWindow: 4 });
    await ix.sync();
    chain.reorg(10, Array.from({ length: 12 }, (_, i) => [{ t: "deposit", a: addr(100 + i) }] as Ev[]));
    const r = await ix.sync();
    expect(r.reorg?.rebuilt).to.equal(true);
    expect(ix.view()).to.deep.equal(await fresh(chain, { reorgWindow: 4 }));
  });

  it("notices a reorg between its header reads and its log read, and retries", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }]);
    const ix = indexer(chain);
    await ix.sync();
    chain.mine([{ t: "deposit", a: B }]);
    // Reorg right after the headers are read: the logs then come from the other branch.
    const origLogs = chain.logs.bind(chain);
    let once = true;
    chain.logs = async (from, to) => {
      if (once) {
        once = false;
        chain.reorg(1, [[{ t: "deposit", a: C }]]);
      }
      return origLogs(from, to);
    };
    await ix.sync();
    expect(ix.accounts()).to.not.include(C); // nothing applied from a mismatched read
    await ix.sync();
    expect(ix.view()).to.deep.equal(await fresh(chain));
  });

  it("checkpoints atomically and resumes from the checkpoint without re-reading old blocks", async () => {
    const dir = tmpDir("ix");
    const file = path.join(dir, "ck.json");
    const chain = new FakeChain();
    for (let i = 0; i < 30; i++) chain.mine([{ t: "deposit", a: addr(i) }, { t: "commit", id: BigInt(i), a: addr(i) }]);
    const ix = indexer(chain, { logRange: 10 });
    await ix.sync();
    writeCheckpoint(file, ix.toSnapshot(identity));
    expect(fs.readdirSync(dir)).to.deep.equal(["ck.json"]); // no temp file left behind

    for (let i = 0; i < 5; i++) chain.mine([{ t: "exec", id: BigInt(i), a: addr(i) }]);
    const restarted = indexer(chain, { logRange: 10 });
    expect(restarted.loadSnapshot(readCheckpoint(file)!, identity)).to.equal(null);
    chain.calls.logs = 0;
    chain.maxLogSpan = 0;
    await restarted.sync();
    expect(chain.calls.logs).to.equal(2); // only the 5 new blocks (near the head: at most 4 blocks per range)
    expect(chain.maxLogSpan).to.equal(4);
    expect(restarted.view()).to.deep.equal(await fresh(chain, { logRange: 10 }));
  });

  it("detects on restart a reorg that happened while it was down", async () => {
    const dir = tmpDir("ix");
    const file = path.join(dir, "ck.json");
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }]);
    chain.mine([{ t: "deposit", a: B }]);
    const ix = indexer(chain);
    await ix.sync();
    writeCheckpoint(file, ix.toSnapshot(identity));
    chain.reorg(1, [[{ t: "deposit", a: C }], []]);
    const restarted = indexer(chain);
    restarted.loadSnapshot(readCheckpoint(file)!, identity);
    const r = await restarted.sync();
    expect(r.reorg).to.not.equal(null);
    expect(restarted.view()).to.deep.equal(await fresh(chain));
  });

  it("refuses a checkpoint of another deployment or chain", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }]);
    const ix = indexer(chain);
    await ix.sync();
    const snap = ix.toSnapshot(identity);
    expect(indexer(chain).loadSnapshot(snap, { clearingHouse: addr(5), vault: VAULT })).to.match(/another deployment/);
    expect(indexer(chain, { chainId: 1 }).loadSnapshot(snap, identity)).to.match(/chain 31337, not 1/);
    expect(indexer(chain, { deploymentBlock: 2 }).loadSnapshot(snap, identity)).to.match(/deployment block/);
  });

  it("keeps its state consistent when the RPC fails in the middle of a sync", async () => {
    const chain = new FakeChain();
    for (let i = 0; i < 50; i++) chain.mine([{ t: "deposit", a: addr(i) }]);
    const ix = indexer(chain, { logRange: 7 });
    chain.failNext = 0;
    const orig = chain.logs.bind(chain);
    let n = 0;
    chain.logs = async (f, t) => {
      if (++n === 4) throw new Error("ECONNRESET");
      return orig(f, t);
    };
    await ix.sync().catch(() => undefined);
    expect(ix.accounts().length).to.equal(ix.lastBlock); // blocks 1..lastBlock, one deposit each
    await ix.sync();
    expect(ix.view()).to.deep.equal(await fresh(chain, { logRange: 7 }));
  });

  it("applies backstop corrections at its last block, and undoes them with that block on a reorg", async () => {
    const chain = new FakeChain();
    chain.mine([{ t: "deposit", a: A }]);
    const ix = indexer(chain);
    await ix.sync();
    const n = ix.applyCorrections(ix.lastBlock, ix.lastHash, {
      accounts: new Map([[A, 1n]]),
      addOrders: [{ id: "9", account: A, marketId: 0, executableAt: 1, expiresAt: 2, block: ix.lastBlock }],
    });
    expect(n).to.equal(2);
    expect(ix.accountsWithPositions()).to.deep.equal([A]);
    expect(ix.applyCorrections(ix.lastBlock - 1, ix.lastHash, { removeOrders: ["9"] })).to.equal(0); // stale read
    chain.reorg(1, [[]]);
    await ix.sync();
    expect(ix.view()).to.deep.equal(await fresh(chain));
  });

  it("property: after any sequence of blocks, reorgs, restarts and syncs, the index equals a fresh rebuild", async () => {
    const evArb: fc.Arbitrary<Ev> = fc.oneof(
      fc.record({ t: fc.constant("deposit" as const), a: fc.integer({ min: 0, max: 5 }).map(addr) }),
      fc.record({ t: fc.constant("pos" as const), a: fc.integer({ min: 0, max: 5 }).map(addr), m: fc.integer({ min: 0, max: 3 }), size: fc.bigInt({ min: -2n, max: 2n }) }),
      fc.record({ t: fc.constant("liq" as const), a: fc.integer({ min: 0, max: 5 }).map(addr) }),
      fc.record({ t: fc.constant("commit" as const), id: fc.bigInt({ min: 0n, max: 8n }), a: fc.integer({ min: 0, max: 5 }).map(addr) }),
      fc.record({ t: fc.constant("exec" as const), id: fc.bigInt({ min: 0n, max: 8n }), a: fc.constant(addr(0)) }),
      fc.record({ t: fc.constant("cancel" as const), id: fc.bigInt({ min: 0n, max: 8n }), a: fc.constant(addr(0)) }),
    );
    const blockArb = fc.array(evArb, { maxLength: 3 });
    const stepArb = fc.oneof(
      { weight: 5, arbitrary: fc.record({ k: fc.constant("mine" as const), blocks: fc.array(blockArb, { minLength: 1, maxLength: 4 }) }) },
      { weight: 2, arbitrary: fc.record({ k: fc.constant("reorg" as const), depth: fc.integer({ min: 1, max: 12 }), blocks: fc.array(blockArb, { minLength: 0, maxLength: 14 }) }) },
      { weight: 3, arbitrary: fc.record({ k: fc.constant("sync" as const) }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant("restart" as const) }) },
    );
    const dir = tmpDir("prop");
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 2, max: 8 }), async (steps, confirmations, window) => {
        const chain = new FakeChain(2);
        const opts = { confirmations, reorgWindow: window, logRange: 5 };
        let ix = indexer(chain, opts);
        const file = path.join(dir, "p.json");
        for (const s of steps) {
          if (s.k === "mine") for (const b of s.blocks) chain.mine(b);
          else if (s.k === "reorg") {
            const depth = Math.min(s.depth, chain.head - 1);
            if (depth > 0) chain.reorg(depth, s.blocks.length >= depth ? s.blocks : [...s.blocks, ...Array(depth - s.blocks.length).fill([])]);
          } else if (s.k === "restart") {
            writeCheckpoint(file, ix.toSnapshot(identity));
            ix = indexer(chain, opts);
            expect(ix.loadSnapshot(readCheckpoint(file)!, identity)).to.equal(null);
          } else {
            await ix.sync();
            expect(ix.view()).to.deep.equal(await fresh(chain, opts));
          }
        }
        await ix.sync();
        expect(ix.view()).to.deep.equal(await fresh(chain, opts));
      }),
      { numRuns: 100 },
    );
  });
});
