// Circuit breakers: each condition turns the market reduce-only by itself and clears by itself when the
// condition clears. While tripped, opening or growing a position is cancelled with
// ClearingHouseMarketReduceOnly(market, flags), while reducing, adding collateral and liquidation keep working
// (liquidation pauses only for a sequencer outage, and waits for a price fresh enough for liquidations; with a
// stale price every order waits for the next round, which clears the breaker).
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { ethers } from "hardhat";
import { deployFixture, setPrice, setVol, usdc, d18, Fixture, chEvents } from "../fixture";
import { STATUS } from "../clearinghouse/math";
import { ETH, BREAKER, execOrder, blockTs } from "./helpers";

const GRACE = 3600;

/** FEED-σ markets with an L2 sequencer feed (1 h grace). Four ETH traders: `steady` 2× long 10, `thin` long 10
 * on 1,300 USDC (liquidatable once ETH is at 1,890), `opener` with collateral and no position, and a keeper. */
async function breakerFixture() {
  const f = await deployFixture({ sequencerGracePeriod: GRACE });
  const [steady, thin, opener] = f.traders;
  await f.vault.connect(steady).deposit(steady.address, usdc(10000));
  await f.vault.connect(thin).deposit(thin.address, usdc(1300));
  await f.vault.connect(opener).deposit(opener.address, usdc(10000));
  expect((await execOrder(f, steady, ETH, d18(10))).filled).to.equal(true);
  expect((await execOrder(f, thin, ETH, d18(10))).filled).to.equal(true);
  // −5.5%: under the 10% jump bound, enough to put `thin` below its hard floor.
  await setPrice(f, ETH, "1890");
  await f.riskManager.pokeVolatility(ETH);
  return { f, steady, thin, opener };
}

type Liq = "works" | "waits for a fresh price" | "paused";
interface Case {
  name: string;
  flag: bigint;
  /** The breaker means no usable round: orders wait for the next one (which clears it) instead of filling. */
  ordersWait?: boolean;
  trip: (f: Fixture) => Promise<void>;
  clear: (f: Fixture) => Promise<void>;
  liquidation: Liq;
}

