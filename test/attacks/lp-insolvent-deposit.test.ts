// Deposits into an insolvent ERC-4626 vault (found by the stateful fuzzer, invariant lp-dilution; the same class
// as share-price manipulation around a known NAV move): when traders' unrealized profit reaches the pool's
// assets, totalAssets() is 0 while LP shares are outstanding, so a dust deposit mints nearly every share and
// takes the existing LPs' assets once prices come back. A deposit must never buy shares at a zero NAV.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { tryTrade, fund } from "./helpers";

describe("attack: buying LP shares while the pool's NAV is zero or negative", () => {
  it("a 1 USD deposit at a non-positive NAV cannot take over the existing LPs' assets when prices come back", async () => {
    const f = await loadFixture(sigmaFixture);
    // Longs near the open-interest cap, then a +60% rally (no oracle fault needed): traders' profit > pool.
    for (const t of f.traders) {
      await f.vault.connect(t).deposit(t.address, usdc(20_000));
      expect((await tryTrade(f, t, ETH, d18(190))).filled).to.equal(true);
    }
    await setPrice(f, ETH, "3200");
    expect(await f.pool.navD18()).to.be.lte(0n);
    expect(await f.pool.totalAssets()).to.equal(0n);

    const [attacker] = f.others;
    await fund(f, attacker, 1);
    let deposited = false;
    try {
      await f.pool.connect(attacker).deposit(usdc(1), attacker.address);
      deposited = true;
    } catch {
      /* refusing the deposit is a correct defence */
    }
    // Prices come back; the honest LP's stake must be intact and the attacker's worth ≈ its 1 USD.
    await setPrice(f, ETH, "2000");
    const lpValue = await f.pool.previewRedeem(await f.pool.balanceOf(f.lp.address));
    const attackerValue = await f.pool.previewRedeem(await f.pool.balanceOf(attacker.address));
    expect(attackerValue, `the 1 USD depositor now owns ${ethers.formatUnits(attackerValue, 6)} USD of the pool (deposit accepted: ${deposited})`).to.be.lte(usdc(2));
    expect(lpValue).to.be.gte(usdc(900_000));
  });
});
