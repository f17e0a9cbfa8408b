// Sigma's scenario engine: deploys a configuration on the in-process Hardhat chain, funds an LP, the insurance
// fund and a population of traders, replays an hourly price path through the Chainlink mock feeds (several
// rounds per hour, block time pinned, plus an hourly realized-volatility round), runs a keeper step after
// every batch of rounds and lets the traders react, and records what happened hour by hour. The same scenario
// runs under Sigma's dynamic margin and under a static-margin baseline calibrated to the same average initial
// margin. Deterministic: the seed and the path fix every transaction and every block timestamp.
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import { formatUnits, MaxUint256, parseUnits } from "ethers";
import { deploySigma, PRICE_FEED_DECIMALS, VOL_FEED_DECIMALS } from "./deploy";
import { DEFAULT_MARKETS, MarketParams, MarketSpec, SIGMA_SOURCE } from "./params";
import {
  candleRounds,
  correlatedPath,
  generatedStressPath,
  loadOhlcCsv,
  PricePath,
  realizedVolPercent,
  ROUND_SLOTS,
  stressPhases,
} from "./scenario-path";
import { AgentProfile, Agents, LeverageMode, makeAgents } from "./scenario-agents";
import { InProcessKeeper, KeeperStep, scanHealth, STATUS, STATUS_NAME, TickReport } from "./scenario-keeper";
import { ConfigurationSpec, n18, nTok, r6, SimClock, World, WorldMarket } from "./scenario-world";
import {
  ConfigSummary,
  ConfigurationReport,
  HourRecord,
  Invariants,
  MarketHour,
  MarketSummary,
  REPORT_SCHEMA,
  RunReport,
  ScenarioInfo,
  TraderRow,
} from "./report-types";

const HOUR = 3600;
const WEEK = 7 * 24 * HOUR;
const YEAR = 365 * 24 * HOUR;

export interface ScenarioOptions {
  /** PRNG seed of the generated path, the BTC path's noise and the traders (default "sigma"). */
  seed?: string;
  /** Number of traders (default 32). */
  traders?: number;
  /** Hours of the generated path (default 72); with a CSV, at most this many hours are replayed (default all). */
  hours?: number;
  /** Hourly OHLC CSV (timestamp_unix,open,high,low,close[,volume]) replayed as ETH-PERP instead of the generated path. */
  pricesCsv?: string;
  /** With a CSV: replay from this hour on; the skipped candles only feed the volatility history (default 0). */
  skipHours?: number;
  /** Share of traders on BTC-PERP (default 0.25). */
  btcShare?: number;
  /** Share of traders who buy the dip (default 0.1). */
  dipShare?: number;
  /** How traders choose leverage (default "absolute": a fixed × per trader, the same under both margins,
   * capped at 1/IMR at entry; "relative": a fraction of each configuration's own maximum leverage). */
  leverage?: LeverageMode;
  /** LP deposit into the pool, USD (default 4,000,000). */
  lpDeposit?: number;
  /** Initial insurance fund, USD (default 25,000). */
  insuranceSeed?: number;
  /** Risk parameters overriding the defaults for every market, in both configurations (the static one then
   * fixes σ on top). Set with `--param ImrMin=0.1,…` (parseParamOverrides). */
  params?: Partial<MarketParams>;
  /** σ of the static configuration per market symbol (1 = 100%); default: calibrated to the dynamic run's average IMR. */
  staticSigma?: Record<string, number>;
  /** Chainlink-style deviation threshold for intra-hour rounds (default 0.005 = 0.5%). */
  deviation?: number;
  /** The keeper step of each configuration (default: a new InProcessKeeper per configuration). */
  keeper?: (spec: ConfigurationSpec, index: number) => KeeperStep;
  /** How the report describes the keeper. */
  keeperLabel?: string;
  /** The chain is a node other processes send to (the keeper service): block timestamps are pinned leniently. */
  sharedChain?: boolean;
  /** Called after every simulated hour. */
  onProgress?: (e: ProgressEvent) => void;
}

export interface ProgressEvent {
  config: string;
  configIndex: number;
  configCount: number;
  hour: number;
  hours: number;
  record?: HourRecord;
}

export interface ScenarioResult {
  report: RunReport;
  /** The worlds (deployments, signers, clock) at the end of the run, for checks and tests. */
  worlds: World[];
}

type Resolved = Required<Omit<ScenarioOptions, "pricesCsv" | "staticSigma" | "onProgress" | "keeperLabel">> &
  Pick<ScenarioOptions, "pricesCsv" | "staticSigma" | "onProgress" | "keeperLabel">;

