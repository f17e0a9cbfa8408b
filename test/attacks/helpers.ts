// Shared helpers of the attack scenarios (test/attacks/*.test.ts).
import { ethers, network } from "hardhat";
import { time } from "@nomicfoundation/hardhat-network-helpers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { Fixture, chEvents, trade, usdc } from "../fixture";

export const UINT96_MAX = 2n ** 96n - 1n;

/** Name of the custom error ABI-encoded in `data` (an OrderCancelled reason), across Sigma's contracts. */
export function errorName(f: Fixture, data: string): string {
  for (const c of [f.clearingHouse, f.vault, f.riskManager, f.pool]) {
    try {
      const d = c.interface.parseError(data);
      if (d) return d.name;
    } catch {
      /* next */
    }
  }
  return data === "0x" ? "<empty>" : data.slice(0, 10);
}

/** Commits, waits minDelay and executes an order; returns whether it filled and the cancel reason if not. */
export async function tryTrade(f: Fixture, trader: HardhatEthersSigner, marketId: number, size: bigint, acceptable?: bigint) {
  const { orderId, receipt } = await trade(f, trader, marketId, size, acceptable);
  const ev = chEvents(f, receipt);
  const filled = ev.some((e) => e.name === "OrderExecuted");
  const cancel = ev.find((e) => e.name === "OrderCancelled");
  const pm = ev.find((e) => e.name === "PositionModified");
  return {
    orderId,
    receipt,
    filled,
    reason: cancel ? errorName(f, cancel.args.reason) : undefined,
    fillPrice: pm ? (pm.args.fillPriceD18 as bigint) : undefined,
    fee: pm ? (pm.args.feeD18 as bigint) : undefined,
  };
}

/** Publishes a new Chainlink round at the current answer (a heartbeat). Orders execute only at a round published
 * after their commit (latency-arbitrage rule), so tests that execute by hand call this first. */
export async function heartbeat(f: Fixture, marketId: number) {
  const feed = f.priceFeeds[marketId];
  await feed.updateAnswer((await feed.latestRoundData())[1]);
}

/** Commits an order without executing it; returns its id. */
export async function commitOnly(f: Fixture, trader: HardhatEthersSigner, marketId: number, size: bigint, acceptable?: bigint) {
  const fee = await f.clearingHouse.minExecutionFee();
  const limit = acceptable ?? (size > 0n ? UINT96_MAX : 0n);
  const rc = await (await f.clearingHouse.connect(trader).commitOrder(marketId, size, limit, { value: fee })).wait();
  return chEvents(f, rc).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint;
}

/** Gives `s` tokens and approves the Vault and the pool. */
export async function fund(f: Fixture, s: HardhatEthersSigner, usd: number) {
  await f.token.mint(s.address, usdc(usd));
  await f.token.connect(s).approve(await f.vault.getAddress(), ethers.MaxUint256);
  await f.token.connect(s).approve(await f.pool.getAddress(), ethers.MaxUint256);
}

/** Re-publishes every price and volatility feed at its current answer (fresh timestamps) and pokes σ. */
export async function refresh(f: Fixture) {
  for (const feed of [...f.priceFeeds, ...f.volFeeds]) await feed.updateAnswer((await feed.latestRoundData())[1]);
  for (let m = 0; m < f.priceFeeds.length; m++) await f.riskManager.pokeVolatility(m);
}

/** Σ of every Vault ledger of the given accounts plus pool, insurance and protocol fees (token units). */
export async function ledgers(f: Fixture, accounts: string[]) {
  let s = (await f.vault.poolBalance()) + (await f.vault.insuranceFund()) + (await f.vault.protocolFees());
  for (const a of accounts) s += await f.vault.collateralOf(a);
  return s;
}

export async function snapshot(): Promise<string> {
  return network.provider.send("evm_snapshot", []);
}
export async function revertTo(id: string) {
  await network.provider.send("evm_revert", [id]);
}

export async function now(): Promise<number> {
  return time.latest();
}

/** Size (D18) that uses `frac` of the account's maximum leverage at the current IMR in `marketId`. */
export async function sizeAtLeverage(f: Fixture, marketId: number, collateralTokens: bigint, frac: number, long = true) {
  const [, , imr] = await f.riskManager.ratios(marketId);
  const price = await f.riskManager.priceD18(marketId);
  const scale = await f.vault.tokenScale();
  const maxNotional = (collateralTokens * scale * 10n ** 18n) / imr;
  const size = (((maxNotional * BigInt(Math.round(frac * 1e6))) / 1_000_000n) * 10n ** 18n) / price;
  return long ? size : -size;
}
