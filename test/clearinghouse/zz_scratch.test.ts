import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, setPrice } from "../fixture";
import { Model, fillAndCheck, expectChainMatchesModel, latestTs } from "./math";

describe("scratch", () => {
  it("model", async () => {
    const f = await loadFixture(sigmaFixture);
    const model = await Model.load(f);
    const [a, b] = f.traders;
    for (const t of [a, b]) { await f.vault.connect(t).deposit(t.address, usdc(10000)); model.deposit(t.address, usdc(10000)); }
    await fillAndCheck(f, model, a, ETH, d18(10));
    await fillAndCheck(f, model, b, ETH, -d18("3.3"));
    await setPrice(f, ETH, "2100"); model.setPrice(ETH, "2100");
    await fillAndCheck(f, model, a, ETH, -d18(15));
    await fillAndCheck(f, model, b, BTC, d18("0.5"));
    await time.increase(1000);
    await fillAndCheck(f, model, a, ETH, d18(5));
    await expectChainMatchesModel(f, model, [a.address, b.address]);
    const now = await latestTs();
    console.log(model.summary(b.address, now), await f.clearingHouse.accountSummary(b.address));
    expect(await f.clearingHouse.tradersUnrealizedPnlD18()).to.equal(model.tradersPnl(now));
  });
});