export function resolveOptions(o: ScenarioOptions = {}): Resolved {
  const r: Resolved = {
    seed: o.seed ?? "sigma",
    traders: o.traders ?? 32,
    hours: o.hours ?? (o.pricesCsv ? Number.MAX_SAFE_INTEGER : 72),
    pricesCsv: o.pricesCsv,
    skipHours: o.skipHours ?? 0,
    btcShare: o.btcShare ?? 0.25,
    dipShare: o.dipShare ?? 0.1,
    leverage: o.leverage ?? "absolute",
    lpDeposit: o.lpDeposit ?? 4_000_000,
    insuranceSeed: o.insuranceSeed ?? 25_000,
    staticSigma: o.staticSigma,
    params: o.params ?? {},
    deviation: o.deviation ?? 0.005,
    keeper: o.keeper ?? (() => new InProcessKeeper()),
    keeperLabel: o.keeperLabel,
    sharedChain: o.sharedChain ?? false,
    onProgress: o.onProgress,
  };
  if (!Number.isInteger(r.traders) || r.traders < 1 || r.traders > 500) throw new Error(`traders must be 1..500 (got ${r.traders})`);
  if (!r.pricesCsv && (!Number.isInteger(r.hours) || r.hours < 8 || r.hours > 2000)) {
    throw new Error(`hours must be an integer in 8..2000 for the generated path (got ${r.hours})`);
  }
  if (r.pricesCsv && (!(r.hours >= 2) || !Number.isInteger(r.hours))) throw new Error(`hours must be an integer ≥ 2 (got ${r.hours})`);
  return r;
}

/** The ETH-PERP path (generated or from the CSV) and a BTC-PERP path correlated with it. */
export function buildPaths(o: Resolved): PricePath[] {
  const [ethSpec, btcSpec] = DEFAULT_MARKETS;
  let eth: PricePath;
  if (o.pricesCsv) {
    eth = loadOhlcCsv(o.pricesCsv, ethSpec.symbol);
    if (!(Number.isInteger(o.skipHours) && o.skipHours >= 0 && o.skipHours < eth.candles.length - 1)) {
      throw new Error(`skip-hours must be an integer in 0..${eth.candles.length - 2} for ${o.pricesCsv} (got ${o.skipHours})`);
    }
    eth.history = [...eth.history, ...eth.candles.slice(0, o.skipHours)];
    eth.candles = eth.candles.slice(o.skipHours, o.skipHours + o.hours);
  } else {
    eth = generatedStressPath(ethSpec.symbol, o.hours, Number(ethSpec.price), o.seed);
  }
  const btc = correlatedPath(eth, btcSpec.symbol, Number(btcSpec.price), 0.8, 0.25, o.seed);
  return [eth, btc];
}

