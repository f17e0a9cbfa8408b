// Dust positions no keeper will liquidate (audit finding class: partial liquidations that leave tiny remainders,
// or rewards that round to zero). Sigma: a liquidation closes the whole position when the rest would be below
// minPositionNotional, and a tiny position is closed in full with a positive reward.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, setPrice, chEvents } from "../fixture";
import { tryTrade } from "./helpers";

const MIN_POS = ethers.encodeBytes32String("minPositionNotionalD18");

describe("attack: dust positions no keeper will liquidate", () => {
  it("a tiny position is closed in full with a positive reward; a partial close that would leave dust closes everything; a 1-wei position blocks nothing", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob, carol] = f.traders;

    // 1) A $8 position (below the $10 minimum notional) becomes liquidatable: closed in full, reward > 0.
    await f.vault.connect(alice).deposit(alice.address, usdc("0.3"));
    expect((await tryTrade(f, alice, ETH, d18("0.004"))).filled).to.equal(true);
    await setPrice(f, ETH, "1950");
    expect((await f.clearingHouse.accountSummary(alice.address)).liquidatable).to.equal(true);
    const rc = await (await f.clearingHouse.connect(f.keeper).liquidate(alice.address)).wait();
    const liq = chEvents(f, rc).find((e) => e.name === "Liquidated")!;
    expect((await f.clearingHouse.position(alice.address, ETH)).sizeD18, "dust closed in full").to.equal(0n);
    expect(liq.args.reward as bigint, "a positive reward for the keeper").to.be.gt(0n);

    // 2) With a $10,000 minimum, a partial liquidation that would leave less closes everything.
    await setPrice(f, ETH, "2000");
    await f.clearingHouse.setParam(MIN_POS, d18(10_000));
    await f.vault.connect(bob).deposit(bob.address, usdc(420));
    expect((await tryTrade(f, bob, ETH, d18(6))).filled).to.equal(true);
    await setPrice(f, ETH, "1960");
    expect((await f.clearingHouse.accountSummary(bob.address)).liquidatable).to.equal(true);
    await f.clearingHouse.connect(f.keeper).liquidate(bob.address);
    expect((await f.clearingHouse.position(bob.address, ETH)).sizeD18, "no remainder below the minimum").to.equal(0n);
    await f.clearingHouse.setParam(MIN_POS, d18(10));

    // 3) A 1-wei position in another market does not get in the way of liquidating the real one.
    await setPrice(f, ETH, "2000");
    await f.vault.connect(carol).deposit(carol.address, usdc(1_000));
    expect((await tryTrade(f, carol, BTC, 1n)).filled).to.equal(true);
    expect((await tryTrade(f, carol, ETH, d18(15))).filled).to.equal(true);
    await setPrice(f, ETH, "1960");
    expect((await f.clearingHouse.accountSummary(carol.address)).liquidatable).to.equal(true);
    await expect(f.clearingHouse.connect(f.keeper).liquidate(carol.address)).to.emit(f.clearingHouse, "Liquidated");
    const s = await f.clearingHouse.accountSummary(carol.address);
    expect(s.liquidatable).to.equal(false);
    expect(s.equityD18 >= s.initialRequirementD18 || (await f.clearingHouse.position(carol.address, ETH)).sizeD18 === 0n).to.equal(true);
  });
});
