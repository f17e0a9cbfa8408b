// Mango Markets (2022): the attacker pumped MNGO and borrowed everything against the unrealized profit of its
// perp position. In Sigma free collateral is min(collateral, equity) − initial requirement: unrealized profit
// is never withdrawable, only realized (closed at the Chainlink price) profit is.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, setPrice, WAD } from "../fixture";
import { tryTrade } from "./helpers";

describe("attack: borrowing against unrealized profit (Mango Markets)", () => {
  it("a pumped position's unrealized profit can never be withdrawn, and profit used as margin elsewhere is lost first when the pump reverts", async () => {
    const f = await loadFixture(sigmaFixture);
    const [attacker] = f.traders;
    await f.vault.connect(attacker).deposit(attacker.address, usdc(10_000));
    expect((await tryTrade(f, attacker, ETH, d18(100))).filled).to.equal(true);
    const collateral = await f.vault.collateralOf(attacker.address);

    await setPrice(f, ETH, "2600"); // +30%: ≈ $60,000 unrealized profit on a $10,000 deposit
    const s = await f.clearingHouse.accountSummary(attacker.address);
    expect(s.unrealizedPnlD18).to.be.gt(d18(50_000));
    expect(s.freeCollateral, "free ≤ own collateral − IM").to.be.lte(collateral);
    expect(await f.clearingHouse.freeCollateral(attacker.address)).to.equal(s.freeCollateral);
    await expect(f.vault.connect(attacker).withdraw(collateral + 1n, attacker.address)).to.be.revertedWithCustomError(
      f.vault,
      "VaultInsufficientFreeCollateral",
    );
    await expect(f.vault.connect(attacker).withdraw(s.freeCollateral + 1n, attacker.address)).to.be.revertedWithCustomError(
      f.vault,
      "VaultInsufficientFreeCollateral",
    );

    // Cross margin lets the profit back new positions (standard), but nothing leaves the vault: when the pump
    // reverts, the new BTC position's loss and the vanished profit hit the attacker's own collateral first.
    const btc = await tryTrade(f, attacker, BTC, d18(15));
    expect(btc.filled, "profit counts as margin for new positions").to.equal(true);
    const free = await f.clearingHouse.freeCollateral(attacker.address);
    expect(free).to.be.lte(collateral);
    if (free > 0n) await f.vault.connect(attacker).withdraw(free, attacker.address);
    const poolBefore = await f.vault.poolBalance();
    await setPrice(f, ETH, "2000");
    await setPrice(f, BTC, "57000");
    const after = await f.clearingHouse.accountSummary(attacker.address);
    // What the attacker could take out never exceeded what it put in.
    expect(free, "withdrawn ≤ deposit").to.be.lte(usdc(10_000));
    expect(await f.vault.poolBalance(), "no realized loss to the pool yet").to.equal(poolBefore);
    expect(after.equityD18).to.be.lt(BigInt(usdc(10_000)) * 10n ** 12n);
    expect(after.unrealizedPnlD18 < 0n || after.equityD18 < (collateral * 10n ** 12n * WAD) / WAD).to.equal(true);
  });
});
