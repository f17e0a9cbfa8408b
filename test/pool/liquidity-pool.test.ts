import { expect } from "chai";
import { ethers } from "hardhat";
import {
  loadFixture,
  time,
  impersonateAccount,
  stopImpersonatingAccount,
  setBalance,
} from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, trade, setPrice, usdc, d18, ETH, Fixture } from "../fixture";
import { deploySigma } from "../../scripts/lib/deploy";
import { PARAM } from "../../scripts/lib/params";

// ------------------------------------------------------------------ math mirrors (bigint)
const WAD = 10n ** 18n;
const SCALE6 = 10n ** 12n;
const OFFSET = 10n ** 6n; // LiquidityPool._decimalsOffset() = 6
const abs = (x: bigint) => (x < 0n ? -x : x);
const min = (a: bigint, b: bigint) => (a < b ? a : b);
const ceilDiv = (a: bigint, b: bigint) => (a === 0n ? 0n : (a - 1n) / b + 1n);
const mulDiv = (a: bigint, b: bigint, d: bigint, up = false) => (up ? ceilDiv(a * b, d) : (a * b) / d);
const TAKER = d18("0.0005");
const MAKER = d18("0.0002");
const ETH_SKEW_SCALE = d18(100000);
function fillPrice(price: bigint, skew: bigint, delta: bigint, scale = ETH_SKEW_SCALE) {
  const two = 2n * scale;
  return mulDiv(price, two + 2n * skew + delta, two, delta > 0n);
}
function tradeFee(skew: bigint, delta: bigint, fill: bigint) {
  const ad = abs(delta);
  const makerPart = skew !== 0n && skew > 0n !== delta > 0n ? min(ad, abs(skew)) : 0n;
  return mulDiv(makerPart * MAKER + (ad - makerPart) * TAKER, fill, WAD * WAD, true);
}
function mulDivSigned(a: bigint, b: bigint, d: bigint, up: boolean) {
  const neg = a < 0n;
  const m = mulDiv(abs(a), b, d, up !== neg);
  return neg ? -m : m;
}
const lpShare = (fee: bigint) => (fee * d18("0.6")) / WAD;
/** OpenZeppelin ERC4626 conversions with the pool's 10^6 virtual shares. */
const toShares = (assets: bigint, totalAssets: bigint, supply: bigint, up = false) =>
  mulDiv(assets, supply + OFFSET, totalAssets + 1n, up);
const toAssets = (shares: bigint, totalAssets: bigint, supply: bigint, up = false) =>
  mulDiv(shares, totalAssets + 1n, supply + OFFSET, up);

/** NAV in token units from the pool ledger and traders' PnL (funding off): floor((pb·scale − pnl)/scale). */
const navTokens = (poolBalance: bigint, tradersPnlD18: bigint) => {
  const nav = poolBalance * SCALE6 - tradersPnlD18;
  return nav <= 0n ? 0n : nav / SCALE6;
};

async function newLp(f: Fixture, amount: bigint) {
  const u = f.others[0];
  await f.token.mint(u.address, amount);
  await f.token.connect(u).approve(await f.pool.getAddress(), ethers.MaxUint256);
  return u;
}

/** Sigma without the fixture's initial LP deposit: the pool starts empty (for the inflation attack). */
async function emptyPoolFixture() {
  const signers = await ethers.getSigners();
  const [admin, attacker, victim] = [signers[0], signers[3], signers[4]];
  const d = await deploySigma(admin);
  for (const u of [attacker, victim]) {
    await d.token.mint(u.address, usdc(3000000));
    await d.token.connect(u).approve(await d.pool.getAddress(), ethers.MaxUint256);
  }
  return { ...d, admin, attacker, victim };
}

