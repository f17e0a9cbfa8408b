/**
 * Gas benchmark: runs each user-facing operation on the in-process Hardhat network and prints gasUsed.
 * Writes reports/gas.json as { "<operation>": gasUsed }.
 *
 *   npm run bench:gas
 *
 * Each operation is measured in its steady state (the accounts and markets involved already touched once),
 * which is what a live protocol sees; first-touch costs are listed separately where they differ.
 */
import * as fs from "fs";
import * as path from "path";
import hre from "hardhat";
import { parseUnits } from "ethers";
import { deploySigma, PRICE_FEED_DECIMALS } from "../scripts/lib/deploy";
import { DEFAULT_MARKETS, SIGMA_SOURCE } from "../scripts/lib/params";
import { VolatilityEstimator } from "../sdk/volatility";
import { DEFAULT_ROUNDS_CSV, loadRounds, Round } from "../test/estimator/rounds";

const TARGETS: Record<string, number> = {
  deposit: 80_000,
  withdraw: 0,
  commitOrder: 120_000,
  executeOrderOpen: 160_000,
  executeOrderClose: 150_000,
  liquidate: 180_000,
  liquidateFull: 180_000,
  liquidateBatchPerAccount: 90_000,
};

async function main() {
  const { ethers, network } = hre;
  const [admin, keeper, lp, ...traders] = await ethers.getSigners();
  // σ from the volatility feed (50%) so the scenario's leverage is fixed; pokes still walk every price round
  // through the on-chain estimator, whatever the source.
  const markets = DEFAULT_MARKETS.map((m) => ({ ...m, params: { ...m.params, sigmaSource: SIGMA_SOURCE.FEED } }));
  const d = await deploySigma(admin, { markets });
  const { token, vault, clearingHouse: ch, pool } = d;
  const usdc = (x: string) => parseUnits(x, 6);
  const fee = await ch.minExecutionFee();
  const minDelay = Number(await ch.minDelay());
  const gas: Record<string, number> = {};

  const advance = async (s: number) => {
    await network.provider.send("evm_increaseTime", [s]);
    await network.provider.send("evm_mine", []);
  };
  // Orders execute only at a Chainlink round published after their commit: a heartbeat round on both feeds.
  const heartbeat = async () => {
    for (const f of d.priceFeeds) await f.updateAnswer(await f.latestAnswer());
  };
  const used = async (p: Promise<any>) => Number((await (await p).wait()).gasUsed);
  const commit = async (t: any, m: number, size: bigint) => {
    const rc = await (await ch.connect(t).commitOrder(m, size, size > 0n ? 2n ** 95n : 0n, { value: fee })).wait();
    const log = rc!.logs.map((l: any) => ch.interface.parseLog(l)).find((e: any) => e?.name === "OrderCommitted");
    return { id: log!.args.orderId as bigint, gas: Number(rc!.gasUsed) };
  };

  await token.mint(lp.address, usdc("10000000"));
  await token.connect(lp).approve(await pool.getAddress(), ethers.MaxUint256);
  await pool.connect(lp).deposit(usdc("5000000"), lp.address);
  for (const t of traders.slice(0, 4)) {
    await token.mint(t.address, usdc("1000000"));
    await token.connect(t).approve(await vault.getAddress(), ethers.MaxUint256);
  }
  const [a, b, c] = traders;

  // Warm-up: give the keeper and the markets non-zero state, as on a live deployment.
  await vault.connect(c).deposit(c.address, usdc("100000"));
  for (const m of [0, 1]) {
    const o = await commit(c, m, parseUnits("1", 18));
    await advance(minDelay);
    await heartbeat();
    await ch.connect(keeper).executeOrder(o.id);
  }

  gas.depositFirst = await used(vault.connect(a).deposit(a.address, usdc("10000")));
  gas.deposit = await used(vault.connect(a).deposit(a.address, usdc("10000")));
  gas.withdraw = await used(vault.connect(a).withdraw(usdc("1000"), a.address));

  // First position ever of this account (its account slot is written for the first time).
  let o = await commit(a, 0, parseUnits("5", 18));
  await advance(minDelay);
    await heartbeat();
  gas.executeOrderOpenFirstEver = await used(ch.connect(keeper).executeOrder(o.id));
  o = await commit(a, 0, -parseUnits("5", 18));
  await advance(minDelay);
    await heartbeat();
  await ch.connect(keeper).executeOrder(o.id);

  // An active trader opens a position in a market they have not traded before.
  o = await commit(a, 1, parseUnits("0.1", 18));
  await advance(minDelay);
    await heartbeat();
  gas.executeOrderOpenNewMarket = await used(ch.connect(keeper).executeOrder(o.id));
  o = await commit(a, 1, -parseUnits("0.1", 18));
  await advance(minDelay);
    await heartbeat();
  await ch.connect(keeper).executeOrder(o.id);

  // A returning trader opens a new position in a market they traded before: the common case.
  o = await commit(a, 0, parseUnits("5", 18));
  gas.commitOrder = o.gas;
  await advance(minDelay);
    await heartbeat();
  gas.executeOrderOpen = await used(ch.connect(keeper).executeOrder(o.id));

  o = await commit(a, 0, parseUnits("2", 18));
  await advance(minDelay);
    await heartbeat();
  gas.executeOrderIncrease = await used(ch.connect(keeper).executeOrder(o.id));

  o = await commit(a, 0, -parseUnits("7", 18));
  await advance(minDelay);
    await heartbeat();
  gas.executeOrderClose = await used(ch.connect(keeper).executeOrder(o.id));

  o = await commit(a, 0, -parseUnits("1", 18));
  await advance(minDelay);
    await heartbeat();
  await ch.connect(keeper).executeOrder(o.id);
  gas.withdrawWithPosition = await used(vault.connect(a).withdraw(usdc("100"), a.address));

  // Liquidation, in the steady state: the keeper has earned rewards before and the market's rate-limit window
  // is live. Each victim holds 12 ETH at ~24× on 1,000 USDC; a 2.5% drop puts them below the hard floor.
  const victims = traders.slice(3, 6);
  for (const v of victims) {
    await token.mint(v.address, usdc("1000"));
    await token.connect(v).approve(await vault.getAddress(), ethers.MaxUint256);
    await vault.connect(v).deposit(v.address, usdc("1000"));
    const ov = await commit(v, 0, parseUnits("12", 18));
    await advance(minDelay);
    await heartbeat();
    await ch.connect(keeper).executeOrder(ov.id);
  }
  await d.priceFeeds[0].updateAnswer(parseUnits("1950", PRICE_FEED_DECIMALS));
  await d.priceFeeds[1].updateAnswer(parseUnits("60000", PRICE_FEED_DECIMALS));
  await ch.connect(keeper).liquidate(victims[0].address); // warm-up
  gas.liquidate = await used(ch.connect(keeper).liquidate(victims[1].address));
  // The same account again right after: healthy, so the call reverts and pays nothing.
  try {
    await ch.connect(keeper).liquidate.staticCall(victims[1].address);
    throw new Error("second liquidation should revert");
  } catch (e: any) {
    if (!String(e.message).includes("ClearingHouseAccountHealthy")) throw e;
  }

  // Full liquidation: an account whose equity cannot be restored by a partial close (bad debt).
  {
    const v = traders[6];
    await token.mint(v.address, usdc("1000"));
    await token.connect(v).approve(await vault.getAddress(), ethers.MaxUint256);
    await vault.connect(v).deposit(v.address, usdc("1000"));
    const ov = await commit(v, 0, -parseUnits("13", 18));
    await advance(minDelay);
    await heartbeat();
    await d.priceFeeds[0].updateAnswer(parseUnits("1950", PRICE_FEED_DECIMALS));
    await ch.connect(keeper).executeOrder(ov.id);
    await d.priceFeeds[0].updateAnswer(parseUnits("2030", PRICE_FEED_DECIMALS));
    gas.liquidateFull = await used(ch.connect(keeper).liquidate(v.address));
  }

  // Margin call: an account between the hard floor and maintenance.
  {
    const v = traders[7];
    await d.priceFeeds[0].updateAnswer(parseUnits("2000", PRICE_FEED_DECIMALS));
    await token.mint(v.address, usdc("1000"));
    await token.connect(v).approve(await vault.getAddress(), ethers.MaxUint256);
    await vault.connect(v).deposit(v.address, usdc("1000"));
    const ov = await commit(v, 0, parseUnits("12", 18));
    await advance(minDelay);
    await heartbeat();
    await d.priceFeeds[0].updateAnswer(parseUnits("2000", PRICE_FEED_DECIMALS));
    await ch.connect(keeper).executeOrder(ov.id);
    // Find a price where the account is margin-callable (below MM, above the hard floor).
    let px = 2000;
    for (; px > 1900; px -= 1) {
      await d.priceFeeds[0].updateAnswer(parseUnits(String(px), PRICE_FEED_DECIMALS));
      if ((await ch.accountSummary(v.address)).status === 1n) break;
    }
    gas.flagMarginCall = await used(ch.connect(keeper).flagMarginCall(v.address));
  }

  // Batched liquidation of 20 accounts in one transaction.
  {
    await d.priceFeeds[0].updateAnswer(parseUnits("2000", PRICE_FEED_DECIMALS));
    const extra = (await ethers.getSigners()).slice(-20);
    for (const v of extra) {
      await token.mint(v.address, usdc("1000"));
      await token.connect(v).approve(await vault.getAddress(), ethers.MaxUint256);
      await vault.connect(v).deposit(v.address, usdc("1000"));
      const ov = await commit(v, 0, parseUnits("12", 18));
      await advance(minDelay);
    await heartbeat();
      await d.priceFeeds[0].updateAnswer(parseUnits("2000", PRICE_FEED_DECIMALS));
      await ch.connect(keeper).executeOrder(ov.id);
    }
    await advance(120); // a fresh rate-limit window
    await d.priceFeeds[0].updateAnswer(parseUnits("1950", PRICE_FEED_DECIMALS));
    const total = await used(ch.connect(keeper).liquidateBatch(extra.map((x) => x.address)));
    gas.liquidateBatch20 = total;
    gas.liquidateBatchPerAccount = Math.round(total / 20);
  }

  // σ poke: fold N new price rounds, all inside one hourly period (a round an hour after the anchor closes the
  // period first, so the N rounds, a minute apart, never trigger the fold measured below).
  for (const n of [1, 8, 32]) {
    while ((await d.riskManager.pendingRounds(0)) > 0n) await d.riskManager.pokeVolatility(0);
    await advance(3600);
    await d.priceFeeds[0].updateAnswer(parseUnits("2000", PRICE_FEED_DECIMALS));
    await d.riskManager.pokeVolatility(0);
    for (let i = 0; i < n; i++) {
      await advance(60);
      await d.priceFeeds[0].updateAnswer(parseUnits(String(2000 + (i % 2 ? 5 : -5)), PRICE_FEED_DECIMALS));
    }
    gas[`pokeVolatility${n}Rounds`] = await used(d.riskManager.pokeVolatility(0));
  }
  gas.pokeVolatilityPerRound = Math.round((gas.pokeVolatility32Rounds - gas.pokeVolatility1Rounds) / 31);
  gas.pokeVolatilityBase = gas.pokeVolatility1Rounds - gas.pokeVolatilityPerRound;
  // A round that closes an hourly period (the estimator's fold: EWMAs, tail, seasonal profile).
  await advance(3600);
  await d.priceFeeds[0].updateAnswer(parseUnits("2010", PRICE_FEED_DECIMALS));
  gas.pokeVolatilityFoldRound = await used(d.riskManager.pokeVolatility(0));

  // σ poke on a real price path: Chainlink ETH/USD rounds replayed through the mock feed, a keeper poking after
  // every round, the production configuration (σ = max(vol feed, on-chain estimator)), the vol feed updated daily.
  const replay = await pokeReplay(admin);
  Object.assign(gas, replay.gas);

  const outDir = path.join(__dirname, "..", "reports");
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, "gas.json"), JSON.stringify(gas, null, 2) + "\n");

  console.log("operation              gasUsed   target");
  for (const [k, v] of Object.entries(gas)) {
    const t = TARGETS[k];
    const verdict = t ? (v <= t ? `≤ ${t} ok` : `> ${t} OVER`) : "";
    console.log(`${k.padEnd(22)} ${String(v).padStart(8)}   ${verdict}`);
  }
  for (const line of replay.notes) console.log(line);
  console.log(`written ${path.relative(process.cwd(), path.join(outDir, "gas.json"))}`);
}

