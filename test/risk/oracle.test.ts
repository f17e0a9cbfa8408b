import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { sigmaFixture, deployFixture, trade, setPrice, usdc, d18, ETH, BTC, Fixture, chEvents } from "../fixture";

const PRICE_MAX_AGE = 4500n;
const LIQ_PRICE_MAX_AGE = 3900n;
const GRACE = 3600;
const BREAKER_SEQUENCER = 2n;
const BREAKER_PRICE_STALE = 32n;

/** Sigma with a mock L2 sequencer-uptime feed (answer 0 = up, 1 = down) and a one-hour grace period. */
async function sequencerFixture(): Promise<Fixture> {
  return deployFixture({ sequencerGracePeriod: GRACE });
}

async function execOrder(f: Fixture, trader: (typeof f.traders)[number], marketId: number, size: bigint) {
  const { receipt } = await trade(f, trader, marketId, size);
  const evs = chEvents(f, receipt);
  const cancelled = evs.find((e) => e.name === "OrderCancelled");
  return {
    filled: evs.some((e) => e.name === "OrderExecuted"),
    reason: cancelled ? f.clearingHouse.interface.parseError(cancelled.args.reason) : null,
  };
}

/** Writes a price round with an explicit updatedAt, mined at block time `at`. */
async function priceRoundAt(f: Fixture, marketId: number, usd: string, updatedAt: number, at: number) {
  const pf = f.priceFeeds[marketId];
  await time.setNextBlockTimestamp(at);
  await pf.updateRoundData((await pf.latestRound()) + 1n, parseUnits(usd, 8), updatedAt, updatedAt);
}

