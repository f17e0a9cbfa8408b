import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, trade, usdc, d18, ETH, setPrice, chEvents } from "../fixture";

describe("smoke", () => {
  it("opens, closes and liquidates", async () => {
    const f = await loadFixture(sigmaFixture);
    const [t] = f.traders;
    await f.vault.connect(t).deposit(t.address, usdc(10000));
    const r = await trade(f, t, ETH, d18(10));
    console.log(chEvents(f, r.receipt).map((e) => e.name + " " + e.args.join(",")));
    console.log(await f.clearingHouse.accountSummary(t.address));
    await setPrice(f, ETH, "2100");
    const r2 = await trade(f, t, ETH, -d18(10));
    console.log(chEvents(f, r2.receipt).map((e) => e.name + " " + e.args.join(",")));
    console.log(await f.vault.collateralOf(t.address));
    await trade(f, t, ETH, d18(90));
    console.log(await f.clearingHouse.accountSummary(t.address));
    await setPrice(f, ETH, "1900");
    console.log(await f.clearingHouse.accountSummary(t.address));
    const tx = await f.clearingHouse.connect(f.keeper).liquidate(t.address);
    console.log(chEvents(f, await tx.wait()).map((e) => e.name + " " + e.args.join(",")));
    console.log(await f.vault.collateralOf(t.address), await f.vault.insuranceFund(), await f.vault.poolBalance());
    expect(await f.clearingHouse.accountMarkets(t.address)).to.equal(0n);
  });
});