/** Real Chainlink ETH/USD rounds (../shared/data, README there; SIGMA_ROUNDS_CSV overrides the path). A clone
 * without the data replays a generated path with the same cadence (1 h heartbeats plus 0.5%-deviation rounds). */
const ROUNDS_CSV = process.env.SIGMA_ROUNDS_CSV ?? DEFAULT_ROUNDS_CSV;
/** Rounds replayed (SIGMA_POKE_ROUNDS overrides): 1,000 real rounds are about four weeks. */
const REPLAY_ROUNDS = Number(process.env.SIGMA_POKE_ROUNDS ?? 1000);
/** The budget for a poke: 40,000 + 15,000 per round folded in. */
const POKE_BUDGET_BASE = 40_000;
const POKE_BUDGET_PER_ROUND = 15_000;

function loadReplayRounds(limit: number): { rounds: Round[]; source: string } {
  const { rounds, real } = loadRounds(limit, ROUNDS_CSV);
  return {
    rounds,
    source: real ? `${rounds.length} real Chainlink ETH/USD rounds (${path.basename(ROUNDS_CSV)})` : `${rounds.length} generated rounds (${ROUNDS_CSV} not found)`,
  };
}

/** Calldata gas of a transaction (EIP-2028: 16 per non-zero byte, 4 per zero byte). */
function calldataGas(data: string): number {
  let g = 0;
  for (let i = 2; i < data.length; i += 2) g += data.slice(i, i + 2) === "00" ? 4 : 16;
  return g;
}

