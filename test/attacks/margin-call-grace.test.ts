// Margin-call grace skipped by an old flag (audit class: "stale liquidation flags", e.g. Euler/Compound-style
// deferred-liquidation designs). docs/ARCHITECTURE.md: "a flag expires marginCallExpiry after its deadline, so a
// flag from an old episode cannot skip the grace window of a new one". A flag that nobody cleared after the
// account recovered on price alone must not make a new, shallow dip liquidatable at once.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { tryTrade } from "./helpers";

const STATUS = { Healthy: 0n, MarginCallable: 1n, MarginCalled: 2n, Liquidatable: 3n };

describe("attack: an old margin call skipping the grace window of a new episode", () => {
  it("after a recovery on price alone, a new dip above the hard floor is only margin-callable, not liquidatable at once", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(1_000));
    expect((await tryTrade(f, alice, ETH, d18(15))).filled).to.equal(true);

    // Episode 1: a shallow dip; a keeper flags; the price recovers within the grace window; nobody clears.
    await setPrice(f, ETH, "1975");
    expect((await f.clearingHouse.accountSummary(alice.address)).status).to.equal(STATUS.MarginCallable);
    await f.clearingHouse.connect(f.keeper).flagMarginCall(alice.address);
    await time.increase(300);
    await setPrice(f, ETH, "2010");
    expect((await f.clearingHouse.accountSummary(alice.address)).status, "healthy again").to.equal(STATUS.Healthy);

    // Episode 2, an hour later: the same shallow dip (above the hard floor).
    await time.increase(3_600);
    await setPrice(f, ETH, "1975");
    const s = await f.clearingHouse.accountSummary(alice.address);
    expect(s.equityD18 >= (s.maintenanceRequirementD18 * 3n) / 4n, "above the hard floor").to.equal(true);
    expect(s.status, "a new episode starts with a margin call and its grace window").to.equal(STATUS.MarginCallable);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(alice.address)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy");
  });
});
