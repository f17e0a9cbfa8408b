import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployFixture, ETH } from "../fixture";
import { DEFAULT_MARKETS, SIGMA_SOURCE } from "../../scripts/lib/params";
import { VolatilityEstimator, exp2NegD18, WAD } from "../../sdk/volatility";

/** Real Chainlink ETH/USD rounds (../shared/data); a user's clone has none, and the replay then runs on a
 * generated path with the same cadence (hourly heartbeats plus 0.5%-deviation bursts). */
const ROUNDS_CSV = path.join(__dirname, "../../../shared/data/chainlink_eth_usd_rounds.csv");
const WEEK = 7n * 86400n;

interface Round {
  roundId: bigint;
  answer: bigint;
  updatedAt: bigint;
}

function loadRounds(limit: number): { rounds: Round[]; source: string } {
  if (fs.existsSync(ROUNDS_CSV)) {
    const lines = fs.readFileSync(ROUNDS_CSV, "utf8").trim().split("\n").slice(1, limit + 1);
    const rounds = lines.map((l) => {
      const [roundId, answer, , updatedAt] = l.split(",");
      return { roundId: BigInt(roundId), answer: BigInt(answer), updatedAt: BigInt(updatedAt) };
    });
    return { rounds, source: "real Chainlink rounds" };
  }
  // Seeded generated path: a random walk with Chainlink's update rule (0.5% deviation or 1 h heartbeat).
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const rounds: Round[] = [];
  let p = 2000e8;
  let last = p;
  let t = 1_700_000_000;
  let lastT = t;
  for (let i = 0; rounds.length < limit; i++) {
    t += 60;
    p *= 1 + (rnd() - 0.5) * 0.004;
    if (Math.abs(p / last - 1) >= 0.005 || t - lastT >= 3600) {
      rounds.push({ roundId: (6n << 64n) | BigInt(rounds.length + 1), answer: BigInt(Math.round(p)), updatedAt: BigInt(t) });
      last = p;
      lastT = t;
    }
  }
  return { rounds, source: "generated rounds (../shared/data not found)" };
}

const N = 1200;
const { rounds, source } = loadRounds(N);

async function estimatorFixture() {
  const markets = DEFAULT_MARKETS.map((m) => ({ ...m, params: { ...m.params, sigmaSource: SIGMA_SOURCE.ESTIMATOR } }));
  return deployFixture({ markets });
}

describe(`On-chain volatility estimator vs its TypeScript mirror (${source})`, function () {
  this.timeout(600_000);

  it("the profile decay constants equal exp2NegD18 of their exponents", () => {
    expect(exp2NegD18(WAD / 730n)).to.equal(999050933962625668n);
    expect(exp2NegD18((7n * WAD) / (24n * 730n))).to.equal(999723095978335281n);
  });

  it(`replaying ${N} rounds through MockV3Aggregator.updateRoundData gives the same state to the wei and σ within 0.1%`, async () => {
    const f = await loadFixture(estimatorFixture);
    const feed = f.priceFeeds[ETH];
    const now = BigInt(await time.latest());
    // Shift the history to the chain's present by whole weeks (keeps hour-of-day and weekday).
    const shift = ((now - rounds[0].updatedAt) / WEEK + 1n) * WEEK;
    const model = new VolatilityEstimator();
    // The RiskManager initialized the estimator with the feed's round at listing time (the mock's first round).
    const first = await feed.getRoundData(1);
    model.update(first.answer * 10n ** 10n, first.updatedAt);
    let compared = 0;
    for (let i = 0; i < rounds.length; i++) {
      const r = rounds[i];
      const t = r.updatedAt + shift;
      // Pokes use blocks too: the round's block may only need to be at or after its updatedAt.
      if (t > BigInt(await time.latest())) await time.setNextBlockTimestamp(t);
      await feed.updateRoundData(r.roundId, r.answer, t, t);
      // Replayed round ids are in phase 6: the walk crosses the empty phases 1–5 after the mock's round 1.
      model.update(r.answer * 10n ** 10n, t);
      if (i % 24 === 23 || i === rounds.length - 1) {
        while ((await f.riskManager.pendingRounds(ETH)) > 0n) await f.riskManager.pokeVolatility(ETH);
        const st = await f.riskManager.estimatorState(ETH);
        const m = model.state();
        expect(st.lastPriceD18).to.equal(m.lastPriceD18);
        expect(st.anchorPriceD18).to.equal(m.anchorPriceD18);
        expect(st.maxExcursionD18).to.equal(m.maxExcursionD18);
        expect(st.variancesD18.map((x: bigint) => x)).to.deep.equal(m.variancesD18);
        expect(st.longRunVarD18).to.equal(m.longRunVarD18);
        expect(st.tailVarD18).to.equal(m.tailVarD18);
        expect(st.hourFactorsD18.map((x: bigint) => x)).to.deep.equal(m.hourFactorsD18);
        expect(st.dayFactorsD18.map((x: bigint) => x)).to.deep.equal(m.dayFactorsD18);
        const block = await ethers.provider.getBlock("latest");
        const [, onChain] = await f.riskManager.sigmaSources(ETH);
        const expected = model.sigmaD18(BigInt(block!.timestamp));
        const diff = onChain > expected ? onChain - expected : expected - onChain;
        expect(diff * 1000n).to.be.lte(expected); // within 0.1% relative (exact in practice)
        compared++;
      }
    }
    expect(compared).to.be.greaterThan(10);
  });
});
