import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { sigmaFixture, sigma18Fixture, trade, setPrice, d18, ETH, BTC, Fixture, chEvents } from "../fixture";
import { PARAM } from "../../scripts/lib/params";

// ------------------------------------------------------------------ MarginMath mirror (bigint)
const WAD = 10n ** 18n;
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
const toTokensFloor = (x: bigint, scale: bigint) => (x >= 0n ? x / scale : -ceilDiv(-x, scale));
const lpShare = (fee: bigint) => (fee * d18("0.6")) / WAD;

/** Σ of every ledger the Vault keeps, over all signers (traders, keeper, LP, admin, others). */
async function ledgerSum(f: Fixture) {
  let sum = 0n;
  for (const s of await ethers.getSigners()) sum += await f.vault.collateralOf(s.address);
  return sum + (await f.vault.poolBalance()) + (await f.vault.insuranceFund()) + (await f.vault.protocolFees());
}

async function expectSolvent(f: Fixture) {
  const bal = await f.token.balanceOf(await f.vault.getAddress());
  expect(bal).to.equal(await ledgerSum(f));
  // The pool contract never holds tokens: its assets are the Vault's pool ledger.
  expect(await f.token.balanceOf(await f.pool.getAddress())).to.equal(0n);
}

describe("Vault end-to-end", () => {
  for (const [label, fixture, decimals] of [
    ["6-decimal", sigmaFixture, 6n],
    ["18-decimal", sigma18Fixture, 18n],
  ] as const) {
    it(`${label} collateral: deposit, open, close at a profit and withdraw everything, with exact token amounts`, async () => {
      const f = await loadFixture(fixture);
      const scale = 10n ** (18n - decimals);
      const units = (x: string) => parseUnits(x, Number(decimals));
      expect(await f.token.decimals()).to.equal(decimals);
      expect(await f.vault.tokenScale()).to.equal(scale);
      // Funding off: the close realizes exactly price PnL, independent of block timestamps.
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      const [t] = f.traders;
      const wallet0 = await f.token.balanceOf(t.address);
      const pool0 = await f.vault.poolBalance();
      const deposit = units("10000");
      await f.vault.connect(t).deposit(t.address, deposit);

      const size = d18(10);
      await trade(f, t, ETH, size);
      const fill1 = fillPrice(d18(2000), 0n, size);
      const fee1 = ceilDiv(tradeFee(0n, size, fill1), scale);
      const basis = mulDivSigned(size, fill1, WAD, true);
      expect(await f.vault.collateralOf(t.address)).to.equal(deposit - fee1);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(size);

      await setPrice(f, ETH, "2100");
      const { receipt } = await trade(f, t, ETH, -size);
      const fill2 = fillPrice(d18(2100), size, -size);
      expect(fill2).to.equal(d18("2100.105"));
      const fee2 = ceilDiv(tradeFee(size, -size, fill2), scale);
      const realized = mulDivSigned(size, fill2, WAD, false) - basis;
      expect(realized).to.equal(d18("1000.05"));
      const pnl = toTokensFloor(realized, scale);
      await expect(receipt!.hash).to.emit(f.vault, "TradeSettled");
      const expectedCollateral = deposit - fee1 + pnl - fee2;
      expect(await f.vault.collateralOf(t.address)).to.equal(expectedCollateral);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(0n);
      expect(await f.clearingHouse.accountMarkets(t.address)).to.equal(0n);
      // The pool paid the profit and earned the LP share of both fees.
      expect(await f.vault.poolBalance()).to.equal(pool0 - pnl + lpShare(fee1) + lpShare(fee2));

      expect(await f.clearingHouse.freeCollateral(t.address)).to.equal(expectedCollateral);
      await expect(f.vault.connect(t).withdraw(expectedCollateral, t.address))
        .to.emit(f.vault, "Withdrawn")
        .withArgs(t.address, t.address, expectedCollateral);
      expect(await f.vault.collateralOf(t.address)).to.equal(0n);
      expect(await f.token.balanceOf(t.address)).to.equal(wallet0 - fee1 + pnl - fee2);
      await expectSolvent(f);
    });
  }

  it("the ledgers stay fully backed through trades, funding, a liquidation, LP flows, insurance and fee withdrawals", async () => {
    const f = await loadFixture(sigmaFixture);
    const [a, b, c, d, e] = f.traders;
    const units = (x: string) => parseUnits(x, 6);
    await expectSolvent(f);

    for (const t of [a, b, c, d]) await f.vault.connect(t).deposit(t.address, units("20000"));
    await f.vault.connect(e).deposit(e.address, units("10000"));
    await expectSolvent(f);

    await trade(f, a, ETH, d18(20));
    await trade(f, b, ETH, -d18(8));
    await trade(f, c, BTC, d18("0.5"));
    await trade(f, d, BTC, -d18("0.2"));
    // e takes a highly leveraged long that a price drop will make liquidatable.
    await trade(f, e, ETH, d18(90));
    expect((await f.clearingHouse.position(e.address, ETH)).sizeD18).to.equal(d18(90));
    await expectSolvent(f);

    // Deep enough for e's equity to fall below the hard floor (liquidatable at once), still above zero.
    await setPrice(f, ETH, "1910");
    await setPrice(f, BTC, "61000");
    await expectSolvent(f);

    const s = await f.clearingHouse.accountSummary(e.address);
    expect(s.liquidatable).to.equal(true);
    expect(s.equityD18 > 0n).to.equal(true);
    const keeperBefore = await f.vault.collateralOf(f.keeper.address);
    const liq = await f.clearingHouse.connect(f.keeper).liquidate(e.address);
    const ev = chEvents(f, await liq.wait()).find((x) => x.name === "Liquidated");
    expect(ev).to.not.equal(undefined);
    const reward = ev!.args.reward as bigint;
    expect(reward > 0n).to.equal(true);
    expect(await f.vault.collateralOf(f.keeper.address)).to.equal(keeperBefore + reward);
    expect((await f.clearingHouse.position(e.address, ETH)).sizeD18 < d18(90)).to.equal(true);
    await expectSolvent(f);

    // Partial closes and a flip, after some funding has accrued.
    await trade(f, a, ETH, -d18(5));
    await trade(f, b, ETH, d18(12)); // short 8 → long 4
    await trade(f, c, BTC, -d18("0.5"));
    await expectSolvent(f);

    await f.vault.connect(d).depositInsurance(units("777"));
    await f.pool.connect(f.lp).withdraw(units("1234.5"), f.lp.address, f.lp.address);
    await f.token.connect(f.traders[0]).approve(await f.pool.getAddress(), ethers.MaxUint256);
    await f.pool.connect(f.traders[0]).deposit(units("500"), a.address);
    await f.vault.withdrawProtocolFees(f.admin.address, await f.vault.protocolFees());
    await expectSolvent(f);

    // Everyone closes what is left; every free unit of collateral is withdrawn, including the keeper's reward.
    for (const t of [a, b, c, d, e]) {
      for (const m of [ETH, BTC]) {
        const size = (await f.clearingHouse.position(t.address, m)).sizeD18;
        if (size !== 0n) await trade(f, t, m, -size);
        expect((await f.clearingHouse.position(t.address, m)).sizeD18).to.equal(0n);
      }
    }
    for (const t of [a, b, c, d, e, f.keeper]) {
      const free = await f.clearingHouse.freeCollateral(t.address);
      expect(free).to.equal(await f.vault.collateralOf(t.address));
      if (free > 0n) await f.vault.connect(t).withdraw(free, t.address);
    }
    await expectSolvent(f);
    // With no positions left, the pool's NAV is exactly its ledger balance.
    expect(await f.clearingHouse.tradersUnrealizedPnlD18()).to.equal(0n);
    expect(await f.pool.totalAssets()).to.equal(await f.vault.poolBalance());
  });
});
