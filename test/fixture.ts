import { ethers } from "hardhat";
import { time } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { deploySigma, DeployOptions, SigmaDeployment, PRICE_FEED_DECIMALS, VOL_FEED_DECIMALS } from "../scripts/lib/deploy";
import { DEFAULT_MARKETS, SIGMA_SOURCE } from "../scripts/lib/params";
import { MockV3Aggregator__factory } from "../typechain-types";

/** Markets of the unit-test fixture: σ from the Chainlink volatility feed alone, so that price moves made by a
 * test do not also move σ through the on-chain estimator (which has its own tests). */
export const FEED_ONLY_MARKETS = DEFAULT_MARKETS.map((m) => ({
  ...m,
  // z_mm = 3, z_im = 5 (DESIGN.md's illustration, so ratios in tests are the documented ones), σ ≤ 300%,
  // σ breaker at 250%.
  params: {
    ...m.params,
    sigmaSource: SIGMA_SOURCE.FEED,
    zMmD18: 3n * 10n ** 18n,
    zImD18: 5n * 10n ** 18n,
    sigmaMaxD18: 3n * 10n ** 18n,
    sigmaBreakerD18: 25n * 10n ** 17n,
  },
}));

export const ETH = 0;
export const BTC = 1;
export const WAD = 10n ** 18n;
export const usdc = (x: string | number) => parseUnits(String(x), 6);
export const d18 = (x: string | number) => parseUnits(String(x), 18);

export interface Fixture extends SigmaDeployment {
  admin: HardhatEthersSigner;
  keeper: HardhatEthersSigner;
  lp: HardhatEthersSigner;
  traders: HardhatEthersSigner[];
  others: HardhatEthersSigner[];
}

/** Deploys Sigma with a 6-decimal USDC mock, ETH at $2,000 (σ 50%) and BTC at $60,000 (σ 40%), an LP with
 * 1,000,000 USDC in the pool, and five traders holding 100,000 USDC each (approved, not yet deposited). */
export async function deployFixture(opts: DeployOptions = {}): Promise<Fixture> {
  const signers = await ethers.getSigners();
  const [admin, keeper, lp, ...rest] = signers;
  const d = await deploySigma(admin, { markets: FEED_ONLY_MARKETS, ...opts });
  const dec = Number(await d.token.decimals());
  const units = (x: string) => parseUnits(x, dec);
  const traders = rest.slice(0, 5);
  await d.token.mint(lp.address, units("10000000"));
  await d.token.connect(lp).approve(await d.pool.getAddress(), ethers.MaxUint256);
  await d.pool.connect(lp).deposit(units("1000000"), lp.address);
  for (const t of traders) {
    await d.token.mint(t.address, units("100000"));
    await d.token.connect(t).approve(await d.vault.getAddress(), ethers.MaxUint256);
  }
  return { ...d, admin, keeper, lp, traders, others: rest.slice(5) };
}

/** The default fixture for `loadFixture` (a named function, so snapshots are shared across files). */
export async function sigmaFixture(): Promise<Fixture> {
  return deployFixture();
}

export async function sigma18Fixture(): Promise<Fixture> {
  return deployFixture({ collateralDecimals: 18 });
}

/** Sets a mock feed's price in USD (8 decimals), timestamped now. */
export async function setPrice(f: Fixture, marketId: number, usd: string) {
  await f.priceFeeds[marketId].updateAnswer(parseUnits(usd, PRICE_FEED_DECIMALS));
}

/** Sets a mock volatility feed in percent (2 decimals) and pokes the risk engine, as the keeper's risk job
 * does on every new volatility round, so the new σ is in use. */
export async function setVol(f: Fixture, marketId: number, percent: string) {
  await f.volFeeds[marketId].updateAnswer(parseUnits(percent, VOL_FEED_DECIMALS));
  await f.riskManager.pokeVolatility(marketId);
}

/** Commits an order, waits `minDelay`, refreshes the feeds' timestamps and executes it as the keeper.
 * Returns the execution receipt. `acceptable` defaults to no limit. */
export async function trade(
  f: Fixture,
  trader: HardhatEthersSigner,
  marketId: number,
  sizeDelta: bigint,
  acceptable?: bigint,
) {
  const limit = acceptable ?? (sizeDelta > 0n ? 2n ** 95n : 0n);
  const fee = await f.clearingHouse.minExecutionFee();
  const tx = await f.clearingHouse.connect(trader).commitOrder(marketId, sizeDelta, limit, { value: fee });
  const rc = await tx.wait();
  const ev = rc!.logs
    .map((l) => {
      try {
        return f.clearingHouse.interface.parseLog(l);
      } catch {
        return null;
      }
    })
    .find((e) => e?.name === "OrderCommitted");
  const orderId = ev!.args.orderId as bigint;
  await time.increase(Number(await f.clearingHouse.minDelay()));
  await publishRound(f, marketId);
  const exec = await f.clearingHouse.connect(f.keeper).executeOrder(orderId);
  return { orderId, receipt: await exec.wait() };
}

/** Publishes a new Chainlink round at the current answer (a heartbeat): an order executes only at a round
 * published after its commit. */
export async function publishRound(f: Fixture, marketId: number) {
  const [feedAddress] = await f.riskManager.marketFeeds(marketId);
  const feed = MockV3Aggregator__factory.connect(feedAddress, f.admin);
  await feed.updateAnswer(await feed.latestAnswer());
}

/** Parses the clearinghouse's logs of a receipt. */
export function chEvents(f: Fixture, receipt: { logs: readonly any[] } | null) {
  return (receipt?.logs ?? [])
    .map((l) => {
      try {
        return f.clearingHouse.interface.parseLog(l);
      } catch {
        return null;
      }
    })
    .filter((e): e is NonNullable<typeof e> => e !== null);
}

/** A long test's own mocha timeout, none under `npm run coverage` (COVERAGE=1): instrumentation makes long replays
 * many times slower, and a test that times out keeps running and disturbs the tests after it. */
export function testTimeout(ms: number): number {
  return process.env.COVERAGE ? 0 : ms;
}
