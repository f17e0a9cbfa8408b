// "A volatility jump liquidates everyone at once" (the risk of volatility-driven margin, cf. the March 2020
// BitMEX/Maker cascades). Sigma: accounts between the hard floor and maintenance only get a margin call with a
// grace window; only those below the floor are liquidatable at once; liquidations are partial and capped per
// market per window, so the first block's liquidations are bounded.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, ETH, setVol, chEvents } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import { tryTrade, fund, sizeAtLeverage } from "./helpers";

describe("attack: a σ jump liquidating everyone at once", () => {
  it("bounds the first block's liquidations, gives thin accounts a grace window, and leaves healthy ones alone", async () => {
    const f = await loadFixture(sigmaFixture);
    const accounts = [...f.traders, ...f.others.slice(0, 7)];
    for (const a of accounts.slice(5)) await fund(f, a, 10_000);
    await f.riskManager.setMarketParam(ETH, PARAM.LiqLimit, ethers.parseUnits("0.0003", 18)); // 30 ETH per window
    const [, maxSize] = await f.riskManager.liquidationLimit(ETH);
    // Four accounts at 95% of max leverage, four at 55% (will fall between floor and maintenance), four at 25%.
    const fracs = [0.95, 0.95, 0.95, 0.95, 0.55, 0.55, 0.55, 0.55, 0.25, 0.25, 0.25, 0.25];
    for (const [k, a] of accounts.entries()) {
      await f.vault.connect(a).deposit(a.address, usdc(2_000));
      const size = await sizeAtLeverage(f, ETH, usdc(1_990), fracs[k]);
      expect((await tryTrade(f, a, ETH, size)).filled, `open ${k}`).to.equal(true);
    }
    // σ jumps from 50% to 200% (below the 250% σ breaker): MMR ≈ 2.1% → 6.9%.
    await setVol(f, ETH, "200");
    const statuses = [];
    for (const a of accounts) statuses.push((await f.clearingHouse.accountSummary(a.address)).status);
    expect(statuses.slice(0, 4), "max-leverage accounts fall below the hard floor").to.deep.equal([3n, 3n, 3n, 3n]);
    expect(statuses.slice(4, 8), "thin accounts are only margin-callable").to.deep.equal([1n, 1n, 1n, 1n]);
    expect(statuses.slice(8), "well-margined accounts stay healthy").to.deep.equal([0n, 0n, 0n, 0n]);

    // A keeper tries to liquidate everyone in the first block.
    const oi0 = (await f.clearingHouse.marketState(ETH)).oiLongD18;
    const rc = await (await f.clearingHouse.connect(f.keeper).liquidateBatch(accounts.map((a) => a.address))).wait();
    const liquidated = chEvents(f, rc).filter((e) => e.name === "Liquidated").map((e) => e.args.account as string);
    const closed = oi0 - (await f.clearingHouse.marketState(ETH)).oiLongD18;
    expect(closed, "first window bounded by the per-market allowance").to.be.lte(maxSize);
    expect(liquidated.length).to.be.lte(4);
    for (const a of accounts.slice(4)) expect(liquidated).to.not.include(a.address);

    // Thin accounts: a margin call starts a grace window; topping up in time clears it; the others become
    // liquidatable only after the deadline.
    for (const a of accounts.slice(4, 8)) await f.clearingHouse.connect(f.keeper).flagMarginCall(a.address);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(accounts[4].address)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAccountHealthy");
    await f.vault.connect(accounts[4]).deposit(accounts[4].address, usdc(1_000));
    expect((await f.clearingHouse.accountSummary(accounts[4].address)).status, "cured in the grace window").to.equal(0n);
    await time.increase(Number(await f.clearingHouse.marginCallGrace()) + 1);
    await f.priceFeeds[ETH].updateAnswer((await f.priceFeeds[ETH].latestRoundData())[1]);
    expect((await f.clearingHouse.accountSummary(accounts[5].address)).liquidatable, "liquidatable after the grace window").to.equal(true);
    expect((await f.clearingHouse.accountSummary(accounts[4].address)).liquidatable).to.equal(false);
    expect((await f.clearingHouse.accountSummary(accounts[8].address)).status).to.equal(0n);
  });
});