const CASES: Case[] = [
  {
    name: "σ above SigmaBreaker (BREAKER_SIGMA)",
    flag: BREAKER.SIGMA,
    trip: async (f) => {
      expect((await f.riskManager.marketParams(ETH)).sigmaBreakerD18).to.equal(d18("2.5"));
      await setVol(f, ETH, "280");
    },
    clear: async (f) => {
      // The vol feed falls back to 50%: σ decays (6 h half-life) and stays above 250% for a while…
      await setVol(f, ETH, "50");
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER.SIGMA);
      // …two hours later σ = 50% + 230%·2^(−1/3) ≈ 232.5% < 250%: the breaker clears on that poke.
      await time.increase(2 * 3600);
      await setPrice(f, ETH, "1890");
      await f.volFeeds[ETH].updateAnswer(parseUnits("50", 2));
      await f.riskManager.pokeVolatility(ETH);
      const [sigma] = await f.riskManager.ratios(ETH);
      expect(sigma < d18("2.5") && sigma > d18("2.3")).to.equal(true);
    },
    liquidation: "works",
  },
  {
    name: "a round moving more than PriceJumpBreaker (BREAKER_PRICE_JUMP)",
    flag: BREAKER.PRICE_JUMP,
    trip: async (f) => {
      await setPrice(f, ETH, "1690"); // −10.6% in one round
      await expect(f.riskManager.pokeVolatility(ETH)).to.emit(f.riskManager, "PriceJumpDetected");
    },
    clear: async (f) => {
      // A poke with no new round keeps it; a poke that folds a clean round clears it.
      await f.riskManager.pokeVolatility(ETH);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER.PRICE_JUMP);
      await setPrice(f, ETH, "1700");
      await f.riskManager.pokeVolatility(ETH);
    },
    liquidation: "works",
  },
  {
    name: "a price older than LiquidationPriceMaxAge (BREAKER_PRICE_STALE)",
    flag: BREAKER.PRICE_STALE,
    trip: async (f) => {
      const age = (await f.riskManager.marketParams(ETH)).liquidationPriceMaxAge;
      const [, , , updatedAt] = await f.priceFeeds[ETH].latestRoundData();
      await time.increaseTo(updatedAt + age + 1n);
    },
    clear: async (f) => {
      await setPrice(f, ETH, "1890");
    },
    ordersWait: true,
    liquidation: "waits for a fresh price",
  },
  {
    name: "σ not poked within VolMaxAge (BREAKER_VOL_STALE)",
    flag: BREAKER.VOL_STALE,
    trip: async (f) => {
      const volMaxAge = Number((await f.riskManager.marketParams(ETH)).volMaxAge);
      await time.increase(volMaxAge + 1);
      await setPrice(f, ETH, "1890"); // the price stays fresh; only σ is old
    },
    clear: async (f) => {
      await setVol(f, ETH, "50"); // a fresh volatility round, poked
    },
    liquidation: "works",
  },
  {
    name: "the guardian's pause (BREAKER_OPENING_PAUSED)",
    flag: BREAKER.OPENING_PAUSED,
    trip: async (f) => {
      await expect(f.riskManager.setOpeningPaused(ETH, true)).to.emit(f.riskManager, "OpeningPausedSet").withArgs(ETH, true, f.admin.address);
    },
    clear: async (f) => {
      await f.riskManager.setOpeningPaused(ETH, false);
    },
    liquidation: "works",
  },
  {
    name: "the L2 sequencer down, then in its grace period (BREAKER_SEQUENCER)",
    flag: BREAKER.SEQUENCER,
    trip: async (f) => {
      const seq = f.sequencerFeed!;
      const now = BigInt(await time.latest()) + 1n;
      await time.setNextBlockTimestamp(now);
      await seq.updateRoundData((await seq.latestRound()) + 1n, 1n, now, now); // down since now
      expect(await f.riskManager.liquidationsAllowed()).to.equal(false);
    },
    clear: async (f) => {
      const seq = f.sequencerFeed!;
      const up = BigInt(await time.latest()) + 1n;
      await time.setNextBlockTimestamp(up);
      await seq.updateRoundData((await seq.latestRound()) + 1n, 0n, up, up); // back up: grace starts
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER.SEQUENCER);
      expect(await f.riskManager.liquidationsAllowed()).to.equal(false);
      await time.increaseTo(up + BigInt(GRACE) + 1n);
      await setPrice(f, ETH, "1890");
      expect(await f.riskManager.liquidationsAllowed()).to.equal(true);
    },
    liquidation: "paused",
  },
];

