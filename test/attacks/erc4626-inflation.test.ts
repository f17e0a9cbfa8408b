// ERC-4626 first-depositor inflation (Hundred Finance, Sonne, countless audit findings): the first depositor
// mints one share, donates to inflate the share price, and the next deposit rounds to zero shares. Sigma's pool
// counts only its Vault ledger (donations are invisible) and has a 10^6 virtual-share offset.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deploySigma } from "../../scripts/lib/deploy";
import { FEED_ONLY_MARKETS, usdc, d18, ETH } from "../fixture";
import { tryTrade } from "./helpers";

async function emptyPoolFixture() {
  const [admin, attacker, victim, trader] = await ethers.getSigners();
  const d = await deploySigma(admin, { markets: FEED_ONLY_MARKETS });
  for (const s of [attacker, victim, trader]) {
    await d.token.mint(s.address, usdc(2_000_000));
    await d.token.connect(s).approve(await d.pool.getAddress(), ethers.MaxUint256);
    await d.token.connect(s).approve(await d.vault.getAddress(), ethers.MaxUint256);
  }
  return { ...d, admin, attacker, victim, trader, keeper: admin };
}

describe("attack: ERC-4626 first-depositor inflation", () => {
  it("a 1-unit first deposit plus a large donation steals nothing from the next depositor", async () => {
    const f = await loadFixture(emptyPoolFixture);
    const { pool, vault, token, attacker, victim } = f;
    await pool.connect(attacker).deposit(1n, attacker.address);
    const attackerShares = await pool.balanceOf(attacker.address);
    // Nor can the attacker inflate NAV through trading losses: a 1-unit pool caps open interest at ~zero.
    const f2 = { ...f, traders: [f.trader], clearingHouse: f.clearingHouse } as any;
    await vault.connect(f.trader).deposit(f.trader.address, usdc(10_000));
    const r = await tryTrade(f2, f.trader, ETH, d18(1));
    expect(r.filled).to.equal(false);
    expect(r.reason).to.equal("ClearingHouseOpenInterestCap");
    // Donations straight to the Vault and to the pool contract: no ledger records them, NAV does not move.
    await token.connect(attacker).transfer(await vault.getAddress(), usdc(1_000_000));
    await token.connect(attacker).transfer(await pool.getAddress(), usdc(500_000));
    expect(await pool.totalAssets()).to.equal(1n);
    // The victim deposits and gets a fair number of shares.
    await pool.connect(victim).deposit(usdc(10_000), victim.address);
    const victimValue = await pool.previewRedeem(await pool.balanceOf(victim.address));
    expect(victimValue, "victim loses at most one token unit").to.be.gte(usdc(10_000) - 1n);
    const attackerValue = await pool.previewRedeem(attackerShares);
    expect(attackerValue, "attacker cannot redeem more than it deposited").to.be.lte(1n);
  });
});
