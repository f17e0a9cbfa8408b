// LP bank run against winning traders (GMX v2 / Synthetix audit class: "pool can become unable to pay trader
// profit"): the reserve only covers traders' NET exposure, so at zero skew LPs may withdraw all the pool's cash
// while longs are up and shorts down (their losses are not cash yet). A profitable trader then cannot close:
// the Vault reverts VaultPoolInsufficient. Closing must never be blocked.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { tryTrade } from "./helpers";

describe("attack: LP withdrawal that leaves winning traders unpaid", () => {
  it("after LPs withdraw everything they are allowed to, a winning trader can still close at its profit", async () => {
    const f = await loadFixture(sigmaFixture);
    const [alice, bob] = f.traders;
    await f.vault.connect(alice).deposit(alice.address, usdc(50_000));
    await f.vault.connect(bob).deposit(bob.address, usdc(50_000));
    expect((await tryTrade(f, alice, ETH, d18(100))).filled).to.equal(true);
    expect((await tryTrade(f, bob, ETH, -d18(100))).filled).to.equal(true);
    await setPrice(f, ETH, "2200"); // alice +$20k, bob −$20k, skew 0

    const maxW = await f.pool.maxWithdraw(f.lp.address);
    await f.pool.connect(f.lp).withdraw(maxW, f.lp.address, f.lp.address);
    const close = await tryTrade(f, alice, ETH, -d18(100));
    expect(close.reason, `closing was refused (pool cash ${await f.vault.poolBalance()})`).to.equal(undefined);
    expect(close.filled).to.equal(true);
    expect(await f.vault.collateralOf(alice.address)).to.be.gt(usdc(69_000));
  });
});
