import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigma18Fixture, d18, ETH, BTC, Fixture } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import {
  Model,
  depositBoth,
  priceBoth,
  fillAndCheck,
  tradeAndCheck,
  expectChainMatchesModel,
  ledgers,
  liquidateAndCheck,
} from "./math";

async function setup() {
  const f = await loadFixture(sigma18Fixture);
  const model = await Model.load(f);
  const [alice, bob] = f.traders;
  await depositBoth(f, model, alice, d18(20_000));
  await depositBoth(f, model, bob, d18(20_000));
  return { f, model, alice, bob };
}

async function noFunding(f: Fixture, model: Model, marketId: number) {
  await f.riskManager.setMarketParam(marketId, PARAM.MaxFundingRate, 0);
  await model.syncRisk(f, marketId);
}

describe("ClearingHouse with an 18-decimal collateral token", () => {
  it("the token scale is 1: D18 amounts settle without conversion", async () => {
    const { f } = await setup();
    expect(await f.token.decimals()).to.equal(18n);
    expect(await f.vault.tokenScale()).to.equal(1n);
  });

  it("opening a 10 ETH long charges exactly $10.0005 of fee, split 60/20/20 to the wei", async () => {
    const { f, model, alice } = await setup();
    const before = await ledgers(f, [alice.address]);
    const r = await fillAndCheck(f, model, alice, ETH, d18(10));
    expect([r.price, r.fee, r.feeTokens]).to.deep.equal([d18("2000.1"), d18("10.0005"), d18("10.0005")]);
    const after = await ledgers(f, [alice.address]);
    expect(after.collateral[alice.address] - before.collateral[alice.address]).to.equal(-d18("10.0005"));
    expect(after.pool - before.pool).to.equal(d18("6.0003"));
    expect(after.ins - before.ins).to.equal(d18("2.0001"));
    expect(after.fees - before.fees).to.equal(d18("2.0001"));
  });

  it("closing credits the realized PnL to the wei (no rounding to token units)", async () => {
    const { f, model, alice } = await setup();
    await noFunding(f, model, ETH);
    await fillAndCheck(f, model, alice, ETH, d18(10));
    await priceBoth(f, model, ETH, "2100");
    const before = await ledgers(f, [alice.address]);
    const r = await fillAndCheck(f, model, alice, ETH, -d18(10));
    // 2100 · (200000 + 20 − 10)/200000 = 2100.105; 10 · 2100.105 − 20001 = 1000.05.
    expect(r.price).to.equal(d18("2100.105"));
    expect(r.realized).to.equal(d18("1000.05"));
    expect(r.fee).to.equal(d18("4.20021")); // maker: 10 · 2100.105 · 0.02%
    const after = await ledgers(f, [alice.address]);
    expect(after.collateral[alice.address] - before.collateral[alice.address]).to.equal(d18("1000.05") - d18("4.20021"));
    expect(after.pool - before.pool).to.equal(-d18("1000.05") + (d18("4.20021") * 6n) / 10n);
    expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
  });

  it("a sequence of fills with funding in both markets is zero-sum to the wei and matches the model", async () => {
    const { f, model, alice, bob } = await setup();
    await fillAndCheck(f, model, alice, ETH, d18("3.333333333333333333"));
    await fillAndCheck(f, model, bob, ETH, -d18("1.1"));
    await fillAndCheck(f, model, bob, BTC, d18("0.123456789"));
    await priceBoth(f, model, ETH, "1987.12345678");
    await fillAndCheck(f, model, alice, ETH, -d18("5"));
    await priceBoth(f, model, BTC, "61234.5");
    await fillAndCheck(f, model, bob, BTC, -d18("0.123456789"));
    await fillAndCheck(f, model, bob, ETH, d18("1.1"));
    await fillAndCheck(f, model, alice, ETH, d18("1.666666666666666667"));
    await expectChainMatchesModel(f, model, [alice.address, bob.address]);
    expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
    expect(await f.clearingHouse.accountMarkets(bob.address)).to.equal(0n);
  });

  it("an order beyond the account's margin is cancelled with ClearingHouseInsufficientMargin", async () => {
    const { f, model, alice } = await setup();
    const o = await tradeAndCheck(f, model, alice, BTC, d18(20)); // $1.2M on $20,000
    expect(o.predicted.ok).to.equal(false);
    if (!o.predicted.ok) expect(o.predicted.err.errName).to.equal("ClearingHouseInsufficientMargin");
  });

  it("a partial liquidation and then a bad-debt liquidation settle to the wei", async () => {
    const { f, model } = await setup();
    const carol = f.traders[2];
    await depositBoth(f, model, carol, d18(1_000));
    await fillAndCheck(f, model, carol, ETH, d18(15));
    await priceBoth(f, model, ETH, "1960");
    const partial = await liquidateAndCheck(f, model, f.keeper, carol.address);
    expect(-partial.closes[0].delta < d18(15)).to.equal(true);
    // The two-unit buffer is two wei with an 18-decimal token.
    expect(partial.equityAfter - partial.imAfter >= 2n).to.equal(true);
    await priceBoth(f, model, ETH, "1700");
    const full = await liquidateAndCheck(f, model, f.keeper, carol.address);
    expect(full.badDebt).to.not.equal(undefined);
    expect(await f.vault.collateralOf(carol.address)).to.equal(0n);
    expect(await f.clearingHouse.accountMarkets(carol.address)).to.equal(0n);
  });
});
