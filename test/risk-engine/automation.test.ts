// SigmaAutomation: Chainlink Automation's checkUpkeep (simulated off-chain, from address zero) and
// performUpkeep (re-checks everything) for the three keeper jobs — σ pokes, orders, margin calls and
// liquidations — and the owner's withdrawal of what the upkeep earned.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { sigmaFixture, setPrice, setVol, usdc, d18, Fixture, chEvents } from "../fixture";
import { STATUS } from "../clearinghouse/math";
import { ETH, BTC, JOB, checkUpkeep, coder, encodePerform, execOrder, heartbeat } from "./helpers";

/** Three ETH traders — 2× (safe), 20× (thin: margin call at σ 150%), 29× (reckless: liquidatable at σ 150%) —
 * and a fourth account that never trades. All four are tracked by the Automation contract. */
async function automationFixture() {
  const f = await sigmaFixture();
  const [safe, thin, reckless, idle] = f.traders;
  for (const [t, c] of [
    [safe, "10000"],
    [thin, "1000"],
    [reckless, "700"],
  ] as const) {
    await f.vault.connect(t).deposit(t.address, usdc(c));
    expect((await execOrder(f, t, ETH, d18(10))).filled).to.equal(true);
  }
  await f.automation.track([safe.address, thin.address, reckless.address, idle.address]);
  return { f, safe, thin, reckless, idle };
}

async function performed(f: Fixture, tx: Promise<any>) {
  const rc = await (await tx).wait();
  const ev = rc.logs
    .map((l: any) => {
      try {
        return f.automation.interface.parseLog(l);
      } catch {
        return null;
      }
    })
    .find((e: any) => e?.name === "UpkeepPerformed");
  return { rc, job: Number(ev!.args.job), actions: ev!.args.actions as bigint };
}