const mean = (xs: number[]) => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
const quantile = (xs: number[], q: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function pokeReplay(admin: any): Promise<{ gas: Record<string, number>; notes: string[] }> {
  const { ethers, network } = hre;
  const d = await deploySigma(admin); // DEFAULT_MARKETS: σ source MAX
  const rm = d.riskManager;
  const feed = d.priceFeeds[0];
  const volFeed = d.volFeeds[0];
  const { rounds, source } = loadReplayRounds(REPLAY_ROUNDS);
  const latest = async () => BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
  // Shift the history to the chain's present by whole weeks (keeps hour of day and weekday).
  const WEEK = 7n * 86400n;
  const shift = ((await latest()) - rounds[0].updatedAt) / WEEK * WEEK + WEEK;
  // The TypeScript estimator tells which rounds close an hourly period (it equals the on-chain one to the wei).
  const model = new VolatilityEstimator();
  const first = await feed.getRoundData(await feed.latestRound());
  model.update(first.answer * 10n ** 10n, first.updatedAt);
  let lastVolUpdate = await latest();

  type Poke = { tx: number; exec: number; folded: number; fold: boolean };
  const pokes: Poke[] = [];
  for (let i = 0; i < rounds.length; i++) {
    const r = rounds[i];
    const t = r.updatedAt + shift;
    if (t > (await latest())) await network.provider.send("evm_setNextBlockTimestamp", [Number(t)]);
    await feed.updateRoundData(r.roundId, r.answer, t, t);
    if (t - lastVolUpdate >= 86400n) {
      await volFeed.updateAnswer(await volFeed.latestAnswer()); // the realized-vol feed's daily round
      lastVolUpdate = t;
    }
    const periodsBefore = model.state().periods;
    model.update(r.answer * 10n ** 10n, t);
    const tx = await rm.pokeVolatility(0);
    const rc = (await tx.wait())!;
    const ev = rc.logs.map((l: any) => rm.interface.parseLog(l)).find((e: any) => e?.name === "VolatilityUpdated");
    const txGas = Number(rc.gasUsed);
    pokes.push({
      tx: txGas,
      exec: txGas - 21_000 - calldataGas(tx.data),
      folded: Number(ev!.args.roundsFolded),
      fold: model.state().periods > periodsBefore,
    });
  }
  // The first poke walks from the mock's listing round across the empty phases 1–5 to phase 6: a one-off.
  const steady = pokes.slice(1);
  const tx = steady.map((p) => p.tx);
  const exec = steady.map((p) => p.exec);
  const folds = steady.filter((p) => p.fold);
  const inPeriod = steady.filter((p) => !p.fold);
  const budget = (p: Poke) => POKE_BUDGET_BASE + POKE_BUDGET_PER_ROUND * p.folded;
  const within = (key: "tx" | "exec") => steady.filter((p) => p[key] <= budget(p)).length;
  const meanBudget = mean(steady.map(budget));
  const gas: Record<string, number> = {
    pokeReplayPokes: steady.length,
    pokeReplayMean: mean(tx),
    pokeReplayP50: quantile(tx, 0.5),
    pokeReplayP90: quantile(tx, 0.9),
    pokeReplayMax: Math.max(...tx),
    pokeReplayFoldMean: mean(folds.map((p) => p.tx)),
    pokeReplayInPeriodMean: mean(inPeriod.map((p) => p.tx)),
    pokeReplayExecMean: mean(exec),
    pokeReplayExecFoldMean: mean(folds.map((p) => p.exec)),
    pokeReplayExecInPeriodMean: mean(inPeriod.map((p) => p.exec)),
  };
  const pct = (n: number) => `${((100 * n) / steady.length).toFixed(1)}%`;
  const notes = [
    "",
    `pokeReplay: ${source}, a poke after each round (σ source MAX, vol feed daily); first poke (phase walk) excluded.`,
    `  ${steady.length} pokes, ${folds.length} close an hourly period (fold), ${inPeriod.length} stay inside it; rounds folded per poke: ${mean(steady.map((p) => p.folded))}.`,
    `  tx gas (incl. 21,000 intrinsic + calldata):  mean ${mean(tx)}, p50 ${quantile(tx, 0.5)}, p90 ${quantile(tx, 0.9)}, max ${Math.max(...tx)}; fold mean ${gas.pokeReplayFoldMean}, in-period mean ${gas.pokeReplayInPeriodMean}`,
    `  execution gas (tx − 21,000 − calldata):     mean ${mean(exec)}, p50 ${quantile(exec, 0.5)}, max ${Math.max(...exec)}; fold mean ${gas.pokeReplayExecFoldMean}, in-period mean ${gas.pokeReplayExecInPeriodMean}`,
    `  budget ≤ ${POKE_BUDGET_BASE} + ${POKE_BUDGET_PER_ROUND} × rounds (= ${meanBudget} per poke here):`,
    `    tx gas:        mean ${mean(tx)} ${mean(tx) <= meanBudget ? "≤" : ">"} ${meanBudget} ${mean(tx) <= meanBudget ? "ok" : "OVER"}; ${within("tx")}/${steady.length} pokes (${pct(within("tx"))}) within`,
    `    execution gas: mean ${mean(exec)} ${mean(exec) <= meanBudget ? "≤" : ">"} ${meanBudget} ${mean(exec) <= meanBudget ? "ok" : "OVER"}; ${within("exec")}/${steady.length} pokes (${pct(within("exec"))}) within`,
  ];
  return { gas, notes };
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
