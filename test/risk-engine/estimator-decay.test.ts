// A calm market lowers margin by itself: with σ from the on-chain estimator, a price that stops moving after a
// volatile day makes σ fall to SigmaMin, round by round. Rounds are hourly (Chainlink's ETH/USD heartbeat) and
// a keeper pokes once a day (24 rounds per poke, within MAX_ROUNDS_PER_POKE); the rounds of a day are
// published in one transaction by a phase-aware mock aggregator to keep a five-month replay fast.
//
// The estimator learns an hour-of-day × day-of-week profile (sdk/volatility.ts, docs/BACKTEST.md): under a
// constant price its deseasonalized variance can only fall, while σ itself still carries the weekday profile
// learned on the volatile day. So σ is compared week over week (same weekday and hour), and every day-to-day
// rise is checked to come from the profile alone.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { Fixture, testTimeout } from "../fixture";
import { PARAM, SIGMA_SOURCE } from "../../scripts/lib/params";
import { baseRatios } from "../clearinghouse/math";
import {
  ETH,
  BREAKER,
  EstimatorMirror,
  expectEstimatorMatches,
  pokedSigma,
  targetSigma,
  riskParams,
  estimatorFixture,
  alignToWeek,
  px,
  at,
  blockTs,
  volUpdated,
} from "./helpers";
import type { MockPhasedAggregator } from "../../typechain-types";

const HOUR = 3600n;
const DAY = 24n * HOUR;

/** The estimator fixture with ETH priced by a phase-aware mock that can publish a day of rounds at once. The
 * estimator restarts from that feed's first round (fresh state: σ₀ = 80%, flat profile). */
async function batchFeedFixture() {
  await alignToWeek(9n * HOUR);
  const f = await estimatorFixture();
  const feed = (await (await ethers.getContractFactory("MockPhasedAggregator")).deploy(8, px(2000))) as unknown as MockPhasedAggregator;
  await f.riskManager.setMarketFeeds(ETH, await feed.getAddress(), await f.volFeeds[ETH].getAddress());
  await f.riskManager.pokeVolatility(ETH);
  return { f, feed };
}

/** Publishes `answers` as rounds one hour apart after `t0` and pokes at the last round's time. */
async function dayOfRounds(f: Fixture, feed: MockPhasedAggregator, answers: bigint[], t0: bigint, beforePoke?: () => Promise<unknown>) {
  const times = answers.map((_, i) => t0 + BigInt(i + 1) * HOUR);
  await feed.pushRounds(answers, times);
  const last = times[times.length - 1];
  await at(last);
  if (beforePoke) await beforePoke();
  else await at(last);
  // Folding a day of rounds costs ≈ 2.8M gas: an explicit limit skips the estimateGas dry run.
  const rc = await (await f.riskManager.connect(f.keeper).pokeVolatility(ETH, { gasLimit: 8_000_000 })).wait();
  return { ev: volUpdated(f, rc), ts: await blockTs(rc), times };
}

