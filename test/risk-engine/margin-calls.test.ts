// A σ jump on the volatility feed, seen by a population of traders at different leverage: thin accounts get a
// margin call and a grace window instead of an instant liquidation; accounts below the hard floor are
// liquidated at once. Every figure is predicted by the bigint model of test/clearinghouse/math.ts.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, Fixture, chEvents } from "../fixture";
import {
  Model,
  STATUS,
  depositBoth,
  fillAndCheck,
  volBoth,
  liquidateAndCheck,
  latestTs,
  tsOf,
  mulDiv,
  WAD,
} from "../clearinghouse/math";
import { ETH } from "./helpers";

async function expectSummary(f: Fixture, model: Model, a: string) {
  const s = await f.clearingHouse.accountSummary(a);
  const e = model.summary(a, await latestTs());
  expect(
    [s.collateral, s.equityD18, s.maintenanceRequirementD18, s.initialRequirementD18, s.status, s.liquidatable, s.marginCallDeadline],
    `summary of ${a}`,
  ).to.deep.equal([e.collateral, e.equityD18, e.maintenanceRequirementD18, e.initialRequirementD18, e.status, e.liquidatable, e.marginCallDeadline]);
  return s;
}

/** Five traders on ETH at σ 50%: a 2× long, two thin 20× longs, one 29× long and a 6.7× short. */
async function populationFixture() {
  const f = await sigmaFixture();
  const model = await Model.load(f);
  const [safe, topper, idle, reckless, short] = f.traders;
  const collateral: [typeof safe, string][] = [
    [safe, "10000"],
    [topper, "1000"],
    [idle, "950"],
    [reckless, "700"],
    [short, "3000"],
  ];
  for (const [t, c] of collateral) await depositBoth(f, model, t, usdc(c));
  for (const t of [safe, topper, idle, reckless]) await fillAndCheck(f, model, t, ETH, d18(10));
  await fillAndCheck(f, model, short, ETH, -d18(10));
  return { f, model, safe, topper, idle, reckless, short };
}

/** loadFixture restores the chain, not JS objects: every test gets its own copy of the model. */
async function load() {
  const r = await loadFixture(populationFixture);
  return { ...r, model: r.model.clone() };
}

