// The LP NAV band (F7): deposits/mints at NAV + b·E, withdrawals/redeems at NAV − b·E, E = Σ |skew|·price.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, trade, usdc, d18, ETH, BTC, Fixture } from "../fixture";
import { PARAM } from "../../scripts/lib/params";

const OFFSET = 10n ** 6n;
const SCALE = 10n ** 12n;
const ceilDiv = (a: bigint, b: bigint) => (a === 0n ? 0n : (a - 1n) / b + 1n);
const mulDiv = (a: bigint, b: bigint, d: bigint, up = false) => (up ? ceilDiv(a * b, d) : (a * b) / d);

async function withExposure() {
  const f = await loadFixture(sigmaFixture);
  // Funding off, so that NAV does not move between a view and the next block (exact comparisons).
  for (const m of [ETH, BTC]) await f.riskManager.setMarketParam(m, PARAM.MaxFundingRate, 0n);
  const [a, b] = f.traders;
  await f.vault.connect(a).deposit(a.address, usdc(50_000));
  await f.vault.connect(b).deposit(b.address, usdc(50_000));
  await trade(f, a, ETH, d18(100)); // long 100 ETH at ~2,000
  await trade(f, b, BTC, -d18(2)); // short 2 BTC at ~60,000
  const u = f.others[0];
  await f.token.mint(u.address, usdc(1_000_000));
  await f.token.connect(u).approve(await f.pool.getAddress(), ethers.MaxUint256);
  return { f, u };
}

/** Moves time a little (funding is off, so NAV does not depend on it). */
async function pin() {
  await time.increase(7);
}

/** The band's NAV in token units, recomputed from navD18 and navInputsD18 (high rounded up, low down). */
async function bandAssets(f: Fixture) {
  const nav = await f.pool.navD18();
  const [, exposure] = await f.clearingHouse.navInputsD18();
  const band = ceilDiv(exposure * (await f.pool.navBandBps()), 10_000n);
  const hi = nav + band;
  const lo = nav - band;
  return { hi: hi <= 0n ? 0n : ceilDiv(hi, SCALE), lo: lo <= 0n ? 0n : lo / SCALE, band, exposure };
}

describe("LiquidityPool NAV band (F7)", () => {
  it("net exposure is Σ |skew| × price over markets, and navRangeD18 = navD18 ± ceil(exposure × band)", async () => {
    const { f } = await withExposure();
    const ms0 = await f.clearingHouse.marketState(ETH);
    const ms1 = await f.clearingHouse.marketState(BTC);
    const [pnl, exposure] = await f.clearingHouse.navInputsD18();
    expect(pnl).to.equal(await f.clearingHouse.tradersUnrealizedPnlD18());
    const e = mulDiv(ms0.skewD18, await f.riskManager.priceD18(ETH), 10n ** 18n, true) + mulDiv(-ms1.skewD18, await f.riskManager.priceD18(BTC), 10n ** 18n, true);
    expect(exposure).to.equal(e);
    expect(exposure).to.equal(d18(200_000 + 120_000));
    const [lo, hi] = await f.pool.navRangeD18();
    const nav = await f.pool.navD18();
    expect(hi - nav).to.equal(d18(1_600)); // 0.5% of 320,000
    expect(nav - lo).to.equal(d18(1_600));
  });

  it("deposit, mint, withdraw and redeem equal their previews and the band formula, to the unit", async () => {
    const { f, u } = await withExposure();
    // deposit at the high end, shares rounded down
    await pin();
    let S = await f.pool.totalSupply();
    let b = await bandAssets(f);
    const assets = usdc("123456.789012");
    const shares = mulDiv(assets, S + OFFSET, b.hi + 1n);
    expect(await f.pool.previewDeposit(assets)).to.equal(shares);
    expect(shares).to.be.lessThan(await f.pool.convertToShares(assets));
    await expect(f.pool.connect(u).deposit(assets, u.address)).to.emit(f.pool, "Deposit").withArgs(u.address, u.address, assets, shares);
    // mint at the high end, assets rounded up
    await pin();
    S = await f.pool.totalSupply();
    b = await bandAssets(f);
    const mintShares = 10n ** 15n;
    const cost = mulDiv(mintShares, b.hi + 1n, S + OFFSET, true);
    expect(await f.pool.previewMint(mintShares)).to.equal(cost);
    await expect(f.pool.connect(u).mint(mintShares, u.address)).to.emit(f.pool, "Deposit").withArgs(u.address, u.address, cost, mintShares);
    // withdraw at the low end, shares rounded up
    await pin();
    S = await f.pool.totalSupply();
    b = await bandAssets(f);
    const out = usdc(50_000);
    const burn = mulDiv(out, S + OFFSET, b.lo + 1n, true);
    expect(await f.pool.previewWithdraw(out)).to.equal(burn);
    expect(burn).to.be.greaterThan(await f.pool.convertToShares(out));
    await expect(f.pool.connect(u).withdraw(out, u.address, u.address)).to.emit(f.pool, "Withdraw").withArgs(u.address, u.address, u.address, out, burn);
    // redeem at the low end, assets rounded down; maxWithdraw is the low-end value of the owner's shares
    await pin();
    S = await f.pool.totalSupply();
    b = await bandAssets(f);
    const rest = await f.pool.balanceOf(u.address);
    const paid = mulDiv(rest, b.lo + 1n, S + OFFSET);
    expect(await f.pool.previewRedeem(rest)).to.equal(paid);
    expect(await f.pool.maxWithdraw(u.address)).to.equal(paid);
    expect(await f.pool.maxRedeem(u.address)).to.equal(rest);
    await expect(f.pool.connect(u).redeem(rest, u.address, u.address)).to.emit(f.pool, "Withdraw").withArgs(u.address, u.address, u.address, paid, rest);
  });

  it("with traders flat the band is zero: previews equal the plain ERC-4626 conversions", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(10_000));
    await trade(f, t, ETH, d18(3));
    await trade(f, t, ETH, -d18(3));
    const [lo, hi] = await f.pool.navRangeD18();
    expect(lo).to.equal(hi);
    const x = usdc("777.123456");
    expect(await f.pool.previewDeposit(x)).to.equal(await f.pool.convertToShares(x));
    expect(await f.pool.previewRedeem(x * OFFSET)).to.equal(await f.pool.convertToAssets(x * OFFSET));
  });

  it("navBandBps is set by the admin only, within [0, 500] bps, with an event; 0 turns the band off", async () => {
    const { f } = await withExposure();
    const stranger = f.others[1];
    await expect(f.pool.connect(stranger).setNavBand(10)).to.be.revertedWithCustomError(f.pool, "AccessControlUnauthorizedAccount");
    await expect(f.pool.connect(f.admin).setNavBand(501)).to.be.revertedWithCustomError(f.pool, "PoolNavBandOutOfBounds").withArgs(501, 500);
    await expect(f.pool.connect(f.admin).setNavBand(100)).to.emit(f.pool, "NavBandSet").withArgs(50, 100);
    const [lo, hi] = await f.pool.navRangeD18();
    expect(hi - lo).to.equal(d18(6_400)); // 2 × 1% × 320,000
    await expect(f.pool.connect(f.admin).setNavBand(0)).to.emit(f.pool, "NavBandSet").withArgs(100, 0);
    await pin();
    const x = usdc(1_000);
    // Only the rounding of the NAV (up for deposits) separates them.
    const [p, c] = [await f.pool.previewDeposit(x), await f.pool.convertToShares(x)];
    expect(p <= c && c - p <= 2n * OFFSET, `${p} vs ${c}`).to.equal(true);
  });
});