/** Runs the scenario under Sigma's dynamic margin, then under the static-margin baseline. */
export async function runScenario(hre: HardhatRuntimeEnvironment, opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const o = resolveOptions(opts);
  const paths = buildPaths(o);
  if (o.leverage !== "absolute" && o.leverage !== "relative") throw new Error(`leverage must be "absolute" or "relative" (got ${o.leverage})`);
  const profiles = makeAgents({ traders: o.traders, seed: o.seed, btcShare: o.btcShare, dipShare: o.dipShare, leverage: o.leverage });
  const dynamic: ConfigurationSpec = {
    id: "dynamic",
    label: "Sigma dynamic margin",
    description: "σ = max(Chainlink realized-vol feed, on-chain estimator over the price rounds), clamped to [σmin, σmax]; MMR/IMR follow σ",
  };
  const dyn = await runConfiguration(hre, dynamic, paths, profiles, o, 0, 2);
  const calibrated = !o.staticSigma;
  const staticSigma = o.staticSigma ?? calibrateStaticSigma(dyn.report, o.params);
  const fixed = Object.entries(staticSigma)
    .map(([s, v]) => `${s} ${(v * 100).toFixed(1)}%`)
    .join(", ");
  const stat: ConfigurationSpec = {
    id: "static",
    label: "Static margin",
    description: `σ fixed (σmin = σmax): ${fixed}` + (calibrated ? " — the dynamic run's average IMR per market" : ""),
    staticSigma,
  };
  const st = await runConfiguration(hre, stat, paths, profiles, o, 1, 2);

  const tradersByMarket: Record<string, number> = {};
  for (const p of profiles) tradersByMarket[p.market] = (tradersByMarket[p.market] ?? 0) + 1;
  const scenario: ScenarioInfo = {
    seed: o.seed,
    source: o.pricesCsv ? `csv:${o.pricesCsv}` : "generated",
    hours: paths[0].candles.length,
    traders: profiles.length,
    tradersByMarket,
    leverage:
      o.leverage === "absolute"
        ? "absolute: each trader's leverage in × drawn once (2–20×, half 5–10×), the same under both margins, capped at 1/IMR at entry; a cancelled entry is retried (at 80 % of the leverage if refused for margin)"
        : "relative: the max/high tiers take 85–93 % / 50–80 % of each configuration's maximum leverage 1/IMR at entry",
    lpDeposit: o.lpDeposit,
    insuranceSeed: o.insuranceSeed,
    ...(Object.keys(o.params).length ? { paramOverrides: describeOverrides(o.params) } : {}),
    markets: paths.map((p) => {
      const all = p.candles;
      return {
        symbol: p.symbol,
        source: p.source,
        startPrice: r6(all[0].open),
        endPrice: r6(all[all.length - 1].close),
        minPrice: r6(Math.min(...all.map((c) => c.low))),
        maxPrice: r6(Math.max(...all.map((c) => c.high))),
      };
    }),
    phases: o.pricesCsv ? [] : phaseRanges(o.hours),
    rounds: { slotsSec: [...ROUND_SLOTS], deviation: o.deviation },
    keeper:
      o.keeperLabel ??
      "in-process keeper step after every batch of rounds: poke σ, execute due orders, liquidateBatch (largest shortfall first), flag margin calls",
    staticCalibration: calibrated
      ? "σ_static = (avg hourly IMR of the dynamic run − liqFee) / (z_im·√(h/1y)), per market"
      : "σ_static given by the caller",
  };
  return {
    report: { schema: REPORT_SCHEMA, generatedAt: new Date().toISOString(), scenario, configurations: [dyn.report, st.report] },
    worlds: [dyn.world, st.world],
  };
}

function phaseRanges(hours: number) {
  let h = 0;
  return stressPhases(hours).map((p) => {
    const r = { name: p.name, from: h, to: h + p.hours };
    h += p.hours;
    return r;
  });
}

