import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployFixture, ETH, testTimeout } from "../fixture";
import { DEFAULT_MARKETS, SIGMA_SOURCE } from "../../scripts/lib/params";
import { VolatilityEstimator, exp2NegD18, WAD } from "../../sdk/volatility";
import { loadRounds } from "./rounds";

const WEEK = 7n * 86400n;

const N = 1200;
const { rounds, real } = loadRounds(N);
const source = real ? "real Chainlink rounds" : "generated rounds (../shared/data not found)";

async function estimatorFixture() {
  const markets = DEFAULT_MARKETS.map((m) => ({ ...m, params: { ...m.params, sigmaSource: SIGMA_SOURCE.ESTIMATOR } }));
  return deployFixture({ markets });
}

describe(`On-chain volatility estimator vs its TypeScript mirror (${source})`, function () {
  this.timeout(testTimeout(600_000));

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
