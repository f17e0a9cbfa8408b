import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, usdc, d18, ETH, BTC, Fixture, FEED_ONLY_MARKETS } from "../fixture";
import { PARAM } from "../../scripts/lib/params";
import {
  Model,
  abs,
  depositBoth,
  priceBoth,
  tradeAndCheck,
  fillAndCheck,
  expectChainMatchesModel,
  ledgers,
  vaultEvents,
  latestTs,
  positionModifiedArgs,
  chEventsOf,
} from "./math";

async function setup(collateral = usdc(20_000)) {
  const f = await loadFixture(sigmaFixture);
  const model = await Model.load(f);
  const [alice, bob, carol, dave, erin] = f.traders;
  for (const t of f.traders) await depositBoth(f, model, t, collateral);
  return { f, model, alice, bob, carol, dave, erin };
}

/** Turns funding off in a market so that hand-computed literals need no funding term. */
async function noFunding(f: Fixture, model: Model, marketId: number) {
  await f.riskManager.setMarketParam(marketId, PARAM.MaxFundingRate, 0);
  await model.syncRisk(f, marketId);
}

async function depositInsurance(f: Fixture, model: Model, amount: bigint) {
  await f.token.mint(f.admin.address, amount);
  await f.token.connect(f.admin).approve(await f.vault.getAddress(), amount);
  await f.vault.connect(f.admin).depositInsurance(amount);
  model.ins += amount;
}