describe("risk engine: a σ jump moves thin accounts into margin call, not straight to liquidation", () => {
  it("at σ 50% every account of the population is Healthy", async () => {
    const { f, model, safe, topper, idle, reckless, short } = await load();
    for (const t of [safe, topper, idle, reckless, short]) {
      const s = await expectSummary(f, model, t.address);
      expect(s.status).to.equal(STATUS.Healthy);
      expect(s.marginCallDeadline).to.equal(0n);
    }
  });

  it("σ 50% → 150% (vol feed + poke): the 20× accounts become MarginCallable, the 29× one Liquidatable at once, the others stay Healthy", async () => {
    const { f, model, safe, topper, idle, reckless, short } = await load();
    const [, mmrBefore] = await f.riskManager.ratios(ETH);
    await volBoth(f, model, ETH, "150");
    const [sigma, mmrAfter] = await f.riskManager.ratios(ETH);
    expect(sigma).to.equal(d18("1.5"));
    expect(mmrAfter > mmrBefore).to.equal(true);
    const expected = new Map([
      [safe.address, STATUS.Healthy],
      [topper.address, STATUS.MarginCallable],
      [idle.address, STATUS.MarginCallable],
      [reckless.address, STATUS.Liquidatable],
      [short.address, STATUS.Healthy],
    ]);
    const hardFloor = await f.clearingHouse.hardFloorD18();
    for (const [a, st] of expected) {
      const s = await expectSummary(f, model, a);
      expect(s.status, a).to.equal(st);
      if (st === STATUS.MarginCallable) {
        // Below maintenance but above the hard floor (0.75 × MM): the window exists for exactly these accounts.
        expect(s.equityD18 < BigInt(s.maintenanceRequirementD18)).to.equal(true);
        expect(s.equityD18 >= mulDiv(s.maintenanceRequirementD18, hardFloor, WAD)).to.equal(true);
      }
    }
    // A MarginCallable account cannot be liquidated before anyone flagged it.
    const t = model.margin(topper.address, (await latestTs()) + 1n);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(topper.address))
      .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy")
      .withArgs(topper.address, t.equity, t.mm);
  });

  it("below the hard floor (0.75 × maintenance) the jump makes the account liquidatable at once, without a flag (flagging is refused)", async () => {
    const { f, model, reckless } = await load();
    await volBoth(f, model, ETH, "150");
    await expect(f.clearingHouse.connect(f.keeper).flagMarginCall(reckless.address))
      .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseCannotFlag")
      .withArgs(reckless.address, STATUS.Liquidatable);
    const r = await liquidateAndCheck(f, model, f.keeper, reckless.address);
    // Partial: only the size that restores initial margin is closed.
    expect(r.remainingMarkets).to.equal(1n);
    expect(r.closes[0].newSize > 0n && r.closes[0].newSize < d18(10)).to.equal(true);
    const s = await expectSummary(f, model, reckless.address);
    expect(s.status).to.equal(STATUS.Healthy);
    expect(s.equityD18 >= BigInt(s.initialRequirementD18)).to.equal(true);
  });

  it("flagMarginCall sets a deadline of now + marginCallGrace (MarginCallFlagged) and the summary reports MarginCalled with it", async () => {
    const { f, model, topper, idle } = await load();
    await volBoth(f, model, ETH, "150");
    const grace = await f.clearingHouse.marginCallGrace();
    expect(grace).to.equal(15n * 60n);
    for (const a of [topper, idle]) {
      const now = (await latestTs()) + 1n;
      await time.setNextBlockTimestamp(now);
      const t = model.margin(a.address, now);
      await expect(f.clearingHouse.connect(f.others[0]).flagMarginCall(a.address))
        .to.emit(f.clearingHouse, "MarginCallFlagged")
        .withArgs(a.address, f.others[0].address, now + grace, t.equity, t.mm);
      expect(model.flagMarginCall(a.address, now)).to.equal(now + grace);
      const s = await expectSummary(f, model, a.address);
      expect(s.status).to.equal(STATUS.MarginCalled);
      expect(s.marginCallDeadline).to.equal(now + grace);
      // A second flag cannot extend the window.
      await expect(f.clearingHouse.flagMarginCall(a.address))
        .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseCannotFlag")
        .withArgs(a.address, STATUS.MarginCalled);
    }
  });

  it("the account that tops up within the window is Healthy again, its flag cleared (MarginCallCleared), and it cannot be liquidated after the deadline", async () => {
    const { f, model, topper } = await load();
    await volBoth(f, model, ETH, "150");
    const rc = await (await f.clearingHouse.connect(f.keeper).flagMarginCall(topper.address)).wait();
    const deadline = model.flagMarginCall(topper.address, await tsOf(rc));
    // Top up 200 USDC five minutes into the window.
    await time.setNextBlockTimestamp(deadline - 600n);
    await expect(f.vault.connect(topper).deposit(topper.address, usdc(200)))
      .to.emit(f.clearingHouse, "MarginCallCleared")
      .withArgs(topper.address);
    model.deposit(topper.address, usdc(200));
    model.deadlines.delete(topper.address);
    const s = await expectSummary(f, model, topper.address);
    expect(s.status).to.equal(STATUS.Healthy);
    expect(s.marginCallDeadline).to.equal(0n);
    // After the deadline nothing is owed: liquidation is refused.
    await time.setNextBlockTimestamp(deadline + 1n);
    const t = model.margin(topper.address, deadline + 1n);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(topper.address))
      .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy")
      .withArgs(topper.address, t.equity, t.mm);
    expect((await f.clearingHouse.position(topper.address, ETH)).sizeD18).to.equal(d18(10));
  });

  it("the account that does nothing cannot be liquidated one second before the deadline, and is liquidated partially from the deadline on", async () => {
    const { f, model, idle } = await load();
    await volBoth(f, model, ETH, "150");
    const rc = await (await f.clearingHouse.connect(f.keeper).flagMarginCall(idle.address)).wait();
    const deadline = model.flagMarginCall(idle.address, await tsOf(rc));

    // liquidateBatch skips it inside the window…
    await time.setNextBlockTimestamp(deadline - 2n);
    await expect(f.clearingHouse.connect(f.keeper).liquidateBatch([idle.address])).to.not.emit(f.clearingHouse, "Liquidated");
    model.accrue(ETH, deadline - 2n); // a batch accrues funding of every open market
    // …and liquidate refuses it one second before the deadline.
    await time.setNextBlockTimestamp(deadline - 1n);
    const t = model.margin(idle.address, deadline - 1n);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(idle.address))
      .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy")
      .withArgs(idle.address, t.equity, t.mm);
    expect((await f.clearingHouse.accountSummary(idle.address)).status).to.equal(STATUS.MarginCalled);

    await time.setNextBlockTimestamp(deadline);
    const r = await liquidateAndCheck(f, model, f.keeper, idle.address);
    expect(r.remainingMarkets, "partial liquidation keeps the market").to.equal(1n);
    const left = (await f.clearingHouse.position(idle.address, ETH)).sizeD18;
    expect(left > 0n && left < d18(10)).to.equal(true);
    const cleared = chEvents(f, r.receipt).filter((e) => e.name === "MarginCallCleared");
    expect(cleared.map((e) => e.args.account)).to.deep.equal([idle.address]);
    const s = await expectSummary(f, model, idle.address);
    expect(s.status).to.equal(STATUS.Healthy);
    expect(s.marginCallDeadline).to.equal(0n);
    // The liquidator was paid a share of the fee as collateral.
    expect(await f.vault.collateralOf(f.keeper.address)).to.equal(r.reward);
    expect(r.reward > 0n).to.equal(true);
  });

  it("the whole episode: top-up survives, the idle account is liquidated after the window, the reckless one at once, the healthy ones are untouched", async () => {
    const { f, model, safe, topper, idle, reckless, short } = await load();
    await volBoth(f, model, ETH, "150");
    await liquidateAndCheck(f, model, f.keeper, reckless.address);
    let deadline = 0n;
    for (const a of [topper, idle]) {
      const rc = await (await f.clearingHouse.connect(f.keeper).flagMarginCall(a.address)).wait();
      deadline = model.flagMarginCall(a.address, await tsOf(rc));
    }
    await f.vault.connect(topper).deposit(topper.address, usdc(200));
    model.deposit(topper.address, usdc(200));
    model.deadlines.delete(topper.address);
    await time.setNextBlockTimestamp(deadline + 60n);
    const rc = await (
      await f.clearingHouse.connect(f.keeper).liquidateBatch([safe.address, topper.address, idle.address, reckless.address, short.address])
    ).wait();
    const liquidated = rc!.logs
      .map((l) => {
        try {
          return f.clearingHouse.interface.parseLog(l);
        } catch {
          return null;
        }
      })
      .filter((e) => e?.name === "Liquidated")
      .map((e) => e!.args.account);
    expect(liquidated).to.deep.equal([idle.address]);
    const sizes = await Promise.all([safe, topper, idle, reckless, short].map(async (a) => (await f.clearingHouse.position(a.address, ETH)).sizeD18));
    expect(sizes[0]).to.equal(d18(10));
    expect(sizes[1]).to.equal(d18(10));
    expect(sizes[2] < d18(10)).to.equal(true);
    expect(sizes[3] < d18(10)).to.equal(true);
    expect(sizes[4]).to.equal(-d18(10));
    for (const a of [safe, topper, idle, reckless, short]) {
      expect((await f.clearingHouse.accountSummary(a.address)).status, a.address).to.equal(STATUS.Healthy);
    }
    expect(ethers.getAddress(idle.address)).to.equal(liquidated[0]);
  });
});
