// Rounding drained in many dust trades or funding at low open interest (audit class: "rounding in the user's
// favour repeated N times"). Sigma rounds every conversion against the trader (fees and losses up, gains down)
// and each fill is zero-sum to the token unit; funding magnitudes round down on a shared index.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH } from "../fixture";
import { tryTrade, snapshot, revertTo, ledgers } from "./helpers";

describe("attack: rounding drained in many dust trades or in funding at low open interest", () => {
  it("many small trades never leave the trader ahead of one trade; dust round trips never gain a token unit; ledgers stay zero-sum to the unit", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(10_000));
    const accounts = [alice.address];
    const c0 = await f.vault.collateralOf(alice.address);
    const snap = await snapshot();

    // One 5 ETH round trip …
    expect((await tryTrade(f, alice, ETH, d18(5))).filled).to.equal(true);
    expect((await tryTrade(f, alice, ETH, -d18(5))).filled).to.equal(true);
    const single = await f.vault.collateralOf(alice.address);
    await revertTo(snap);
    // … versus the same size in 20 pieces each way.
    const before = await ledgers(f, accounts);
    for (let i = 0; i < 20; i++) expect((await tryTrade(f, alice, ETH, d18("0.25"))).filled).to.equal(true);
    for (let i = 0; i < 20; i++) expect((await tryTrade(f, alice, ETH, -d18("0.25"))).filled).to.equal(true);
    const many = await f.vault.collateralOf(alice.address);
    expect(many, "splitting never beats one trade").to.be.lte(single);
    expect(single).to.be.lt(c0);
    expect(await ledgers(f, accounts), "zero-sum to the token unit").to.equal(before);

    // Dust round trips (1,000 wei of ETH): fees round up to at least one token unit, gains round down.
    const d0 = await f.vault.collateralOf(alice.address);
    for (let i = 0; i < 15; i++) {
      expect((await tryTrade(f, alice, ETH, 1000n)).filled).to.equal(true);
      expect((await tryTrade(f, alice, ETH, -1000n)).filled).to.equal(true);
      expect(await f.vault.collateralOf(alice.address), `after dust round trip ${i}`).to.be.lte(d0);
    }
    expect(await f.vault.collateralOf(alice.address)).to.be.lte(d0 - 30n);
    expect(await ledgers(f, accounts)).to.equal(before);
  });

  it("accruing funding every second at low open interest neither changes who pays nor lets the skew side pay measurably less", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(1_000));
    expect((await tryTrade(f, alice, ETH, d18("0.001"))).filled).to.equal(true); // low OI: skew = 0.001 ETH
    const snap = await snapshot();
    const start = (await f.clearingHouse.marketState(ETH)).lastFundingTime;
    // Branch A: one accrual after 60 s.
    await time.setNextBlockTimestamp(Number(start) + 60);
    await f.clearingHouse.accrueFunding(ETH);
    const once = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    await revertTo(snap);
    // Branch B: an accrual every second.
    let last = 0n;
    for (let s = 1; s <= 60; s++) {
      await time.setNextBlockTimestamp(Number(start) + s);
      await f.clearingHouse.accrueFunding(ETH);
      const idx = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
      expect(idx, "a long skew only ever raises the index (longs pay)").to.be.gte(last);
      last = idx;
    }
    const frequent = (await f.clearingHouse.marketState(ETH)).fundingIndexD18;
    expect(frequent).to.be.lte(once);
    // The difference is at most 1 wei of index per accrual: far below one token unit for any position.
    expect(once - frequent).to.be.lte(60n);
    const savedD18 = ((once - frequent) * d18("0.001")) / 10n ** 18n;
    expect(savedD18).to.be.lt(10n ** 12n);
    // And closing is still zero-sum.
    const before = await ledgers(f, [alice.address]);
    expect((await tryTrade(f, alice, ETH, -d18("0.001"))).filled).to.equal(true);
    expect(await ledgers(f, [alice.address])).to.equal(before);
  });
});