describe("ClearingHouse fills", () => {
  describe("position lifecycle with exact values", () => {
    it("opening a 10 ETH long at $2,000 fills at $2,000.10, pays a $10.0005 taker fee split 60/20/20", async () => {
      const { f, model, alice } = await setup();
      const before = await ledgers(f, [alice.address]);
      const r = await fillAndCheck(f, model, alice, ETH, d18(10));
      // p·(2S + 2·0 + 10)/(2S) with S = 100,000: 2000 · 200010/200000.
      expect(r.price).to.equal(d18("2000.1"));
      expect(r.fee).to.equal(d18("10.0005")); // 10 · 2000.1 · 0.05%
      expect(r.realized).to.equal(0n);
      const pos = await f.clearingHouse.position(alice.address, ETH);
      expect(pos.sizeD18).to.equal(d18(10));
      expect(pos.costBasisD18).to.equal(d18(20001)); // 10 · 2000.1, funding index 0
      const after = await ledgers(f, [alice.address]);
      expect(after.collateral[alice.address] - before.collateral[alice.address]).to.equal(-10_000_500n);
      expect(after.pool - before.pool).to.equal(6_000_300n);
      expect(after.ins - before.ins).to.equal(2_000_100n);
      expect(after.fees - before.fees).to.equal(2_000_100n);
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(1n << BigInt(ETH));
    });

    it("increasing a long adds the new fill to the cost basis and realizes nothing", async () => {
      const { f, model, alice } = await setup();
      await noFunding(f, model, ETH);
      await fillAndCheck(f, model, alice, ETH, d18(10));
      const r = await fillAndCheck(f, model, alice, ETH, d18(5));
      // Skew 10 → 15: 2000 · (200000 + 20 + 5)/200000 = 2000.25.
      expect(r.price).to.equal(d18("2000.25"));
      expect(r.realized).to.equal(0n);
      expect(r.fee).to.equal(d18("5.000625"));
      const pos = await f.clearingHouse.position(alice.address, ETH);
      expect([pos.sizeD18, pos.costBasisD18]).to.deep.equal([d18(15), d18("30002.25")]);
      expect(await f.vault.collateralOf(alice.address)).to.equal(usdc(20_000) - 10_000_500n - 5_000_625n);
    });

    it("a partial close realizes (fill − entry) on the closed part and pays the maker fee since it shrinks the skew", async () => {
      const { f, model, alice } = await setup();
      await noFunding(f, model, ETH);
      await fillAndCheck(f, model, alice, ETH, d18(10));
      await priceBoth(f, model, ETH, "2100");
      const before = await ledgers(f, [alice.address]);
      const r = await fillAndCheck(f, model, alice, ETH, -d18(4));
      // Skew 10 → 6: 2100 · (200000 + 20 − 4)/200000 = 2100.168 (a sale against a long skew earns the premium).
      expect(r.price).to.equal(d18("2100.168"));
      // 4 · 2100.168 − 4/10 · 20001 = 8400.672 − 8000.4
      expect(r.realized).to.equal(d18("400.272"));
      expect(r.fee).to.equal(d18("1.6801344")); // 4 · 2100.168 · 0.02% (maker)
      const after = await ledgers(f, [alice.address]);
      expect(after.collateral[alice.address] - before.collateral[alice.address]).to.equal(400_272_000n - 1_680_135n);
      expect(after.pool - before.pool).to.equal(-400_272_000n + 1_008_081n);
      expect(after.ins - before.ins).to.equal(336_027n);
      expect(after.fees - before.fees).to.equal(336_027n);
      const pos = await f.clearingHouse.position(alice.address, ETH);
      expect([pos.sizeD18, pos.costBasisD18]).to.deep.equal([d18(6), d18("12000.6")]);
    });

    it("closing the whole position realizes the rest, zeroes it and frees the market slot", async () => {
      const { f, model, alice } = await setup();
      await noFunding(f, model, ETH);
      await fillAndCheck(f, model, alice, ETH, d18(10));
      await priceBoth(f, model, ETH, "2100");
      await fillAndCheck(f, model, alice, ETH, -d18(4));
      const r = await fillAndCheck(f, model, alice, ETH, -d18(6));
      // Skew 6 → 0: 2100 · (200000 + 12 − 6)/200000 = 2100.063; 6 · 2100.063 − 12000.6 = 599.778.
      expect(r.price).to.equal(d18("2100.063"));
      expect(r.realized).to.equal(d18("599.778"));
      expect(r.newSize).to.equal(0n);
      const pos = await f.clearingHouse.position(alice.address, ETH);
      expect([pos.sizeD18, pos.costBasisD18]).to.deep.equal([0n, 0n]);
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
      const st = await f.clearingHouse.marketState(ETH);
      expect([st.skewD18, st.netCostBasisD18, st.oiLongD18, st.oiShortD18]).to.deep.equal([0n, 0n, 0n, 0n]);
      // Round trip: +$1,000.05 realized, −$10.0005 − $1.680135 − $2.520076 in fees.
      expect(await f.vault.collateralOf(alice.address)).to.equal(usdc(20_000) + 1_000_050_000n - 10_000_500n - 1_680_135n - 2_520_076n);
    });

    it("flipping long → short closes the long at the fill and opens the rest short at the same fill", async () => {
      const { f, model, alice } = await setup();
      await noFunding(f, model, ETH);
      await fillAndCheck(f, model, alice, ETH, d18(10));
      await priceBoth(f, model, ETH, "1900");
      const before = await ledgers(f, [alice.address]);
      const r = await fillAndCheck(f, model, alice, ETH, -d18(25));
      // Skew 10 → −15: 1900 · (200000 + 20 − 25)/200000 = 1899.9525.
      expect(r.price).to.equal(d18("1899.9525"));
      expect(r.realized).to.equal(d18("-1001.475")); // 10 · 1899.9525 − 20001
      // 10 units reduce the skew (maker 0.02%), 15 grow it (taker 0.05%).
      expect(r.fee).to.equal(d18("18.04954875"));
      const pos = await f.clearingHouse.position(alice.address, ETH);
      expect([pos.sizeD18, pos.costBasisD18]).to.deep.equal([-d18(15), d18("-28499.2875")]);
      const after = await ledgers(f, [alice.address]);
      expect(after.collateral[alice.address] - before.collateral[alice.address]).to.equal(-1_001_475_000n - 18_049_549n);
      expect(after.pool - before.pool).to.equal(1_001_475_000n + (18_049_549n * 6n) / 10n);
    });

    it("a fill exactly to zero from a short (buy-to-close) realizes the short's PnL", async () => {
      const { f, model, alice } = await setup();
      await noFunding(f, model, ETH);
      await fillAndCheck(f, model, alice, ETH, -d18(8));
      await priceBoth(f, model, ETH, "1950");
      const r = await fillAndCheck(f, model, alice, ETH, d18(8));
      // Open: 2000 · (200000 − 8)/200000 = 1999.92 → basis −15999.36. Close: 1950 · (200000 − 16 + 8)/200000 = 1949.922.
      expect(r.price).to.equal(d18("1949.922"));
      expect(r.realized).to.equal(d18("15999.36") - d18("15599.376"));
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
    });
  });

  describe("skew premium and fees", () => {
    it("the skew premium grows with the skew: buyers pay more and sellers receive more against a long skew", async () => {
      const { f, model, alice, bob, carol } = await setup(usdc(50_000));
      await noFunding(f, model, ETH);
      const a = await fillAndCheck(f, model, alice, ETH, d18(100));
      expect(a.price).to.equal(d18("2001")); // 2000 · 200100/200000
      const b = await fillAndCheck(f, model, bob, ETH, d18(50));
      expect(b.price).to.equal(d18("2002.5")); // 2000 · (200000 + 200 + 50)/200000
      const c = await fillAndCheck(f, model, carol, ETH, -d18(50));
      expect(c.price).to.equal(d18("2002.5")); // 2000 · (200000 + 300 − 50)/200000
      // Carol's sale shrinks the skew: maker rate, 50 · 2002.5 · 0.02%.
      expect(c.fee).to.equal(d18("20.025"));
    });

    it("a trade that reduces |skew| pays the maker fee; one that crosses zero pays maker up to zero and taker beyond", async () => {
      const { f, model, alice, bob, carol } = await setup();
      await noFunding(f, model, ETH);
      await fillAndCheck(f, model, alice, ETH, d18(10));
      const b = await fillAndCheck(f, model, bob, ETH, -d18(4));
      expect(b.price).to.equal(d18("2000.16"));
      expect(b.fee).to.equal(d18("1.600128")); // 4 · 2000.16 · 0.02%
      const c = await fillAndCheck(f, model, carol, ETH, -d18(15));
      // Skew 6 → −9: 2000 · (200000 + 12 − 15)/200000 = 1999.97; 6 at maker, 9 at taker.
      expect(c.price).to.equal(d18("1999.97"));
      expect(c.fee).to.equal(d18("11.399829")); // (6 · 0.02% + 9 · 0.05%) · 1999.97
      // A buy against the new short skew is a maker trade again.
      const a2 = await fillAndCheck(f, model, alice, ETH, d18(9));
      expect(a2.fee).to.equal((d18(9) * d18("0.0002") * a2.price + 10n ** 36n - 1n) / 10n ** 36n);
    });

    it("quote() equals the fill and fee of the next trade", async () => {
      const { f, model, alice, bob } = await setup();
      await fillAndCheck(f, model, alice, ETH, d18("12.345678901234567891"));
      const [qp, qf] = await f.lens.quote(ETH, -d18("20.5"));
      const r = await fillAndCheck(f, model, bob, ETH, -d18("20.5"));
      expect([r.price, r.fee]).to.deep.equal([qp, qf]);
    });
  });

  describe("zero-sum settlement", () => {
    it("a trader closing an underwater position realizes the loss; the shortfall is covered by insurance first, then the pool, to the wei", async () => {
      const { f, model, alice } = await setup(usdc(1_000));
      await depositInsurance(f, model, usdc(500));
      await fillAndCheck(f, model, alice, ETH, d18(15));
      await priceBoth(f, model, ETH, "1800"); // −$3,000 on 15 ETH: three times the collateral
      const before = await ledgers(f, [alice.address]);
      const o = await tradeAndCheck(f, model, alice, ETH, -d18(15));
      if (!o.predicted.ok) throw o.predicted.err;
      const r = o.predicted.r;
      expect(r.badDebt, "bad debt predicted").to.not.equal(undefined);
      const bad = vaultEvents(f, o.receipt).find((e) => e.name === "BadDebtCovered")!;
      expect([...bad.args]).to.deep.equal([alice.address, r.badDebt!.shortfall, r.badDebt!.fromInsurance, r.badDebt!.socialized]);
      // The shortfall is the loss beyond the collateral; the whole insurance fund pays first.
      expect(r.badDebt!.shortfall).to.equal(-r.pnlTokens - before.collateral[alice.address]);
      expect(r.badDebt!.fromInsurance).to.equal(before.ins);
      expect(r.badDebt!.socialized).to.equal(r.badDebt!.shortfall - before.ins);
      expect(r.feePaid).to.equal(0n); // nothing left to pay a fee with
      const after = await ledgers(f, [alice.address]);
      expect(after.collateral[alice.address]).to.equal(0n);
      expect(after.ins).to.equal(0n);
      expect(after.collateral[alice.address] - before.collateral[alice.address] + (after.pool - before.pool) + (after.ins - before.ins) + (after.fees - before.fees)).to.equal(0n);
      await expectChainMatchesModel(f, model, [alice.address]);
    });

    it("the Vault's token balance always equals Σ collateral + pool + insurance + protocol fees", async () => {
      const { f, model, alice, bob, carol } = await setup();
      await fillAndCheck(f, model, alice, ETH, d18("7.77"));
      await fillAndCheck(f, model, bob, BTC, -d18("0.333"));
      await priceBoth(f, model, ETH, "2122.22");
      await fillAndCheck(f, model, carol, ETH, -d18("3.1"));
      await fillAndCheck(f, model, alice, ETH, -d18("7.77"));
      let sum = (await f.vault.poolBalance()) + (await f.vault.insuranceFund()) + (await f.vault.protocolFees());
      for (const s of await ethers.getSigners()) sum += await f.vault.collateralOf(s.address);
      expect(await f.token.balanceOf(await f.vault.getAddress())).to.equal(sum);
    });
  });

  describe("market aggregates", () => {
    it("skew, open interest and net cost basis equal the sums over positions after a pseudo-random sequence in both markets", async () => {
      const f = await loadFixture(sigmaFixture);
      const model = await Model.load(f);
      const traders = [...f.traders, ...f.others.slice(0, 3)];
      for (const t of f.others.slice(0, 3)) {
        await f.token.mint(t.address, usdc(100_000));
        await f.token.connect(t).approve(await f.vault.getAddress(), ethers.MaxUint256);
      }
      for (const t of traders) await depositBoth(f, model, t, usdc(60_000));
      let seed = 0x5eed1234n;
      const rnd = (n: bigint) => {
        let x = 0n;
        for (let k = 0; k < 3; k++) {
          seed = (seed * 6364136223846793005n + 1442695040888963407n) % 2n ** 64n;
          x = (x << 32n) | (seed >> 32n);
        }
        return x % n;
      };
      const ethPrices = ["2000", "2013.37", "1987.65", "2050.5", "1999.99"];
      const btcPrices = ["60000", "60321.5", "59777.77", "61000.01"];
      let filled = 0;
      for (let i = 0; i < 36; i++) {
        if (i % 7 === 3) await priceBoth(f, model, ETH, ethPrices[Number(rnd(BigInt(ethPrices.length)))]);
        if (i % 9 === 5) await priceBoth(f, model, BTC, btcPrices[Number(rnd(BigInt(btcPrices.length)))]);
        const t = traders[Number(rnd(BigInt(traders.length)))];
        const m = rnd(3n) === 0n ? BTC : ETH;
        const held = model.pos(t.address, m).size;
        let delta: bigint;
        if (held !== 0n && rnd(4n) === 0n) delta = -held; // close
        else {
          const mag = m === ETH ? rnd(20n * 10n ** 18n) + 10n ** 15n : rnd(10n ** 18n) + 10n ** 13n;
          delta = rnd(2n) === 0n ? mag : -mag;
        }
        const o = await tradeAndCheck(f, model, t, m, delta);
        if (o.predicted.ok) filled++;
      }
      expect(filled).to.be.greaterThan(30);
      await expectChainMatchesModel(f, model, traders.map((t) => t.address));
      for (const m of [ETH, BTC]) {
        let skew = 0n;
        let oiL = 0n;
        let oiS = 0n;
        let basis = 0n;
        for (const t of traders) {
          const p = await f.clearingHouse.position(t.address, m);
          skew += p.sizeD18;
          if (p.sizeD18 > 0n) oiL += p.sizeD18;
          else oiS += -p.sizeD18;
          basis += p.costBasisD18;
        }
        const st = await f.clearingHouse.marketState(m);
        expect([st.skewD18, st.oiLongD18, st.oiShortD18, st.netCostBasisD18], `market ${m}`).to.deep.equal([skew, oiL, oiS, basis]);
        expect(oiL > 0n && oiS > 0n, "both sides open").to.equal(true);
      }
      // The O(1) aggregate PnL the pool uses equals Σ of positions' PnL up to per-position rounding.
      const now = await latestTs();
      const total = await f.clearingHouse.tradersUnrealizedPnlD18();
      expect(total).to.equal(model.tradersPnl(now));
      let sum = 0n;
      for (const t of traders) sum += (await f.clearingHouse.accountSummary(t.address)).unrealizedPnlD18;
      expect(abs(total - sum) <= BigInt(4 * traders.length)).to.equal(true, `aggregate ${total} vs Σ ${sum}`);
    });
  });

  describe("limits", () => {
    it("an order taking open interest over OiCapRatio · NAV is cancelled with ClearingHouseOpenInterestCap; reducing is never capped", async () => {
      const { f, model, alice, bob } = await setup();
      await f.riskManager.setMarketParam(ETH, PARAM.OiCapRatio, d18("0.01")); // cap ≈ $10,000 per side
      await model.syncRisk(f, ETH);
      const o = await tradeAndCheck(f, model, alice, ETH, d18(6)); // $12,000 long
      expect(o.predicted.ok).to.equal(false);
      if (!o.predicted.ok) {
        expect(o.predicted.err.errName).to.equal("ClearingHouseOpenInterestCap");
        expect(o.predicted.err.args[1]).to.equal(d18(12000)); // long OI · price
      }
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
      await fillAndCheck(f, model, alice, ETH, d18(4)); // $8,000 fits
      await fillAndCheck(f, model, bob, ETH, -d18(4)); // the short side has its own cap
      const over = await tradeAndCheck(f, model, bob, ETH, -d18(2)); // shorts to $12,000
      expect(over.predicted.ok).to.equal(false);
      await f.riskManager.setMarketParam(ETH, PARAM.OiCapRatio, 0);
      await model.syncRisk(f, ETH);
      await fillAndCheck(f, model, alice, ETH, -d18(3)); // reducing under a zero cap still fills
      await expectChainMatchesModel(f, model, [alice.address, bob.address]);
    });

    it("an account holds positions in at most MAX_MARKETS_PER_ACCOUNT markets; a slot frees when a position closes", async () => {
      const { f, model, alice } = await setup();
      const max = Number(await f.clearingHouse.MAX_MARKETS_PER_ACCOUNT());
      expect(max).to.equal(8);
      const Agg = await ethers.getContractFactory("MockV3Aggregator");
      const spec = FEED_ONLY_MARKETS[0];
      for (let i = 2; i <= max; i++) {
        const pf = await Agg.deploy(8, 2000n * 10n ** 8n);
        const vf = await Agg.deploy(2, 5000n);
        await f.riskManager.addMarket(ethers.encodeBytes32String(`M${i}-PERP`), await pf.getAddress(), await vf.getAddress(), spec.params);
        await model.addMarketFromChain(f, i);
      }
      expect(await f.riskManager.marketCount()).to.equal(BigInt(max + 1));
      for (let m = 0; m < max; m++) await fillAndCheck(f, model, alice, m, m === BTC ? d18("0.01") : d18("0.1"));
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal((1n << BigInt(max)) - 1n);
      const o = await tradeAndCheck(f, model, alice, max, d18("0.1"));
      expect(o.predicted.ok).to.equal(false);
      if (!o.predicted.ok) expect(o.predicted.err.errName).to.equal("ClearingHouseTooManyMarkets");
      // Closing one position frees its slot for the ninth market.
      await fillAndCheck(f, model, alice, 3, -d18("0.1"));
      await fillAndCheck(f, model, alice, max, d18("0.1"));
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(((1n << BigInt(max + 1)) - 1n) & ~(1n << 3n));
    });

    it("while opening is paused, opening and flipping are cancelled ClearingHouseMarketReduceOnly but reducing and closing fill", async () => {
      const { f, model, alice, bob } = await setup();
      await fillAndCheck(f, model, alice, ETH, d18(5));
      await f.riskManager.setOpeningPaused(ETH, true);
      const paused = await f.riskManager.BREAKER_OPENING_PAUSED();
      model.markets[ETH].breakers = paused;
      const open = await tradeAndCheck(f, model, bob, ETH, d18(1));
      expect(open.predicted.ok).to.equal(false);
      if (!open.predicted.ok) expect(open.predicted.err.args).to.deep.equal([BigInt(ETH), paused]);
      const flip = await tradeAndCheck(f, model, alice, ETH, -d18(6));
      expect(flip.predicted.ok).to.equal(false);
      await fillAndCheck(f, model, alice, ETH, -d18(2));
      await fillAndCheck(f, model, alice, ETH, -d18(3));
      expect(await f.clearingHouse.accountMarkets(alice.address)).to.equal(0n);
      // Other markets are unaffected.
      await fillAndCheck(f, model, bob, BTC, d18("0.1"));
    });
  });

  it("PositionModified reports the fill exactly as the position changed", async () => {
    const { f, model, alice } = await setup();
    const r = await fillAndCheck(f, model, alice, BTC, -d18("0.25"));
    const pm = chEventsOf(f, r.receipt, "PositionModified");
    expect(positionModifiedArgs(pm)).to.deep.equal([alice.address, BigInt(BTC), -d18("0.25"), r.price, -d18("0.25"), 0n, r.fee]);
    // BTC: S = 5,000; 60000 · (10000 − 0.25)/10000 rounded down.
    expect(r.price).to.equal(d18("59998.5"));
    expect((await f.clearingHouse.position(alice.address, BTC)).costBasisD18).to.equal(-d18("14999.625"));
  });
});
