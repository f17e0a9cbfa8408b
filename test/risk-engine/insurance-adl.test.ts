// The loss waterfall: trading and liquidation fees feed the insurance fund; bad debt draws the insurance fund
// first (never below zero), then the pool, through the one BadDebtCovered path; when traders' unrealized PnL
// exceeds the pool's assets, auto-deleveraging closes profitable positions at the oracle price, forfeiting at
// most the deficit and never paying more than the pool holds.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployFixture, sigmaFixture, setPrice, usdc, d18, Fixture } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import {
  Model,
  depositBoth,
  fillAndCheck,
  priceBoth,
  liquidateAndCheck,
  vaultEvents,
  pnlD18,
  toTokensFloor,
  mulDiv,
  min,
  WAD,
} from "../clearinghouse/math";
import { ETH, execOrder } from "./helpers";

async function modelFixture() {
  const f = await sigmaFixture();
  return { f, model: await Model.load(f) };
}

async function loadModel() {
  const r = await loadFixture(modelFixture);
  return { f: r.f, model: r.model.clone() };
}

/** Sigma whose pool is tiny: the LP takes 990,000 of its 1,000,000 USDC back. Funding is switched off on ETH so
 * that PnL does not move with time, and the OI cap is raised so that traders can outsize the pool. */
async function tinyPoolFixture() {
  const f = await deployFixture();
  await f.pool.connect(f.lp).withdraw(usdc(990000), f.lp.address, f.lp.address);
  await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0);
  await f.riskManager.setMarketParam(ETH, PARAM.OiCapRatio, d18(10));
  return f;
}

const scale = 10n ** 12n;

/** What autoDeleverage must do, from the chain's views just before it (PnL is time-independent here). */
async function predictAdl(f: Fixture, account: string) {
  const total = await f.clearingHouse.tradersUnrealizedPnlD18();
  const pool = await f.vault.poolBalance();
  const pos = await f.clearingHouse.position(account, ETH);
  const ms = await f.clearingHouse.marketState(ETH);
  const price = await f.riskManager.priceD18(ETH);
  const pnl = pnlD18(pos.sizeD18, pos.costBasisD18, price, ms.fundingIndexD18);
  const deficit = total - pool * scale;
  const gain = pnl > 0n ? pnl : 0n;
  const payout = min(gain - min(gain, deficit > 0n ? deficit : 0n), pool * scale);
  const haircut = gain - payout;
  return { total, pool, pos, price, pnl, deficit, payout, haircut, paidTokens: toTokensFloor(pnl - haircut, scale) };
}