/** "imrMinD18=0.1, liqWindowSec=60" (D18 fields as decimals). */
function describeOverrides(p: Partial<MarketParams>): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${k.endsWith("D18") ? formatUnits(v as bigint, 18) : String(v)}`)
    .join(", ");
}

/** σ per market whose IMR equals the dynamic run's average hourly IMR (inverse of MarginMath.baseRatios). */
export function calibrateStaticSigma(dyn: ConfigurationReport, overrides: Partial<MarketParams> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of DEFAULT_MARKETS) {
    const p = { ...spec.params, ...overrides };
    const avgImr = dyn.summary.markets[spec.symbol].imrAvg;
    const sqrtH = Math.sqrt(Number(p.horizonSec) / YEAR);
    const sigma = (avgImr - n18(p.liqFeeD18)) / (n18(p.zImD18) * sqrtH);
    // Within the σ bounds of RiskManager (0.01..5 for σmin).
    out[spec.symbol] = Math.min(5, Math.max(0.01, Math.round(sigma * 1e6) / 1e6));
  }
  return out;
}

function marketParamsFor(spec: ConfigurationSpec, m: MarketSpec, overrides: Partial<MarketParams>): MarketParams {
  const params: MarketParams = { ...m.params, ...overrides, sigmaSource: SIGMA_SOURCE.MAX };
  const s = spec.staticSigma?.[m.symbol];
  if (s !== undefined) {
    const d18 = parseUnits(s.toFixed(6), 18);
    params.sigmaMinD18 = d18;
    params.sigmaMaxD18 = d18;
  }
  return params;
}

/** Realized volatility (percent) the vol feed publishes after hour `h` (−1: before the replay). */
function volAfterHour(path: PricePath, h: number, fallback: number): number {
  const closes = [...path.history.map((c) => c.close), ...path.candles.slice(0, h + 1).map((c) => c.close)];
  const v = realizedVolPercent(closes);
  return v === null ? fallback : Math.round(v * 100) / 100;
}

const feedPrice = (usd: number) => parseUnits(usd.toFixed(PRICE_FEED_DECIMALS), PRICE_FEED_DECIMALS);
const feedVol = (pct: number) => parseUnits(pct.toFixed(VOL_FEED_DECIMALS), VOL_FEED_DECIMALS);

interface HourAcc {
  pokes: number;
  executed: number;
  cancelled: number;
  topUps: number;
  reduces: number;
  rateLimitWaits: number;
  liquidatableAfter: number;
  low: Record<string, number>;
  high: Record<string, number>;
}

const signerCache = new WeakMap<HardhatRuntimeEnvironment, Awaited<ReturnType<HardhatRuntimeEnvironment["ethers"]["getSigners"]>>>();
/** The node's accounts (deriving them is slow: once per process). */
async function signers(hre: HardhatRuntimeEnvironment) {
  let s = signerCache.get(hre);
  if (!s) signerCache.set(hre, (s = await hre.ethers.getSigners()));
  return s;
}

/** Runs one configuration over the whole path in a fresh deployment. */
async function runConfiguration(
  hre: HardhatRuntimeEnvironment,
  spec: ConfigurationSpec,
  paths: PricePath[],
  profiles: AgentProfile[],
  o: Resolved,
  configIndex: number,
  configCount: number,
): Promise<{ report: ConfigurationReport; world: World }> {
  const started = Date.now();
  const { ethers } = hre;
  const provider = ethers.provider;
  const [admin, defaultKeeper, lp] = await signers(hre);
  const keeper = o.keeper(spec, configIndex);
  const keeperSigner = keeper.address ? await ethers.getImpersonatedSigner(keeper.address) : defaultKeeper;
  const pathOf = (symbol: string) => {
    const p = paths.find((x) => x.symbol === symbol);
    if (!p) throw new Error(`no price path for ${symbol}`);
    return p;
  };
  const vol0: Record<string, number> = {};
  const specs: MarketSpec[] = DEFAULT_MARKETS.map((m) => {
    const path = pathOf(m.symbol);
    vol0[m.symbol] = volAfterHour(path, -1, Number(m.volPercent));
    return { ...m, price: path.candles[0].open.toFixed(PRICE_FEED_DECIMALS), volPercent: vol0[m.symbol].toFixed(VOL_FEED_DECIMALS), params: marketParamsFor(spec, m, o.params) };
  });
  const d = await deploySigma(admin, { markets: specs });
  keeper.deployed?.(d);
  const tokenDecimals = Number(await d.token.decimals());
  const scale = 10n ** BigInt(18 - tokenDecimals);
  const units = (x: number) => parseUnits(x.toFixed(tokenDecimals), tokenDecimals);

  // Hour 0 of the replay falls on the same hour of the week as the path's first candle (the on-chain estimator
  // keeps an hour-of-day × day-of-week profile), a whole number of weeks after the deployment; every later
  // block is pinned by the clock.
  const latest = (await provider.getBlock("latest"))!.timestamp;
  const clock = new SimClock(hre, latest, o.sharedChain);
  const anchor = paths[0].candles[0].t;
  const t0 = anchor + Math.ceil((latest + 2 * HOUR - anchor) / WEEK) * WEEK;
  const markets: WorldMarket[] = d.markets.map((m) => ({ marketId: m.marketId, symbol: m.symbol, path: pathOf(m.symbol), lastPublished: pathOf(m.symbol).candles[0].open }));

  // LP, insurance fund, traders.
  await clock.send(() => d.token.mint(lp.address, units(o.lpDeposit)));
  await clock.send(() => d.token.connect(lp).approve(d.pool.target, MaxUint256));
  await clock.send(() => d.pool.connect(lp).deposit(units(o.lpDeposit), lp.address));
  if (o.insuranceSeed > 0) {
    await clock.send(() => d.token.mint(admin.address, units(o.insuranceSeed)));
    await clock.send(() => d.token.connect(admin).approve(d.vault.target, MaxUint256));
    await clock.send(() => d.vault.connect(admin).depositInsurance(units(o.insuranceSeed)));
  }
  const traders = [];
  for (const p of profiles) {
    const signer = await ethers.getImpersonatedSigner(p.address);
    await provider.send("hardhat_setBalance", [p.address, "0x56BC75E2D63100000"]); // 100 ETH for execution fees
    await clock.send(() => d.token.mint(p.address, units(p.collateral + p.reserve)));
    await clock.send(() => d.token.connect(signer).approve(d.vault.target, MaxUint256));
    await clock.send(() => d.vault.connect(signer).deposit(p.address, units(p.collateral)));
    traders.push(signer);
  }
  // Reference rounds at the starting price and volatility in the close slot of the hour before the replay
  // (so rounds stay less than an hour apart). Re-setting the same feeds makes the next poke restart the
  // on-chain estimator from the reference round: its state then no longer depends on the wall-clock time of
  // the deployment, which keeps runs reproducible.
  clock.advanceTo(t0 - HOUR + ROUND_SLOTS[ROUND_SLOTS.length - 1]);
  for (const m of markets) {
    await clock.send(() => d.priceFeeds[m.marketId].updateAnswer(feedPrice(m.lastPublished)));
    await clock.send(() => d.volFeeds[m.marketId].updateAnswer(feedVol(vol0[m.symbol])));
    const f = d.markets[m.marketId];
    await clock.send(() => d.riskManager.connect(admin).setMarketFeeds(m.marketId, f.priceFeed, f.volFeed));
    // On a shared node the operator folds the reference round itself: the keeper service skips a poke that
    // folds no new round (its "nothing to do" check), which leaves pendingRounds > 0 after a feed reset.
    if (o.sharedChain) await clock.trySend(() => d.riskManager.connect(admin).pokeVolatility(m.marketId));
  }

  const world: World = {
    hre,
    config: spec,
    d,
    clock,
    admin,
    keeper: keeperSigner,
    lp,
    traders,
    accounts: profiles.map((p) => p.address),
    markets,
    scale,
    tokenDecimals,
    startBlock: 0,
    t0,
  };
  const agents = new Agents(profiles, traders);
  const errors: string[] = [];
  const noteErrors = (t: TickReport) => {
    for (const e of t.errors) if (errors.length < 50 && !errors.includes(e)) errors.push(e);
  };
  noteErrors(await keeper.tick(world));
  world.startBlock = (await provider.getBlockNumber()) + 1;

  const tok = (x: bigint) => nTok(x, tokenDecimals);
  const initial = {
    insurance: tok(await d.vault.insuranceFund()),
    nav: tok(await d.pool.totalAssets()),
  };
  const firstPrice = Object.fromEntries(markets.map((m) => [m.symbol, m.path.candles[0].open]));
  const minDelay = Number(await d.clearingHouse.minDelay());
  const hours = markets[0].path.candles.length;
  const phases = o.pricesCsv ? [] : phaseRanges(hours);
  const perTrader = new Map<string, { marginCalls: number; liquidations: number; badDebt: number }>();
  for (const p of profiles) perTrader.set(p.address.toLowerCase(), { marginCalls: 0, liquidations: 0, badDebt: 0 });
  const hourly: HourRecord[] = [];
  let badDebtCumulative = 0;
  let lastTick: TickReport | undefined;

  const prof = { tick: 0, act: 0, snapshot: 0 };
  for (let h = 0; h < hours; h++) {
    const fromBlock = (await provider.getBlockNumber()) + 1;
    const acc: HourAcc = { pokes: 0, executed: 0, cancelled: 0, topUps: 0, reduces: 0, rateLimitWaits: 0, liquidatableAfter: 0, low: {}, high: {} };
    const rounds = markets.map((m) => candleRounds(m.path.candles[h], m.lastPublished, o.deviation));
    const record = (t: TickReport) => {
      lastTick = t;
      noteErrors(t);
      agents.observe(t);
      acc.pokes += t.pokes;
      acc.rateLimitWaits += t.rateLimitWaits;
      acc.liquidatableAfter = Math.max(acc.liquidatableAfter, t.liquidatableAfter);
      for (const x of t.orders) x.filled ? acc.executed++ : acc.cancelled++;
    };
    for (let slot = 0; slot < ROUND_SLOTS.length; slot++) {
      clock.advanceTo(t0 + h * HOUR + ROUND_SLOTS[slot]);
      // A fast leg publishes a round per deviation step, a block apart: the keepers act between them.
      const offsets = [...new Set(rounds.flatMap((r) => r.filter((x) => x.slot === slot).map((x) => x.offset)))].sort((a, b) => a - b);
      for (const [j, offset] of offsets.entries()) {
        clock.advanceTo(t0 + h * HOUR + offset);
        for (const [i, m] of markets.entries()) {
          for (const rd of rounds[i].filter((x) => x.slot === slot && x.offset === offset)) {
            await clock.send(() => d.priceFeeds[m.marketId].updateAnswer(feedPrice(rd.price)));
            m.lastPublished = rd.price;
            acc.low[m.symbol] = Math.min(acc.low[m.symbol] ?? Infinity, rd.price);
            acc.high[m.symbol] = Math.max(acc.high[m.symbol] ?? 0, rd.price);
          }
        }
        if (j < offsets.length - 1) record(await keeper.tick(world));
      }
      if (slot === ROUND_SLOTS.length - 1) {
        // The realized-volatility feed publishes once an hour, after the close.
        for (const m of markets) {
          await clock.send(() => d.volFeeds[m.marketId].updateAnswer(feedVol(volAfterHour(m.path, h, vol0[m.symbol]))));
        }
      }
      let pt = Date.now();
      record(await keeper.tick(world));
      prof.tick += Date.now() - pt;
      pt = Date.now();
      const acted = await agents.act(world, lastTick!, { hour: h, firstPrice });
      prof.act += Date.now() - pt;
      acc.topUps += acted.topUps;
      acc.reduces += acted.reduces;
      if (acted.commits > 0 || acted.topUps > 0) {
        // Orders become executable after minDelay, at a Chainlink round published after their commit: the
        // feeds publish a heartbeat round (same answer), then the keeper's next block executes them.
        clock.advanceTo(clock.lastMined + minDelay + 1);
        if (acted.commits > 0) {
          for (const m of markets) {
            await clock.send(() => d.priceFeeds[m.marketId].updateAnswer(feedPrice(m.lastPublished)));
          }
        }
        record(await keeper.tick(world));
      }
    }
    const ps = Date.now();
    hourly.push(await snapshot(world, h, fromBlock, acc, lastTick!, perTrader, phases));
    prof.snapshot += Date.now() - ps;
    if (process.env.SIGMA_PROFILE) process.stderr.write(`profile ${spec.id} h${h}: ${JSON.stringify(prof)} total ${Date.now() - started}\n`);
    badDebtCumulative += hourly[h].badDebt;
    hourly[h].badDebtCumulative = r6(badDebtCumulative);
    o.onProgress?.({ config: spec.id, configIndex, configCount, hour: h + 1, hours, record: hourly[h] });
  }

  const tradersRows = await traderRows(world, agents, perTrader);
  const invariants = await checkInvariants(world);
  await keeper.finish?.(world);
  const report: ConfigurationReport = {
    id: spec.id,
    label: spec.label,
    description: spec.description,
    marketParams: Object.fromEntries(
      specs.map((s) => [s.symbol, { sigmaSource: "max(feed, estimator)", sigmaMin: n18(s.params.sigmaMinD18), sigmaMax: n18(s.params.sigmaMaxD18) }]),
    ),
    hourly,
    summary: summarize(hourly, tradersRows, initial, errors),
    traders: tradersRows,
    invariants,
    elapsedMs: Date.now() - started,
  };
  return { report, world };
}

/** The state at the end of hour `h` and the hour's events. */
async function snapshot(
  w: World,
  h: number,
  fromBlock: number,
  acc: HourAcc,
  last: TickReport,
  perTrader: Map<string, { marginCalls: number; liquidations: number; badDebt: number }>,
  phases: { name: string; from: number; to: number }[],
): Promise<HourRecord> {
  const { d } = w;
  const toBlock = await w.hre.ethers.provider.getBlockNumber();
  const tok = (x: bigint) => nTok(x, w.tokenDecimals);
  const marketsOut: Record<string, MarketHour> = {};
  for (const m of w.markets) {
    const [sigma, mmr, imr] = await d.riskManager.ratios(m.marketId);
    const [feedSigma, estSigma] = await d.riskManager.sigmaSources(m.marketId);
    const risk = await d.riskManager.marketRisk(m.marketId, false);
    const ms = await d.clearingHouse.marketState(m.marketId);
    const price = n18(risk.priceD18);
    marketsOut[m.symbol] = {
      price: r6(price),
      low: r6(acc.low[m.symbol] ?? price),
      high: r6(acc.high[m.symbol] ?? price),
      sigma: r6(n18(sigma)),
      feedSigma: r6(n18(feedSigma)),
      estimatorSigma: r6(n18(estSigma)),
      mmr: r6(n18(mmr)),
      imr: r6(n18(imr)),
      maxLeverage: r6(1 / n18(imr)),
      breakers: Number(risk.breakers),
      skew: r6(n18(ms.skewD18)),
      oiLong: r6(n18(ms.oiLongD18) * price),
      oiShort: r6(n18(ms.oiShortD18) * price),
    };
  }
  const ch = d.clearingHouse;
  const liq = await ch.queryFilter(ch.filters.Liquidated(), fromBlock, toBlock);
  const calls = await ch.queryFilter(ch.filters.MarginCallFlagged(), fromBlock, toBlock);
  const bad = await d.vault.queryFilter(d.vault.filters.BadDebtCovered(), fromBlock, toBlock);
  const fees = await d.vault.queryFilter(d.vault.filters.LiquidationFeePaid(), fromBlock, toBlock);
  const jumps = await d.riskManager.queryFilter(d.riskManager.filters.PriceJumpDetected(), fromBlock, toBlock);
  for (const e of liq) {
    const t = perTrader.get(e.args.account.toLowerCase());
    if (t) t.liquidations++;
  }
  for (const e of calls) {
    const t = perTrader.get(e.args.account.toLowerCase());
    if (t) t.marginCalls++;
  }
  let badDebt = 0;
  let fromIns = 0;
  let socialized = 0;
  for (const e of bad) {
    const x = tok(e.args.shortfall);
    badDebt += x;
    fromIns += tok(e.args.fromInsurance);
    socialized += tok(e.args.socializedToPool);
    const t = perTrader.get(e.args.account.toLowerCase());
    if (t) t.badDebt += x;
  }
  const phase = phases.find((p) => h >= p.from && h < p.to)?.name;
  return {
    hour: h,
    time: w.markets[0].path.candles[h].t,
    ...(phase ? { phase } : {}),
    markets: marketsOut,
    marginCalls: calls.length,
    liquidations: liq.length,
    accountsLiquidated: new Set(liq.map((e) => e.args.account)).size,
    closedNotional: r6(liq.reduce((s, e) => s + n18(e.args.closedNotionalD18), 0)),
    liquidationFees: r6(fees.reduce((s, e) => s + tok(e.args.feePaid), 0)),
    badDebt: r6(badDebt),
    badDebtFromInsurance: r6(fromIns),
    badDebtSocialized: r6(socialized),
    ordersExecuted: acc.executed,
    ordersCancelled: acc.cancelled,
    priceJumps: jumps.length,
    topUps: acc.topUps,
    reduces: acc.reduces,
    pokes: acc.pokes,
    rateLimitWaits: acc.rateLimitWaits,
    badDebtCumulative: 0,
    insuranceFund: r6(tok(await d.vault.insuranceFund())),
    poolNav: r6(tok(await d.pool.totalAssets())),
    poolBalance: r6(tok(await d.vault.poolBalance())),
    protocolFees: r6(tok(await d.vault.protocolFees())),
    tradersUnrealizedPnl: r6(n18(await ch.tradersUnrealizedPnlD18())),
    openAccounts: last.health.filter((x) => x.maintenanceD18 > 0n).length,
    marginCalledAccounts: last.health.filter((x) => x.status === STATUS.MarginCalled).length,
    liquidatableAfterKeeper: acc.liquidatableAfter,
  };
}

async function traderRows(
  w: World,
  agents: Agents,
  perTrader: Map<string, { marginCalls: number; liquidations: number; badDebt: number }>,
): Promise<TraderRow[]> {
  const health = await scanHealth(w, w.accounts);
  const tok = (x: bigint) => nTok(x, w.tokenDecimals);
  const rows: TraderRow[] = [];
  for (const [i, s] of agents.states.entries()) {
    const p = s.p;
    const m = w.markets.find((x) => x.symbol === p.market)!;
    const pos = await w.d.clearingHouse.position(p.address, m.marketId);
    const hh = health[i];
    const equity = n18(hh.equityD18);
    const t = perTrader.get(p.address.toLowerCase())!;
    rows.push({
      id: p.id,
      address: p.address,
      market: p.market,
      side: p.side > 0 ? "long" : "short",
      tier: p.tier,
      behaviour: p.behaviour,
      ...(p.dipAt !== undefined ? { dipAt: p.dipAt } : {}),
      ...(s.entryHour !== undefined ? { entryHour: s.entryHour } : {}),
      ...(s.entryLeverage !== undefined ? { entryLeverage: r6(s.entryLeverage) } : {}),
      ...(s.entryMaxLeverage !== undefined ? { entryMaxLeverage: r6(s.entryMaxLeverage) } : {}),
      ...(s.entryFailed ? { entryFailed: s.entryFailed } : {}),
      deposited: r6(s.deposited),
      finalCollateral: r6(tok(hh.collateral)),
      finalEquity: r6(equity),
      finalSize: r6(n18(pos.sizeD18)),
      pnl: r6(equity - s.deposited),
      status: hh.maintenanceD18 === 0n ? (pos.sizeD18 === 0n ? "flat" : "healthy") : STATUS_NAME[hh.status],
      marginCalls: t.marginCalls,
      liquidations: t.liquidations,
      badDebt: r6(t.badDebt),
      topUps: s.topUps,
      reduces: s.reduces,
    });
  }
  return rows;
}

/** Solvency of the vault's ledger, no liquidatable account left, and aggregates equal to positions. */
export async function checkInvariants(w: World): Promise<Invariants> {
  const { d } = w;
  const balance = await d.token.balanceOf(d.vault.target);
  const holders = [...w.accounts, w.keeper.address, w.admin.address, w.lp.address];
  let sumCollateral = 0n;
  for (const a of new Set(holders)) sumCollateral += await d.vault.collateralOf(a);
  const pool = await d.vault.poolBalance();
  const ins = await d.vault.insuranceFund();
  const fees = await d.vault.protocolFees();
  const slack = balance - (sumCollateral + pool + ins + fees);
  const health = await scanHealth(w, w.accounts);
  const liquidatable = health.filter((h) => h.status === STATUS.Liquidatable).length;
  let skewOk = true;
  for (const m of w.markets) {
    let sum = 0n;
    for (const a of w.accounts) sum += (await d.clearingHouse.position(a, m.marketId)).sizeD18;
    if (sum !== (await d.clearingHouse.marketState(m.marketId)).skewD18) skewOk = false;
  }
  const tok = (x: bigint) => nTok(x, w.tokenDecimals);
  return {
    vaultTokenBalance: tok(balance),
    sumCollateral: tok(sumCollateral),
    poolBalance: tok(pool),
    insuranceFund: tok(ins),
    protocolFees: tok(fees),
    slackUnits: slack.toString(),
    solvent: slack >= 0n,
    liquidatableAfterKeeper: liquidatable,
    skewMatchesPositions: skewOk,
    holds: slack >= 0n && liquidatable === 0 && skewOk,
  };
}

function summarize(hourly: HourRecord[], traders: TraderRow[], initial: { insurance: number; nav: number }, errors: string[]): ConfigSummary {
  const symbols = Object.keys(hourly[0]?.markets ?? {});
  const markets: Record<string, MarketSummary> = {};
  const avg = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  for (const s of symbols) {
    const hs = hourly.map((h) => h.markets[s]);
    markets[s] = {
      sigmaMin: r6(Math.min(...hs.map((x) => x.sigma))),
      sigmaMax: r6(Math.max(...hs.map((x) => x.sigma))),
      sigmaAvg: r6(avg(hs.map((x) => x.sigma))),
      mmrAvg: r6(avg(hs.map((x) => x.mmr))),
      imrAvg: r6(avg(hs.map((x) => x.imr))),
      imrMin: r6(Math.min(...hs.map((x) => x.imr))),
      imrMax: r6(Math.max(...hs.map((x) => x.imr))),
      maxLeverageMin: r6(Math.min(...hs.map((x) => x.maxLeverage))),
      maxLeverageMax: r6(Math.max(...hs.map((x) => x.maxLeverage))),
      reduceOnlyHours: hs.filter((x) => x.breakers !== 0).length,
    };
  }
  const sum = (f: (h: HourRecord) => number) => r6(hourly.reduce((s, h) => s + f(h), 0));
  const entryFailures: Record<string, number> = {};
  for (const t of traders) if (t.entryFailed) entryFailures[t.entryFailed] = (entryFailures[t.entryFailed] ?? 0) + 1;
  const last = hourly[hourly.length - 1];
  const navEnd = last?.poolNav ?? initial.nav;
  return {
    markets,
    marginCalls: sum((h) => h.marginCalls),
    liquidations: sum((h) => h.liquidations),
    tradersLiquidated: traders.filter((t) => t.liquidations > 0).length,
    tradersWithBadDebt: traders.filter((t) => t.badDebt > 0).length,
    badDebt: sum((h) => h.badDebt),
    badDebtFromInsurance: sum((h) => h.badDebtFromInsurance),
    badDebtSocialized: sum((h) => h.badDebtSocialized),
    insuranceStart: r6(initial.insurance),
    insuranceEnd: last?.insuranceFund ?? initial.insurance,
    insuranceMin: r6(Math.min(initial.insurance, ...hourly.map((h) => h.insuranceFund))),
    poolNavStart: r6(initial.nav),
    poolNavEnd: navEnd,
    poolNavMin: r6(Math.min(initial.nav, ...hourly.map((h) => h.poolNav))),
    lpReturnPct: r6(((navEnd - initial.nav) / initial.nav) * 100),
    tradersPnl: r6(traders.reduce((s, t) => s + t.pnl, 0)),
    ordersExecuted: sum((h) => h.ordersExecuted),
    ordersCancelled: sum((h) => h.ordersCancelled),
    entryFailures,
    topUps: sum((h) => h.topUps),
    reduces: sum((h) => h.reduces),
    rateLimitWaits: sum((h) => h.rateLimitWaits),
    maxLiquidatableAfterKeeper: Math.max(0, ...hourly.map((h) => h.liquidatableAfterKeeper)),
    keeperErrors: errors,
  };
}
