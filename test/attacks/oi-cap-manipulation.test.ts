// GMX v1 on Avalanche (2022): an attacker held large longs and pumped AVAX on thin external markets the oracle
// followed. Sigma's defences: prices only from Chainlink (never an AMM or a caller's argument), a per-side
// open-interest cap tied to the pool, a skew premium, and an LP reserve so the cap cannot be inflated and
// then withdrawn.
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, setPrice, WAD } from "../fixture";
import { tryTrade, fund, ledgers } from "./helpers";

describe("attack: thin-market price manipulation against the open-interest cap (GMX v1 AVAX)", () => {
  it("the cap binds across sybil accounts, bounds the pool's loss to cap × move, and cannot be inflated by a withdrawable LP deposit", async () => {
    const f = await loadFixture(sigmaFixture);
    const attackers = f.traders;
    for (const a of attackers) await f.vault.connect(a).deposit(a.address, usdc(100_000));
    const capRatio = (await f.riskManager.marketParams(ETH)).oiCapRatioD18;
    const pool0 = await f.vault.poolBalance();
    const capNotional = (pool0 * 10n ** 12n * capRatio) / WAD; // D18 USD
    const price = await f.riskManager.priceD18(ETH);
    const capSize = (capNotional * WAD) / price;

    // Sybil accounts each take a slice; together they reach the cap and not a wei beyond it.
    const slice = capSize / 4n;
    for (let k = 0; k < 3; k++) expect((await tryTrade(f, attackers[k], ETH, slice)).filled, `slice ${k}`).to.equal(true);
    const over = await tryTrade(f, attackers[3], ETH, capSize - 3n * slice + d18(1));
    expect(over.filled).to.equal(false);
    expect(over.reason).to.equal("ClearingHouseOpenInterestCap");
    const last = await tryTrade(f, attackers[3], ETH, (capSize - 3n * slice) * 99n / 100n);
    expect(last.filled, "the cap itself is reachable").to.equal(true);
    const oi = (await f.clearingHouse.marketState(ETH)).oiLongD18;
    expect((oi * price) / WAD).to.be.lte(capNotional);

    // The attacker "pumps" the external market by 10% and the Chainlink feed follows. Its profit (and the
    // pool's loss) is bounded by the cap × move, minus the premium and fees it paid.
    const before = await ledgers(f, attackers.map((a) => a.address));
    const coll0 = await Promise.all(attackers.map((a) => f.vault.collateralOf(a.address)));
    await setPrice(f, ETH, "2200");
    for (let k = 0; k < 4; k++) {
      const size = (await f.clearingHouse.position(attackers[k].address, ETH)).sizeD18;
      expect((await tryTrade(f, attackers[k], ETH, -size)).filled).to.equal(true);
    }
    const coll1 = await Promise.all(attackers.map((a) => f.vault.collateralOf(a.address)));
    const profit = coll1.reduce((s, c, k) => s + c - coll0[k], 0n);
    // cap × 10%, plus the skew premium which is proportional to the price (≤ cap/skewScale of it), token units.
    const skewScale = (await f.riskManager.marketParams(ETH)).skewScaleD18;
    const maxProfit = ((capNotional / 10n) * (WAD + (capSize * WAD) / skewScale)) / WAD / 10n ** 12n;
    expect(profit).to.be.gt(0n);
    expect(profit, "profit bounded by cap × move").to.be.lt(maxProfit);
    expect(await ledgers(f, attackers.map((a) => a.address)), "zero-sum").to.equal(before);
    const poolLoss = pool0 - (await f.vault.poolBalance());
    expect(poolLoss).to.be.lte(maxProfit);

    // Inflating the cap with an LP deposit, opening against it, then pulling the deposit: the reserve keeps the
    // pool large enough that the open interest stays within cap × what remains.
    const [whale] = f.others;
    await fund(f, whale, 1_000_000);
    await setPrice(f, ETH, "2000");
    await f.pool.connect(whale).deposit(usdc(1_000_000), whale.address);
    for (let k = 0; k < 4; k++) {
      const r = await tryTrade(f, attackers[k], ETH, d18(420));
      expect(r.filled, `open ${k}`).to.equal(true);
    }
    const maxW = await f.pool.maxWithdraw(whale.address);
    await f.pool.connect(whale).withdraw(maxW, whale.address, whale.address);
    const st = await f.clearingHouse.marketState(ETH);
    const nav = await f.pool.navD18();
    const reserve = await f.pool.reserveFactorD18();
    // Net exposure × reserveFactor ≤ NAV: the LP could not leave the open interest unbacked.
    expect(((st.oiLongD18 - st.oiShortD18) * 2000n * reserve) / WAD, "exposure backed by the reserve").to.be.lte(nav + 10n ** 12n);
    expect(maxW, "the inflating LP cannot take its deposit back").to.be.lt(usdc(1_000_000));
  });
});