describe("RiskManager: Chainlink price reads", () => {
  it("normalizes the 8-decimal price feed to 18 decimals", async () => {
    const f = await loadFixture(sigmaFixture);
    expect(await f.riskManager.priceD18(ETH)).to.equal(d18(2000));
    expect(await f.riskManager.priceD18(BTC)).to.equal(d18(60000));
    await setPrice(f, ETH, "1234.56789012");
    expect(await f.riskManager.priceD18(ETH)).to.equal(d18("1234.56789012"));
    expect((await f.riskManager.marketRisk(ETH, false)).priceD18).to.equal(d18("1234.56789012"));
  });

  it("feeds with 18 and 20 decimals give the same D18 price as the 8-decimal one (setMarketFeeds emits MarketFeedsSet)", async () => {
    const f = await loadFixture(sigmaFixture);
    const V = await ethers.getContractFactory("MockV3Aggregator");
    const volAddr = await f.volFeeds[ETH].getAddress();
    const p8 = await f.riskManager.priceD18(ETH);
    const feed18 = await V.deploy(18, parseUnits("2000", 18));
    await expect(f.riskManager.setMarketFeeds(ETH, await feed18.getAddress(), volAddr))
      .to.emit(f.riskManager, "MarketFeedsSet")
      .withArgs(ETH, await feed18.getAddress(), volAddr);
    expect(await f.riskManager.marketFeeds(ETH)).to.deep.equal([await feed18.getAddress(), volAddr]);
    expect(await f.riskManager.priceD18(ETH)).to.equal(p8);
    const feed20 = await V.deploy(20, parseUnits("2000", 20) + 99n); // digits beyond 18 decimals are cut
    await f.riskManager.setMarketFeeds(ETH, await feed20.getAddress(), volAddr);
    expect(await f.riskManager.priceD18(ETH)).to.equal(p8);
    const feed0 = await V.deploy(0, 2000n);
    await f.riskManager.setMarketFeeds(ETH, await feed0.getAddress(), volAddr);
    expect(await f.riskManager.priceD18(ETH)).to.equal(p8);
  });

  it("setMarketFeeds rejects a zero address, an account without code and a feed with more than 36 decimals (RiskInvalidFeed)", async () => {
    const f = await loadFixture(sigmaFixture);
    const V = await ethers.getContractFactory("MockV3Aggregator");
    const volAddr = await f.volFeeds[ETH].getAddress();
    await expect(f.riskManager.setMarketFeeds(ETH, ethers.ZeroAddress, volAddr))
      .to.be.revertedWithCustomError(f.riskManager, "RiskInvalidFeed")
      .withArgs(ethers.ZeroAddress);
    const eoa = f.others[0].address;
    await expect(f.riskManager.setMarketFeeds(ETH, eoa, volAddr))
      .to.be.revertedWithCustomError(f.riskManager, "RiskInvalidFeed")
      .withArgs(eoa);
    const feed37 = await V.deploy(37, 1n);
    await expect(f.riskManager.setMarketFeeds(ETH, await f.priceFeeds[ETH].getAddress(), await feed37.getAddress()))
      .to.be.revertedWithCustomError(f.riskManager, "RiskInvalidFeed")
      .withArgs(await feed37.getAddress());
    await expect(f.riskManager.connect(f.traders[0]).setMarketFeeds(ETH, await feed37.getAddress(), volAddr))
      .to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount")
      .withArgs(f.traders[0].address, ethers.ZeroHash);
    expect((await f.riskManager.marketFeeds(ETH))[0]).to.equal(await f.priceFeeds[ETH].getAddress());
  });

  it("a price exactly priceMaxAge old is accepted; one second older reverts with OracleStale(feed, updatedAt, maxAge)", async () => {
    const f = await loadFixture(sigmaFixture);
    const feed = await f.priceFeeds[ETH].getAddress();
    const T = (await time.latest()) + 10;
    await priceRoundAt(f, ETH, "2000", T - Number(PRICE_MAX_AGE), T);
    expect(await f.riskManager.priceD18(ETH)).to.equal(d18(2000));
    expect((await f.riskManager.marketRisk(ETH, false)).priceD18).to.equal(d18(2000));
    await time.increaseTo(T + 1);
    await expect(f.riskManager.priceD18(ETH))
      .to.be.revertedWithCustomError(f.riskManager, "OracleStale")
      .withArgs(feed, T - Number(PRICE_MAX_AGE), PRICE_MAX_AGE);
    await expect(f.riskManager.marketRisk(ETH, false))
      .to.be.revertedWithCustomError(f.riskManager, "OracleStale")
      .withArgs(feed, T - Number(PRICE_MAX_AGE), PRICE_MAX_AGE);
  });

  it("a zero answer reverts with OracleInvalidAnswer(feed, 0)", async () => {
    const f = await loadFixture(sigmaFixture);
    const feed = await f.priceFeeds[ETH].getAddress();
    await f.priceFeeds[ETH].updateAnswer(0n);
    await expect(f.riskManager.priceD18(ETH))
      .to.be.revertedWithCustomError(f.riskManager, "OracleInvalidAnswer")
      .withArgs(feed, 0n);
    await expect(f.riskManager.marketRisk(ETH, true))
      .to.be.revertedWithCustomError(f.riskManager, "OracleInvalidAnswer")
      .withArgs(feed, 0n);
  });

  it("a negative answer reverts with OracleInvalidAnswer(feed, answer)", async () => {
    const f = await loadFixture(sigmaFixture);
    const feed = await f.priceFeeds[ETH].getAddress();
    await f.priceFeeds[ETH].updateAnswer(-parseUnits("1", 8));
    await expect(f.riskManager.priceD18(ETH))
      .to.be.revertedWithCustomError(f.riskManager, "OracleInvalidAnswer")
      .withArgs(feed, -parseUnits("1", 8));
  });

  it("an incomplete round (updatedAt 0) and a round from the future revert with OracleStale", async () => {
    const f = await loadFixture(sigmaFixture);
    const pf = f.priceFeeds[ETH];
    const feed = await pf.getAddress();
    await pf.updateRoundData((await pf.latestRound()) + 1n, parseUnits("2000", 8), 0n, 0n);
    await expect(f.riskManager.priceD18(ETH))
      .to.be.revertedWithCustomError(f.riskManager, "OracleStale")
      .withArgs(feed, 0n, PRICE_MAX_AGE);
    const future = (await time.latest()) + 1000;
    await pf.updateRoundData((await pf.latestRound()) + 1n, parseUnits("2000", 8), future, future);
    await expect(f.riskManager.priceD18(ETH))
      .to.be.revertedWithCustomError(f.riskManager, "OracleStale")
      .withArgs(feed, future, PRICE_MAX_AGE);
  });

  it("an order cannot execute on a stale price: executeOrder reverts with OracleStale and the order stays pending", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(10000));
    const fee = await f.clearingHouse.minExecutionFee();
    const tx = await f.clearingHouse.connect(t).commitOrder(ETH, d18(1), 2n ** 95n, { value: fee });
    const ev = chEvents(f, await tx.wait()).find((e) => e.name === "OrderCommitted")!;
    const orderId = ev.args.orderId as bigint;
    const T = (await time.latest()) + 10;
    await priceRoundAt(f, ETH, "2000", T - Number(PRICE_MAX_AGE) - 1, T);
    await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId)).to.be.revertedWithCustomError(
      f.riskManager,
      "OracleStale",
    );
    expect((await f.clearingHouse.order(orderId)).account).to.equal(t.address);
    await setPrice(f, ETH, "2000");
    await expect(f.clearingHouse.connect(f.keeper).executeOrder(orderId)).to.emit(f.clearingHouse, "OrderExecuted");
  });

  describe("stricter staleness for liquidations", () => {
    it("a price older than liquidationPriceMaxAge but younger than priceMaxAge: marketRisk(id,false) works, marketRisk(id,true) reverts", async () => {
      const f = await loadFixture(sigmaFixture);
      const feed = await f.priceFeeds[ETH].getAddress();
      const T = (await time.latest()) + 10;
      await priceRoundAt(f, ETH, "2000", T - Number(LIQ_PRICE_MAX_AGE), T);
      // Exactly at the liquidation bound: both work.
      expect((await f.riskManager.marketRisk(ETH, true)).priceD18).to.equal(d18(2000));
      await time.increaseTo(T + 1);
      const r = await f.riskManager.marketRisk(ETH, false);
      expect(r.priceD18).to.equal(d18(2000));
      // Too old to open on or liquidate with: the market turns reduce-only.
      expect(r.breakers & BREAKER_PRICE_STALE).to.equal(BREAKER_PRICE_STALE);
      await expect(f.riskManager.marketRisk(ETH, true))
        .to.be.revertedWithCustomError(f.riskManager, "OracleStale")
        .withArgs(feed, T - Number(LIQ_PRICE_MAX_AGE), LIQ_PRICE_MAX_AGE);
    });

    it("liquidate refuses a price too old for liquidations even when the account is under water, then works on a fresh round", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, d18(90));
      const T = (await time.latest()) + 10;
      await priceRoundAt(f, ETH, "1900", T - 4000, T);
      // Views use the trading bound and show the account liquidatable.
      expect((await f.clearingHouse.accountSummary(t.address)).liquidatable).to.equal(true);
      await expect(f.clearingHouse.connect(f.keeper).liquidate(t.address)).to.be.revertedWithCustomError(
        f.riskManager,
        "OracleStale",
      );
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(d18(90));
      await setPrice(f, ETH, "1900");
      await expect(f.clearingHouse.connect(f.keeper).liquidate(t.address)).to.emit(f.clearingHouse, "Liquidated");
      // Fully or partially closed (partial liquidation restores the account above its requirement).
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18 < d18(90)).to.equal(true);
    });
  });
});

