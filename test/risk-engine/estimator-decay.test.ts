// A calm market lowers margin by itself: with σ from the on-chain estimator, a price that stops moving after a
// volatile period makes σ fall monotonically to SigmaMin, round by round, as a keeper pokes every hour.
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { Fixture } from "../fixture";
import { PARAM, SIGMA_SOURCE } from "../../scripts/lib/params";
import { baseRatios } from "../clearinghouse/math";
import { ETH, BREAKER, EstimatorMirror, pokedSigma, targetSigma, riskParams, estimatorFixture, px, at, blockTs, volUpdated } from "./helpers";

const HOUR = 3600n;

/** Publishes one price round at `t` (as Chainlink would) and pokes one second later (as the risk keeper would). */
async function roundAndPoke(f: Fixture, answer: bigint, t: bigint) {
  await at(t);
  await f.priceFeeds[ETH].updateAnswer(answer);
  await at(t + 1n);
  const rc = await (await f.riskManager.connect(f.keeper).pokeVolatility(ETH)).wait();
  return { ev: volUpdated(f, rc), ts: await blockTs(rc) };
}

describe("risk engine: a constant price lets σ (estimator source) decay to SigmaMin", () => {
  it("after a day of ±3% hourly moves, 25 days of hourly rounds at one price: σ never rises, falls to SigmaMin exactly and stays there (every poke exact against the mirror)", async () => {
    const f = await loadFixture(estimatorFixture);
    await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.ESTIMATOR);
    const p = await riskParams(f, ETH);
    const mirror = EstimatorMirror.fromChain(await f.riskManager.estimatorState(ETH));
    let [sigma] = await f.riskManager.ratios(ETH);
    const logs = await f.riskManager.queryFilter(f.riskManager.filters.VolatilityUpdated(ETH));
    let sigmaAt = BigInt((await logs[0].getBlock()).timestamp);

    const step = async (answer: bigint, t: bigint) => {
      const { ev, ts } = await roundAndPoke(f, answer, t);
      expect(mirror.fold(answer, t, ts)).to.equal(true);
      const next = pokedSigma(sigma, sigmaAt, targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p), ts, p.sigmaDecayHalfLife, p.sigmaMaxD18);
      expect(ev.roundsFolded).to.equal(1n);
      expect(ev.sigmaD18).to.equal(next.sigma);
      [sigma, sigmaAt] = [next.sigma, next.updatedAt];
      return ev;
    };

    // A volatile day: ±3% per hour (seeded), σ rises far above SigmaMin.
    let seed = 42;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    let price = 2000;
    let t = BigInt(await time.latest()) + HOUR;
    for (let h = 0; h < 24; h++) {
      price *= 1 + (rnd() < 0.5 ? -0.03 : 0.03);
      await step(px(price.toFixed(2)), t);
      t += HOUR;
    }
    const peak = sigma;
    expect(peak > 5n * p.sigmaMinD18, `σ after the volatile day ${peak}`).to.equal(true);

    // Then the price stops moving: hourly heartbeat rounds at the same answer.
    const flat = px(price.toFixed(2));
    const history: bigint[] = [sigma];
    const estHistory: bigint[] = [mirror.sigma()];
    let reachedAt = -1;
    for (let h = 0; h < 600; h++) {
      const ev = await step(flat, t);
      t += HOUR;
      history.push(ev.sigmaD18);
      estHistory.push(mirror.sigma());
      if (reachedAt < 0 && ev.sigmaD18 === p.sigmaMinD18) reachedAt = h;
      if (h % 100 === 0) expect((await f.riskManager.sigmaSources(ETH))[1]).to.equal(mirror.sigma());
    }
    for (let i = 1; i < history.length; i++) {
      expect(history[i] <= history[i - 1], `stored σ non-increasing at hour ${i}`).to.equal(true);
      expect(estHistory[i] <= estHistory[i - 1], `estimator σ non-increasing at hour ${i}`).to.equal(true);
    }
    expect(reachedAt, "σ reaches SigmaMin").to.be.greaterThan(0);
    expect(history.slice(reachedAt + 1).every((s) => s === p.sigmaMinD18), "σ stays at SigmaMin").to.equal(true);
    // The estimator itself is below the floor: SigmaMin is the clamp, not the measurement.
    expect(mirror.sigma() < p.sigmaMinD18).to.equal(true);
    // Margin follows: the ratios are SigmaMin's, the calmest the market can be, and nothing is tripped.
    const { mmr, imr } = baseRatios(p, p.sigmaMinD18);
    expect(await f.riskManager.ratios(ETH)).to.deep.equal([p.sigmaMinD18, mmr, imr]);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    expect(await f.riskManager.pokeNeeded(ETH)).to.equal(false);
    console.log(
      `      σ ${Number(peak) / 1e16}% after the volatile day → SigmaMin ${Number(p.sigmaMinD18) / 1e16}% after ${reachedAt + 1} flat hourly rounds`,
    );
  });

  it("the same flat hours under SigmaSource MAX with a 50% volatility feed settle at the feed's σ, not below it", async () => {
    const f = await loadFixture(estimatorFixture);
    expect((await f.riskManager.marketParams(ETH)).sigmaSource).to.equal(SIGMA_SOURCE.MAX);
    let t = BigInt(await time.latest()) + HOUR;
    for (const usd of ["2060", "1990", "2050", "1980", "2040"]) {
      await roundAndPoke(f, px(usd), t);
      t += HOUR;
    }
    expect((await f.riskManager.ratios(ETH))[0] > 10n ** 18n / 2n).to.equal(true);
    for (let h = 0; h < 200; h++) {
      if (h % 20 === 0) await f.volFeeds[ETH].updateAnswer(50_00n); // the daily-ish realized-vol round
      await roundAndPoke(f, px("2040"), t);
      t += HOUR;
    }
    const [feedSigma, estSigma] = await f.riskManager.sigmaSources(ETH);
    expect(feedSigma).to.equal(10n ** 18n / 2n);
    expect(estSigma < feedSigma).to.equal(true);
    const [sigma] = await f.riskManager.ratios(ETH);
    // Decayed to within 0.1% of the feed's 50% and never under it.
    expect(sigma >= feedSigma && sigma - feedSigma < 10n ** 15n, `σ ${sigma}`).to.equal(true);
    expect((await f.riskManager.marketRisk(ETH, false)).breakers & BREAKER.SIGMA).to.equal(0n);
  });
});
