// pokeVolatility: the permissionless walk over Chainlink price rounds that feeds the on-chain estimator, the
// choice of σ source, hysteresis (rises at once, falls with a half-life) and the bounds of the stored σ. Every
// σ is checked to the wei against a bigint mirror of VolatilityEstimator, FixedPointMath.exp2NegD18 and the poke.
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time, takeSnapshot } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import { sigmaFixture, setVol, d18, Fixture } from "../fixture";
import { PARAM, SIGMA_SOURCE } from "../../scripts/lib/params";
import { baseRatios, mulDiv } from "../clearinghouse/math";
import { EXP2_FRACTION_D36, exp2NegD18 as sdkExp2NegD18 } from "../../sdk/volatility";
import {
  ETH,
  BTC,
  WAD,
  BREAKER,
  EXP2_TABLE,
  EstimatorMirror,
  exp2NegD18,
  expectEstimatorMatches,
  pokedSigma,
  targetSigma,
  riskParams,
  expectRatiosFor,
  estimatorFixture,
  pushRound,
  px,
  at,
  blockTs,
  volUpdated,
} from "./helpers";
import type { MockPhasedAggregator } from "../../typechain-types";

async function estimatorOf(f: Fixture, m = ETH) {
  return EstimatorMirror.fromChain(await f.riskManager.estimatorState(m));
}

async function poke(f: Fixture, m = ETH, signer = f.keeper) {
  const rc = await (await f.riskManager.connect(signer).pokeVolatility(m)).wait();
  return { rc, ev: volUpdated(f, rc), ts: await blockTs(rc) };
}

/** Pushes rounds with explicit timestamps onto the market's MockV3Aggregator and mirrors the folds. */
async function pushAll(f: Fixture, rounds: [bigint, bigint][], m = ETH) {
  const ids: bigint[] = [];
  for (const [answer, ts] of rounds) ids.push(await pushRound(f.priceFeeds[m], answer, ts));
  return ids;
}

/** Hourly rounds alternating ±move around `base` (USD), starting one hour after `t0`. */
function choppy(base: number, movePct: number, n: number, t0: bigint, step = 3600n): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (let k = 1; k <= n; k++) {
    const p = k % 2 === 1 ? base * (1 + movePct / 100) : base;
    out.push([px(p.toFixed(8)), t0 + BigInt(k) * step]);
  }
  return out;
}

