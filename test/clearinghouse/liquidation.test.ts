import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, Fixture, setPrice, setVol, chEvents } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import {
  Model,
  STATUS,
  WAD,
  depositBoth,
  priceBoth,
  fillAndCheck,
  liquidateAndCheck,
  expectChainMatchesModel,
  latestTs,
  tsOf,
  ledgerTotal,
  vaultEvents,
  mulDiv,
  tradeAndCheck,
} from "./math";

const PARAM_LIQ_REWARD_CAP = ethers.encodeBytes32String("liqRewardCapD18");
const PARAM_MIN_POSITION_NOTIONAL = ethers.encodeBytes32String("minPositionNotionalD18");

/** Alice: 1,000 USDC and a 15 ETH long at $2,000 (close to maximum leverage at σ = 50%). */
async function setup() {
  const f = await loadFixture(sigmaFixture);
  const model = await Model.load(f);
  const [alice, bob, carol] = f.traders;
  await depositBoth(f, model, alice, usdc(1_000));
  await depositBoth(f, model, bob, usdc(20_000));
  await fillAndCheck(f, model, alice, ETH, d18(15));
  return { f, model, alice, bob, carol, keeper: f.keeper };
}

async function depositInsurance(f: Fixture, model: Model, amount: bigint) {
  await f.token.mint(f.admin.address, amount);
  await f.token.connect(f.admin).approve(await f.vault.getAddress(), amount);
  await f.vault.connect(f.admin).depositInsurance(amount);
  model.ins += amount;
}

async function statusOf(f: Fixture, a: string) {
  return (await f.clearingHouse.accountSummary(a)).status;
}

