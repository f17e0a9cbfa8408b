// Self-liquidation for profit (dYdX/Perp audits): a trader liquidates its own account with a second address
// to collect the reward instead of paying a trading fee. Sigma credits the liquidator only a share of the
// liquidation fee (the rest goes to the insurance fund) and the fee exceeds the trading fee, so liquidating
// yourself always costs more than closing the same size yourself.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice, chEvents } from "../fixture";
import { tryTrade, snapshot, revertTo } from "./helpers";

describe("attack: self-liquidation for profit", () => {
  it("a trader liquidating its own account with a second address gains less than it loses, and less than closing the same size itself", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, aliceAlt] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(1_000));
    expect((await tryTrade(f, alice, ETH, d18(15))).filled).to.equal(true);
    await setPrice(f, ETH, "1965");
    expect((await f.clearingHouse.accountSummary(alice.address)).liquidatable).to.equal(true);
    const wealth = async () => (await f.vault.collateralOf(alice.address)) + (await f.vault.collateralOf(aliceAlt.address));
    const w0 = await wealth();
    const snap = await snapshot();

    // Branch 1: the second address liquidates alice.
    const rc = await (await f.clearingHouse.connect(aliceAlt).liquidate(alice.address)).wait();
    const ev = chEvents(f, rc);
    const liq = ev.find((e) => e.name === "Liquidated")!;
    const closed = ev.filter((e) => e.name === "PositionModified").reduce((s, e) => s + (e.args.sizeDeltaD18 as bigint), 0n);
    const reward = liq.args.reward as bigint;
    const feePaid = liq.args.feePaid as bigint;
    expect(reward, "reward < fee paid").to.be.lt(feePaid);
    expect(await f.vault.collateralOf(aliceAlt.address)).to.equal(reward);
    const w1 = await wealth();
    expect(w1, "self-liquidation loses money overall").to.be.lt(w0);
    const posAfterLiq = (await f.clearingHouse.position(alice.address, ETH)).sizeD18;

    // Branch 2: alice closes the same size herself at the same price.
    await revertTo(snap);
    expect((await tryTrade(f, alice, ETH, closed)).filled).to.equal(true);
    expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18).to.equal(posAfterLiq);
    const w2 = await wealth();
    expect(w1, "liquidating yourself is worse than closing yourself").to.be.lt(w2);
  });
});