describe("risk engine: insurance fund, bad debt waterfall and auto-deleveraging", () => {
  describe("fees into the insurance fund", () => {
    it("every fill sends insuranceFeeShare (20%) of the fee paid to the insurance fund (TradeSettled.feeToInsurance)", async () => {
      const { f, model } = await loadModel();
      const [a, b] = f.traders;
      expect(await f.vault.insuranceFeeShareD18()).to.equal(d18("0.2"));
      await depositBoth(f, model, a, usdc(10000));
      await depositBoth(f, model, b, usdc(10000));
      let fund = await f.vault.insuranceFund();
      for (const [t, size] of [
        [a, d18(10)],
        [b, -d18(4)],
        [a, -d18(3)],
      ] as const) {
        const r = await fillAndCheck(f, model, t, ETH, size);
        const ev = vaultEvents(f, r.receipt).find((e) => e.name === "TradeSettled")!;
        expect([...ev.args]).to.deep.equal([t.address, r.pnlTokens, r.feePaid, r.toPool, r.toInsurance]);
        expect(r.toInsurance).to.equal(mulDiv(r.feePaid, d18("0.2"), WAD));
        expect(r.toInsurance > 0n).to.equal(true);
        expect(await f.vault.insuranceFund()).to.equal(fund + r.toInsurance);
        fund += r.toInsurance;
      }
    });

    it("a liquidation's fee pays the liquidator's capped share and the rest into the insurance fund (LiquidationFeePaid)", async () => {
      const { f, model } = await loadModel();
      const [t] = f.traders;
      await depositBoth(f, model, t, usdc(1000));
      await fillAndCheck(f, model, t, ETH, d18(10));
      await priceBoth(f, model, ETH, "1930");
      const fund = await f.vault.insuranceFund();
      const r = await liquidateAndCheck(f, model, f.keeper, t.address);
      expect(r.badDebt).to.equal(undefined);
      expect(r.feePaid > 0n && r.toInsurance === r.feePaid - r.reward).to.equal(true);
      expect(await f.vault.insuranceFund()).to.equal(fund + r.toInsurance);
    });
  });

  describe("bad debt", () => {
    /** A 10× long on 1,000 USDC caught by a 10% gap: its loss exceeds its collateral. */
    async function underwater(f: Fixture, model: Model) {
      const [t] = f.traders;
      await depositBoth(f, model, t, usdc(1000));
      await fillAndCheck(f, model, t, ETH, d18(10));
      await priceBoth(f, model, ETH, "1800");
      const s = await f.clearingHouse.accountSummary(t.address);
      expect(s.equityD18 < 0n).to.equal(true);
      return t;
    }

    it("within the insurance fund: the fund pays the whole shortfall (BadDebtCovered fromInsurance = shortfall, socialized 0)", async () => {
      const { f, model } = await loadModel();
      await f.token.connect(f.lp).approve(await f.vault.getAddress(), ethers.MaxUint256);
      await expect(f.vault.connect(f.lp).depositInsurance(usdc(5000))).to.emit(f.vault, "InsuranceDeposited").withArgs(f.lp.address, usdc(5000));
      model.ins += usdc(5000);
      const t = await underwater(f, model);
      const fund = await f.vault.insuranceFund();
      const pool = await f.vault.poolBalance();
      const cBefore = await f.vault.collateralOf(t.address);
      const r = await liquidateAndCheck(f, model, f.keeper, t.address);
      expect(r.badDebt).to.not.equal(undefined);
      const { shortfall, fromInsurance, socialized } = r.badDebt!;
      expect(fromInsurance).to.equal(shortfall);
      expect(socialized).to.equal(0n);
      expect(await f.vault.insuranceFund()).to.equal(fund - shortfall);
      // The pool receives the trader's whole loss: the collateral it had plus the insurance's part.
      expect(await f.vault.poolBalance()).to.equal(pool + cBefore + fromInsurance);
      expect(await f.vault.collateralOf(t.address)).to.equal(0n);
    });

    it("beyond the insurance fund: the fund is drained to exactly zero, never below, and the pool absorbs the rest, in one BadDebtCovered event", async () => {
      const { f, model } = await loadModel();
      const t = await underwater(f, model);
      const fund = await f.vault.insuranceFund();
      expect(fund > 0n).to.equal(true); // a few fees so far
      const r = await liquidateAndCheck(f, model, f.keeper, t.address);
      const { shortfall, fromInsurance, socialized } = r.badDebt!;
      expect(shortfall > fund).to.equal(true);
      expect(fromInsurance).to.equal(fund);
      expect(socialized).to.equal(shortfall - fund);
      expect(await f.vault.insuranceFund()).to.equal(0n);
      expect(vaultEvents(f, r.receipt).filter((e) => e.name === "BadDebtCovered").length).to.equal(1);
      // No fee can be taken from an empty account: the liquidator earns nothing, the fund stays at zero.
      expect([r.feePaid, r.reward]).to.deep.equal([0n, 0n]);
      // Every token is accounted for: Σ ledgers equals the vault's balance.
      const ledgers =
        (await f.vault.poolBalance()) +
        (await f.vault.insuranceFund()) +
        (await f.vault.protocolFees()) +
        (await Promise.all([...f.traders, f.keeper].map((x) => f.vault.collateralOf(x.address)))).reduce((a, b) => a + b, 0n);
      expect(await f.token.balanceOf(await f.vault.getAddress())).to.equal(ledgers);
    });

    it("a second shortfall after the fund was drained takes only what the fund regained since (fees), the pool the rest", async () => {
      const { f, model } = await loadModel();
      const t = await underwater(f, model);
      await liquidateAndCheck(f, model, f.keeper, t.address);
      expect(await f.vault.insuranceFund()).to.equal(0n);
      const [, u] = f.traders;
      await depositBoth(f, model, u, usdc(1000));
      await fillAndCheck(f, model, u, ETH, d18(9));
      await priceBoth(f, model, ETH, "1600");
      const fund = await f.vault.insuranceFund(); // u's opening fee refilled it a little
      const r = await liquidateAndCheck(f, model, f.keeper, u.address);
      expect(r.badDebt!.fromInsurance).to.equal(fund);
      expect(r.badDebt!.socialized).to.equal(r.badDebt!.shortfall - fund);
      expect(await f.vault.insuranceFund()).to.equal(0n);
    });
  });

  describe("auto-deleveraging", () => {
    it("reverts with ClearingHouseNoPoolDeficit while the pool covers traders' unrealized PnL", async () => {
      const f = await loadFixture(sigmaFixture);
      const [w] = f.traders;
      await f.vault.connect(w).deposit(w.address, usdc(10000));
      await execOrder(f, w, ETH, d18(10));
      await setPrice(f, ETH, "2600");
      expect((await f.clearingHouse.tradersUnrealizedPnlD18()) > 0n).to.equal(true);
      await expect(f.clearingHouse.autoDeleverage(w.address, ETH)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNoPoolDeficit");
    });

    it("with a deficit, reverts with ClearingHouseNotProfitable on a losing position and on an account without one", async () => {
      const f = await loadFixture(tinyPoolFixture);
      const [w, s, nobody] = f.traders;
      await f.vault.connect(w).deposit(w.address, usdc(2000));
      await f.vault.connect(s).deposit(s.address, usdc(5000));
      await execOrder(f, w, ETH, d18(8));
      await execOrder(f, s, ETH, -d18(2));
      await setPrice(f, ETH, "4000");
      const { deficit } = await predictAdl(f, w.address);
      expect(deficit > 0n).to.equal(true);
      await expect(f.clearingHouse.autoDeleverage(s.address, ETH))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNotProfitable")
        .withArgs(s.address, ETH);
      await expect(f.clearingHouse.autoDeleverage(nobody.address, ETH))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNotProfitable")
        .withArgs(nobody.address, ETH);
    });

    it("closes the profitable position at the oracle price, pays at most what the pool holds (AutoDeleveraged with the haircut) and leaves the pool's NAV no worse", async () => {
      const f = await loadFixture(tinyPoolFixture);
      const [w, s] = f.traders;
      await f.vault.connect(w).deposit(w.address, usdc(2000));
      await f.vault.connect(s).deposit(s.address, usdc(5000));
      await execOrder(f, w, ETH, d18(8));
      await execOrder(f, s, ETH, -d18(2));
      await setPrice(f, ETH, "4000");
      const e = await predictAdl(f, w.address);
      // The pool holds ≈ 10,000 USDC; traders are owed ≈ 16,000 − 4,000.
      expect(e.deficit > 0n).to.equal(true);
      expect(e.pnl - e.deficit > e.pool * scale, "the pool is the binding limit").to.equal(true);
      const navBefore = await f.pool.navD18();
      const collBefore = await f.vault.collateralOf(w.address);

      await expect(f.clearingHouse.connect(f.others[0]).autoDeleverage(w.address, ETH))
        .to.emit(f.clearingHouse, "AutoDeleveraged")
        .withArgs(w.address, ETH, e.pos.sizeD18, d18(4000), e.pnl, e.haircut);
      expect(e.payout).to.equal(e.pool * scale);
      expect(e.haircut).to.equal(e.pnl - e.pool * scale);
      expect((await f.clearingHouse.position(w.address, ETH)).sizeD18).to.equal(0n);
      expect(await f.vault.collateralOf(w.address)).to.equal(collBefore + e.paidTokens);
      expect(await f.vault.poolBalance()).to.equal(e.pool - e.paidTokens);
      expect(e.paidTokens <= e.pool).to.equal(true);
      const navAfter = await f.pool.navD18();
      expect(navAfter >= navBefore, `NAV ${navBefore} → ${navAfter}`).to.equal(true);
      expect(navAfter > 0n).to.equal(true);
      // The deficit is gone: a second call has nothing to do.
      await expect(f.clearingHouse.autoDeleverage(s.address, ETH)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNoPoolDeficit");
    });

    it("with two winners, the first one deleveraged forfeits exactly the deficit, which restores NAV to zero and ends the deficit", async () => {
      const f = await loadFixture(tinyPoolFixture);
      const [w, v] = f.traders;
      await f.vault.connect(w).deposit(w.address, usdc(2000));
      await f.vault.connect(v).deposit(v.address, usdc(1000));
      await execOrder(f, w, ETH, d18(8));
      await execOrder(f, v, ETH, d18(2));
      await setPrice(f, ETH, "4000");
      const e = await predictAdl(f, w.address);
      expect(e.pnl > e.deficit && e.deficit > 0n).to.equal(true);
      expect(e.pnl - e.deficit < e.pool * scale, "the pool can pay the rest").to.equal(true);
      const navBefore = await f.pool.navD18();
      expect(navBefore).to.equal(-e.deficit);
      await expect(f.clearingHouse.autoDeleverage(w.address, ETH))
        .to.emit(f.clearingHouse, "AutoDeleveraged")
        .withArgs(w.address, ETH, d18(8), d18(4000), e.pnl, e.deficit);
      expect(await f.vault.poolBalance()).to.equal(e.pool - e.paidTokens);
      const navAfter = await f.pool.navD18();
      expect(navAfter >= 0n && navAfter < scale, `NAV after ${navAfter}`).to.equal(true);
      await expect(f.clearingHouse.autoDeleverage(v.address, ETH)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseNoPoolDeficit");
    });

    it("after auto-deleveraging ends a deficit, the remaining winner can still close its position (closing is never blocked)", async () => {
      const f = await loadFixture(tinyPoolFixture);
      const [w, v] = f.traders;
      await f.vault.connect(w).deposit(w.address, usdc(2000));
      await f.vault.connect(v).deposit(v.address, usdc(1000));
      await execOrder(f, w, ETH, d18(8));
      await execOrder(f, v, ETH, d18(2));
      await setPrice(f, ETH, "4000");
      await f.clearingHouse.autoDeleverage(w.address, ETH);
      const before = await f.vault.collateralOf(v.address);
      const o = await execOrder(f, v, ETH, -d18(2));
      expect(o.filled, `close cancelled with ${o.reason?.name}(${o.reason?.args.join(", ")})`).to.equal(true);
      expect((await f.clearingHouse.position(v.address, ETH)).sizeD18).to.equal(0n);
      expect((await f.vault.collateralOf(v.address)) > before).to.equal(true);
    });
  });
});
