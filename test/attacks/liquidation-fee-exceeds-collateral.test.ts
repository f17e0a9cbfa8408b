// Liquidation fee larger than what is left (Perp v2 / Synthetix audit findings: liquidations that revert or
// create bad debt when the fee exceeds the remaining margin). Sigma charges min(fee, what is left), pays the
// liquidator its share of what was actually paid, covers a negative balance from the insurance fund then the
// pool, and never reverts for it.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, chEvents, WAD } from "../fixture";
import { tryTrade, ledgers } from "./helpers";

async function setPriceD18(f: any, p: bigint) {
  await f.priceFeeds[ETH].updateAnswer(p / 10n ** 10n);
}

describe("attack: liquidation fee larger than the remaining collateral", () => {
  it("charges at most what is left, pays the liquidator only a share of that, covers bad debt through insurance then pool, never reverts", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob] = f.traders;
    await f.token.mint(f.admin.address, usdc(5_000));
    await f.token.connect(f.admin).approve(await f.vault.getAddress(), usdc(5_000));
    await f.vault.connect(f.admin).depositInsurance(usdc(5_000));
    const accounts = [alice.address, bob.address, f.keeper.address];

    // Case 1: equity left (≈ $40) is below the full-close fee (0.5% of ≈ $29k ≈ $146): the close is total.
    await f.vault.connect(alice).deposit(alice.address, usdc(1_000));
    expect((await tryTrade(f, alice, ETH, d18(15))).filled).to.equal(true);
    const be = await f.lens.breakEvenPriceD18(alice.address, ETH);
    const coll = await f.vault.collateralOf(alice.address);
    await setPriceD18(f, be - ((coll * 10n ** 12n - d18(40)) * WAD) / d18(15));
    const before = await ledgers(f, accounts);
    const rc = await (await f.clearingHouse.connect(f.keeper).liquidate(alice.address)).wait();
    const liq = chEvents(f, rc).find((e) => e.name === "Liquidated")!;
    const fee = chEvents(f, rc).filter((e) => e.name === "PositionModified").reduce((s, e) => s + (e.args.feeD18 as bigint), 0n);
    expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(0n);
    expect(liq.args.feePaid as bigint, "fee capped at what was left").to.be.lt(fee / 10n ** 12n);
    expect(liq.args.feePaid as bigint, "≈ the $40 left plus the close premium").to.be.lte(usdc(50));
    expect(await f.vault.collateralOf(alice.address)).to.equal(0n);
    expect(liq.args.reward).to.equal(((liq.args.feePaid as bigint) * 2n) / 10n);
    expect(await ledgers(f, accounts), "zero-sum").to.equal(before);

    // Case 2: a gap below zero equity: nothing left for the fee, the shortfall goes to insurance first.
    await f.vault.connect(bob).deposit(bob.address, usdc(1_000));
    await f.priceFeeds[ETH].updateAnswer(2000n * 10n ** 8n);
    expect((await tryTrade(f, bob, ETH, d18(15))).filled).to.equal(true);
    await f.priceFeeds[ETH].updateAnswer(1900n * 10n ** 8n); // −5%: a $1,500 loss on $1,000
    const ins0 = await f.vault.insuranceFund();
    const pool0 = await f.vault.poolBalance();
    const b2 = await ledgers(f, accounts);
    const rc2 = await (await f.clearingHouse.connect(f.keeper).liquidate(bob.address)).wait();
    const v = rc2!.logs.map((l: any) => { try { return f.vault.interface.parseLog(l); } catch { return null; } }).filter(Boolean) as any[];
    const bad = v.find((e) => e.name === "BadDebtCovered");
    expect(bad, "bad debt is covered through the one evented path").to.not.equal(undefined);
    const liq2 = chEvents(f, rc2).find((e) => e.name === "Liquidated")!;
    expect(liq2.args.feePaid).to.equal(0n);
    expect(liq2.args.reward).to.equal(0n);
    expect(bad.args.fromInsurance).to.equal(ins0 < bad.args.shortfall ? ins0 : bad.args.shortfall);
    expect(await f.vault.insuranceFund()).to.equal(ins0 - bad.args.fromInsurance);
    expect(await f.vault.collateralOf(bob.address)).to.equal(0n);
    expect(await ledgers(f, accounts), "zero-sum with bad debt").to.equal(b2);
    expect(await f.vault.poolBalance()).to.be.gt(pool0);
  });
});