describe("risk engine: circuit breakers trip and clear by themselves; nothing that reduces risk is blocked", () => {
  it("before any breaker: the market has no flags, opening fills and the thin account is liquidatable", async () => {
    const { f, thin, opener } = await loadFixture(breakerFixture);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    expect((await f.clearingHouse.accountSummary(thin.address)).status).to.equal(STATUS.Liquidatable);
    expect((await execOrder(f, opener, ETH, d18(1))).filled).to.equal(true);
  });

  for (const c of CASES) {
    describe(c.name, () => {
      it("trips by itself: marketRisk reports exactly this flag", async () => {
        const { f } = await loadFixture(breakerFixture);
        await c.trip(f);
        expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(c.flag);
      });

      if (!c.ordersWait) {
        it("cancels opening and growing a position with ClearingHouseMarketReduceOnly(market, flags), and flipping sides too", async () => {
          const { f, steady, opener } = await loadFixture(breakerFixture);
          await c.trip(f);
          for (const [who, size] of [
            [opener, d18(1)],
            [opener, -d18(1)],
            [steady, d18(1)],
            [steady, -d18(15)],
          ] as const) {
            const o = await execOrder(f, who, ETH, size);
            expect(o.filled, `${who.address} ${size}`).to.equal(false);
            expect(o.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
            expect(o.reason!.args).to.deep.equal([BigInt(ETH), c.flag]);
          }
          expect((await f.clearingHouse.position(opener.address, ETH)).sizeD18).to.equal(0n);
          expect((await f.clearingHouse.position(steady.address, ETH)).sizeD18).to.equal(d18(10));
        });

        it("lets positions be reduced and closed, and collateral be added", async () => {
          const { f, steady, thin } = await loadFixture(breakerFixture);
          await c.trip(f);
          const o = await execOrder(f, steady, ETH, -d18(4));
          expect(o.filled).to.equal(true);
          expect((await f.clearingHouse.position(steady.address, ETH)).sizeD18).to.equal(d18(6));
          expect((await execOrder(f, steady, ETH, -d18(6))).filled).to.equal(true);
          expect((await f.clearingHouse.position(steady.address, ETH)).sizeD18).to.equal(0n);
          const before = await f.vault.collateralOf(thin.address);
          await expect(f.vault.connect(thin).deposit(thin.address, usdc(100)))
            .to.emit(f.vault, "Deposited")
            .withArgs(thin.address, thin.address, usdc(100));
          expect(await f.vault.collateralOf(thin.address)).to.equal(before + usdc(100));
        });
      } else {
        it("orders wait for a fresh round instead of filling at a stale price (ClearingHouseAwaitingPriceRound), opening and closing alike; collateral can still be added; the next round fills both", async () => {
          const { f, steady, opener } = await loadFixture(breakerFixture);
          await c.trip(f);
          const fee = await f.clearingHouse.minExecutionFee();
          const commit = async (who: typeof steady, size: bigint) => {
            const rc = await (await f.clearingHouse.connect(who).commitOrder(ETH, size, size > 0n ? 2n ** 95n : 0n, { value: fee })).wait();
            return { id: chEvents(f, rc).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint, ts: await blockTs(rc) };
          };
          const open = await commit(opener, d18(1));
          const close = await commit(steady, -d18(4));
          await time.increase(Number(await f.clearingHouse.minDelay()));
          const [, , , updatedAt] = await f.priceFeeds[ETH].latestRoundData();
          for (const o of [open, close]) {
            await expect(f.clearingHouse.connect(f.keeper).executeOrder(o.id))
              .to.be.revertedWithCustomError(f.clearingHouse, "ClearingHouseAwaitingPriceRound")
              .withArgs(o.id, updatedAt, o.ts);
            expect((await f.clearingHouse.order(o.id)).account, "the order stays pending").to.not.equal(ethers.ZeroAddress);
          }
          await expect(f.vault.connect(steady).deposit(steady.address, usdc(100))).to.emit(f.vault, "Deposited");
          await c.clear(f);
          expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
          for (const o of [open, close]) {
            await expect(f.clearingHouse.connect(f.keeper).executeOrder(o.id)).to.emit(f.clearingHouse, "OrderExecuted");
          }
          expect((await f.clearingHouse.position(steady.address, ETH)).sizeD18).to.equal(d18(6));
          expect((await f.clearingHouse.position(opener.address, ETH)).sizeD18).to.equal(d18(1));
        });
      }

      if (c.liquidation === "works") {
        it("lets a liquidatable account be liquidated", async () => {
          const { f, thin } = await loadFixture(breakerFixture);
          await c.trip(f);
          expect((await f.clearingHouse.accountSummary(thin.address)).status).to.equal(STATUS.Liquidatable);
          await expect(f.clearingHouse.connect(f.keeper).liquidate(thin.address)).to.emit(f.clearingHouse, "Liquidated");
          expect((await f.clearingHouse.accountSummary(thin.address)).status).to.equal(STATUS.Healthy);
        });
      } else if (c.liquidation === "paused") {
        it("pauses liquidations (ClearingHouseLiquidationsPaused), the documented choice: users cannot react while the sequencer is out", async () => {
          const { f, thin } = await loadFixture(breakerFixture);
          await c.trip(f);
          await expect(f.clearingHouse.connect(f.keeper).liquidate(thin.address)).to.be.revertedWithCustomError(
            f.clearingHouse,
            "ClearingHouseLiquidationsPaused",
          );
          await expect(f.clearingHouse.connect(f.keeper).liquidateBatch([thin.address])).to.be.revertedWithCustomError(
            f.clearingHouse,
            "ClearingHouseLiquidationsPaused",
          );
          await c.clear(f);
          await expect(f.clearingHouse.connect(f.keeper).liquidate(thin.address)).to.emit(f.clearingHouse, "Liquidated");
        });
      } else {
        it("makes liquidation wait for a price young enough for liquidations (OracleStale), then works on the next round", async () => {
          const { f, thin } = await loadFixture(breakerFixture);
          await c.trip(f);
          const [, , , updatedAt] = await f.priceFeeds[ETH].latestRoundData();
          const age = (await f.riskManager.marketParams(ETH)).liquidationPriceMaxAge;
          await expect(f.clearingHouse.connect(f.keeper).liquidate(thin.address))
            .to.be.revertedWithCustomError(f.riskManager, "OracleStale")
            .withArgs(await f.priceFeeds[ETH].getAddress(), updatedAt, age);
          await c.clear(f);
          await expect(f.clearingHouse.connect(f.keeper).liquidate(thin.address)).to.emit(f.clearingHouse, "Liquidated");
        });
      }

      it("clears by itself when the condition clears: no flags and opening fills again", async () => {
        const { f, opener } = await loadFixture(breakerFixture);
        await c.trip(f);
        await c.clear(f);
        expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
        const o = await execOrder(f, opener, ETH, d18(1));
        expect(o.filled, o.reason?.name).to.equal(true);
        expect((await f.clearingHouse.position(opener.address, ETH)).sizeD18).to.equal(d18(1));
      });
    });
  }

  it("a breaker is per market: a price jump on ETH leaves BTC open", async () => {
    const { f, opener } = await loadFixture(breakerFixture);
    await setPrice(f, ETH, "1690");
    await f.riskManager.pokeVolatility(ETH);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER.PRICE_JUMP);
    expect((await f.riskManager.marketRisk(1, false)).breakers).to.equal(0n);
    expect((await execOrder(f, opener, 1, d18("0.1"))).filled).to.equal(true);
  });

  it("the jump breaker trips as soon as the jump round is published, before any poke: nobody opens at an outlier", async () => {
    const { f, opener } = await loadFixture(breakerFixture);
    await setPrice(f, ETH, "1690");
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER.PRICE_JUMP);
    const o = await execOrder(f, opener, ETH, d18(1));
    expect(o.reason?.name).to.equal("ClearingHouseMarketReduceOnly");
    expect(o.reason!.args).to.deep.equal([BigInt(ETH), BREAKER.PRICE_JUMP]);
  });

  it("the jump breaker reports the move: PriceJumpDetected(market, roundId, |r|) with |r| = |Δp|/p", async () => {
    const { f } = await loadFixture(breakerFixture);
    await setPrice(f, ETH, "1690");
    const [roundId] = await f.priceFeeds[ETH].latestRoundData();
    // (1890 − 1690) / 1890, rounded down.
    const move = ((d18(1890) - d18(1690)) * 10n ** 18n) / d18(1890);
    await expect(f.riskManager.pokeVolatility(ETH)).to.emit(f.riskManager, "PriceJumpDetected").withArgs(ETH, roundId, move);
    // Exactly at the bound (10%) is not a jump.
    await f.riskManager.pokeVolatility(ETH);
    await setPrice(f, ETH, "1859"); // +10.0% from 1690
    await expect(f.riskManager.pokeVolatility(ETH)).to.not.emit(f.riskManager, "PriceJumpDetected");
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
  });
});
