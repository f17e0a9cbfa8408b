import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { sigmaFixture, usdc, d18, ETH, BTC, Fixture, setPrice } from "../fixture";
import {
  Model,
  WAD,
  MAX_UINT,
  baseRatios,
  depositBoth,
  priceBoth,
  priceBothD18,
  volBoth,
  tradeAndCheck,
  fillAndCheck,
  expectChainMatchesModel,
  latestTs,
  feedAnswer,
  liquidateAndCheck,
  Summary,
  STATUS,
} from "./math";

async function setup() {
  const f = await loadFixture(sigmaFixture);
  const model = await Model.load(f);
  return { f, model };
}

function asSummary(s: any): Summary {
  return {
    collateral: s.collateral,
    unrealizedPnlD18: s.unrealizedPnlD18,
    equityD18: s.equityD18,
    initialRequirementD18: s.initialRequirementD18,
    maintenanceRequirementD18: s.maintenanceRequirementD18,
    freeCollateral: s.freeCollateral,
    healthD18: s.healthD18,
    liquidatable: s.liquidatable,
    status: s.status,
    marginCallDeadline: s.marginCallDeadline,
  };
}

async function expectSummary(f: Fixture, model: Model, a: string) {
  const chain = asSummary(await f.clearingHouse.accountSummary(a));
  expect(chain, `summary of ${a}`).to.deep.equal(model.summary(a, await latestTs()));
  return chain;
}

/** Largest size (sign of `dir`) the model accepts for an account now: a bisection on the exact predicate. */
function maxSize(model: Model, a: string, m: number, dir: 1n | -1n, now: bigint): bigint {
  const ok = (x: bigint) => model.clone().tryFill(a, m, dir * x, dir > 0n ? MAX_UINT : 0n, now).ok;
  let lo = 1n;
  let hi = 10n ** 24n;
  if (!ok(lo) || ok(hi)) throw new Error("bad bracket");
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return dir * lo;
}