describe("RiskManager: L2 sequencer uptime feed", () => {
  it("with the sequencer up for longer than the grace period, nothing is tripped", async () => {
    const f = await loadFixture(sequencerFixture);
    expect(f.sequencerFeed).to.not.equal(undefined);
    const [, answer, startedAt] = await f.sequencerFeed!.latestRoundData();
    expect(answer).to.equal(0n);
    expect(BigInt(await time.latest()) - startedAt > BigInt(GRACE)).to.equal(true);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    expect(await f.riskManager.liquidationsAllowed()).to.equal(true);
  });

  it("up but within grace → breaker; exactly at the grace period still in grace; one second later → clear", async () => {
    const f = await loadFixture(sequencerFixture);
    const seq = f.sequencerFeed!;
    const T = (await time.latest()) + 10;
    await time.setNextBlockTimestamp(T);
    await seq.updateAnswer(0n); // up, startedAt = T
    expect((await seq.latestRoundData())[2]).to.equal(BigInt(T));
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER_SEQUENCER);
    await time.increaseTo(T + GRACE);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER_SEQUENCER);
    expect(await f.riskManager.liquidationsAllowed()).to.equal(false);
    await time.increaseTo(T + GRACE + 1);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    expect(await f.riskManager.liquidationsAllowed()).to.equal(true);
  });

  it("a startedAt of 0 (uninitialized round) counts as down", async () => {
    const f = await loadFixture(sequencerFixture);
    const seq = f.sequencerFeed!;
    expect(await f.riskManager.liquidationsAllowed()).to.equal(true);
    await seq.updateRoundData((await seq.latestRound()) + 1n, 0n, BigInt(await time.latest()), 0n);
    expect(await f.riskManager.liquidationsAllowed()).to.equal(false);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER_SEQUENCER);
  });

  it("down → opening refused, closing works, liquidations paused; up within grace → same; after grace → all clear", async () => {
    const f = await loadFixture(sequencerFixture);
    const seq = f.sequencerFeed!;
    const [a, b, c] = f.traders;
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    await f.vault.connect(a).deposit(a.address, usdc(10000));
    await f.vault.connect(b).deposit(b.address, usdc(10000));
    await f.vault.connect(c).deposit(c.address, usdc(10000));
    await trade(f, a, ETH, d18(5));
    await trade(f, b, ETH, d18(90));

    // Sequencer down.
    await seq.updateAnswer(1n);
    expect(await f.riskManager.liquidationsAllowed()).to.equal(false);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER_SEQUENCER).to.equal(BREAKER_SEQUENCER);
    let o = await execOrder(f, c, ETH, d18(1));
    expect(o.filled).to.equal(false);
    expect(o.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
    expect(o.reason!.args).to.deep.equal([BigInt(ETH), BREAKER_SEQUENCER]);
    o = await execOrder(f, a, ETH, -d18(2));
    expect(o.filled).to.equal(true);
    expect((await f.clearingHouse.position(a.address, ETH)).sizeD18).to.equal(d18(3));
    await setPrice(f, ETH, "1900");
    expect((await f.clearingHouse.accountSummary(b.address)).liquidatable).to.equal(true);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(b.address)).to.be.revertedWithCustomError(
      f.clearingHouse,
      "ClearingHouseLiquidationsPaused",
    );

    // Back up, but within the grace period: still reduce-only and no liquidations.
    await seq.updateAnswer(0n);
    expect(await f.riskManager.liquidationsAllowed()).to.equal(false);
    o = await execOrder(f, c, ETH, d18(1));
    expect(o.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
    await expect(f.clearingHouse.connect(f.keeper).liquidate(b.address)).to.be.revertedWithCustomError(
      f.clearingHouse,
      "ClearingHouseLiquidationsPaused",
    );
    o = await execOrder(f, a, ETH, -d18(3));
    expect(o.filled).to.equal(true);

    // After the grace period.
    await time.increase(GRACE + 1);
    await setPrice(f, ETH, "1900");
    expect(await f.riskManager.liquidationsAllowed()).to.equal(true);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(b.address)).to.emit(f.clearingHouse, "Liquidated");
    o = await execOrder(f, c, ETH, d18(1));
    expect(o.filled).to.equal(true);
  });

  it("the sequencer feed and grace period are fixed at construction; a grace period over one day is rejected", async () => {
    const f = await loadFixture(sequencerFixture);
    const seqAddr = await f.sequencerFeed!.getAddress();
    const rm = await ethers.getContractAt("RiskManager", await f.riskManager.getAddress());
    expect(await rm.sequencerFeed()).to.equal(seqAddr);
    expect(await rm.sequencerGracePeriod()).to.equal(BigInt(GRACE));
    const F = await ethers.getContractFactory("RiskManager");
    await expect(F.deploy(f.admin.address, seqAddr, 86401))
      .to.be.revertedWithCustomError(F, "RiskInvalidGracePeriod")
      .withArgs(86401);
    // Without a sequencer feed (L1) nothing is ever tripped by it.
    const l1 = await loadFixture(sigmaFixture);
    expect(await l1.riskManager.liquidationsAllowed()).to.equal(true);
  });
});
