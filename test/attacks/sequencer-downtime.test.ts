// L2 sequencer downtime (Arbitrum, June 2023 and others): while the sequencer is down users cannot react, and
// when it returns stale positions are liquidated in a burst. Sigma: sequencer down or in its grace period →
// reduce-only and liquidations paused; after the grace period liquidations resume, rate-limited per market and
// window, so the burst is bounded and accounts had the grace period to add margin.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployFixture, usdc, d18, ETH, setPrice, chEvents } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import { tryTrade, fund } from "./helpers";

async function l2Fixture() {
  return deployFixture({ sequencerGracePeriod: 3600 });
}

const BREAKER_SEQUENCER = 2n;

describe("attack: stale price and L2 sequencer downtime, and the liquidation burst after it returns", () => {
  it("pauses opening and liquidations while down and in grace, lets users add margin in the grace period, then bounds the burst", async () => {
    const f = await loadFixture(l2Fixture);
    const seq = f.sequencerFeed!;
    const rm = f.riskManager;
    // A tight liquidation allowance for the test: 40 ETH per 60 s window.
    await rm.setMarketParam(ETH, PARAM.LiqLimit, ethers.parseUnits("0.0004", 18));
    const [, maxSize] = await rm.liquidationLimit(ETH);
    expect(maxSize).to.equal(d18(40));
    const accounts = [...f.traders, ...f.others.slice(0, 3)];
    for (const a of accounts.slice(5)) await fund(f, a, 10_000);
    for (const a of accounts) {
      await f.vault.connect(a).deposit(a.address, usdc(1_000));
      expect((await tryTrade(f, a, ETH, d18(14))).filled).to.equal(true);
    }

    // Sequencer goes down; the price falls 4% meanwhile.
    let t = await time.latest();
    await seq.updateRoundData(2, 1, t, t);
    await setPrice(f, ETH, "1920");
    expect((await rm.marketRisk(ETH, false)).breakers & BREAKER_SEQUENCER).to.equal(BREAKER_SEQUENCER);
    expect(await rm.liquidationsAllowed()).to.equal(false);
    const victim = accounts[0];
    expect((await f.clearingHouse.accountSummary(victim.address)).liquidatable).to.equal(true);
    await expect(f.clearingHouse.liquidate(victim.address)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseLiquidationsPaused");
    await expect(f.clearingHouse.liquidateBatch(accounts.map((a) => a.address))).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseLiquidationsPaused");
    const open = await tryTrade(f, f.traders[4], ETH, d18(1));
    expect(open.reason, "no opening while the sequencer is down").to.equal("ClearingHouseMarketReduceOnly");

    // Back up: the grace period starts; still paused, and one user tops up.
    await time.increase(1800);
    t = await time.latest();
    await seq.updateRoundData(3, 0, t, t);
    await setPrice(f, ETH, "1920");
    expect(await rm.liquidationsAllowed()).to.equal(false);
    await expect(f.clearingHouse.liquidate(victim.address)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseLiquidationsPaused");
    const saved = accounts[1];
    await f.vault.connect(saved).deposit(saved.address, usdc(2_000));
    expect((await f.clearingHouse.accountSummary(saved.address)).status, "topped up in the grace period").to.equal(0n);

    // After the grace period: the burst is bounded by the per-window allowance.
    await time.increase(3601);
    await setPrice(f, ETH, "1920");
    await f.riskManager.pokeVolatility(ETH);
    expect(await rm.liquidationsAllowed()).to.equal(true);
    const liquidatable = [];
    for (const a of accounts) if ((await f.clearingHouse.accountSummary(a.address)).liquidatable) liquidatable.push(a.address);
    expect(liquidatable.length).to.be.greaterThan(3);
    expect(liquidatable).to.not.include(saved.address);
    const oi0 = (await f.clearingHouse.marketState(ETH)).oiLongD18;
    const rc = await (await f.clearingHouse.connect(f.keeper).liquidateBatch(accounts.map((a) => a.address))).wait();
    const closed = oi0 - (await f.clearingHouse.marketState(ETH)).oiLongD18;
    expect(closed, "first window bounded by the allowance").to.be.lte(maxSize);
    expect(closed).to.be.gt(0n);
    const liquidated = chEvents(f, rc).filter((e) => e.name === "Liquidated").map((e) => e.args.account);
    expect(liquidated).to.not.include(saved.address);
    expect(liquidated.length).to.be.lessThan(liquidatable.length);
    // The next window continues the work.
    await time.increase(61);
    await setPrice(f, ETH, "1920");
    await f.clearingHouse.connect(f.keeper).liquidateBatch(accounts.map((a) => a.address));
    expect(oi0 - (await f.clearingHouse.marketState(ETH)).oiLongD18).to.be.gt(closed);
  });
});
