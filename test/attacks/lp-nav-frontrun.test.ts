// LP NAV front-running around a known price update (GMX v1 GLP "mint before the oracle update, redeem after";
// DESIGN: "no NAV front-running around known price updates"). Traders are net long; the market has dropped
// 0.45% off-chain but Chainlink has not updated yet (under its deviation threshold). An LP who sees it deposits
// just before the round that raises the pool's NAV and withdraws right after: it must not earn the LPs' gain.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { tryTrade, fund } from "./helpers";

describe("attack: LP NAV front-running around a known Chainlink update", () => {
  it("depositing just before a NAV-raising round and withdrawing just after earns nothing", async () => {
    const f = await loadFixture(sigmaFixture);
    for (const t of f.traders.slice(0, 4)) {
      await f.vault.connect(t).deposit(t.address, usdc(30_000));
      expect((await tryTrade(f, t, ETH, d18(200))).filled).to.equal(true);
    }
    await setPrice(f, ETH, "2000");
    const [attacker] = f.others;
    await fund(f, attacker, 1_000_000);
    const t0 = await f.token.balanceOf(attacker.address);
    // Just before the round: deposit (or request a deposit, if deposits are two-step).
    try {
      await f.pool.connect(attacker).deposit(usdc(1_000_000), attacker.address);
    } catch {
      /* a refused deposit is a valid defence */
    }
    await time.increase(30);
    await setPrice(f, ETH, "1991"); // −0.45%: the longs lose ≈ $7,200, the pool's NAV rises by as much
    await time.increase(30);
    const shares = await f.pool.balanceOf(attacker.address);
    if (shares > 0n) {
      const max = await f.pool.maxRedeem(attacker.address);
      if (max > 0n) await f.pool.connect(attacker).redeem(max < shares ? max : shares, attacker.address, attacker.address);
    }
    const left = await f.pool.balanceOf(attacker.address);
    const value = (await f.token.balanceOf(attacker.address)) + (left > 0n ? await f.pool.previewRedeem(left) : 0n);
    const profit = value - t0;
    expect(profit <= 0n, `front-running the NAV update earned ${profit} token units`).to.equal(true);
  });
});