describe("ClearingHouse margin", () => {
  describe("maximum leverage", () => {
    it("the initial ratio in use is z_im·σ·√(h/1y) + liqFee: 5 · 50% · √(1h/1y) + 0.5% for ETH", async () => {
      const { f, model } = await setup();
      const [sigma, mmr, imr] = await f.riskManager.ratios(ETH);
      expect(sigma).to.equal(d18("0.5"));
      expect({ mmr, imr }).to.deep.equal(baseRatios(model.markets[ETH].p, d18("0.5")));
      // √(3600/31536000) = 0.010684…: MMR ≈ 2.10%, IMR ≈ 3.17%.
      expect(mmr / 10n ** 12n).to.equal(21026n);
      expect(imr / 10n ** 12n).to.equal(31710n);
    });

    it("opening a long at exactly max leverage succeeds and 1 wei of size more is cancelled with ClearingHouseInsufficientMargin", async () => {
      const { f, model } = await setup();
      const [alice] = f.traders;
      await depositBoth(f, model, alice, 1_234_567_891n); // 1,234.567891 USDC
      const size = maxSize(model, alice.address, ETH, 1n, await latestTs());
      expect(size > d18(18) && size < d18(21)).to.equal(true, `max size ${size}`);

      const over = await tradeAndCheck(f, model, alice, ETH, size + 1n);
      expect(over.predicted.ok).to.equal(false);
      if (!over.predicted.ok) {
        expect(over.predicted.err.errName).to.equal("ClearingHouseInsufficientMargin");
        const [, equity, required] = over.predicted.err.args as bigint[];
        expect(equity < required).to.equal(true);
      }
      expect(await f.vault.collateralOf(alice.address)).to.equal(1_234_567_891n);

      await fillAndCheck(f, model, alice, ETH, size);
      const s = await expectSummary(f, model, alice.address);
      expect(s.equityD18 >= BigInt(s.initialRequirementD18)).to.equal(true);
      // At the edge: the requirement is within a few wei-of-size worth of the equity.
      expect(s.equityD18 - BigInt(s.initialRequirementD18) < d18("0.001")).to.equal(true);
      expect(s.freeCollateral).to.equal(0n);
    });

    it("opening a short at exactly max leverage succeeds and 1 wei more is cancelled", async () => {
      const { f, model } = await setup();
      const [, bob] = f.traders;
      await depositBoth(f, model, bob, usdc(5_000));
      const size = maxSize(model, bob.address, BTC, -1n, await latestTs());
      const over = await tradeAndCheck(f, model, bob, BTC, size - 1n);
      expect(over.predicted.ok).to.equal(false);
      await fillAndCheck(f, model, bob, BTC, size);
      expect((await f.clearingHouse.position(bob.address, BTC)).sizeD18).to.equal(size);
    });

    it("the size add-on makes large positions need a higher ratio than small ones", async () => {
      const { f, model } = await setup();
      const [alice] = f.traders;
      await depositBoth(f, model, alice, usdc(100_000));
      await fillAndCheck(f, model, alice, BTC, d18(25)); // 0.5% of S = 5,000 BTC
      const s = await expectSummary(f, model, alice.address);
      const notional = (d18(25) * d18(60000)) / WAD;
      const { imr } = model.markets[BTC].ratios();
      // 25/5000 · 1% = 0.005% extra on top of the base ratio.
      expect(s.initialRequirementD18).to.equal((notional * (imr + d18("0.00005"))) / WAD);
    });
  });

  describe("accountSummary", () => {
    it("reports collateral, PnL including funding, equity, requirements, free collateral and health exactly, cross-margined", async () => {
      const { f, model } = await setup();
      const [alice, bob, , dave] = f.traders;
      await depositBoth(f, model, alice, usdc(8_000));
      await depositBoth(f, model, bob, usdc(3_000));
      await depositBoth(f, model, dave, usdc(777));
      await fillAndCheck(f, model, alice, ETH, d18("3.7"));
      await fillAndCheck(f, model, alice, BTC, -d18("0.2"));
      await fillAndCheck(f, model, bob, ETH, -d18("11.1"));
      await time.increase(3000);
      await priceBoth(f, model, ETH, "2040.4");
      await priceBoth(f, model, BTC, "59100");
      const sa = await expectSummary(f, model, alice.address);
      const sb = await expectSummary(f, model, bob.address);
      for (const s of [sa, sb]) {
        expect(s.equityD18).to.equal(s.collateral * 10n ** 12n + s.unrealizedPnlD18);
        expect(s.healthD18).to.equal((s.equityD18 * WAD) / s.maintenanceRequirementD18);
        expect(s.initialRequirementD18 > s.maintenanceRequirementD18).to.equal(true);
        expect(s.liquidatable).to.equal(false);
      }
      // Alice's requirement is the sum over her two markets.
      const eth = model.pos(alice.address, ETH);
      const btc = model.pos(alice.address, BTC);
      const req = (size: bigint, p: bigint, r: bigint, S: bigint) => {
        const abs = size < 0n ? -size : size;
        const n = (abs * p + WAD - 1n) / WAD;
        const ratio = r + (abs * d18("0.01") + S - 1n) / S;
        return (n * ratio + WAD - 1n) / WAD;
      };
      expect(sa.maintenanceRequirementD18).to.equal(
        req(eth.size, d18("2040.4"), model.markets[ETH].mmr, d18(100000)) + req(btc.size, d18(59100), model.markets[BTC].mmr, d18(5000)),
      );
      // An account without positions: equity = collateral, all free, infinite health.
      const sd = await expectSummary(f, model, dave.address);
      expect([sd.equityD18, sd.freeCollateral, sd.healthD18, sd.liquidatable]).to.deep.equal([usdc(777) * 10n ** 12n, usdc(777), MAX_UINT, false]);
    });

    it("free collateral can be withdrawn to the unit, one unit more is refused, and unrealized profit is not withdrawable", async () => {
      const { f, model } = await setup();
      const [alice] = f.traders;
      await depositBoth(f, model, alice, usdc(2_000));
      await fillAndCheck(f, model, alice, ETH, d18(10));
      await priceBoth(f, model, ETH, "2100"); // +$1,000 unrealized
      const s = await expectSummary(f, model, alice.address);
      expect(s.equityD18 > s.collateral * 10n ** 12n).to.equal(true);
      // free = min(collateral, equity) − IM: the profit does not count.
      expect(s.freeCollateral).to.equal((s.collateral * 10n ** 12n - s.initialRequirementD18) / 10n ** 12n);

      const t1 = (await latestTs()) + 1n;
      const free1 = model.summary(alice.address, t1).freeCollateral;
      await time.setNextBlockTimestamp(Number(t1));
      await f.vault.connect(alice).withdraw(free1, alice.address);
      model.setC(alice.address, model.c(alice.address) - free1);
      const t2 = t1 + 1n;
      const free2 = model.summary(alice.address, t2).freeCollateral;
      expect(free2).to.equal(0n);
      await time.setNextBlockTimestamp(Number(t2));
      await expect(f.vault.connect(alice).withdraw(1n, alice.address))
        .to.be.revertedWithCustomError(f.vault, "VaultInsufficientFreeCollateral")
        .withArgs(alice.address, 1n, 0n);
      await expectChainMatchesModel(f, model, [alice.address]);
    });

    it("healthBatch returns exactly accountSummary for many accounts in one call", async () => {
      const { f, model } = await setup();
      const [a, b, c, d, e] = f.traders;
      for (const t of [a, b, c, d, e]) await depositBoth(f, model, t, usdc(4_000));
      await fillAndCheck(f, model, a, ETH, d18(20));
      await fillAndCheck(f, model, b, ETH, -d18(7));
      await fillAndCheck(f, model, c, BTC, d18("0.5"));
      await fillAndCheck(f, model, e, ETH, d18(2));
      await fillAndCheck(f, model, e, BTC, -d18("0.3"));
      await priceBoth(f, model, ETH, "1820");
      const accounts = [a, b, c, d, e, f.others[0]].map((x) => x.address);
      const batch = await f.lens.healthBatch(accounts);
      expect(batch.length).to.equal(accounts.length);
      for (let i = 0; i < accounts.length; i++) {
        expect(asSummary(batch[i])).to.deep.equal(asSummary(await f.clearingHouse.accountSummary(accounts[i])));
      }
      // ETH fell 9%: Alice's 20 ETH long on $4,000 is below the hard floor, and both views say so.
      expect(batch[0].liquidatable).to.equal(true);
      expect(model.summary(a.address, await latestTs()).liquidatable).to.equal(true);
    });

    it("healthBatch returns an all-zero summary for an account whose market cannot be priced and still answers for the others", async () => {
      const { f, model } = await setup();
      const [a, b] = f.traders;
      for (const t of [a, b]) await depositBoth(f, model, t, usdc(4_000));
      await fillAndCheck(f, model, a, ETH, d18(2));
      await fillAndCheck(f, model, b, BTC, d18("0.1"));
      const btcUpdated = (await f.priceFeeds[BTC].latestRoundData())[3];
      // 4,510 s later BTC's round is past PriceMaxAge (4,500 s): nothing in BTC can be priced.
      await time.setNextBlockTimestamp(Number(btcUpdated + 4509n));
      await setPrice(f, ETH, "2000");
      await time.increase(1);
      await expect(f.clearingHouse.accountSummary(b.address)).to.be.revertedWithCustomError(f.riskManager, "OracleStale");
      const batch = await f.lens.healthBatch([a.address, b.address]);
      expect(asSummary(batch[0])).to.deep.equal(asSummary(await f.clearingHouse.accountSummary(a.address)));
      expect(asSummary(batch[1])).to.deep.equal({
        collateral: 0n,
        unrealizedPnlD18: 0n,
        equityD18: 0n,
        initialRequirementD18: 0n,
        maintenanceRequirementD18: 0n,
        freeCollateral: 0n,
        healthD18: 0n,
        liquidatable: false,
        status: STATUS.Healthy,
        marginCallDeadline: 0n,
      });
    });

    it("a volatility jump alone raises both requirements and can make an account liquidatable", async () => {
      const { f, model } = await setup();
      const [alice] = f.traders;
      await depositBoth(f, model, alice, usdc(1_000));
      await fillAndCheck(f, model, alice, ETH, d18(14));
      const before = await expectSummary(f, model, alice.address);
      expect(before.liquidatable).to.equal(false);
      await volBoth(f, model, ETH, "150");
      const [sigma, mmr, imr] = await f.riskManager.ratios(ETH);
      expect(sigma).to.equal(d18("1.5"));
      expect({ mmr, imr }).to.deep.equal(baseRatios(model.markets[ETH].p, d18("1.5")));
      const after = await expectSummary(f, model, alice.address);
      expect(after.maintenanceRequirementD18 > before.maintenanceRequirementD18).to.equal(true);
      expect(after.liquidatable).to.equal(true);
      await liquidateAndCheck(f, model, f.keeper, alice.address);
    });
  });

  describe("liquidationPriceD18", () => {
    async function probe(f: Fixture, model: Model, trader: HardhatEthersSigner, m: number, long: boolean) {
      const liq = await f.lens.liquidationPriceD18(trader.address, m);
      expect(liq > 0n).to.equal(true);
      const bad = long ? liq - liq / 1_000_000n : liq + liq / 1_000_000n; // 1e-6 beyond
      const good = long ? liq + liq / 1_000_000n : liq - liq / 1_000_000n; // 1e-6 short of it
      await priceBothD18(f, model, m, feedAnswer(good, long));
      const sGood = await expectSummary(f, model, trader.address);
      expect(sGood.status, `healthy at ${good}`).to.equal(STATUS.Healthy);
      expect(sGood.healthD18 >= WAD).to.equal(true);
      await priceBothD18(f, model, m, feedAnswer(bad, !long));
      const sBad = await expectSummary(f, model, trader.address);
      // Just under maintenance: margin-callable (liquidatable at once only below the hard floor).
      expect(sBad.status, `under maintenance at ${bad}`).to.equal(STATUS.MarginCallable);
      expect(sBad.healthD18 < WAD).to.equal(true);
      return liq;
    }

    it("a long falls under its maintenance requirement just below its liquidation price and not just above", async () => {
      const { f, model } = await setup();
      const [alice] = f.traders;
      await depositBoth(f, model, alice, usdc(1_500));
      await fillAndCheck(f, model, alice, ETH, d18(15));
      const liq = await probe(f, model, alice, ETH, true);
      expect(liq < d18(2000) && liq > d18(1900)).to.equal(true);
    });

    it("a short falls under its maintenance requirement just above its liquidation price and not just below", async () => {
      const { f, model } = await setup();
      const [, bob] = f.traders;
      await depositBoth(f, model, bob, usdc(3_000));
      await fillAndCheck(f, model, bob, BTC, -d18("1.2"));
      const liq = await probe(f, model, bob, BTC, false);
      expect(liq > d18(60000)).to.equal(true);
    });

    it("with positions in two markets, the price solves for one market holding the other fixed", async () => {
      const { f, model } = await setup();
      const [, , carol] = f.traders;
      await depositBoth(f, model, carol, usdc(3_000));
      await fillAndCheck(f, model, carol, ETH, d18(20));
      await fillAndCheck(f, model, carol, BTC, -d18("0.5"));
      await priceBoth(f, model, BTC, "60300");
      await probe(f, model, carol, ETH, true);
      await expectChainMatchesModel(f, model, [carol.address]);
    });

    it("is zero without a position", async () => {
      const { f } = await setup();
      expect(await f.lens.liquidationPriceD18(f.traders[0].address, ETH)).to.equal(0n);
    });
  });
});
