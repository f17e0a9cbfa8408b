import { expect } from "chai";
import { parseUnits, ZeroAddress, MaxUint256 } from "ethers";
import * as fs from "fs";
import {
  dumpOnFailure,
  freePort,
  TcpProxy,
  account,
  commitOrder,
  deployLocal,
  increaseTime,
  killAll,
  KeeperProc,
  liquidations,
  liquidatedBy,
  metricSum,
  Node,
  openLongs,
  setPrice,
  currentPriceUsd,
  startHardhatNode,
  startKeeper,
  waitFor,
} from "./helpers";

describe("keeper end-to-end on a hardhat node", function () {
  this.timeout(180_000);
  let node: Node;
  const keepers: KeeperProc[] = [];

  before(async () => {
    node = await startHardhatNode();
  });
  const proxies: TcpProxy[] = [];
  afterEach(async function () {
    dumpOnFailure(this, keepers);
    await Promise.all(keepers.splice(0).map((k) => k.kill("SIGKILL")));
    await Promise.all(proxies.splice(0).map((p) => p.stop()));
  });
  after(async () => {
    await killAll();
  });

  it("executes a committed order after minDelay and liquidates the accounts a price drop makes liquidatable", async () => {
    const l = await deployLocal(node.url);
    const traders = [10, 11, 12].map((i) => account(i, l.provider));
    await openLongs(l, traders, "10000", "75");
    const keeperWallet = account(1, l.provider);
    const k = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: keeperWallet.privateKey });
    keepers.push(k);
    await waitFor("index of 3 accounts with positions", async () => metricSum(await k.metrics(), "keeper_accounts_with_positions") === 3 || (await k.metrics()).get("keeper_accounts_with_positions") === 3);

    // An order: not executable before minDelay, executed by the keeper after it.
    const trader = account(13, l.provider);
    await (await l.d.token.mint(trader.address, parseUnits("10000", 6))).wait();
    await (await l.d.token.connect(trader).approve(await l.d.vault.getAddress(), MaxUint256)).wait();
    await (await l.d.vault.connect(trader).deposit(trader.address, parseUnits("10000", 6))).wait();
    const orderId = await commitOrder(l, trader, 0, parseUnits("1", 18));
    await waitFor("the order indexed", async () => (await k.metrics()).get("keeper_pending_orders") === 1);
    expect((await l.d.clearingHouse.order(orderId)).account).to.equal(trader.address);
    await increaseTime(node.url, 6);
    await setPrice(l, 0, await currentPriceUsd(l, 0)); // orders execute at a round published after their commit
    await waitFor("the order executed", async () => (await l.d.clearingHouse.order(orderId)).account === ZeroAddress, 20_000);
    const executed = await l.d.clearingHouse.queryFilter(l.d.clearingHouse.filters.OrderExecuted(orderId));
    expect(executed).to.have.length(1);
    expect((executed[0] as any).args.keeper).to.equal(keeperWallet.address);

    // A 6% drop: 15× longs fall below maintenance.
    const before = await l.provider.getBlockNumber();
    await setPrice(l, 0, "1880");
    const liq = await waitFor("3 liquidations", async () => {
      const m = await liquidations(l, before);
      return m.size === 3 ? m : null;
    }, 30_000);
    for (const t of traders) {
      expect(liq.get(t.address), t.address).to.have.length(1);
      expect(liq.get(t.address)![0].liquidator).to.equal(keeperWallet.address);
    }
    // The risk job folded the new price round into σ (pokeVolatility reads the rounds itself).
    const rm = l.d.riskManager as unknown as { pendingRounds?: (m: number) => Promise<bigint> };
    if (typeof rm.pendingRounds === "function") {
      await waitFor("the new price round folded in by the risk job", async () => (await rm.pendingRounds!(0)) === 0n, 20_000);
      expect(metricSum(await k.metrics(), "keeper_txs_confirmed_total", { job: "risk" })).to.be.greaterThan(0);
    }
    const m = await k.metrics();
    expect(metricSum(m, "keeper_txs_failed_total")).to.equal(0);
    for (const name of [
      "keeper_blocks_behind_head", "keeper_accounts_indexed", "keeper_health_scan_seconds_count", "keeper_txs_sent_total",
      "keeper_eth_balance", "keeper_last_processed_block", "keeper_pending_orders",
    ]) {
      expect(m.has(name), name).to.equal(true);
    }
    expect(m.get("keeper_eth_balance")).to.be.greaterThan(0);
    expect(await k.healthz()).to.equal(200);
  });

  it("resumes from its checkpoint after SIGKILL: misses no liquidation and resends nothing that landed", async () => {
    const l = await deployLocal(node.url);
    const traders = [10, 11, 12, 13, 14, 15].map((i) => account(i, l.provider));
    await openLongs(l, traders, "10000", "75");
    const keeperWallet = account(2, l.provider);
    // Small liquidation batches (where the contract has liquidateBatch) so the kill lands mid-run.
    const k1 = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: keeperWallet.privateKey, name: "keeper-1", extra: ["--liquidation-batch-size", "2"] });
    keepers.push(k1);
    // A pending order, indexed and checkpointed before the crash.
    const orderTrader = account(16, l.provider);
    await (await l.d.token.mint(orderTrader.address, parseUnits("10000", 6))).wait();
    await (await l.d.token.connect(orderTrader).approve(await l.d.vault.getAddress(), MaxUint256)).wait();
    await (await l.d.vault.connect(orderTrader).deposit(orderTrader.address, parseUnits("10000", 6))).wait();
    const orderId = await commitOrder(l, orderTrader, 0, parseUnits("1", 18));
    await waitFor("6 accounts and the order indexed", async () => {
      const m = await k1.metrics();
      return m.get("keeper_accounts_with_positions") === 6 && m.get("keeper_pending_orders") === 1;
    });
    await waitFor("a checkpoint with the order", () => fs.existsSync(k1.checkpoint) && JSON.parse(fs.readFileSync(k1.checkpoint, "utf8")).orders.length === 1);

    // Liquidations start; the keeper is killed as soon as the first one lands.
    const from = await l.provider.getBlockNumber();
    await setPrice(l, 0, "1880");
    await waitFor("a first liquidation", async () => (await liquidations(l, from)).size > 0, 30_000, 10);
    await k1.kill("SIGKILL");
    const landed = await liquidations(l, from);
    const ck = JSON.parse(fs.readFileSync(k1.checkpoint, "utf8"));

    // While it is down: a new trader opens a BTC position (events to catch up on) that a BTC drop makes
    // liquidatable, and the order becomes due. (ETH stays at 1880: the ETH accounts already liquidated, which
    // partial liquidation left above their initial requirement, must not be liquidated again.)
    const late = account(17, l.provider);
    await openLongs(l, [late], "10000", "2.5", 1);
    await setPrice(l, 1, "56400");
    await increaseTime(node.url, 6);
    await setPrice(l, 0, "1880");
    await setPrice(l, 1, "56400");

    const k2 = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: keeperWallet.privateKey, checkpoint: k1.checkpoint, name: "keeper-2" });
    keepers.push(k2);
    const resumed = await k2.waitLog("resume", (x) => x.msg === "resuming from checkpoint");
    expect(resumed.lastBlock).to.equal(ck.lastBlock);
    expect(resumed.lastBlock).to.be.greaterThan(JSON.parse(fs.readFileSync(l.deploymentPath, "utf8")).deploymentBlock);
    expect(resumed.orders).to.equal(1);

    const all = [...traders, late];
    const liq = await waitFor("every account liquidated", async () => {
      const m = await liquidations(l, from);
      return all.every((t) => m.has(t.address)) ? m : null;
    }, 40_000);
    await waitFor("the order executed", async () => (await l.d.clearingHouse.order(orderId)).account === ZeroAddress, 20_000);
    // Let the restarted keeper run a few more loops over the final state.
    const it0 = (await k2.metrics()).get("keeper_loop_iterations_total")!;
    await waitFor("two more loops", async () => (await k2.metrics()).get("keeper_loop_iterations_total")! >= it0 + 2);

    for (const t of all) expect(liq.get(t.address), `liquidations of ${t.address}`).to.have.length(1);
    const m2 = await k2.metrics();
    // The restarted keeper sent exactly the liquidations that had not landed, and never touched the others.
    expect(await liquidatedBy(k2)).to.equal(all.length - landed.size);
    expect(metricSum(m2, "keeper_txs_raced_total")).to.equal(0);
    expect(metricSum(m2, "keeper_txs_failed_total")).to.equal(0);
    console.log(`      (${landed.size} of ${traders.length} liquidations had landed before the SIGKILL)`);
  });

  it("recovers by itself when its RPC endpoint goes away and comes back; exits 0 on SIGTERM", async () => {
    const l = await deployLocal(node.url);
    const traders = [10, 11].map((i) => account(i, l.provider));
    await openLongs(l, traders, "10000", "75");
    const proxy = new TcpProxy(await freePort(), node.port);
    proxies.push(proxy);
    await proxy.start();
    const k = await startKeeper({
      rpc: proxy.url,
      deployment: l.deploymentPath,
      key: account(3, l.provider).privateKey,
      extra: ["--health-max-age", "2", "--rpc-timeout", "1000"],
    });
    keepers.push(k);
    await waitFor("2 accounts indexed", async () => (await k.metrics()).get("keeper_accounts_with_positions") === 2);
    await waitFor("/healthz 200 once a loop completed", async () => (await k.healthz()) === 200);

    await proxy.stop();
    const from = await l.provider.getBlockNumber();
    await setPrice(l, 0, "1880");
    await waitFor("/healthz 503 while the RPC is down", async () => (await k.healthz()) === 503, 20_000);
    expect((await liquidations(l, from)).size).to.equal(0);
    expect((await k.metrics()).get("keeper_rpc_errors_total")).to.be.greaterThan(0);

    await proxy.start();
    await waitFor("both accounts liquidated after the RPC came back", async () => (await liquidations(l, from)).size === 2, 30_000);
    await waitFor("/healthz 200 again", async () => (await k.healthz()) === 200);

    await k.kill("SIGTERM");
    expect(k.exitCode).to.equal(0);
    expect(k.logs().some((x) => x.msg === "keeper stopped")).to.equal(true);
    expect(JSON.parse(fs.readFileSync(k.checkpoint, "utf8")).lastBlock).to.be.greaterThan(from);
  });

  it("fails over to the next RPC URL when the first goes away", async () => {
    const l = await deployLocal(node.url);
    const [trader] = [10].map((i) => account(i, l.provider));
    await openLongs(l, [trader], "10000", "75");
    const proxy = new TcpProxy(await freePort(), node.port);
    proxies.push(proxy);
    await proxy.start();
    const k = await startKeeper({ rpc: `${proxy.url},${node.url}`, deployment: l.deploymentPath, key: account(4, l.provider).privateKey, extra: ["--rpc-timeout", "1000"] });
    keepers.push(k);
    await waitFor("indexed", async () => (await k.metrics()).get("keeper_accounts_with_positions") === 1);
    await proxy.stop();
    const from = await l.provider.getBlockNumber();
    await setPrice(l, 0, "1880");
    await waitFor("liquidated through the second URL", async () => (await liquidations(l, from)).size === 1, 20_000);
    expect((await k.metrics()).get("keeper_rpc_failovers_total")).to.be.greaterThan(0);
  });

  it("two unsharded keepers race: every account is liquidated exactly once, the loser wastes at most one attempt per account", async () => {
    const l = await deployLocal(node.url);
    const traders = [10, 11, 12, 13, 14, 15].map((i) => account(i, l.provider));
    await openLongs(l, traders, "10000", "75");
    const wa = account(5, l.provider);
    const wb = account(6, l.provider);
    const ka = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: wa.privateKey, name: "keeper-a", jobs: "liquidations" });
    const kb = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: wb.privateKey, name: "keeper-b", jobs: "liquidations" });
    keepers.push(ka, kb);
    for (const k of [ka, kb]) await waitFor(`${k.name} indexed`, async () => (await k.metrics()).get("keeper_accounts_with_positions") === 6);

    const from = await l.provider.getBlockNumber();
    await setPrice(l, 0, "1880");
    const liq = await waitFor("6 accounts liquidated", async () => {
      const m = await liquidations(l, from);
      return m.size === 6 ? m : null;
    }, 30_000);
    for (const k of [ka, kb]) {
      const it0 = (await k.metrics()).get("keeper_loop_iterations_total")!;
      await waitFor(`${k.name} loops on`, async () => (await k.metrics()).get("keeper_loop_iterations_total")! >= it0 + 2);
    }
    for (const t of traders) expect(liq.get(t.address), t.address).to.have.length(1);
    const [ma, mb] = [await ka.metrics(), await kb.metrics()];
    const raced = metricSum(ma, "keeper_txs_raced_total") + metricSum(mb, "keeper_txs_raced_total");
    expect((await liquidatedBy(ka)) + (await liquidatedBy(kb))).to.equal(6);
    expect(raced).to.be.at.most(6);
    expect(metricSum(ma, "keeper_txs_failed_total") + metricSum(mb, "keeper_txs_failed_total")).to.equal(0);
    // A lost race is logged at info as "raced", never as an error.
    for (const k of [ka, kb]) expect(k.logs().filter((x) => x.level === "error")).to.deep.equal([]);
    const stage = (s: string) => metricSum(ma, "keeper_txs_raced_total", { stage: s }) + metricSum(mb, "keeper_txs_raced_total", { stage: s });
    console.log(
      `      (keeper-a liquidated ${await liquidatedBy(ka)}, keeper-b ${await liquidatedBy(kb)}; lost races: ${stage("simulation")} in simulation, ${stage("tx")} on-chain)`,
    );
  });

  it("two sharded keepers (--shard 0/2, 1/2) split the accounts with no race at all", async () => {
    const l = await deployLocal(node.url);
    const traders = [10, 11, 12, 13, 14, 15].map((i) => account(i, l.provider));
    await openLongs(l, traders, "10000", "75");
    const wa = account(7, l.provider);
    const wb = account(8, l.provider);
    const ka = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: wa.privateKey, name: "shard-0", extra: ["--shard", "0/2"] });
    const kb = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: wb.privateKey, name: "shard-1", extra: ["--shard", "1/2"] });
    keepers.push(ka, kb);
    for (const k of [ka, kb]) await waitFor(`${k.name} indexed`, async () => (await k.metrics()).get("keeper_accounts_with_positions") === 6);
    const from = await l.provider.getBlockNumber();
    await setPrice(l, 0, "1880");
    const liq = await waitFor("6 accounts liquidated", async () => {
      const m = await liquidations(l, from);
      return m.size === 6 ? m : null;
    }, 30_000);
    const { accountShard } = await import("../../keepers/shard");
    for (const t of traders) {
      expect(liq.get(t.address)).to.have.length(1);
      expect(liq.get(t.address)![0].liquidator).to.equal(accountShard(t.address, 2) === 0 ? wa.address : wb.address);
    }
    const [ma, mb] = [await ka.metrics(), await kb.metrics()];
    expect(metricSum(ma, "keeper_txs_raced_total") + metricSum(mb, "keeper_txs_raced_total")).to.equal(0);
  });

  it("flags a margin call on an account between the hard floor and maintenance, and liquidates it after the grace window", async function () {
    const { ClearingHouse__factory } = await import("../../typechain-types");
    const { PARAM } = await import("../../scripts/lib/params");
    const sigmaSource = (PARAM as Record<string, number>).SigmaSource;
    if (!ClearingHouse__factory.createInterface().getFunction("flagMarginCall") || sigmaSource === undefined) this.skip();
    const l = await deployLocal(node.url);
    const ch = l.d.clearingHouse as any;
    // σ from the volatility feed only, so that moving the price does not move the margin ratio.
    await (await (l.d.riskManager as any).setMarketParam(0, sigmaSource, 0)).wait();
    await (await (l.d.riskManager as any).pokeVolatility(0)).wait();
    const trader = account(10, l.provider);
    await openLongs(l, [trader], "10000", "75");

    // Price at which equity = 0.875 × maintenance (between the 0.75 hard floor and maintenance).
    for (let i = 0; i < 4; i++) {
      const s = await ch.accountSummary(trader.address);
      if (Number(s.status) === 1) break;
      const eq = Number(s.equityD18) / 1e18;
      const mm = Number(s.maintenanceRequirementD18) / 1e18;
      const p0 = Number(await (await import("./helpers")).currentPriceUsd(l));
      const size = 75;
      const k = mm / (size * p0);
      const p = (eq - size * p0) / (0.875 * k * size - size);
      await setPrice(l, 0, p.toFixed(2));
    }
    expect(Number((await ch.accountSummary(trader.address)).status), "MarginCallable").to.equal(1);

    const keeperWallet = account(9, l.provider);
    const k = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: keeperWallet.privateKey });
    keepers.push(k);
    const flagged = await waitFor("a margin call flagged by the keeper", async () => {
      const evs = await ch.queryFilter(ch.filters.MarginCallFlagged(trader.address));
      return evs.length > 0 ? evs : null;
    }, 30_000);
    expect(flagged).to.have.length(1);
    expect(flagged[0].args.by).to.equal(keeperWallet.address);
    const deadline = Number(flagged[0].args.deadline);
    // Inside the grace window the account is not liquidated.
    await increaseTime(node.url, 5);
    const it0 = (await k.metrics()).get("keeper_loop_iterations_total")!;
    await waitFor("two more loops", async () => (await k.metrics()).get("keeper_loop_iterations_total")! >= it0 + 2);
    expect((await liquidations(l, 0)).size).to.equal(0);

    const grace = Number(await ch.marginCallGrace());
    await increaseTime(node.url, grace + 1);
    await setPrice(l, 0, await (await import("./helpers")).currentPriceUsd(l)); // fresh round, same price
    const liq = await waitFor("liquidated after the deadline", async () => {
      const m = await liquidations(l, 0);
      return m.size === 1 ? m : null;
    }, 30_000);
    const block = await l.provider.getBlock(liq.get(trader.address)![0].block);
    expect(block!.timestamp).to.be.greaterThan(deadline);
    expect(liq.get(trader.address)![0].liquidator).to.equal(keeperWallet.address);
    expect(metricSum(await k.metrics(), "keeper_txs_failed_total")).to.equal(0);
  });

  it("pokes a market whose feeds were reset by the admin, although that poke folds no round, so its rounds stop being pending", async () => {
    const l = await deployLocal(node.url);
    const rm = l.d.riskManager as any;
    const keeperWallet = account(9, l.provider);
    const k = await startKeeper({ rpc: node.url, deployment: l.deploymentPath, key: keeperWallet.privateKey });
    keepers.push(k);
    await waitFor("the first pokes", async () => (await rm.pendingRounds(0)) === 0n && (await rm.pendingRounds(1)) === 0n, 30_000);
    // The same feeds again: the estimator's cursor restarts, so the latest round is pending, but it is not newer
    // than the last round folded, so a poke folds nothing and only moves the cursor.
    await (await rm.setMarketFeeds(0, await l.d.priceFeeds[0].getAddress(), await l.d.volFeeds[0].getAddress())).wait();
    expect(await rm.pendingRounds(0)).to.be.greaterThan(0n);
    await waitFor("the cursor-only poke", async () => (await rm.pendingRounds(0)) === 0n, 30_000);
    const evs = await rm.queryFilter(rm.filters.VolatilityUpdated(0));
    const last = evs[evs.length - 1];
    expect(last.args.roundsFolded).to.equal(0n);
    expect((await l.provider.getTransaction(last.transactionHash))!.from).to.equal(keeperWallet.address);
    expect(metricSum(await k.metrics(), "keeper_txs_failed_total")).to.equal(0);
  });
});