describe("ClearingHouse liquidation", () => {
  describe("who can be liquidated", () => {
    it("an account at or above its maintenance requirement cannot be liquidated (ClearingHouseAccountHealthy)", async () => {
      const { f, model, alice, keeper } = await setup();
      await priceBoth(f, model, ETH, "1980");
      const t = (await latestTs()) + 5n;
      const m = model.margin(alice.address, t);
      expect(m.equity >= m.mm).to.equal(true);
      await time.setNextBlockTimestamp(Number(t));
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy")
        .withArgs(alice.address, m.equity, m.mm);
    });

    it("an account without positions cannot be liquidated", async () => {
      const { f, bob, keeper } = await setup();
      await expect(f.clearingHouse.connect(keeper).liquidate(bob.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy")
        .withArgs(bob.address, usdc(20_000) * 10n ** 12n, 0n);
    });

    it("below maintenance but above the hard floor an account is only margin-callable; it becomes liquidatable when a flagged call's grace ends", async () => {
      const { f, model, alice, bob, keeper } = await setup();
      await priceBoth(f, model, ETH, "1970");
      expect(await statusOf(f, alice.address)).to.equal(STATUS.MarginCallable);
      expect(model.summary(alice.address, await latestTs()).status).to.equal(STATUS.MarginCallable);
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseAccountHealthy",
      );

      // Anyone (here another trader) may flag the margin call; the grace window starts now.
      const tx = await f.clearingHouse.connect(bob).flagMarginCall(alice.address);
      const now = await tsOf(await tx.wait());
      const deadline = model.flagMarginCall(alice.address, now);
      expect(deadline).to.equal(now + 15n * 60n);
      const mg = model.margin(alice.address, now);
      await expect(tx).to.emit(f.clearingHouse, "MarginCallFlagged").withArgs(alice.address, bob.address, deadline, mg.equity, mg.mm);
      const s = await f.clearingHouse.accountSummary(alice.address);
      expect([s.status, s.marginCallDeadline, s.liquidatable]).to.deep.equal([STATUS.MarginCalled, deadline, false]);
      // A live margin call cannot be flagged again.
      await expect(f.clearingHouse.connect(bob).flagMarginCall(alice.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseCannotFlag")
        .withArgs(alice.address, STATUS.MarginCalled);

      await time.setNextBlockTimestamp(Number(deadline - 1n));
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseAccountHealthy",
      );
      await time.setNextBlockTimestamp(Number(deadline));
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      await expect(r.receipt).to.emit(f.clearingHouse, "MarginCallCleared").withArgs(alice.address);
      const after = await f.clearingHouse.accountSummary(alice.address);
      expect([after.status, after.marginCallDeadline]).to.deep.equal([STATUS.Healthy, 0n]);
    });

    it("reducing the position during a margin call clears it; a healthy or liquidatable account cannot be flagged", async () => {
      const { f, model, alice, bob } = await setup();
      await expect(f.clearingHouse.connect(bob).flagMarginCall(alice.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseCannotFlag")
        .withArgs(alice.address, STATUS.Healthy);
      await priceBoth(f, model, ETH, "1970");
      const tx = await f.clearingHouse.connect(bob).flagMarginCall(alice.address);
      model.flagMarginCall(alice.address, await tsOf(await tx.wait()));
      const r = await fillAndCheck(f, model, alice, ETH, -d18(5));
      await expect(r.receipt).to.emit(f.clearingHouse, "MarginCallCleared").withArgs(alice.address);
      const s = await f.clearingHouse.accountSummary(alice.address);
      expect([s.status, s.marginCallDeadline]).to.deep.equal([STATUS.Healthy, 0n]);
      await priceBoth(f, model, ETH, "1800");
      expect(await statusOf(f, alice.address)).to.equal(STATUS.Liquidatable);
      await expect(f.clearingHouse.connect(bob).flagMarginCall(alice.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseCannotFlag")
        .withArgs(alice.address, STATUS.Liquidatable);
    });

    it("when the price recovers anyone can clear the margin call, so a later dip gets a fresh grace window", async () => {
      const { f, model, alice, bob, keeper } = await setup();
      await priceBoth(f, model, ETH, "1970");
      const tx = await f.clearingHouse.connect(bob).flagMarginCall(alice.address);
      const deadline = model.flagMarginCall(alice.address, await tsOf(await tx.wait()));
      // Still under maintenance: the call cannot be cleared.
      await expect(f.clearingHouse.connect(bob).clearMarginCall(alice.address)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseCannotFlag",
      );
      await priceBoth(f, model, ETH, "2000");
      await expect(f.clearingHouse.connect(bob).clearMarginCall(alice.address)).to.emit(f.clearingHouse, "MarginCallCleared").withArgs(alice.address);
      model.deadlines.delete(alice.address);
      // After the old deadline, a new dip under maintenance is margin-callable again, not liquidatable.
      await time.setNextBlockTimestamp(Number(deadline + 60n));
      await priceBoth(f, model, ETH, "1970");
      expect(await statusOf(f, alice.address)).to.equal(STATUS.MarginCallable);
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseAccountHealthy",
      );
    });

    it("a deposit that restores maintenance clears the margin call, so a later dip gets a fresh grace window", async () => {
      const { f, model, alice, bob, keeper } = await setup();
      await priceBoth(f, model, ETH, "1970");
      const tx = await f.clearingHouse.connect(bob).flagMarginCall(alice.address);
      const deadline = model.flagMarginCall(alice.address, await tsOf(await tx.wait()));
      await depositBoth(f, model, alice, usdc(500)); // IClearingHouse.onCollateralAdded: the Vault reports deposits
      expect(await statusOf(f, alice.address)).to.equal(STATUS.Healthy);
      // Past the old deadline (inside its expiry) the account dips under maintenance again, above the hard floor.
      await time.setNextBlockTimestamp(Number(deadline + 60n));
      await priceBoth(f, model, ETH, "1940");
      const s = await f.clearingHouse.accountSummary(alice.address);
      expect(s.equityD18 < BigInt(s.maintenanceRequirementD18)).to.equal(true);
      expect(s.equityD18 >= (BigInt(s.maintenanceRequirementD18) * 3n) / 4n).to.equal(true);
      expect(s.status, "a cleared margin call must not make a new dip liquidatable at once").to.equal(STATUS.MarginCallable);
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseAccountHealthy",
      );
    });
  });

  describe("partial liquidation", () => {
    it("below the hard floor, liquidation closes only the size that restores the initial requirement and pays the caller its share", async () => {
      const { f, model, alice, keeper } = await setup();
      await priceBoth(f, model, ETH, "1960");
      const s0 = model.summary(alice.address, await latestTs());
      expect(s0.status).to.equal(STATUS.Liquidatable);
      expect(s0.equityD18 < (s0.maintenanceRequirementD18 * 3n) / 4n).to.equal(true);
      const keeperBefore = await f.vault.collateralOf(keeper.address);

      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r.closes.length).to.equal(1);
      const q = -r.closes[0].delta;
      expect(q > 0n && q < d18(15)).to.equal(true, `closed ${q}`);
      expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(d18(15) - q);
      expect(r.remainingMarkets).to.equal(1n << BigInt(ETH));
      // Equity is back above the initial requirement (by the two-unit buffer), and not by more than one wei of size.
      expect(r.equityAfter >= r.imAfter + 2n * 10n ** 12n).to.equal(true);
      const s1 = await f.clearingHouse.accountSummary(alice.address);
      expect(s1.status).to.equal(STATUS.Healthy);
      expect(s1.equityD18 >= BigInt(s1.initialRequirementD18)).to.equal(true);
      // Fee: 0.5% of the closed notional, rounded up to a token unit; caller gets 20% of it.
      const fee = r.closes[0].fee;
      expect(fee).to.equal(mulDiv(mulDiv(q, r.closes[0].fill, WAD, true), d18("0.005"), WAD, true));
      expect(r.reward).to.equal((r.feePaid * 2n) / 10n);
      expect(r.toInsurance).to.equal(r.feePaid - r.reward);
      expect(await f.vault.collateralOf(keeper.address)).to.equal(keeperBefore + r.reward);
      // The reward is collateral the liquidator can withdraw.
      await f.vault.connect(keeper).withdraw(r.reward, keeper.address);
      expect(await f.token.balanceOf(keeper.address)).to.equal(r.reward);
    });

    it("a second liquidation of the same account right after pays nothing", async () => {
      const { f, model, alice, keeper } = await setup();
      await priceBoth(f, model, ETH, "1960");
      await liquidateAndCheck(f, model, keeper, alice.address);
      const before = await f.vault.collateralOf(keeper.address);
      const ins = await f.vault.insuranceFund();
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.be.revertedWithCustomError(
        f.clearingHouse,
        "ClearingHouseAccountHealthy",
      );
      expect(await f.vault.collateralOf(keeper.address)).to.equal(before);
      expect(await f.vault.insuranceFund()).to.equal(ins);
    });

    it("a position whose remainder would be below minPositionNotional is closed in full", async () => {
      const { f, model, alice, keeper } = await setup();
      await f.clearingHouse.connect(f.admin).setParam(PARAM_MIN_POSITION_NOTIONAL, d18(10_000));
      await model.syncParams(f);
      await priceBoth(f, model, ETH, "1950");
      const probe = model.clone();
      const size = probe.pos(alice.address, ETH).size;
      const t = probe.margin(alice.address, await latestTs());
      probe.accrue(ETH, await latestTs());
      const minimal = probe.minimalClose(alice.address, ETH, t.equity, t.im, 2n * 10n ** 12n);
      expect(minimal < size).to.equal(true, "a partial close would restore margin");
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r.closes[0].delta).to.equal(-size);
      expect(r.remainingMarkets).to.equal(0n);
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
    });

    it("with positions in two markets, the market with the largest maintenance requirement is liquidated first", async () => {
      const f = await loadFixture(sigmaFixture);
      const model = await Model.load(f);
      const [alice] = f.traders;
      await depositBoth(f, model, alice, usdc(1_500));
      await fillAndCheck(f, model, alice, BTC, d18("0.1")); // $6,000
      await fillAndCheck(f, model, alice, ETH, d18(15)); // $30,000
      await priceBoth(f, model, ETH, "1950");
      await priceBoth(f, model, BTC, "58000");
      const r = await liquidateAndCheck(f, model, f.keeper, alice.address);
      expect(r.closes[0].marketId).to.equal(ETH);
      await expectChainMatchesModel(f, model, [alice.address, f.keeper.address]);
    });

    it("closes at most the market's per-window limit; the rest waits for the next window (ClearingHouseLiquidationRateLimited)", async () => {
      const { f, model, alice, keeper } = await setup();
      await f.riskManager.setMarketParam(ETH, PARAM.LiqLimit, d18("0.0001")); // 10 ETH per 60 s on S = 100,000
      await model.syncRisk(f, ETH);
      expect(model.liqLimits[ETH].maxSize).to.equal(d18(10));
      await priceBoth(f, model, ETH, "1950");
      const r1 = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r1.closes[0].delta).to.equal(-d18(10));
      expect(await statusOf(f, alice.address)).to.equal(STATUS.Liquidatable);
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseLiquidationRateLimited")
        .withArgs(alice.address);
      await time.setNextBlockTimestamp(Number(r1.now + 60n));
      const r2 = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r2.closes[0].delta < 0n).to.equal(true);
    });
  });

  describe("losses beyond the collateral", () => {
    it("bad debt is covered by the insurance fund first, then socialized to the pool; collateral ends at exactly 0", async () => {
      const { f, model, alice, keeper } = await setup();
      await depositInsurance(f, model, usdc(300));
      await priceBoth(f, model, ETH, "1800"); // −$3,000 on $1,000 of collateral
      const ins = await f.vault.insuranceFund();
      const pool = await f.vault.poolBalance();
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r.closes[0].delta).to.equal(-d18(15)); // nothing can be saved: closed in full
      expect(r.badDebt).to.not.equal(undefined);
      expect(r.badDebt!.fromInsurance).to.equal(ins);
      expect(r.badDebt!.socialized).to.equal(r.badDebt!.shortfall - ins);
      expect(r.badDebt!.socialized > 0n).to.equal(true);
      expect([r.feePaid, r.reward]).to.deep.equal([0n, 0n]);
      expect(await f.vault.collateralOf(alice.address)).to.equal(0n);
      expect(await f.vault.insuranceFund()).to.equal(0n);
      // The pool received the collateral and the insurance fund, and lost the rest of the trader's loss.
      expect((await f.vault.poolBalance()) - pool).to.equal(-r.pnlTokens - r.badDebt!.socialized);
    });

    it("bad debt within the insurance fund socializes nothing", async () => {
      const { f, model, alice, keeper } = await setup();
      await depositInsurance(f, model, usdc(100_000));
      await priceBoth(f, model, ETH, "1800");
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r.badDebt!.socialized).to.equal(0n);
      expect(r.badDebt!.fromInsurance).to.equal(r.badDebt!.shortfall);
      expect(await f.vault.collateralOf(alice.address)).to.equal(0n);
    });

    it("a liquidation fee larger than the remaining collateral is capped at what remains", async () => {
      const { f, model, alice, keeper } = await setup();
      // Find a price at which the loss leaves some collateral but less than the liquidation fee.
      const at = (await latestTs()) + 3n;
      let chosen = "";
      for (let cents = 194_500; cents >= 193_000; cents -= 50) {
        const usd = (cents / 100).toFixed(2);
        const probe = model.clone();
        probe.setPrice(ETH, usd);
        const r = probe.liquidate(alice.address, keeper.address, at);
        const left = probe.c(alice.address) + r.feePaid; // collateral after the PnL, before the fee
        if (!r.badDebt && r.feePaid < r.feeTokens && left > 10_000_000n && r.feeTokens - r.feePaid > 10_000_000n) {
          chosen = usd;
          break;
        }
      }
      expect(chosen).to.not.equal("");
      await priceBoth(f, model, ETH, chosen);
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r.feePaid < r.feeTokens).to.equal(true);
      expect(r.badDebt).to.equal(undefined);
      expect(r.reward).to.equal((r.feePaid * 2n) / 10n);
      expect(await f.vault.collateralOf(alice.address)).to.equal(0n);
      expect(vaultEvents(f, r.receipt).some((e) => e.name === "BadDebtCovered")).to.equal(false);
    });
  });

  describe("rewards", () => {
    it("the caller's reward is min(fee · liqRewardShare, liqRewardCap)", async () => {
      const { f, model, alice, keeper } = await setup();
      await f.clearingHouse.connect(f.admin).setParam(PARAM_LIQ_REWARD_CAP, d18(1)); // $1
      await model.syncParams(f);
      expect(model.liqCapTokens).to.equal(usdc(1));
      await priceBoth(f, model, ETH, "1960");
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect((r.feePaid * 2n) / 10n > usdc(1)).to.equal(true);
      expect(r.reward).to.equal(usdc(1));
      expect(r.toInsurance).to.equal(r.feePaid - usdc(1));
    });
  });

  describe("liquidation cannot be blocked", () => {
    it("works while the market is paused for opening", async () => {
      const { f, model, alice, bob, keeper } = await setup();
      await f.riskManager.connect(f.admin).setOpeningPaused(ETH, true);
      model.markets[ETH].breakers = await f.riskManager.BREAKER_OPENING_PAUSED();
      await priceBoth(f, model, ETH, "1960");
      await liquidateAndCheck(f, model, keeper, alice.address);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers & 1n).to.equal(1n);
      // Opening is still refused in the same market.
      const o = await tradeAndCheck(f, model, bob, ETH, d18(1));
      expect(o.predicted.ok).to.equal(false);
    });

    it("works while a price-jump breaker has the market reduce-only", async () => {
      const { f, model, alice, keeper } = await setup();
      await priceBoth(f, model, ETH, "1700"); // a 15% round
      await setVol(f, ETH, "50"); // the risk job's poke folds the round and trips the breaker
      await model.syncRisk(f, ETH);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers & (await f.riskManager.BREAKER_PRICE_JUMP())).to.not.equal(0n);
      const r = await liquidateAndCheck(f, model, keeper, alice.address);
      expect(r.closes[0].delta).to.equal(-d18(15));
    });

    it("a blacklisted trader can be liquidated, and a blacklisted liquidator still earns its reward as collateral", async () => {
      const { f, model, alice } = await setup();
      const liquidator = f.others[0];
      await f.token.setBlacklisted(alice.address, true);
      await f.token.setBlacklisted(liquidator.address, true);
      await priceBoth(f, model, ETH, "1960");
      const r = await liquidateAndCheck(f, model, liquidator, alice.address);
      expect(r.reward > 0n).to.equal(true);
      expect(await f.vault.collateralOf(liquidator.address)).to.equal(r.reward);
    });

    it("refuses a price older than LiquidationPriceMaxAge", async () => {
      const { f, model, alice, keeper } = await setup();
      await priceBoth(f, model, ETH, "1960");
      const updated = (await f.priceFeeds[ETH].latestRoundData())[3];
      await time.setNextBlockTimestamp(Number(updated + 3901n));
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.be.revertedWithCustomError(f.riskManager, "OracleStale");
      await setPrice(f, ETH, "1960");
      await expect(f.clearingHouse.connect(keeper).liquidate(alice.address)).to.emit(f.clearingHouse, "Liquidated");
    });
  });

  describe("liquidateBatch", () => {
    it("liquidates the liquidatable accounts of a list and skips the others, zero-sum", async () => {
      const { f, model, alice, bob, carol, keeper } = await setup();
      await fillAndCheck(f, model, bob, ETH, -d18(5));
      await priceBoth(f, model, ETH, "1960");
      const accounts = [bob.address, alice.address, carol.address];
      const before = await ledgerTotal(f, [...accounts, keeper.address]);
      const [count, reward] = await f.clearingHouse.connect(keeper).liquidateBatch.staticCall(accounts);
      const tx = await f.clearingHouse.connect(keeper).liquidateBatch(accounts);
      const rc = await tx.wait();
      const now = await tsOf(rc);
      for (const M of model.markets) if (M.oiL !== 0n || M.oiS !== 0n) model.accrue(M.id, now);
      const r = model.liquidate(alice.address, keeper.address, now);
      expect([count, reward]).to.deep.equal([1n, r.reward]);
      const liq = chEvents(f, rc).filter((e) => e.name === "Liquidated");
      expect(liq.length).to.equal(1);
      expect([...liq[0].args]).to.deep.equal([alice.address, keeper.address, r.closedNotional, r.feePaid, r.reward, r.remainingMarkets]);
      expect(await ledgerTotal(f, [...accounts, keeper.address])).to.equal(before);
      await expectChainMatchesModel(f, model, [...accounts, keeper.address]);
    });
  });
});
