import { expect } from "chai";
import * as fs from "fs";
import { MaxUint256, parseUnits, parseUnits as gwei } from "ethers";
import type { Wallet } from "ethers";
import {
  account,
  anvilAvailable,
  commitOrder,
  deployLocal,
  dumpOnFailure,
  killAll,
  KeeperProc,
  Local,
  Node,
  rpc,
  startAnvil,
  startKeeper,
  waitFor,
} from "./helpers";

/** The keeper's index as its checkpoint file has it. */
function index(k: KeeperProc): { lastBlock: number; accounts: string[]; orders: string[] } | null {
  if (!fs.existsSync(k.checkpoint)) return null;
  const s = JSON.parse(fs.readFileSync(k.checkpoint, "utf8"));
  return { lastBlock: s.lastBlock, accounts: s.accounts.map((a: [string, string]) => a[0]), orders: s.orders.map((o: { id: string }) => o.id) };
}

async function fund(l: Local, w: Wallet) {
  await (await l.d.token.mint(w.address, parseUnits("100000", 6))).wait();
  await (await l.d.token.connect(w).approve(await l.d.vault.getAddress(), MaxUint256)).wait();
}

describe("keeper index under reorgs (anvil)", function () {
  this.timeout(120_000);
  let node: Node;
  let l: Local;
  const keepers: KeeperProc[] = [];

  before(async function () {
    if (!anvilAvailable()) this.skip();
    node = await startAnvil();
    l = await deployLocal(node.url);
  });
  afterEach(async function () {
    dumpOnFailure(this, keepers);
    await Promise.all(keepers.splice(0).map((k) => k.kill("SIGKILL")));
  });
  after(async () => {
    await killAll();
  });

  it("rewinds a reorg that removes indexed events, and indexes the events that replace them", async () => {
    const [x, y] = [10, 11].map((i) => account(i, l.provider));
    await fund(l, x);
    await fund(l, y);
    const k = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: account(1, l.provider).privateKey, jobs: "orders,liquidations", extra: ["--reorg-window", "16"] });
    keepers.push(k);
    const fork = await l.provider.getBlockNumber();
    await waitFor("indexed up to the fork point", () => (index(k)?.lastBlock ?? -1) >= fork);

    // On the soon-to-be-orphaned branch: x deposits and commits an order.
    await (await l.d.vault.connect(x).deposit(x.address, parseUnits("1000", 6))).wait();
    const orderId = await commitOrder(l, x, 0, parseUnits("1", 18));
    const head = await l.provider.getBlockNumber();
    await waitFor("x and its order indexed", () => {
      const i = index(k);
      return i && i.lastBlock >= head && i.accounts.includes(x.address) && i.orders.includes(orderId.toString());
    });

    // Reorg: those blocks are replaced by a branch where y deposits instead.
    const vault = await l.d.vault.getAddress();
    const raw = await y.signTransaction({
      to: vault,
      data: l.d.vault.interface.encodeFunctionData("deposit", [y.address, parseUnits("500", 6)]),
      nonce: await l.provider.getTransactionCount(y.address),
      gasLimit: 300_000n,
      maxFeePerGas: gwei("20", "gwei"),
      maxPriorityFeePerGas: gwei("1", "gwei"),
      chainId: 31337n,
      type: 2,
    });
    await rpc(node.url, "anvil_reorg", [head - fork, [[raw, 0]]]);
    expect(await l.d.vault.collateralOf(x.address)).to.equal(0n);
    expect(await l.d.vault.collateralOf(y.address)).to.equal(parseUnits("500", 6));

    await waitFor("index corrected: y in, x and its order out", () => {
      const i = index(k);
      return i && i.accounts.includes(y.address) && !i.accounts.includes(x.address) && i.orders.length === 0;
    });
    await k.waitLog("reorg log", (e) => e.msg === "reorg detected: index rewound");
    const m = await k.metrics();
    expect(m.get("keeper_reorgs_total")).to.be.greaterThan(0);
    expect(m.get("keeper_index_rebuilds_total")).to.equal(0);
  });

  it("rebuilds from the deployment block after a reorg deeper than its window", async () => {
    const z = account(12, l.provider);
    await fund(l, z);
    const k = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: account(2, l.provider).privateKey, jobs: "liquidations", extra: ["--reorg-window", "4"] });
    keepers.push(k);
    const fork = await l.provider.getBlockNumber();
    const before = await waitFor("initial index", () => {
      const i = index(k);
      return i && i.lastBlock >= fork ? i : null;
    });
    await (await l.d.vault.connect(z).deposit(z.address, parseUnits("1000", 6))).wait();
    await rpc(node.url, "anvil_mine", ["0xa"]);
    const head = await l.provider.getBlockNumber();
    await waitFor("z indexed", () => {
      const i = index(k);
      return i && i.lastBlock >= head && i.accounts.includes(z.address);
    });
    await rpc(node.url, "anvil_reorg", [head - fork, []]);
    await waitFor("rebuilt without z", () => {
      const i = index(k);
      return i && !i.accounts.includes(z.address) && i.lastBlock >= head;
    });
    const m = await k.metrics();
    expect(m.get("keeper_index_rebuilds_total")).to.equal(1);
    expect(index(k)!.accounts.sort()).to.deep.equal(before.accounts.sort());
  });
});
