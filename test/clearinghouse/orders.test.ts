import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, setPrice, chEvents, Fixture } from "../fixture";
import { Model, commit, depositBoth, fillPriceD18, tradeFeeD18, tsOf, ceilDiv, priceBoth, expectChainMatchesModel } from "./math";

const eth = (x: string) => ethers.parseEther(x);

/** Sets the timestamp of the next transaction's block. */
async function at(ts: bigint) {
  await time.setNextBlockTimestamp(Number(ts));
}

async function setup() {
  const f = await loadFixture(sigmaFixture);
  const model = await Model.load(f);
  const [alice, bob] = f.traders;
  await depositBoth(f, model, alice, usdc(10_000));
  await depositBoth(f, model, bob, usdc(10_000));
  return { f, model, alice, bob };
}

function cancelReason(f: Fixture, receipt: { logs: readonly any[] } | null) {
  const ev = chEvents(f, receipt).find((e) => e.name === "OrderCancelled");
  expect(ev, "OrderCancelled emitted").to.not.equal(undefined);
  return f.clearingHouse.interface.parseError(ev!.args.reason)!;
}

describe("ClearingHouse orders", () => {
  describe("commitOrder", () => {
    it("escrows msg.value, stores the order and emits OrderCommitted with its execution window", async () => {
      const { f, alice } = await setup();
      const ch = await f.clearingHouse.getAddress();
      const chBefore = await ethers.provider.getBalance(ch);
      const aliceBefore = await ethers.provider.getBalance(alice.address);
      const fee = eth("0.003");
      const firstId = await f.clearingHouse.nextOrderId();

      const tx = await f.clearingHouse.connect(alice).commitOrder(ETH, d18("1.5"), d18("2100"), { value: fee });
      const rc = (await tx.wait())!;
      const ts = await tsOf(rc);

      await expect(tx)
        .to.emit(f.clearingHouse, "OrderCommitted")
        .withArgs(firstId, alice.address, ETH, d18("1.5"), d18("2100"), fee, ts + 5n, ts + 600n);
      expect(await ethers.provider.getBalance(ch)).to.equal(chBefore + fee);
      expect(await ethers.provider.getBalance(alice.address)).to.equal(aliceBefore - fee - rc.fee);
      const o = await f.clearingHouse.order(firstId);
      expect([o.account, o.marketId, o.executionFee, o.sizeDeltaD18, o.acceptablePriceD18, o.commitTime]).to.deep.equal([
        alice.address,
        BigInt(ETH),
        fee,
        d18("1.5"),
        d18("2100"),
        ts,
      ]);
      expect(await f.clearingHouse.nextOrderId()).to.equal(firstId + 1n);
    });

    it("rejects an execution fee below minExecutionFee", async () => {
      const { f, alice } = await setup();
      const minFee = await f.clearingHouse.minExecutionFee();
      expect(minFee).to.equal(eth("0.0001"));
      await expect(f.clearingHouse.connect(alice).commitOrder(ETH, d18(1), 0, { value: minFee - 1n }))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseExecutionFeeTooLow")
        .withArgs(minFee - 1n, minFee);
      // Exactly the minimum is enough.
      await expect(f.clearingHouse.connect(alice).commitOrder(ETH, d18(1), 2n ** 95n, { value: minFee })).to.emit(
        f.clearingHouse,
        "OrderCommitted",
      );
    });

    it("rejects a zero size and an unknown market", async () => {
      const { f, alice } = await setup();
      const fee = await f.clearingHouse.minExecutionFee();
      await expect(f.clearingHouse.connect(alice).commitOrder(ETH, 0, 0, { value: fee })).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseInvalidOrder",
      );
      const count = await f.riskManager.marketCount();
      await expect(f.clearingHouse.connect(alice).commitOrder(count, d18(1), 0, { value: fee })).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseInvalidOrder",
      );
      expect(await f.clearingHouse.nextOrderId()).to.equal(0n);
    });
  });

  describe("execution window", () => {
    it("orders cannot execute before minDelay and execute exactly at commit + minDelay", async () => {
      const { f, alice } = await setup();
      const start = BigInt(await time.latest()) + 10n;
      const { orderId, ts } = await commit(f, alice, ETH, d18(1), { at: start });
      expect(ts).to.equal(start);
      await at(ts + 4n);
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotReady")
        .withArgs(orderId, ts + 5n);
      await at(ts + 5n);
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId)).to.emit(f.clearingHouse, "OrderExecuted");
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(d18(1));
    });

    it("orders execute up to commit + maxAge and are expired one second later", async () => {
      const { f, alice, bob } = await setup();
      const start = BigInt(await time.latest()) + 10n;
      const a = await commit(f, alice, ETH, d18(1), { at: start });
      const b = await commit(f, bob, ETH, d18(1), { at: start + 2n });
      await at(start + 590n);
      await setPrice(f, ETH, "2000"); // keep the feed fresh
      await at(a.ts + 600n);
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(a.orderId)).to.emit(f.clearingHouse, "OrderExecuted");
      await at(b.ts + 601n);
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(b.orderId))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderExpired")
        .withArgs(b.orderId, b.ts + 600n);
      expect((await f.clearingHouse.position(bob.address, ETH)).sizeD18).to.equal(0n);
    });

    it("an order cannot be cancelled before it expires", async () => {
      const { f, alice } = await setup();
      const { orderId, ts } = await commit(f, alice, ETH, d18(1), { at: BigInt(await time.latest()) + 10n });
      await at(ts + 600n);
      await expect(f.clearingHouse.connect(alice).cancelOrder(orderId))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotExpired")
        .withArgs(orderId, ts + 600n);
      expect((await f.clearingHouse.order(orderId)).account).to.equal(alice.address);
    });

    it("anyone can cancel an expired order and the trader gets the fee back exactly", async () => {
      const { f, alice } = await setup();
      const stranger = f.others[0];
      const fee = eth("0.0042");
      const { orderId, ts } = await commit(f, alice, ETH, d18(1), { fee, at: BigInt(await time.latest()) + 10n });
      const chBefore = await ethers.provider.getBalance(await f.clearingHouse.getAddress());
      const aliceBefore = await ethers.provider.getBalance(alice.address);
      const strangerBefore = await ethers.provider.getBalance(stranger.address);
      await at(ts + 601n);
      const tx = await f.clearingHouse.connect(stranger).cancelOrder(orderId);
      const rc = (await tx.wait())!;
      await expect(tx).to.emit(f.clearingHouse, "OrderCancelled").withArgs(orderId, alice.address, stranger.address, "0x");
      expect(await ethers.provider.getBalance(alice.address)).to.equal(aliceBefore + fee);
      expect(await ethers.provider.getBalance(stranger.address)).to.equal(strangerBefore - rc.fee);
      expect(await ethers.provider.getBalance(await f.clearingHouse.getAddress())).to.equal(chBefore - fee);
      expect((await f.clearingHouse.order(orderId)).account).to.equal(ethers.ZeroAddress);
      // A cancelled order can be neither cancelled again nor executed.
      await expect(f.clearingHouse.connect(stranger).cancelOrder(orderId))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotFound")
        .withArgs(orderId);
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotFound")
        .withArgs(orderId);
    });
  });

  describe("keeper payment", () => {
    it("the executing keeper receives exactly the execution fee", async () => {
      const { f, alice } = await setup();
      const fee = eth("0.0123");
      const { orderId, ts } = await commit(f, alice, ETH, d18(2), { fee });
      const keeperBefore = await ethers.provider.getBalance(f.keeper.address);
      const chBefore = await ethers.provider.getBalance(await f.clearingHouse.getAddress());
      await at(ts + 5n);
      const tx = await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
      const rc = (await tx.wait())!;
      expect(await ethers.provider.getBalance(f.keeper.address)).to.equal(keeperBefore + fee - rc.gasUsed * rc.gasPrice);
      expect(await ethers.provider.getBalance(await f.clearingHouse.getAddress())).to.equal(chBefore - fee);
      expect(await f.clearingHouse.claimableEth(f.keeper.address)).to.equal(0n);
    });

    it("a second execution of the same order reverts ClearingHouseOrderNotFound and pays nothing", async () => {
      const { f, alice } = await setup();
      const { orderId, ts } = await commit(f, alice, ETH, d18(2), { fee: eth("0.01") });
      await at(ts + 5n);
      await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
      const chBefore = await ethers.provider.getBalance(await f.clearingHouse.getAddress());
      const other = f.others[1];
      await expect(f.clearingHouse.connect(other).executeOrder(orderId))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotFound")
        .withArgs(orderId);
      expect(await ethers.provider.getBalance(await f.clearingHouse.getAddress())).to.equal(chBefore);
      expect(await f.clearingHouse.claimableEth(other.address)).to.equal(0n);
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(d18(2));
    });

    it("a keeper whose receive() reverts still executes; its fee becomes claimableEth and claimEth pays it", async () => {
      const { f, alice } = await setup();
      const actor = await (await ethers.getContractFactory("MockEthRejectingActor")).deploy(await f.clearingHouse.getAddress(), 1);
      const fee = eth("0.005");
      const { orderId, ts } = await commit(f, alice, ETH, d18(1), { fee });
      await at(ts + 5n);
      const tx = await actor.execute(orderId);
      await expect(tx).to.emit(f.clearingHouse, "OrderExecuted").withArgs(orderId, alice.address, await actor.getAddress(), anyPrice());
      await expect(tx).to.emit(f.clearingHouse, "EthCredited").withArgs(await actor.getAddress(), fee);
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(d18(1));
      expect(await f.clearingHouse.claimableEth(await actor.getAddress())).to.equal(fee);
      expect(await ethers.provider.getBalance(await actor.getAddress())).to.equal(0n);

      // While it still refuses ETH, claiming fails and the credit stays.
      await expect(actor.claim()).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNothingToClaim");
      expect(await f.clearingHouse.claimableEth(await actor.getAddress())).to.equal(fee);

      await actor.setMode(0);
      await actor.claim();
      expect(await ethers.provider.getBalance(await actor.getAddress())).to.equal(fee);
      expect(await f.clearingHouse.claimableEth(await actor.getAddress())).to.equal(0n);
      await expect(actor.claim()).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNothingToClaim");
    });

    it("a keeper that burns all forwarded gas in receive() still executes and is credited", async () => {
      const { f, alice } = await setup();
      const actor = await (await ethers.getContractFactory("MockEthRejectingActor")).deploy(await f.clearingHouse.getAddress(), 2);
      const fee = eth("0.002");
      const { orderId, ts } = await commit(f, alice, ETH, d18(1), { fee });
      await at(ts + 5n);
      await expect(actor.execute(orderId)).to.emit(f.clearingHouse, "EthCredited").withArgs(await actor.getAddress(), fee);
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(d18(1));
      expect(await f.clearingHouse.claimableEth(await actor.getAddress())).to.equal(fee);
    });

    it("a trader contract that refuses ETH gets its expiry refund as claimableEth", async () => {
      const { f } = await setup();
      const actor = await (await ethers.getContractFactory("MockEthRejectingActor")).deploy(await f.clearingHouse.getAddress(), 1);
      const fee = eth("0.001");
      const tx = await actor.commit(ETH, d18(1), 2n ** 95n, { value: fee });
      const ts = await tsOf(await tx.wait());
      const orderId = (await f.clearingHouse.nextOrderId()) - 1n;
      await at(ts + 601n);
      const cancel = await f.clearingHouse.connect(f.others[0]).cancelOrder(orderId);
      await expect(cancel).to.emit(f.clearingHouse, "EthCredited").withArgs(await actor.getAddress(), fee);
      await expect(cancel).to.emit(f.clearingHouse, "OrderCancelled").withArgs(orderId, await actor.getAddress(), f.others[0].address, "0x");
      await actor.setMode(0);
      await actor.claim();
      expect(await ethers.provider.getBalance(await actor.getAddress())).to.equal(fee);
    });
  });

  describe("fill at execution", () => {
    it("fills at the oracle price of the first round after the commit, not at the price at commit", async () => {
      const { f, model, alice } = await setup();
      const { orderId } = await commit(f, alice, ETH, d18(3), { noRound: true });
      await priceBoth(f, model, ETH, "2100");
      await time.increase(5);
      const tx = await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
      const rc = (await tx.wait())!;
      // 2100 · (2·100000 + 3) / (2·100000) = 2100.0315
      const expected = d18("2100.0315");
      expect(fillPriceD18(d18("2100"), 0n, d18(3), d18(100000))).to.equal(expected);
      await expect(tx).to.emit(f.clearingHouse, "OrderExecuted").withArgs(orderId, alice.address, f.keeper.address, expected);
      model.fill(alice.address, ETH, d18(3), await tsOf(rc));
      await expectChainMatchesModel(f, model, [alice.address]);
    });

    it("an order whose fill is worse than the acceptable price is cancelled; the keeper is still paid and nothing else changes", async () => {
      const { f, alice } = await setup();
      // A buy of 4 ETH at $2,000 with zero skew fills at 2000·(200000+4)/200000 = 2000.04.
      const fill = d18("2000.04");
      const fee = eth("0.002");
      const { orderId, ts } = await commit(f, alice, ETH, d18(4), { acceptable: fill - 1n, fee });
      const collateralBefore = await f.vault.collateralOf(alice.address);
      const poolBefore = await f.vault.poolBalance();
      const keeperBefore = await ethers.provider.getBalance(f.keeper.address);
      await at(ts + 5n);
      const tx = await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
      const rc = (await tx.wait())!;
      const reason = cancelReason(f, rc);
      expect(reason.name).to.equal("ClearingHouseAcceptablePriceExceeded");
      expect([...reason.args]).to.deep.equal([fill, fill - 1n]);
      await expect(tx).to.emit(f.clearingHouse, "OrderCancelled").withArgs(orderId, alice.address, f.keeper.address, anyBytes());
      expect((await f.clearingHouse.order(orderId)).account).to.equal(ethers.ZeroAddress);
      expect(await ethers.provider.getBalance(f.keeper.address)).to.equal(keeperBefore + fee - rc.fee);
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(0n);
      expect(await f.vault.collateralOf(alice.address)).to.equal(collateralBefore);
      expect(await f.vault.poolBalance()).to.equal(poolBefore);
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
    });

    it("the acceptable price is inclusive: a buy limited at exactly its fill and a sell at exactly its fill both fill", async () => {
      const { f, model, alice, bob } = await setup();
      const buyFill = fillPriceD18(d18(2000), 0n, d18(4), d18(100000));
      const a = await commit(f, alice, ETH, d18(4), { acceptable: buyFill });
      await at(a.ts + 5n);
      const ra = (await (await f.clearingHouse.connect(f.keeper).executeOrder(a.orderId)).wait())!;
      expect(chEvents(f, ra).some((e) => e.name === "OrderExecuted")).to.equal(true);
      model.fill(alice.address, ETH, d18(4), await tsOf(ra));

      // Bob sells 1 ETH against +4 skew: 2000·(200000 + 8 − 1)/200000 rounded down.
      const sellFill = fillPriceD18(d18(2000), d18(4), -d18(1), d18(100000));
      expect(sellFill).to.equal(d18("2000.07"));
      const b = await commit(f, bob, ETH, -d18(1), { acceptable: sellFill + 1n });
      await at(b.ts + 5n);
      const rb = (await (await f.clearingHouse.connect(f.keeper).executeOrder(b.orderId)).wait())!;
      const reason = cancelReason(f, rb);
      expect(reason.name).to.equal("ClearingHouseAcceptablePriceExceeded");
      expect([...reason.args]).to.deep.equal([sellFill, sellFill + 1n]);

      const c = await commit(f, bob, ETH, -d18(1), { acceptable: sellFill });
      await at(c.ts + 5n);
      const rcpt = (await (await f.clearingHouse.connect(f.keeper).executeOrder(c.orderId)).wait())!;
      expect(chEvents(f, rcpt).find((e) => e.name === "OrderExecuted")!.args.fillPriceD18).to.equal(sellFill);
      model.fill(bob.address, ETH, -d18(1), await tsOf(rcpt));
      await expectChainMatchesModel(f, model, [alice.address, bob.address]);
    });

    it("an order the account cannot margin is cancelled with ClearingHouseInsufficientMargin and the keeper is paid", async () => {
      const { f, alice } = await setup();
      const fee = eth("0.001");
      // 10,000 USDC cannot carry 1,000 ETH ($2M notional).
      const { orderId, ts } = await commit(f, alice, ETH, d18(1000), { fee });
      const keeperBefore = await ethers.provider.getBalance(f.keeper.address);
      await at(ts + 5n);
      const tx = await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
      const rc = (await tx.wait())!;
      expect(cancelReason(f, rc).name).to.equal("ClearingHouseInsufficientMargin");
      expect(await ethers.provider.getBalance(f.keeper.address)).to.equal(keeperBefore + fee - rc.fee);
      expect(await f.vault.collateralOf(alice.address)).to.equal(usdc(10_000));
      expect((await f.clearingHouse.marketState(ETH)).skewD18).to.equal(0n);
    });

    it("a stale oracle makes execution revert so the order waits, and it fills once the feed is fresh", async () => {
      const { f, alice } = await setup();
      await setPrice(f, BTC, "60000");
      const latest = BigInt(await time.latest());
      const { orderId, ts } = await commit(f, alice, BTC, d18("0.1"), { at: latest + 4600n, noRound: true });
      await at(ts + 5n);
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId)).to.be.revertedWithCustomError(f.riskManager, "OracleStale");
      expect((await f.clearingHouse.order(orderId)).account).to.equal(alice.address);
      await setPrice(f, BTC, "60000");
      await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId)).to.emit(f.clearingHouse, "OrderExecuted");
      expect((await f.clearingHouse.position(alice.address, BTC)).sizeD18).to.equal(d18("0.1"));
    });

    it("fillOrder can only be called by the clearinghouse itself", async () => {
      const { f, alice } = await setup();
      const r = await f.riskManager.marketRisk(ETH, false);
      const o = { account: alice.address, marketId: ETH, flags: 0, executionFee: 0, sizeDeltaD18: d18(1), acceptablePriceD18: 2n ** 95n, commitTime: 0 };
      await expect(f.clearingHouse.connect(alice).fillOrder(o, [...r] as any, r.priceD18)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOnlySelf");
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(0n);
    });
  });

  it("the taker fee on a fill is rounded up to the token's unit", async () => {
    const { f, model, alice } = await setup();
    // 0.333333333333333333 ETH: the D18 fee is not a whole number of micro-USDC.
    const size = 333333333333333333n;
    const { orderId, ts } = await commit(f, alice, ETH, size);
    await at(ts + 5n);
    const rc = (await (await f.clearingHouse.connect(f.keeper).executeOrder(orderId)).wait())!;
    const fill = fillPriceD18(d18(2000), 0n, size, d18(100000));
    const feeD18 = tradeFeeD18(0n, size, fill, d18("0.0005"), d18("0.0002"));
    expect(feeD18 % 10n ** 12n).to.not.equal(0n);
    expect(await f.vault.collateralOf(alice.address)).to.equal(usdc(10_000) - ceilDiv(feeD18, 10n ** 12n));
    model.fill(alice.address, ETH, size, await tsOf(rc));
    await expectChainMatchesModel(f, model, [alice.address]);
  });
});

// chai matchers' `anyValue` predicate (kept local to avoid importing from a deep path).
function anyPrice() {
  return (v: unknown) => typeof v === "bigint" && v > 0n;
}
function anyBytes() {
  return (v: unknown) => typeof v === "string" && v.startsWith("0x") && v.length > 2;
}