describe("risk engine: Chainlink Automation (SigmaAutomation)", () => {
  it("checkUpkeep only runs in simulation: a real call reverts (OnlySimulatedBackend), an eth_call from address zero answers", async () => {
    const { f } = await loadFixture(automationFixture);
    const checkData = coder.encode(["uint8", "uint256", "uint256"], [JOB.POKE, 0, 10]);
    await expect(f.automation.connect(f.keeper).checkUpkeep.staticCall(checkData)).to.be.revertedWithCustomError(
      f.automation,
      "OnlySimulatedBackend",
    );
    await f.riskManager.pokeVolatility(ETH);
    await f.riskManager.pokeVolatility(BTC);
    const r = await checkUpkeep(f, JOB.POKE);
    expect([r.upkeepNeeded, r.performData]).to.deep.equal([false, encodePerform(JOB.POKE, ["uint256[]"], [[]])]);
  });

  it("an unknown job is refused by checkUpkeep and performUpkeep (AutomationUnknownJob)", async () => {
    const { f } = await loadFixture(automationFixture);
    let data = "";
    try {
      await checkUpkeep(f, 7);
    } catch (e: any) {
      data = e.data;
    }
    const err = f.automation.interface.parseError(data);
    expect([err?.name, ...(err?.args ?? [])]).to.deep.equal(["AutomationUnknownJob", 7n]);
    await expect(f.automation.performUpkeep(coder.encode(["uint8", "bytes"], [7, "0x"])))
      .to.be.revertedWithCustomError(f.automation, "AutomationUnknownJob")
      .withArgs(7);
  });

  describe("JOB_POKE", () => {
    it("nothing to do → upkeepNeeded false; new price rounds → true with the markets to poke; performUpkeep pokes them; then false again", async () => {
      const { f } = await loadFixture(automationFixture);
      await f.riskManager.pokeVolatility(ETH);
      await f.riskManager.pokeVolatility(BTC);
      expect((await checkUpkeep(f, JOB.POKE)).upkeepNeeded).to.equal(false);

      await setPrice(f, ETH, "2010");
      let r = await checkUpkeep(f, JOB.POKE);
      expect(r.upkeepNeeded).to.equal(true);
      expect(r.performData).to.equal(encodePerform(JOB.POKE, ["uint256[]"], [[ETH]]));
      await setPrice(f, BTC, "60100");
      r = await checkUpkeep(f, JOB.POKE);
      expect(r.performData).to.equal(encodePerform(JOB.POKE, ["uint256[]"], [[ETH, BTC]]));

      const p = await performed(f, f.automation.connect(f.others[0]).performUpkeep(r.performData));
      expect([p.job, p.actions]).to.deep.equal([JOB.POKE, 2n]);
      const updates = p.rc.logs.filter((l: any) => l.address === f.riskManager.target).map((l: any) => f.riskManager.interface.parseLog(l)!);
      expect(updates.filter((e: any) => e.name === "VolatilityUpdated").map((e: any) => [e.args.marketId, e.args.roundsFolded])).to.deep.equal([
        [BigInt(ETH), 1n],
        [BigInt(BTC), 1n],
      ]);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(0n);
      expect((await checkUpkeep(f, JOB.POKE)).upkeepNeeded).to.equal(false);

      // Stale performData: nothing is needed any more, so nothing is done, and nothing reverts.
      const again = await performed(f, f.automation.performUpkeep(r.performData));
      expect(again.actions).to.equal(0n);
      expect(again.rc.logs.some((l: any) => l.address === f.riskManager.target)).to.equal(false);
    });

    it("a new volatility round is a reason to poke; performUpkeep puts the new σ in use", async () => {
      const { f } = await loadFixture(automationFixture);
      await f.volFeeds[ETH].updateAnswer(parseUnits("90", 2));
      const r = await checkUpkeep(f, JOB.POKE);
      expect(r.performData).to.equal(encodePerform(JOB.POKE, ["uint256[]"], [[ETH]]));
      await f.automation.performUpkeep(r.performData);
      expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("0.9"));
    });
  });

  describe("JOB_ORDERS", () => {
    async function commit(f: Fixture, who: { address: string }, size: bigint) {
      const fee = await f.clearingHouse.minExecutionFee();
      const s = await ethers.getSigner(who.address);
      const rc = await (await f.clearingHouse.connect(s).commitOrder(ETH, size, size > 0n ? 2n ** 95n : 0n, { value: fee })).wait();
      return chEvents(f, rc).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
    }

    it("orders not yet due → false; due → true with their ids; performUpkeep executes them, the fees accrue to the automation contract", async () => {
      const { f, safe, thin } = await loadFixture(automationFixture);
      const fee = await f.clearingHouse.minExecutionFee();
      expect((await checkUpkeep(f, JOB.ORDERS, 0, 10)).upkeepNeeded).to.equal(false);
      const id1 = await commit(f, safe, -d18(2));
      const id2 = await commit(f, thin, -d18(1));
      expect((await checkUpkeep(f, JOB.ORDERS, 0, 10)).upkeepNeeded, "before minDelay").to.equal(false);
      await time.increase(Number(await f.clearingHouse.minDelay()));
      await heartbeat(f, ETH); // orders execute at a price round published after their commit
      const r = await checkUpkeep(f, JOB.ORDERS, 0, 10);
      expect(r.upkeepNeeded).to.equal(true);
      expect(r.performData).to.equal(encodePerform(JOB.ORDERS, ["uint256[]", "uint256[]"], [[id1, id2], []]));
      // The window only looks at the last `count` order ids.
      expect((await checkUpkeep(f, JOB.ORDERS, 0, 1)).performData).to.equal(encodePerform(JOB.ORDERS, ["uint256[]", "uint256[]"], [[id2], []]));

      const auto = await f.automation.getAddress();
      const ethBefore = await ethers.provider.getBalance(auto);
      const p = await performed(f, f.automation.connect(f.others[1]).performUpkeep(r.performData));
      expect(p.actions).to.equal(2n);
      const executed = chEvents(f, p.rc).filter((e) => e.name === "OrderExecuted");
      expect(executed.map((e) => [e.args.orderId, e.args.keeper])).to.deep.equal([
        [id1, auto],
        [id2, auto],
      ]);
      expect((await f.clearingHouse.position(safe.address, ETH)).sizeD18).to.equal(d18(8));
      expect((await f.clearingHouse.position(thin.address, ETH)).sizeD18).to.equal(d18(9));
      expect(await ethers.provider.getBalance(auto)).to.equal(ethBefore + 2n * fee);
      expect((await checkUpkeep(f, JOB.ORDERS, 0, 10)).upkeepNeeded).to.equal(false);

      // Stale performData (orders already executed): no action, no revert, no fee.
      const again = await performed(f, f.automation.performUpkeep(r.performData));
      expect(again.actions).to.equal(0n);
      expect(await ethers.provider.getBalance(auto)).to.equal(ethBefore + 2n * fee);
    });

    it("an order with no price round since its commit is not reported as due (performing it would only waste an upkeep); the next round makes it due", async () => {
      const { f, safe } = await loadFixture(automationFixture);
      const id = await commit(f, safe, -d18(1));
      await time.increase(Number(await f.clearingHouse.minDelay()) + 60);
      // Executing now would revert: the order waits for a round published after its commit.
      await expect(f.clearingHouse.connect(f.keeper).executeOrder.staticCall(id)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseAwaitingPriceRound",
      );
      const r = await checkUpkeep(f, JOB.ORDERS, 0, 10);
      expect(r.upkeepNeeded, `upkeepNeeded with performData ${r.performData}`).to.equal(false);
      await heartbeat(f, ETH);
      const r2 = await checkUpkeep(f, JOB.ORDERS, 0, 10);
      expect(r2.performData).to.equal(encodePerform(JOB.ORDERS, ["uint256[]", "uint256[]"], [[id], []]));
      expect((await performed(f, f.automation.performUpkeep(r2.performData))).actions).to.equal(1n);
    });

    it("expired orders → true with their ids to cancel; performUpkeep cancels them and the trader gets the fee back", async () => {
      const { f, safe } = await loadFixture(automationFixture);
      const fee = await f.clearingHouse.minExecutionFee();
      const id = await commit(f, safe, d18(1));
      await time.increase(Number(await f.clearingHouse.maxAge()) + 1);
      const r = await checkUpkeep(f, JOB.ORDERS, 0, 10);
      expect(r.upkeepNeeded).to.equal(true);
      expect(r.performData).to.equal(encodePerform(JOB.ORDERS, ["uint256[]", "uint256[]"], [[], [id]]));
      const before = await ethers.provider.getBalance(safe.address);
      const p = await performed(f, f.automation.connect(f.others[1]).performUpkeep(r.performData));
      expect(p.actions).to.equal(1n);
      const c = chEvents(f, p.rc).find((e) => e.name === "OrderCancelled")!;
      expect([c.args.orderId, c.args.account, c.args.by, c.args.reason]).to.deep.equal([id, safe.address, await f.automation.getAddress(), "0x"]);
      expect(await ethers.provider.getBalance(safe.address)).to.equal(before + fee);
      expect((await f.clearingHouse.order(id)).account).to.equal(ethers.ZeroAddress);
      expect((await checkUpkeep(f, JOB.ORDERS, 0, 10)).upkeepNeeded).to.equal(false);
    });
  });

  describe("JOB_ACCOUNTS", () => {
    it("healthy tracked accounts → false; after a σ jump → the liquidatable and the margin-callable ones; performUpkeep liquidates and flags them", async () => {
      const { f, thin, reckless } = await loadFixture(automationFixture);
      expect(await f.automation.trackedCount()).to.equal(4n);
      expect((await checkUpkeep(f, JOB.ACCOUNTS, 0, 10)).upkeepNeeded).to.equal(false);
      await setVol(f, ETH, "150");
      const r = await checkUpkeep(f, JOB.ACCOUNTS, 0, 10);
      expect(r.upkeepNeeded).to.equal(true);
      expect(r.performData).to.equal(encodePerform(JOB.ACCOUNTS, ["address[]", "address[]"], [[reckless.address], [thin.address]]));
      // [start, start + count) of the tracked list.
      expect((await checkUpkeep(f, JOB.ACCOUNTS, 1, 1)).performData).to.equal(
        encodePerform(JOB.ACCOUNTS, ["address[]", "address[]"], [[], [thin.address]]),
      );
      expect((await checkUpkeep(f, JOB.ACCOUNTS, 3, 10)).upkeepNeeded).to.equal(false);

      const auto = await f.automation.getAddress();
      const p = await performed(f, f.automation.connect(f.others[2]).performUpkeep(r.performData));
      expect(p.actions).to.equal(2n);
      const ev = chEvents(f, p.rc);
      const liq = ev.find((e) => e.name === "Liquidated")!;
      expect([liq.args.account, liq.args.liquidator]).to.deep.equal([reckless.address, auto]);
      const flag = ev.find((e) => e.name === "MarginCallFlagged")!;
      expect([flag.args.account, flag.args.by]).to.deep.equal([thin.address, auto]);
      // The liquidation reward is the automation contract's collateral in the Vault.
      expect(await f.vault.collateralOf(auto)).to.equal(liq.args.reward);
      expect(liq.args.reward > 0n).to.equal(true);
      const s = await f.clearingHouse.accountSummary(thin.address);
      expect(s.status).to.equal(STATUS.MarginCalled);
      expect((await checkUpkeep(f, JOB.ACCOUNTS, 0, 10)).upkeepNeeded).to.equal(false);

      // Stale performData: the reckless account is healthy now and the thin one already flagged — nothing
      // happens, nothing reverts, and the margin call's deadline does not move.
      const again = await performed(f, f.automation.performUpkeep(r.performData));
      expect(again.actions).to.equal(0n);
      expect(chEvents(f, again.rc).length).to.equal(0);
      expect((await f.clearingHouse.accountSummary(thin.address)).marginCallDeadline).to.equal(s.marginCallDeadline);

      // After the grace window the thin account is due for liquidation.
      await time.increaseTo(s.marginCallDeadline);
      const late = await checkUpkeep(f, JOB.ACCOUNTS, 0, 10);
      expect(late.performData).to.equal(encodePerform(JOB.ACCOUNTS, ["address[]", "address[]"], [[thin.address], []]));
      const p2 = await performed(f, f.automation.performUpkeep(late.performData));
      expect(p2.actions).to.equal(1n);
      expect(chEvents(f, p2.rc).find((e) => e.name === "Liquidated")!.args.account).to.equal(thin.address);
    });

    it("a healthy account slipped into performData is not touched (liquidateBatch and flagMarginCall re-check)", async () => {
      const { f, safe } = await loadFixture(automationFixture);
      const data = encodePerform(JOB.ACCOUNTS, ["address[]", "address[]"], [[safe.address], [safe.address]]);
      const p = await performed(f, f.automation.performUpkeep(data));
      expect(p.actions).to.equal(0n);
      expect((await f.clearingHouse.position(safe.address, ETH)).sizeD18).to.equal(d18(10));
      expect((await f.clearingHouse.accountSummary(safe.address)).marginCallDeadline).to.equal(0n);
    });

    it("track ignores duplicates and the zero address", async () => {
      const { f, safe } = await loadFixture(automationFixture);
      await expect(f.automation.track([safe.address, ethers.ZeroAddress, f.others[3].address]))
        .to.emit(f.automation, "AccountTracked")
        .withArgs(f.others[3].address);
      expect(await f.automation.trackedCount()).to.equal(5n);
    });
  });

  describe("what the upkeep earns", () => {
    async function earned() {
      const { f, safe, reckless } = await loadFixture(automationFixture);
      // Execution fees: one order executed through the upkeep.
      const fee = await f.clearingHouse.minExecutionFee();
      await f.clearingHouse.connect(safe).commitOrder(ETH, -d18(1), 0, { value: fee });
      await time.increase(5);
      await heartbeat(f, ETH);
      await f.automation.performUpkeep((await checkUpkeep(f, JOB.ORDERS, 0, 10)).performData);
      // A liquidation reward.
      await setVol(f, ETH, "150");
      await f.automation.performUpkeep(encodePerform(JOB.ACCOUNTS, ["address[]", "address[]"], [[reckless.address], []]));
      const auto = await f.automation.getAddress();
      return { f, fee, auto, reward: await f.vault.collateralOf(auto), eth: await ethers.provider.getBalance(auto) };
    }

    it("the owner withdraws the execution fees (withdrawEth) and the liquidation rewards (withdrawRewards)", async () => {
      const { f, fee, auto, reward, eth } = await earned();
      expect(eth).to.equal(fee);
      expect(reward > 0n).to.equal(true);
      expect(await f.automation.owner()).to.equal(f.admin.address);
      const to = f.others[4].address;
      const ethBefore = await ethers.provider.getBalance(to);
      await f.automation.connect(f.admin).withdrawEth(to, eth);
      expect(await ethers.provider.getBalance(to)).to.equal(ethBefore + eth);
      expect(await ethers.provider.getBalance(auto)).to.equal(0n);
      await expect(f.automation.connect(f.admin).withdrawRewards(reward, to))
        .to.emit(f.vault, "Withdrawn")
        .withArgs(auto, to, reward);
      expect(await f.token.balanceOf(to)).to.equal(reward);
      expect(await f.vault.collateralOf(auto)).to.equal(0n);
    });

    it("nobody else can withdraw them (OwnableUnauthorizedAccount)", async () => {
      const { f, reward, eth } = await earned();
      const stranger = f.others[5];
      await expect(f.automation.connect(stranger).withdrawEth(stranger.address, eth))
        .to.be.revertedWithCustomError(f.automation, "OwnableUnauthorizedAccount")
        .withArgs(stranger.address);
      await expect(f.automation.connect(stranger).withdrawRewards(reward, stranger.address))
        .to.be.revertedWithCustomError(f.automation, "OwnableUnauthorizedAccount")
        .withArgs(stranger.address);
      await expect(f.automation.connect(f.keeper).claimEth())
        .to.be.revertedWithCustomError(f.automation, "OwnableUnauthorizedAccount")
        .withArgs(f.keeper.address);
      expect(await f.vault.collateralOf(await f.automation.getAddress())).to.equal(reward);
    });
  });
});
