// USDC-style blacklist (audit finding class: "a blacklisted user blocks its own liquidation", e.g. protocols that
// transfer the remaining margin on liquidation). Sigma moves no token during a liquidation: the reward is
// credited as Vault collateral and the liquidated account's balance stays in the ledger.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { tryTrade, ledgers } from "./helpers";

describe("attack: a blacklisted account blocking its own liquidation", () => {
  it("liquidation succeeds although the account, and even the liquidator, are blacklisted by the token", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(1_000));
    await f.vault.connect(bob).deposit(bob.address, usdc(1_000));
    expect((await tryTrade(f, alice, ETH, d18(15))).filled).to.equal(true);
    expect((await tryTrade(f, bob, ETH, d18(15))).filled).to.equal(true);
    await f.token.setBlacklisted(alice.address, true);
    await f.token.setBlacklisted(bob.address, true);
    await f.token.setBlacklisted(f.keeper.address, true);
    await setPrice(f, ETH, "1960");
    expect((await f.clearingHouse.accountSummary(alice.address)).liquidatable).to.equal(true);
    const before = await ledgers(f, [alice.address, bob.address, f.keeper.address]);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(alice.address)).to.emit(f.clearingHouse, "Liquidated");
    const [n] = await f.clearingHouse.connect(f.keeper).liquidateBatch.staticCall([bob.address]);
    expect(n).to.equal(1n);
    await f.clearingHouse.connect(f.keeper).liquidateBatch([bob.address]);
    expect(await f.vault.collateralOf(f.keeper.address), "blacklisted liquidator still credited").to.be.gt(0n);
    expect(await ledgers(f, [alice.address, bob.address, f.keeper.address])).to.equal(before);
    // Only the blacklisted party's own exit is affected (the token's choice, not Sigma's).
    const free = await f.clearingHouse.freeCollateral(alice.address);
    if (free > 0n) await expect(f.vault.connect(alice).withdraw(free, alice.address)).to.be.reverted;
  });
});
