// F7: LP NAV front-running around a known price update (GMX v1 GLP "mint before the oracle update, redeem
// after"; DESIGN: "no NAV front-running around known price updates"). Traders are net long; the market has
// dropped 0.45% off-chain but Chainlink has not updated yet (under its deviation threshold). An LP who sees it
// deposits just before the round that raises the pool's NAV and withdraws right after: it must not earn the LPs'
// gain. Defence: the NAV band — deposits are priced at NAV + band × net exposure, withdrawals at NAV − band ×
// net exposure (band 50 bps): a round trip costs more than any move under the deviation threshold brings.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import { tryTrade, fund } from "./helpers";
import { mulDiv, ceilDiv } from "../clearinghouse/math";

const VIRTUAL = 10n ** 6n;
const SCALE = 10n ** 12n; // 6-decimal collateral

describe("attack: LP NAV front-running around a known Chainlink update (F7)", () => {
  it("depositing just before a NAV-raising round and withdrawing just after earns nothing", async () => {
    const f = await loadFixture(sigmaFixture);
    // Funding off, so that NAV does not move between the views below and the next block (exact values).
    await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
    for (const t of f.traders.slice(0, 4)) {
      await f.vault.connect(t).deposit(t.address, usdc(30_000));
      expect((await tryTrade(f, t, ETH, d18(200))).filled).to.equal(true);
    }
    await setPrice(f, ETH, "2000");
    const [attacker] = f.others;
    await fund(f, attacker, 1_000_000);
    const t0 = await f.token.balanceOf(attacker.address);
    // Just before the round: deposit. Priced at the top of the NAV band: mid NAV + 0.5% × 800 ETH × 2,000.
    expect(await f.pool.navBandBps()).to.equal(50n);
    const [, exposure0] = await f.clearingHouse.navInputsD18();
    expect(exposure0).to.equal(d18(1_600_000));
    const nav0 = await f.pool.navD18();
    const supply0 = await f.pool.totalSupply();
    const high = nav0 + d18(8_000);
    const expectedShares = mulDiv(usdc(1_000_000), supply0 + VIRTUAL, ceilDiv(high, SCALE) + 1n);
    expect(await f.pool.previewDeposit(usdc(1_000_000))).to.equal(expectedShares);
    await f.pool.connect(attacker).deposit(usdc(1_000_000), attacker.address);
    expect(await f.pool.balanceOf(attacker.address)).to.equal(expectedShares);

    await time.increase(30);
    await setPrice(f, ETH, "1991"); // −0.45%: the longs lose ≈ $7,200, the pool's NAV rises by as much
    await time.increase(30);
    const shares = await f.pool.balanceOf(attacker.address);
    const max = await f.pool.maxRedeem(attacker.address);
    expect(max).to.equal(shares); // the reserve does not bind: the whole position can leave
    // Priced at the bottom of the band: mid NAV − 0.5% × 800 ETH × 1,991 (at the block of the redemption).
    const nav1 = await f.pool.navD18();
    const supply1 = await f.pool.totalSupply();
    const low = nav1 - d18(7_964);
    const expectedAssets = mulDiv(shares, low / SCALE + 1n, supply1 + VIRTUAL);
    expect(await f.pool.previewRedeem(shares)).to.equal(expectedAssets);
    await f.pool.connect(attacker).redeem(shares, attacker.address, attacker.address);
    const profit = (await f.token.balanceOf(attacker.address)) - t0;
    expect(profit).to.equal(expectedAssets - usdc(1_000_000));
    // Without the band the attacker earned ≈ +3,588 USDC; with it the round trip costs ≈ half of 15,964 USDC.
    expect(profit, `front-running the NAV update earned ${profit} token units`).to.be.lessThan(0n);
    expect(profit).to.be.lessThan(-usdc(4_000));
  });

  it("the spread stays with the LPs who remain: an instant round trip never lowers their share price", async () => {
    const f = await loadFixture(sigmaFixture);
    for (const t of f.traders.slice(0, 2)) {
      await f.vault.connect(t).deposit(t.address, usdc(30_000));
      expect((await tryTrade(f, t, ETH, d18(100))).filled).to.equal(true);
    }
    const [lp2] = f.others;
    await fund(f, lp2, 100_000);
    const price = async () => ((await f.pool.totalAssets()) + 1n) * 10n ** 18n / ((await f.pool.totalSupply()) + VIRTUAL);
    const p0 = await price();
    await f.pool.connect(lp2).deposit(usdc(100_000), lp2.address);
    await f.pool.connect(lp2).redeem(await f.pool.balanceOf(lp2.address), lp2.address, lp2.address);
    expect(await price()).to.be.gte(p0);
    // lp2 paid ≈ 2 × 0.5% × 400,000 × 100k / 1.1M ≈ 364 USDC (plus a second of funding).
    const paid = usdc(100_000) - (await f.token.balanceOf(lp2.address));
    expect(paid > usdc(300) && paid < usdc(400), `round trip cost ${paid}`).to.equal(true);
  });
});