describe("LiquidityPool", () => {
  describe("ERC-4626 flows through the Vault", () => {
    it("the fixture's first deposit minted 10^6 shares per token unit and left the pool contract empty", async () => {
      const f = await loadFixture(sigmaFixture);
      expect(await f.pool.asset()).to.equal(await f.token.getAddress());
      expect(await f.vault.poolBalance()).to.equal(usdc(1000000));
      expect(await f.pool.totalSupply()).to.equal(usdc(1000000) * OFFSET);
      expect(await f.pool.balanceOf(f.lp.address)).to.equal(usdc(1000000) * OFFSET);
      expect(await f.pool.totalAssets()).to.equal(usdc(1000000));
      expect(await f.token.balanceOf(await f.pool.getAddress())).to.equal(0n);
    });

    it("deposit moves tokens from the LP straight into the Vault, grows poolBalance and mints floor shares", async () => {
      const f = await loadFixture(sigmaFixture);
      // Fees first, so that the share price is not 1:1 and the rounding matters.
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, d18(3));
      await trade(f, t, ETH, -d18(3));
      const u = await newLp(f, usdc(50000));
      const vaultAddr = await f.vault.getAddress();
      const A = await f.pool.totalAssets();
      const S = await f.pool.totalSupply();
      const pb = await f.vault.poolBalance();
      expect(A).to.equal(pb); // no open positions: NAV is the ledger
      const vaultBal = await f.token.balanceOf(vaultAddr);
      const assets = usdc("12345.678901");
      const shares = toShares(assets, A, S);
      await expect(f.pool.connect(u).deposit(assets, u.address))
        .to.emit(f.pool, "Deposit")
        .withArgs(u.address, u.address, assets, shares)
        .and.to.emit(f.vault, "PoolCredited")
        .withArgs(assets, pb + assets);
      expect(await f.pool.balanceOf(u.address)).to.equal(shares);
      expect(await f.vault.poolBalance()).to.equal(pb + assets);
      expect(await f.token.balanceOf(vaultAddr)).to.equal(vaultBal + assets);
      expect(await f.token.balanceOf(u.address)).to.equal(usdc(50000) - assets);
      expect(await f.token.balanceOf(await f.pool.getAddress())).to.equal(0n);
    });

    it("mint pulls the rounded-up assets for an exact number of shares into the Vault", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, d18(7));
      await trade(f, t, ETH, -d18(7));
      const u = await newLp(f, usdc(50000));
      const A = await f.pool.totalAssets();
      const S = await f.pool.totalSupply();
      const pb = await f.vault.poolBalance();
      const shares = 12345678901234567n; // ≈ 12,346 USDC worth
      const assets = toAssets(shares, A, S, true);
      await expect(f.pool.connect(u).mint(shares, u.address))
        .to.emit(f.pool, "Deposit")
        .withArgs(u.address, u.address, assets, shares);
      expect(await f.pool.balanceOf(u.address)).to.equal(shares);
      expect(await f.vault.poolBalance()).to.equal(pb + assets);
      expect(await f.token.balanceOf(u.address)).to.equal(usdc(50000) - assets);
      expect(await f.token.balanceOf(await f.pool.getAddress())).to.equal(0n);
    });

    it("withdraw burns rounded-up shares and the Vault pays the receiver out of the pool ledger (PoolDebited)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, receiver] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, d18(3));
      await trade(f, t, ETH, -d18(3));
      const A = await f.pool.totalAssets();
      const S = await f.pool.totalSupply();
      const pb = await f.vault.poolBalance();
      const vaultBal = await f.token.balanceOf(await f.vault.getAddress());
      const recvBal = await f.token.balanceOf(receiver.address);
      const lpShares = await f.pool.balanceOf(f.lp.address);
      const assets = usdc("2500.000001");
      const shares = toShares(assets, A, S, true);
      await expect(f.pool.connect(f.lp).withdraw(assets, receiver.address, f.lp.address))
        .to.emit(f.pool, "Withdraw")
        .withArgs(f.lp.address, receiver.address, f.lp.address, assets, shares)
        .and.to.emit(f.vault, "PoolDebited")
        .withArgs(receiver.address, assets, pb - assets);
      expect(await f.pool.balanceOf(f.lp.address)).to.equal(lpShares - shares);
      expect(await f.vault.poolBalance()).to.equal(pb - assets);
      expect(await f.token.balanceOf(receiver.address)).to.equal(recvBal + assets);
      expect(await f.token.balanceOf(await f.vault.getAddress())).to.equal(vaultBal - assets);
      expect(await f.token.balanceOf(await f.pool.getAddress())).to.equal(0n);
    });

    it("redeem pays rounded-down assets for an exact number of shares", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, d18(3));
      await trade(f, t, ETH, -d18(3));
      const A = await f.pool.totalAssets();
      const S = await f.pool.totalSupply();
      const pb = await f.vault.poolBalance();
      const lpBal = await f.token.balanceOf(f.lp.address);
      const shares = 987654321098765432n;
      const assets = toAssets(shares, A, S);
      await expect(f.pool.connect(f.lp).redeem(shares, f.lp.address, f.lp.address))
        .to.emit(f.pool, "Withdraw")
        .withArgs(f.lp.address, f.lp.address, f.lp.address, assets, shares);
      expect(await f.vault.poolBalance()).to.equal(pb - assets);
      expect(await f.token.balanceOf(f.lp.address)).to.equal(lpBal + assets);
    });

    it("withdraw on behalf of an owner needs a share allowance (ERC20InsufficientAllowance) and spends it", async () => {
      const f = await loadFixture(sigmaFixture);
      const spender = f.others[1];
      const A = await f.pool.totalAssets();
      const S = await f.pool.totalSupply();
      const shares = toShares(usdc(100), A, S, true);
      await expect(f.pool.connect(spender).withdraw(usdc(100), spender.address, f.lp.address))
        .to.be.revertedWithCustomError(f.pool, "ERC20InsufficientAllowance")
        .withArgs(spender.address, 0n, shares);
      await f.pool.connect(f.lp).approve(spender.address, shares);
      await f.pool.connect(spender).withdraw(usdc(100), spender.address, f.lp.address);
      expect(await f.pool.allowance(f.lp.address, spender.address)).to.equal(0n);
      expect(await f.token.balanceOf(spender.address)).to.equal(usdc(100));
    });

    it("LPs earn the LP share of trading fees: totalAssets grows by exactly 60% of the fees", async () => {
      const f = await loadFixture(sigmaFixture);
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      const A0 = await f.pool.totalAssets();
      await trade(f, t, ETH, d18(10));
      await trade(f, t, ETH, -d18(10));
      const fill1 = fillPrice(d18(2000), 0n, d18(10));
      const fill2 = fillPrice(d18(2000), d18(10), -d18(10));
      const fee1 = ceilDiv(tradeFee(0n, d18(10), fill1), SCALE6);
      const fee2 = ceilDiv(tradeFee(d18(10), -d18(10), fill2), SCALE6);
      const basis = mulDivSigned(d18(10), fill1, WAD, true);
      const realized = mulDivSigned(d18(10), fill2, WAD, false) - basis; // negative: the round trip's premium
      const traderLoss = -(realized >= 0n ? realized / SCALE6 : -ceilDiv(-realized, SCALE6));
      expect(await f.pool.totalAssets()).to.equal(A0 + lpShare(fee1) + lpShare(fee2) + traderLoss);
      expect(await f.pool.convertToAssets(await f.pool.balanceOf(f.lp.address))).to.be.greaterThan(A0 - 1n);
    });

    it("a fee-on-transfer asset is rejected by deposit (PoolFeeOnTransferNotSupported)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [u] = f.traders;
      const fot = await (await ethers.getContractFactory("MockFeeOnTransferERC20")).deploy();
      const v = await (await ethers.getContractFactory("Vault")).deploy(await fot.getAddress(), f.admin.address);
      // Any margin account serves: the fixture's clearinghouse has no open interest, so traders' PnL is 0.
      const ch = f.clearingHouse;
      const p = await (await ethers.getContractFactory("LiquidityPool")).deploy(
        await v.getAddress(),
        await ch.getAddress(),
        f.admin.address,
        "LP",
        "LP",
      );
      await v.wire(await ch.getAddress(), await p.getAddress());
      await fot.mint(u.address, usdc(1000));
      await fot.connect(u).approve(await p.getAddress(), ethers.MaxUint256);
      await expect(p.connect(u).deposit(usdc(1000), u.address))
        .to.be.revertedWithCustomError(p, "PoolFeeOnTransferNotSupported")
        .withArgs(usdc(1000), usdc(990));
      expect(await v.poolBalance()).to.equal(0n);
      expect(await p.totalSupply()).to.equal(0n);
    });
  });

  describe("NAV", () => {
    async function openLong(f: Fixture, size: bigint, deposit = usdc(10000)) {
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, deposit);
      await trade(f, t, ETH, size);
      const fill = fillPrice(d18(2000), 0n, size);
      const basis = mulDivSigned(size, fill, WAD, true);
      const fee = ceilDiv(tradeFee(0n, size, fill), SCALE6);
      return { t, fill, basis, fee };
    }

    it("totalAssets = poolBalance − traders' unrealized PnL: a long's profit on a price rise lowers NAV by exactly that profit", async () => {
      const f = await loadFixture(sigmaFixture);
      const size = d18(10);
      const { basis, fee } = await openLong(f, size);
      const pb = usdc(1000000) + lpShare(fee);
      expect(await f.vault.poolBalance()).to.equal(pb);

      const pnlAt2000 = mulDivSigned(size, d18(2000), WAD, false) - basis;
      expect(pnlAt2000).to.equal(-d18(1)); // the skew premium paid at entry
      expect(await f.clearingHouse.tradersUnrealizedPnlD18()).to.equal(pnlAt2000);
      expect(await f.pool.navD18()).to.equal(pb * SCALE6 - pnlAt2000);
      const nav0 = navTokens(pb, pnlAt2000);
      expect(nav0).to.equal(pb + usdc(1));
      expect(await f.pool.totalAssets()).to.equal(nav0);

      await setPrice(f, ETH, "2200");
      const pnlAt2200 = mulDivSigned(size, d18(2200), WAD, false) - basis;
      expect(pnlAt2200).to.equal(d18(1999));
      expect(await f.clearingHouse.tradersUnrealizedPnlD18()).to.equal(pnlAt2200);
      expect(await f.pool.navD18()).to.equal(pb * SCALE6 - pnlAt2200);
      const nav1 = navTokens(pb, pnlAt2200);
      expect(await f.pool.totalAssets()).to.equal(nav1);
      expect(nav0 - nav1).to.equal(usdc(2000));
      // The ledger itself does not move until the profit is realized.
      expect(await f.vault.poolBalance()).to.equal(pb);
      // LPs' shares are worth less by the same amount.
      const S = await f.pool.totalSupply();
      expect(await f.pool.convertToAssets(S)).to.equal(toAssets(S, nav1, S));
    });

    it("a short's loss on a price rise raises NAV by exactly that loss", async () => {
      const f = await loadFixture(sigmaFixture);
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      const size = -d18(10);
      await trade(f, t, ETH, size);
      const fill = fillPrice(d18(2000), 0n, size);
      expect(fill).to.equal(d18("1999.9"));
      const basis = mulDivSigned(size, fill, WAD, true);
      const pb = await f.vault.poolBalance();
      await setPrice(f, ETH, "2150");
      const pnl = mulDivSigned(size, d18(2150), WAD, false) - basis;
      expect(pnl).to.equal(-d18(1501));
      expect(await f.pool.totalAssets()).to.equal(navTokens(pb, pnl));
      expect(await f.pool.totalAssets()).to.equal(pb + usdc(1501));
    });

    it("NAV includes the funding traders accrue: with a long skew at a constant price, NAV rises over time", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(20000));
      await trade(f, t, ETH, d18(100));
      const pb = await f.vault.poolBalance();
      const pnl0 = await f.clearingHouse.tradersUnrealizedPnlD18();
      await time.increase(10 * 86400);
      await setPrice(f, ETH, "2000"); // same price, fresh round
      const pnl1 = await f.clearingHouse.tradersUnrealizedPnlD18();
      // Longs pay clamp(skew/skewScale)·maxRate·price per unit per day: 100/1e5 · 3% · 2000 · 100 units · 10 days ≈ 60 USD.
      expect(pnl0 - pnl1).to.be.closeTo(d18(60), d18("0.1"));
      expect(await f.vault.poolBalance()).to.equal(pb);
      expect(await f.pool.navD18()).to.equal(pb * SCALE6 - pnl1);
      // One trader: the aggregate equals that account's PnL including funding.
      expect((await f.clearingHouse.accountSummary(t.address)).unrealizedPnlD18).to.equal(pnl1);
      expect(await f.pool.totalAssets()).to.equal(navTokens(pb, pnl1));
    });
  });

  describe("first-depositor inflation attack", () => {
    it("donating to the Vault or to the pool contract does not move the share price: the victim gets fair shares and the attacker loses the donation", async () => {
      const f = await loadFixture(emptyPoolFixture);
      const { attacker, victim } = f;
      const poolAddr = await f.pool.getAddress();
      const vaultAddr = await f.vault.getAddress();
      expect(await f.pool.totalSupply()).to.equal(0n);
      const attacker0 = await f.token.balanceOf(attacker.address);

      await f.pool.connect(attacker).deposit(1n, attacker.address);
      expect(await f.pool.balanceOf(attacker.address)).to.equal(OFFSET); // 1·(0 + 10^6)/(0 + 1)

      const donation = usdc(1000000);
      await f.token.connect(attacker).transfer(vaultAddr, donation);
      await f.token.connect(attacker).transfer(poolAddr, donation);
      // The pool's assets are the Vault's ledger, not token balances: the donations are invisible.
      expect(await f.vault.poolBalance()).to.equal(1n);
      expect(await f.pool.totalAssets()).to.equal(1n);

      const deposit = usdc(10000);
      const expectedShares = toShares(deposit, 1n, OFFSET);
      expect(expectedShares).to.equal(deposit * OFFSET); // the same price the attacker paid
      await f.pool.connect(victim).deposit(deposit, victim.address);
      expect(await f.pool.balanceOf(victim.address)).to.equal(expectedShares);
      expect(await f.pool.maxWithdraw(victim.address)).to.be.greaterThanOrEqual(deposit - 1n);

      // The attacker exits with at most the 1 unit deposited: both donations are lost.
      const A = await f.pool.totalAssets();
      const S = await f.pool.totalSupply();
      const attackerAssets = toAssets(OFFSET, A, S);
      expect(attackerAssets).to.be.lessThanOrEqual(1n);
      await f.pool.connect(attacker).redeem(OFFSET, attacker.address, attacker.address);
      expect(await f.token.balanceOf(attacker.address)).to.equal(attacker0 - 1n - 2n * donation + attackerAssets);

      // The victim takes out the whole deposit.
      const victimShares = await f.pool.balanceOf(victim.address);
      const victimAssets = await f.pool.previewRedeem(victimShares);
      expect(victimAssets).to.be.greaterThanOrEqual(deposit - 1n);
      const v0 = await f.token.balanceOf(victim.address);
      await f.pool.connect(victim).redeem(victimShares, victim.address, victim.address);
      expect(await f.token.balanceOf(victim.address)).to.equal(v0 + victimAssets);
    });

    it("even a donation counted in NAV (credited to the pool ledger) costs the attacker ~10^6× what the victim loses", async () => {
      const f = await loadFixture(emptyPoolFixture);
      const { attacker, victim } = f;
      const vaultAddr = await f.vault.getAddress();
      await f.pool.connect(attacker).deposit(1n, attacker.address);
      // Model the strongest donation: D tokens reach the Vault AND the pool ledger (as if NAV counted them).
      const D = usdc(10000);
      await f.token.connect(attacker).transfer(vaultAddr, D);
      const poolAddr = await f.pool.getAddress();
      await impersonateAccount(poolAddr);
      await setBalance(poolAddr, 10n ** 20n);
      await f.vault.connect(await ethers.getSigner(poolAddr)).creditPool(D);
      await stopImpersonatingAccount(poolAddr);
      expect(await f.pool.totalAssets()).to.equal(D + 1n);

      const deposit = usdc(5000);
      const shares = toShares(deposit, D + 1n, OFFSET);
      expect(shares > 0n).to.equal(true); // no rounding to zero shares
      await f.pool.connect(victim).deposit(deposit, victim.address);
      expect(await f.pool.balanceOf(victim.address)).to.equal(shares);

      const A = D + 1n + deposit;
      const S = OFFSET + shares;
      const victimValue = toAssets(shares, A, S);
      const attackerValue = toAssets(OFFSET, A, S);
      expect(await f.pool.previewRedeem(shares)).to.equal(victimValue);
      const victimLoss = deposit - victimValue;
      const attackerLoss = D + 1n - attackerValue;
      // The victim loses a fraction of a cent; the attacker loses thousands of dollars.
      expect(victimLoss).to.be.lessThan(usdc("0.01"));
      expect(attackerLoss).to.be.greaterThan(usdc(4900));
      expect(attackerLoss).to.be.greaterThan(victimLoss * 1000000n);
    });
  });

  describe("reserve", () => {
    async function bigSkew(f: Fixture, size: bigint, deposit: bigint) {
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, deposit);
      await trade(f, t, ETH, size);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(size);
      const fill = fillPrice(d18(2000), 0n, size);
      return { t, basis: mulDivSigned(size, fill, WAD, true) };
    }

    it("with a large net long open, maxWithdraw == availableAssets == min(NAV, poolBalance − winners' profit) − reserved, and one unit more reverts", async () => {
      const f = await loadFixture(sigmaFixture);
      const size = d18(400);
      const { basis } = await bigSkew(f, size, usdc(50000));
      const price = d18(2000);
      const exposure = mulDiv(size, price, WAD, true);
      expect(await f.clearingHouse.openInterestNotionalD18()).to.equal(exposure);
      const reserved = mulDiv(exposure, d18("0.5"), WAD * SCALE6, true);
      expect(reserved).to.equal(usdc(400000));
      expect(await f.pool.reservedAssets()).to.equal(reserved);

      const pb = await f.vault.poolBalance();
      const pnl = mulDivSigned(size, price, WAD, false) - basis;
      const nav = navTokens(pb, pnl);
      expect(await f.pool.totalAssets()).to.equal(nav);
      // The long is down the fill premium (its loss is NAV but not cash) and no one is owed a profit.
      expect(pnl < 0n).to.equal(true);
      expect((await f.clearingHouse.navInputsD18())[2]).to.equal(0n);
      const available = min(nav, pb) - reserved;
      expect(available).to.equal(pb - reserved);
      expect(await f.pool.availableAssets()).to.equal(available);
      expect(await f.pool.maxWithdraw(f.lp.address)).to.equal(available);
      const S = await f.pool.totalSupply();
      // Shares are priced at the low end of the NAV band (F7): NAV − 0.5% × net exposure (400 ETH × 2,000).
      const low = (pb * SCALE6 - pnl - exposure / 200n) / SCALE6;
      expect(await f.pool.maxRedeem(f.lp.address)).to.equal(toShares(available, low, S));

      await expect(f.pool.connect(f.lp).withdraw(available + 1n, f.lp.address, f.lp.address))
        .to.be.revertedWithCustomError(f.pool, "ERC4626ExceededMaxWithdraw")
        .withArgs(f.lp.address, available + 1n, available);
      const maxRedeem = await f.pool.maxRedeem(f.lp.address);
      await expect(f.pool.connect(f.lp).redeem(maxRedeem + 1n, f.lp.address, f.lp.address))
        .to.be.revertedWithCustomError(f.pool, "ERC4626ExceededMaxRedeem")
        .withArgs(f.lp.address, maxRedeem + 1n, maxRedeem);
      expect(await f.vault.poolBalance()).to.equal(pb);

      await f.pool.connect(f.lp).withdraw(available, f.lp.address, f.lp.address);
      expect(await f.vault.poolBalance()).to.equal(reserved); // the reserve stays in cash
      expect(await f.pool.totalAssets()).to.equal(nav - available);
      expect(await f.pool.availableAssets()).to.equal(0n);
      expect(await f.pool.maxWithdraw(f.lp.address)).to.equal(0n);
      expect(await f.pool.maxRedeem(f.lp.address)).to.equal(0n);
      await expect(f.pool.connect(f.lp).withdraw(1n, f.lp.address, f.lp.address))
        .to.be.revertedWithCustomError(f.pool, "ERC4626ExceededMaxWithdraw")
        .withArgs(f.lp.address, 1n, 0n);
      await expect(f.pool.connect(f.lp).redeem(1n, f.lp.address, f.lp.address))
        .to.be.revertedWithCustomError(f.pool, "ERC4626ExceededMaxRedeem")
        .withArgs(f.lp.address, 1n, 0n);
    });

    it("the reserve is held in cash: traders' unrealized losses raise NAV but not what LPs may take (F9)", async () => {
      const f = await loadFixture(sigmaFixture);
      await f.pool.setReserveFactor(d18("0.05"));
      const size = d18(400);
      const { basis } = await bigSkew(f, size, usdc(100000));
      await setPrice(f, ETH, "1800");
      const price = d18(1800);
      const reserved = mulDiv(mulDiv(size, price, WAD, true), d18("0.05"), WAD * SCALE6, true);
      expect(reserved).to.equal(usdc(36000));
      expect(await f.pool.reservedAssets()).to.equal(reserved);
      const pb = await f.vault.poolBalance();
      const pnl = mulDivSigned(size, price, WAD, false) - basis;
      expect(pnl).to.equal(-d18(81600));
      const nav = navTokens(pb, pnl);
      expect(nav - reserved > pb).to.equal(true);
      expect(await f.pool.availableAssets()).to.equal(pb - reserved);
      expect(await f.pool.maxWithdraw(f.lp.address)).to.equal(pb - reserved);
      await expect(f.pool.connect(f.lp).withdraw(pb - reserved + 1n, f.lp.address, f.lp.address))
        .to.be.revertedWithCustomError(f.pool, "ERC4626ExceededMaxWithdraw")
        .withArgs(f.lp.address, pb - reserved + 1n, pb - reserved);
    });

    it("without open interest nothing is reserved and the LP can withdraw everything it owns", async () => {
      const f = await loadFixture(sigmaFixture);
      expect(await f.pool.reservedAssets()).to.equal(0n);
      expect(await f.pool.availableAssets()).to.equal(usdc(1000000));
      expect(await f.pool.maxWithdraw(f.lp.address)).to.equal(toAssets(usdc(1000000) * OFFSET, usdc(1000000), usdc(1000000) * OFFSET));
      expect(await f.pool.maxWithdraw(f.traders[0].address)).to.equal(0n);
    });

    it("setReserveFactor enforces [5%, 200%] with PoolReserveFactorOutOfBounds, emits ReserveFactorSet and rescales the reserve", async () => {
      const f = await loadFixture(sigmaFixture);
      expect(await f.pool.reserveFactorD18()).to.equal(d18("0.5"));
      await expect(f.pool.setReserveFactor(d18("0.05") - 1n))
        .to.be.revertedWithCustomError(f.pool, "PoolReserveFactorOutOfBounds")
        .withArgs(d18("0.05") - 1n, d18("0.05"), d18(2));
      await expect(f.pool.setReserveFactor(d18(2) + 1n))
        .to.be.revertedWithCustomError(f.pool, "PoolReserveFactorOutOfBounds")
        .withArgs(d18(2) + 1n, d18("0.05"), d18(2));
      expect(await f.pool.reserveFactorD18()).to.equal(d18("0.5"));
      await expect(f.pool.setReserveFactor(d18("0.05")))
        .to.emit(f.pool, "ReserveFactorSet")
        .withArgs(d18("0.5"), d18("0.05"));
      await expect(f.pool.setReserveFactor(d18(2)))
        .to.emit(f.pool, "ReserveFactorSet")
        .withArgs(d18("0.05"), d18(2));
      expect(await f.pool.reserveFactorD18()).to.equal(d18(2));

      const [t] = f.traders;
      await f.vault.connect(t).deposit(t.address, usdc(10000));
      await trade(f, t, ETH, -d18(10));
      const exposure = mulDiv(d18(10), d18(2000), WAD, true);
      expect(await f.pool.reservedAssets()).to.equal(mulDiv(exposure, d18(2), WAD * SCALE6, true));
      await f.pool.setReserveFactor(d18("0.3"));
      expect(await f.pool.reservedAssets()).to.equal(mulDiv(exposure, d18("0.3"), WAD * SCALE6, true));
    });

    it("setReserveFactor is admin-only", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.pool.connect(t).setReserveFactor(d18(1)))
        .to.be.revertedWithCustomError(f.pool, "AccessControlUnauthorizedAccount")
        .withArgs(t.address, ethers.ZeroHash);
      await expect(f.pool.connect(f.lp).setReserveFactor(d18(1)))
        .to.be.revertedWithCustomError(f.pool, "AccessControlUnauthorizedAccount")
        .withArgs(f.lp.address, ethers.ZeroHash);
      expect(await f.pool.reserveFactorD18()).to.equal(d18("0.5"));
    });
  });
});
