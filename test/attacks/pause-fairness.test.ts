// Pause/unpause unfairness (audit class: "pausing blocks users from closing or adding margin while
// liquidations continue", and "orders queued before a pause execute into it"). Sigma's guardian pause only
// stops opening: closing, reducing, adding margin, margin calls and liquidation keep working, and orders
// committed before the pause cannot open during it.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, setPrice } from "../fixture";
import { tryTrade, commitOnly, errorName, heartbeat } from "./helpers";
import { chEvents } from "../fixture";
import { time } from "@nomicfoundation/hardhat-network-helpers";

describe("attack: pause/unpause unfairness", () => {
  it("a guardian pause never blocks closing, adding margin or liquidation, and pre-pause orders cannot open during it", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob, carol, dave] = f.traders;
    for (const t of [alice, bob, carol, dave]) await f.vault.connect(t).deposit(t.address, usdc(1_000));
    expect((await tryTrade(f, alice, ETH, d18(5))).filled).to.equal(true);
    expect((await tryTrade(f, dave, ETH, d18(15))).filled).to.equal(true);
    const pre = await commitOnly(f, bob, ETH, d18(2)); // committed before the pause
    await f.riskManager.connect(f.admin).setOpeningPaused(ETH, true);
    await time.increase(5);
    await heartbeat(f, ETH);
    const rc = await (await f.clearingHouse.connect(f.keeper).executeOrder(pre)).wait();
    const c = chEvents(f, rc).find((e) => e.name === "OrderCancelled");
    expect(c && errorName(f, c.args.reason), "a pre-pause order cannot open during the pause").to.equal("ClearingHouseMarketReduceOnly");
    expect((await tryTrade(f, carol, ETH, -d18(1))).reason).to.equal("ClearingHouseMarketReduceOnly");
    expect((await tryTrade(f, carol, BTC, d18("0.01"))).filled, "other markets unaffected").to.equal(true);

    // Reducing and closing work; adding margin works.
    expect((await tryTrade(f, alice, ETH, -d18(2))).filled).to.equal(true);
    await f.vault.connect(alice).deposit(alice.address, usdc(100));
    expect((await tryTrade(f, alice, ETH, -d18(3))).filled).to.equal(true);
    // Flipping is opening: refused.
    expect((await tryTrade(f, carol, BTC, -d18("0.02"))).filled, "BTC flip allowed (not paused)").to.equal(true);

    // Margin calls and liquidations keep working.
    await setPrice(f, ETH, "1975");
    const st = await f.clearingHouse.accountSummary(dave.address);
    if (st.status === 1n) await f.clearingHouse.flagMarginCall(dave.address);
    await setPrice(f, ETH, "1955");
    expect((await f.clearingHouse.accountSummary(dave.address)).liquidatable).to.equal(true);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(dave.address)).to.emit(f.clearingHouse, "Liquidated");

    // After unpause opening resumes.
    await f.riskManager.connect(f.admin).setOpeningPaused(ETH, false);
    expect((await tryTrade(f, bob, ETH, d18(1))).filled).to.equal(true);
  });
});