describe("risk engine: pokeVolatility", () => {
  describe("the walk over price rounds", () => {
    it("is permissionless and the caller chooses nothing: its only input is the market id, and two callers at the same moment store the same σ", async () => {
      const f = await loadFixture(estimatorFixture);
      const fn = f.riskManager.interface.getFunction("pokeVolatility")!;
      expect(fn.inputs.map((i) => i.type)).to.deep.equal(["uint256"]);
      const t0 = (await estimatorOf(f)).lastTime;
      await time.increase(7200);
      await pushAll(f, choppy(2000, 3, 2, t0));
      const when = (await time.latest()) + 10;
      const snap = await takeSnapshot();
      const results = [];
      for (const caller of [f.others[0], f.traders[3]]) {
        await snap.restore();
        await at(when);
        const { ev } = await poke(f, ETH, caller);
        results.push([ev.sigmaD18, ev.mmrD18, ev.imrD18, ev.roundsFolded, ev.roundId, await f.riskManager.estimatorState(ETH)]);
      }
      expect(results[0]).to.deep.equal(results[1]);
      expect(results[0][3]).to.equal(2n);
    });

    it("folds the new rounds: pendingRounds 5 → 0, VolatilityUpdated(roundsFolded 5, roundId = the latest) and the estimator equals the bigint mirror", async () => {
      const f = await loadFixture(estimatorFixture);
      const mirror = await estimatorOf(f);
      await time.increase(6 * 3600);
      const rounds = choppy(2000, 2, 5, mirror.lastTime);
      const ids = await pushAll(f, rounds);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(5n);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
      const { ev, ts } = await poke(f);
      for (const [a, t] of rounds) expect(mirror.fold(a, t, ts)).to.equal(true);
      expect(ev.roundsFolded).to.equal(5n);
      expect(ev.roundId).to.equal(ids[4]);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(0n);
      const st = await expectEstimatorMatches(f, ETH, mirror);
      expect(st.lastRoundId).to.equal(ids[4]);
      expect((await f.riskManager.sigmaSources(ETH))[1]).to.equal(mirror.sigma(BigInt(await time.latest())));
      // A second poke with nothing new folds nothing.
      const again = await poke(f);
      expect(again.ev.roundsFolded).to.equal(0n);
      expect(again.ev.roundId).to.equal(ids[4]);
    });

    it("folds at most MAX_ROUNDS_PER_POKE (32) rounds per call: 40 pending → one poke folds 32, a second the other 8", async () => {
      const f = await loadFixture(estimatorFixture);
      expect(await f.riskManager.MAX_ROUNDS_PER_POKE()).to.equal(32n);
      const mirror = await estimatorOf(f);
      await time.increase(40 * 600 + 60);
      const rounds = choppy(2000, 0.5, 40, mirror.lastTime, 600n);
      const ids = await pushAll(f, rounds);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(40n);
      const first = await poke(f);
      expect(first.ev.roundsFolded).to.equal(32n);
      expect(first.ev.roundId).to.equal(ids[31]);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(8n);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
      const second = await poke(f);
      expect(second.ev.roundsFolded).to.equal(8n);
      expect(second.ev.roundId).to.equal(ids[39]);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(0n);
      for (const [a, t] of rounds) mirror.fold(a, t, second.ts);
      await expectEstimatorMatches(f, ETH, mirror);
    });

    it("skips rounds that are not newer than the last folded (same or older updatedAt) and non-positive answers, and never folds them later", async () => {
      const f = await loadFixture(estimatorFixture);
      const mirror = await estimatorOf(f);
      const t0 = mirror.lastTime;
      await time.increase(4 * 3600);
      const rounds: [bigint, bigint][] = [
        [px(2040), t0 + 3600n], // folded
        [px(2500), t0 + 3600n], // same updatedAt: skipped
        [px(1500), t0 + 1800n], // older: skipped
        [0n, t0 + 7200n], // zero answer: skipped
        [-px(2000), t0 + 7300n], // negative answer: skipped
        [px(2010), t0 + 10800n], // folded
      ];
      const ids = await pushAll(f, rounds);
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(6n);
      const { ev, ts } = await poke(f);
      expect(rounds.map(([a, t]) => mirror.fold(a, t, ts))).to.deep.equal([true, false, false, false, false, true]);
      expect(ev.roundsFolded).to.equal(2n);
      expect(ev.roundId).to.equal(ids[5]);
      // Only the valid moves (2000 → 2040 → 2010) count: no 2500 spike, no 1500 dip, no jump breaker.
      expect(ev.breakers & BREAKER.PRICE_JUMP).to.equal(0n);
      const st = await expectEstimatorMatches(f, ETH, mirror);
      expect([st.lastTime, st.lastPriceD18]).to.deep.equal([t0 + 10800n, d18(2010)]);
      // The walk moved past them: another poke folds nothing and changes nothing.
      const again = await poke(f);
      expect(again.ev.roundsFolded).to.equal(0n);
      expect(await f.riskManager.estimatorState(ETH)).to.deep.equal(st);
    });

    it("a round whose updatedAt lies in the future is not folded", async () => {
      const f = await loadFixture(estimatorFixture);
      const mirror = await estimatorOf(f);
      const now = BigInt(await time.latest());
      await pushRound(f.priceFeeds[ETH], px(2300), now + 3600n);
      const { ev } = await poke(f);
      expect(ev.roundsFolded).to.equal(0n);
      expect((await f.riskManager.estimatorState(ETH)).lastPriceD18).to.equal(mirror.e.state().lastPriceD18);
    });

    it("walks across a phase change of the price feed's round ids (roundId = phase << 64 | round; getRoundData reverts for unknown rounds)", async () => {
      const f = await loadFixture(estimatorFixture);
      const P = await ethers.getContractFactory("MockPhasedAggregator");
      const feed = (await P.deploy(8, px(2000))) as unknown as MockPhasedAggregator;
      await f.riskManager.setMarketFeeds(ETH, await feed.getAddress(), await f.volFeeds[ETH].getAddress());
      const phase = (p: bigint, r: bigint) => (p << 64n) | r;
      await expect(feed.getRoundData(phase(1n, 9n))).to.be.revertedWith("No data present");

      // The new feed's latest round starts the walk.
      await poke(f);
      expect((await f.riskManager.estimatorState(ETH)).lastRoundId).to.equal(phase(1n, 1n));
      const mirror = await estimatorOf(f);
      const t0 = mirror.lastTime;
      await time.increase(10 * 3600);
      // Phase 1: rounds 2..4 folded by a first poke, rounds 5..6 left pending.
      for (let k = 1n; k <= 3n; k++) await feed.pushRound(px(2000 + Number(k) * 10), t0 + k * 600n);
      const p1 = await poke(f);
      expect(p1.ev.roundsFolded).to.equal(3n);
      expect(p1.ev.roundId).to.equal(phase(1n, 4n));
      await feed.pushRound(px(2050), t0 + 2400n);
      await feed.pushRound(px(2060), t0 + 3000n);
      // The proxy moves to a new aggregator: phase 2 starts at aggregator round 1.
      await feed.startPhase();
      for (let k = 1n; k <= 3n; k++) await feed.pushRound(px(2060 - Number(k) * 15), t0 + 3000n + k * 600n);
      expect((await feed.latestRoundData())[0]).to.equal(phase(2n, 3n));
      expect(await f.riskManager.pendingRounds(ETH) > 0n).to.equal(true);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);

      const p2 = await poke(f);
      // 2 rounds left in phase 1 (5, 6), then 3 in phase 2: every one folded, in order.
      expect(p2.ev.roundsFolded).to.equal(5n);
      expect(p2.ev.roundId).to.equal(phase(2n, 3n));
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(0n);
      for (let k = 1n; k <= 3n; k++) mirror.fold(px(2000 + Number(k) * 10), t0 + k * 600n, p2.ts);
      mirror.fold(px(2050), t0 + 2400n, p2.ts);
      mirror.fold(px(2060), t0 + 3000n, p2.ts);
      for (let k = 1n; k <= 3n; k++) mirror.fold(px(2060 - Number(k) * 15), t0 + 3000n + k * 600n, p2.ts);
      const st = await expectEstimatorMatches(f, ETH, mirror);
      expect(st.lastRoundId).to.equal(phase(2n, 3n));
      // And the walk continues inside phase 2.
      await feed.pushRound(px(2000), t0 + 6000n);
      const p3 = await poke(f);
      expect([p3.ev.roundsFolded, p3.ev.roundId]).to.deep.equal([1n, phase(2n, 4n)]);
    });

    it("a phase change right after the last folded round goes straight to the new phase's first round", async () => {
      const f = await loadFixture(estimatorFixture);
      const P = await ethers.getContractFactory("MockPhasedAggregator");
      const feed = (await P.deploy(8, px(2000))) as unknown as MockPhasedAggregator;
      await f.riskManager.setMarketFeeds(ETH, await feed.getAddress(), await f.volFeeds[ETH].getAddress());
      await poke(f);
      const t0 = (await estimatorOf(f)).lastTime;
      await time.increase(3600);
      await feed.startPhase();
      await feed.pushRound(px(2020), t0 + 600n);
      await feed.pushRound(px(2030), t0 + 1200n);
      const { ev } = await poke(f);
      expect(ev.roundsFolded).to.equal(2n);
      expect(ev.roundId).to.equal((2n << 64n) | 2n);
      expect((await f.riskManager.estimatorState(ETH)).lastPriceD18).to.equal(d18(2030));
    });
  });

  describe("σ sources and hysteresis", () => {
    it("exp2NegD18 is the documented algorithm: its factor table derived independently equals the SDK's, 2^−1 is exactly one half", () => {
      expect(EXP2_TABLE).to.deep.equal([...EXP2_FRACTION_D36]);
      expect(exp2NegD18(WAD)).to.equal(WAD / 2n);
      expect(exp2NegD18(2n * WAD)).to.equal(WAD / 4n);
      for (const x of [0n, 1n, WAD / 3n, (WAD * 137n) / 100n, 7n * WAD + 12345n, 59n * WAD, 119n * WAD, 120n * WAD]) {
        expect(exp2NegD18(x), `2^-${x}`).to.equal(sdkExp2NegD18(x));
      }
    });

    it("SigmaSource FEED ignores the estimator, ESTIMATOR ignores the feed, MAX takes the larger (sigmaSources shows both)", async () => {
      const f = await loadFixture(estimatorFixture);
      const p = await riskParams(f, ETH);
      const mp = await f.riskManager.marketParams(ETH);
      expect(mp.sigmaSource).to.equal(SIGMA_SOURCE.MAX);
      // A feed reading 30 points above the σ breaker (and below SigmaMax).
      const high = mp.sigmaBreakerD18 + d18("0.3");
      expect(high <= mp.sigmaMaxD18).to.equal(true);
      const highAnswer = high / 10n ** 14n; // percent with 2 decimals
      // Listed under MAX: σ = max(feed 50%, the estimator's starting 80%).
      expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("0.8"));
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.FEED);
      const mirror = EstimatorMirror.fromChain(await f.riskManager.estimatorState(ETH));
      await time.increase(8 * 3600);
      const rounds = choppy(2000, 2, 6, mirror.lastTime);
      await pushAll(f, rounds);
      await f.volFeeds[ETH].updateAnswer(parseUnits("90", 2));

      // FEED: σ = the feed's 90% although the estimator reads more.
      const a = await poke(f);
      for (const [x, t] of rounds) mirror.fold(x, t, a.ts);
      expect(mirror.sigma(a.ts) > d18("0.9")).to.equal(true);
      expect(await f.riskManager.sigmaSources(ETH)).to.deep.equal([d18("0.9"), mirror.sigma(a.ts)]);
      expect(a.ev.sigmaD18).to.equal(d18("0.9"));
      await expectRatiosFor(f, ETH, d18("0.9"));

      // ESTIMATOR: σ = the estimator's (a rise, so at once).
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.ESTIMATOR);
      const b = await poke(f);
      const est = targetSigma(SIGMA_SOURCE.ESTIMATOR, d18("0.9"), mirror, p, b.ts);
      expect(est).to.equal(mirror.sigma(b.ts));
      expect(est > d18("0.9") && est < high).to.equal(true);
      expect(b.ev.sigmaD18).to.equal(est);
      // A feed far above changes nothing under ESTIMATOR: σ is what the estimator alone gives.
      await f.volFeeds[ETH].updateAnswer(highAnswer);
      const c = await poke(f);
      const alone = pokedSigma(est, b.ts, targetSigma(SIGMA_SOURCE.ESTIMATOR, high, mirror, p, c.ts), c.ts, p.sigmaDecayHalfLife, p.sigmaMaxD18);
      expect(c.ev.sigmaD18).to.equal(alone.sigma);
      expect(c.ev.sigmaD18 < high).to.equal(true);
      expect((await f.riskManager.sigmaSources(ETH))[0]).to.equal(high);

      // MAX: the larger of both, the feed's.
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.MAX);
      const d = await poke(f);
      expect(d.ev.sigmaD18).to.equal(high);
      await expectRatiosFor(f, ETH, high);
      // Above SigmaBreaker: the market is reduce-only.
      expect(d.ev.breakers).to.equal(BREAKER.SIGMA);
    });

    it("a rise applies at once; a fall decays with SigmaDecayHalfLife: after exactly one half-life σ = target + (σ − target)·2^−1, after 1.37 half-lives by exp2NegD18", async () => {
      const f = await loadFixture(estimatorFixture);
      const p = await riskParams(f, ETH);
      const halfLife = p.sigmaDecayHalfLife;
      expect(halfLife).to.equal(6n * 3600n);
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.ESTIMATOR);
      const mirror = EstimatorMirror.fromChain(await f.riskManager.estimatorState(ETH));
      const [sigma0] = await f.riskManager.ratios(ETH);
      await time.increase(8 * 3600);
      const wild = choppy(2000, 2, 6, mirror.lastTime);
      await pushAll(f, wild);
      const up = await poke(f);
      for (const [x, t] of wild) mirror.fold(x, t, up.ts);
      const high = targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p, up.ts);
      expect(high > sigma0).to.equal(true);
      // Rise: at once, no smoothing.
      expect(up.ev.sigmaD18).to.equal(high);
      await expectRatiosFor(f, ETH, high);

      // Six calm hourly rounds, then a poke exactly one half-life after the rise.
      const t1 = up.ts;
      const calm: [bigint, bigint][] = [];
      for (let k = 1n; k <= 6n; k++) calm.push([px(2000), t1 + k * 3600n]);
      await pushAll(f, calm);
      await at(t1 + halfLife);
      const down = await poke(f);
      for (const [x, t] of calm) mirror.fold(x, t, down.ts);
      const target1 = targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p, down.ts);
      expect(target1 < high).to.equal(true);
      const half = target1 + (high - target1) / 2n;
      expect(down.ev.sigmaD18).to.equal(half);
      expect(down.ev.sigmaD18).to.equal(pokedSigma(high, t1, target1, t1 + halfLife, halfLife, p.sigmaMaxD18).sigma);
      await expectRatiosFor(f, ETH, half);
      // While σ is above its target, a poke is still needed.
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);

      // 1.37 half-lives later, with more calm rounds: a fractional weight.
      const t2 = down.ts;
      const dt = (halfLife * 137n) / 100n;
      const calm2: [bigint, bigint][] = [
        [px(2000), t2 + 3600n],
        [px(2000), t2 + dt],
      ];
      await pushAll(f, calm2);
      await at(t2 + dt);
      const down2 = await poke(f);
      for (const [x, t] of calm2) mirror.fold(x, t, down2.ts);
      const target2 = targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p, down2.ts);
      const w = exp2NegD18((dt * WAD) / halfLife);
      expect(w > WAD / 3n && w < WAD / 2n).to.equal(true); // 2^−1.37 ≈ 0.387
      expect(down2.ev.sigmaD18).to.equal(target2 + mulDiv(half - target2, w, WAD));

      // A rise in the middle of a decay applies at once: a 10% move closing the next hourly period.
      const t3 = down2.ts;
      const spike: [bigint, bigint][] = [[px(2200), t3 + 3600n]];
      await pushAll(f, spike);
      await at(t3 + 3600n);
      const up2 = await poke(f);
      mirror.fold(spike[0][0], spike[0][1], up2.ts);
      const target3 = targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p, up2.ts);
      expect(target3 > down2.ev.sigmaD18).to.equal(true);
      expect(up2.ev.sigmaD18).to.equal(target3);
      await expectEstimatorMatches(f, ETH, mirror);
    });

    it("stored σ stays within [SigmaMin, SigmaMax] and IMR ≥ MMR through a seeded random path of wild and calm rounds (exact against the mirror)", async () => {
      const f = await loadFixture(estimatorFixture);
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaSource, SIGMA_SOURCE.ESTIMATOR);
      const p = await riskParams(f, ETH);
      const breaker = (await f.riskManager.marketParams(ETH)).sigmaBreakerD18;
      const mirror = EstimatorMirror.fromChain(await f.riskManager.estimatorState(ETH));
      let [sigma] = await f.riskManager.ratios(ETH);
      // σ was last recomputed by addMarket's poke (a parameter change keeps σ and its timestamp).
      const logs = await f.riskManager.queryFilter(f.riskManager.filters.VolatilityUpdated(ETH));
      let sigmaAt = BigInt((await logs[0].getBlock()).timestamp);
      let seed = 7;
      const rnd = () => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed / 2147483648;
      };
      let price = 2000;
      let t = BigInt(await time.latest());
      let sawMax = false;
      let fell = false;
      for (let step = 0; step < 40; step++) {
        // Regimes: 10 wild steps (±25% every 10 min), then 30 calm steps (±0.05% every 8 h).
        const wild = step < 10;
        const n = 1 + Math.floor(rnd() * 3);
        const rounds: [bigint, bigint][] = [];
        for (let k = 0; k < n; k++) {
          const move = wild ? (rnd() - 0.5) * 0.5 : (rnd() - 0.5) * 0.001;
          price = Math.max(50, price * (1 + move));
          t += wild ? 600n : 8n * 3600n;
          rounds.push([px(price.toFixed(8)), t]);
        }
        await pushAll(f, rounds);
        await at(t + 1n);
        t += 1n;
        const { ev, ts } = await poke(f);
        for (const [x, u] of rounds) mirror.fold(x, u, ts);
        const target = targetSigma(SIGMA_SOURCE.ESTIMATOR, 0n, mirror, p, ts);
        const next = pokedSigma(sigma, sigmaAt, target, ts, p.sigmaDecayHalfLife, p.sigmaMaxD18);
        expect(ev.sigmaD18, `step ${step}`).to.equal(next.sigma);
        if (next.sigma < sigma) fell = true;
        [sigma, sigmaAt] = [next.sigma, next.updatedAt];
        expect(sigma >= p.sigmaMinD18 && sigma <= p.sigmaMaxD18, `σ ${sigma} in bounds`).to.equal(true);
        const { mmr, imr } = baseRatios(p, sigma);
        expect([ev.mmrD18, ev.imrD18]).to.deep.equal([mmr, imr]);
        expect(ev.imrD18 >= ev.mmrD18).to.equal(true);
        expect((ev.breakers & BREAKER.SIGMA) !== 0n).to.equal(sigma > breaker);
        if (sigma === p.sigmaMaxD18) sawMax = true;
      }
      await expectEstimatorMatches(f, ETH, mirror);
      expect(sawMax, "the wild regime hits SigmaMax").to.equal(true);
      expect(fell, "the calm regime lowers σ").to.equal(true);
      expect(sigma < p.sigmaMaxD18).to.equal(true);
    });

    it("after governance lowers SigmaMax below the stored σ, the next poke stores at most the new SigmaMax (σ is clamped, not decayed from above the cap)", async () => {
      const f = await loadFixture(sigmaFixture);
      await setVol(f, ETH, "150");
      expect((await f.riskManager.ratios(ETH))[0]).to.equal(d18("1.5"));
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaMax, d18(1));
      await time.increase(60);
      await f.riskManager.pokeVolatility(ETH);
      const [sigma] = await f.riskManager.ratios(ETH);
      expect(sigma, "σ ≤ SigmaMax after a poke").to.equal(d18(1));
    });

    it("after governance raises SigmaMin above the stored σ, the next poke stores the new SigmaMin", async () => {
      const f = await loadFixture(sigmaFixture);
      await f.riskManager.setMarketParam(ETH, PARAM.SigmaMin, d18("0.8"));
      await f.riskManager.pokeVolatility(ETH);
      await expectRatiosFor(f, ETH, d18("0.8"));
    });
  });

  describe("pokeNeeded", () => {
    it("is false right after a poke with nothing new, true on a new price round, and false again once it is folded", async () => {
      const f = await loadFixture(sigmaFixture);
      await f.riskManager.pokeVolatility(ETH);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(false);
      expect(await f.riskManager.pokeNeeded(BTC)).to.equal(false);
      await f.priceFeeds[ETH].updateAnswer(px(2001));
      expect(await f.riskManager.pendingRounds(ETH)).to.equal(1n);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
      expect(await f.riskManager.pokeNeeded(BTC)).to.equal(false);
      await f.riskManager.pokeVolatility(ETH);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(false);
    });

    it("is true on a new volatility round, even one with the same answer", async () => {
      const f = await loadFixture(sigmaFixture);
      await f.riskManager.pokeVolatility(ETH);
      await f.volFeeds[ETH].updateAnswer(parseUnits("50", 2));
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
      await f.riskManager.pokeVolatility(ETH);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(false);
      await f.volFeeds[ETH].updateAnswer(parseUnits("70", 2));
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
    });

    it("is true once σ is older than VolMaxAge / 2 (a heartbeat), false just before", async () => {
      const f = await loadFixture(sigmaFixture);
      const volMaxAge = (await f.riskManager.marketParams(ETH)).volMaxAge;
      const rc = await (await f.riskManager.pokeVolatility(ETH)).wait();
      const t0 = await blockTs(rc);
      await time.increaseTo(t0 + volMaxAge / 2n);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(false);
      await time.increaseTo(t0 + volMaxAge / 2n + 1n);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
    });

    it("stays true while a fall is still decaying toward its target", async () => {
      const f = await loadFixture(sigmaFixture);
      await setVol(f, ETH, "150");
      await setVol(f, ETH, "50");
      const [sigma] = await f.riskManager.ratios(ETH);
      expect(sigma > d18("0.5") && sigma < d18("1.5")).to.equal(true);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
      await time.increase(3600);
      await f.riskManager.pokeVolatility(ETH);
      expect(await f.riskManager.pokeNeeded(ETH)).to.equal(true);
    });
  });
});
