// Chainlink latency arbitrage (Synthetix v1/v2 front-running, GMX v1 keepers): a trader who sees the next oracle
// price before the chain does trades at the old one. Sigma's two-step orders execute at the price at execution
// time, not before minDelay, and cannot be withdrawn before expiry once the price may be known.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice, chEvents } from "../fixture";
import { commitOnly, tryTrade } from "./helpers";

describe("attack: latency arbitrage against a price the attacker already knows", () => {
  it("an order committed before a known Chainlink update fills at the new price; it cannot execute before minDelay nor be cancelled before expiry", async () => {
    const f = await loadFixture(sigmaFixture);
    const [attacker] = f.traders;
    await f.vault.connect(attacker).deposit(attacker.address, usdc(20_000));
    // The attacker sees ETH at 2,050 off-chain; Chainlink still says 2,000. It commits a buy hoping for 2,000.
    const id = await commitOnly(f, attacker, ETH, d18(50));
    const o = await f.clearingHouse.order(id);
    await expect(f.clearingHouse.connect(attacker).executeOrder(id)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotReady");
    await expect(f.clearingHouse.connect(attacker).cancelOrder(id)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotExpired");
    // The update lands within minDelay; the keeper executes after it.
    await setPrice(f, ETH, "2050");
    await time.increaseTo(Number(o.commitTime) + Number(await f.clearingHouse.minDelay()));
    const rc = await (await f.clearingHouse.connect(f.keeper).executeOrder(id)).wait();
    const fill = chEvents(f, rc).find((e) => e.name === "PositionModified")!.args.fillPriceD18 as bigint;
    expect(fill, "filled at the new price (plus premium)").to.be.gte(d18(2050));

    // A trade the attacker regrets (price moved against it) cannot be withdrawn before expiry either.
    const id2 = await commitOnly(f, attacker, ETH, d18(10));
    await setPrice(f, ETH, "2100");
    await time.increase(5);
    await expect(f.clearingHouse.connect(attacker).cancelOrder(id2)).to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseOrderNotExpired");
  });

  it("an order cannot fill at a Chainlink round published before it was committed (the attacker already knows that price is stale)", async () => {
    const f = await loadFixture(sigmaFixture);
    const [attacker] = f.traders;
    await f.vault.connect(attacker).deposit(attacker.address, usdc(20_000));
    await setPrice(f, ETH, "2000");
    const c0 = await f.vault.collateralOf(attacker.address);
    // The real market is at ~2,009 (0.45%, under a 0.5% deviation threshold): Chainlink will not update for a
    // while. The attacker commits a buy now and executes it itself after minDelay, before the next round.
    await time.increase(60);
    const id = await commitOnly(f, attacker, ETH, d18(100));
    await time.increase(5);
    try {
      await f.clearingHouse.connect(attacker).executeOrder(id);
    } catch {
      /* correct behaviour: the order waits for a round published after its commit */
    }
    // Chainlink catches up; the attacker (or any keeper) closes.
    await time.increase(60);
    await setPrice(f, ETH, "2009");
    const pos = (await f.clearingHouse.position(attacker.address, ETH)).sizeD18;
    if ((await f.clearingHouse.order(id)).account !== "0x0000000000000000000000000000000000000000") {
      await f.clearingHouse.connect(f.keeper).executeOrder(id);
    }
    const size = (await f.clearingHouse.position(attacker.address, ETH)).sizeD18;
    if (size !== 0n) expect((await tryTrade(f, attacker, ETH, -size)).filled).to.equal(true);
    const profit = (await f.vault.collateralOf(attacker.address)) - c0;
    expect(pos === 0n || profit <= 0n, `trading on a price known to be stale earned ${profit} token units`).to.equal(true);
  });

});