describe("risk engine: a constant price lets σ (estimator source) decay to SigmaMin", () => {
  it("after a day of ±3% hourly moves, five months of hourly rounds at one price: the deseasonalized σ never rises, σ falls week over week, reaches SigmaMin exactly and stays (every poke exact against the mirror)", async function () {
    this.timeout(testTimeout(120_000));
    const { f, feed } = await loadFixture(batchFeedFixture);
    await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.ESTIMATOR);
    const p = await riskParams(f, ETH);
    const mirror = EstimatorMirror.fromChain(await f.riskManager.estimatorState(ETH));
    let [sigma] = await f.riskManager.ratios(ETH);
    const logs = await f.riskManager.queryFilter(f.riskManager.filters.VolatilityUpdated(ETH));
    let sigmaAt = BigInt((await logs[logs.length - 1].getBlock()).timestamp);
    let t = mirror.lastTime;

    /** One day: 24 hourly rounds, one poke; checks σ against the mirror and returns what the day looked like. */
    const day = async (answers: bigint[]) => {
      const { ev, ts, times } = await dayOfRounds(f, feed, answers, t);
      answers.forEach((a, i) => expect(mirror.fold(a, times[i], ts)).to.equal(true));
      t = times[times.length - 1];
      const next = pokedSigma(sigma, sigmaAt, targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p, ts), ts, p.sigmaDecayHalfLife, p.sigmaMaxD18);
      expect(ev.roundsFolded).to.equal(24n);
      expect(ev.sigmaD18, `σ on day ending ${ts}`).to.equal(next.sigma);
      [sigma, sigmaAt] = [next.sigma, next.updatedAt];
      return { sigma, base: mirror.baseVariance(), season: mirror.seasonalFactor(ts), ts };
    };

    // The volatile day: ±3% every hour (seeded).
    let seed = 42;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    let price = 2000;
    const wild: bigint[] = [];
    for (let h = 0; h < 24; h++) {
      price *= 1 + (rnd() < 0.5 ? -0.03 : 0.03);
      wild.push(px(price.toFixed(2)));
    }
    const peak = (await day(wild)).sigma;
    expect(peak > 10n * p.sigmaMinD18, `σ after the volatile day ${peak}`).to.equal(true);

    // Then the price stops moving: 152 days of hourly rounds at the same answer.
    const flat = Array(24).fill(px(price.toFixed(2)));
    const days: Awaited<ReturnType<typeof day>>[] = [];
    for (let d = 0; d < 152; d++) {
      days.push(await day(flat));
      if (d % 40 === 0) await expectEstimatorMatches(f, ETH, mirror);
    }
    await expectEstimatorMatches(f, ETH, mirror);

    let rises = 0;
    for (let i = 1; i < days.length; i++) {
      expect(days[i].base <= days[i - 1].base, `deseasonalized variance non-increasing on day ${i}`).to.equal(true);
      if (i >= 7) expect(days[i].sigma <= days[i - 7].sigma, `σ non-increasing week over week on day ${i}`).to.equal(true);
      if (days[i].sigma > days[i - 1].sigma) {
        rises++;
        expect(days[i].season > days[i - 1].season, `a rise on day ${i} comes from the weekday profile`).to.equal(true);
      }
    }
    const reached = days.findIndex((d) => d.sigma === p.sigmaMinD18);
    expect(reached, "σ reaches SigmaMin").to.be.greaterThan(0);
    expect(days.slice(reached).every((d) => d.sigma === p.sigmaMinD18), "σ stays at SigmaMin").to.equal(true);
    expect(days.length - reached >= 7, "…for at least a full week").to.equal(true);
    // The estimator itself is below the floor: SigmaMin is the clamp, not the measurement.
    expect(mirror.sigma(t) < p.sigmaMinD18).to.equal(true);
    // Margin follows: the ratios are SigmaMin's, the calmest the market can be, and nothing is tripped.
    const { mmr, imr } = baseRatios(p, p.sigmaMinD18);
    expect(await f.riskManager.ratios(ETH)).to.deep.equal([p.sigmaMinD18, mmr, imr]);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    expect(await f.riskManager.pokeNeeded(ETH)).to.equal(false);
    console.log(
      `      σ ${Number(peak / 10n ** 14n) / 100}% after the volatile day → SigmaMin ${Number(p.sigmaMinD18 / 10n ** 14n) / 100}% ` +
        `after ${reached + 1} flat days (${rises} day-to-day rises${rises ? ", all from the weekday profile" : ""})`,
    );
  });

  it("the same flat days under SigmaSource MAX with a 50% volatility feed settle at the feed's σ exactly, never below it", async function () {
    this.timeout(testTimeout(60_000));
    const { f, feed } = await loadFixture(batchFeedFixture);
    expect((await f.riskManager.marketParams(ETH)).sigmaSource).to.equal(SIGMA_SOURCE.MAX);
    const half = 10n ** 18n / 2n;
    let t = (await f.riskManager.estimatorState(ETH)).lastTime;
    const refreshVol = () => f.volFeeds[ETH].updateAnswer(parseUnits("50", 2)); // the daily realized-vol round
    const choppy = ["2060", "1990", "2050", "1980", "2040", "2010"].map((x) => px(x));
    let r = await dayOfRounds(f, feed, [...choppy, ...Array(18).fill(px("2040"))], t, refreshVol);
    t += 24n * HOUR;
    expect(r.ev.sigmaD18 > half).to.equal(true);
    for (let d = 0; d < 40; d++) {
      r = await dayOfRounds(f, feed, Array(24).fill(px("2040")), t, refreshVol);
      t += DAY;
      expect(r.ev.sigmaD18 >= half, `day ${d}: σ never below the feed's`).to.equal(true);
    }
    const [feedSigma, estSigma] = await f.riskManager.sigmaSources(ETH);
    expect(feedSigma).to.equal(half);
    expect(estSigma < feedSigma).to.equal(true);
    expect((await f.riskManager.ratios(ETH))[0]).to.equal(half);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER.SIGMA).to.equal(0n);
    expect(BigInt(await time.latest()) - r.ts < DAY).to.equal(true);
  });
});
