// Stateful fuzzing harness for Sigma: fast-check model-based testing (fc.commands + fc.asyncModelRun) driving
// the real contracts on Hardhat's in-process EVM. Shared by the CI-sized run (test/fuzz/stateful.fuzz.test.ts)
// and the long-campaign CLI (scripts/fuzz.ts).
//
// Design:
// - One deployment (`fuzzWorldFixture`) restored between runs with evm_snapshot/evm_revert (loadFixture).
// - Every transaction goes through `Step.tx`: it pins the block timestamp (deterministic replays and shrinking),
//   sends with a fixed gas limit (reverted transactions are mined and carry their revert data), reads the whole
//   protocol state in ONE eth_call (FuzzReader.snapshotWords, contracts/mocks/test/FuzzReader.sol), then checks
//   every invariant against the state before and after, and against an independent recomputation of margin,
//   status and aggregates with the bigint functions of test/clearinghouse/math.ts.
// - Speed (a step is one transaction and one read, so the node's per-call cost is the budget): the harness talks
//   JSON-RPC to Hardhat's in-process provider directly (`rpc`, `call`: calldata encoded once, no ethers
//   populate/re-fetch/wait round trips), decodes the reader's flat word array itself, fetches the receipt and
//   the state concurrently, and decodes logs through a topic table. The flat reader is checked against the ABI
//   reader (FuzzReader.snapshot) when the world is deployed, and on every read with SIGMA_FUZZ_CROSSCHECK=1.
// - The fast-check "model" (Ghost) tracks what the contracts do not expose cheaply: pending orders, margin-call
//   deadlines (from events), guardian pauses, donations, and the statistics (steps × invariants).
import fc from "fast-check";
import * as fs from "fs";
import * as path from "path";
import { ethers, network } from "hardhat";
import type { EventFragment, FunctionFragment, Interface, Result } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { deployFixture, Fixture } from "../fixture";
import { DEFAULT_MARKETS } from "../../scripts/lib/params";
import {
  fillPriceD18,
  WAD,
  abs,
  min,
  max,
  mulDiv,
  baseRatios,
  pnlD18,
  requirementD18,
  fundingIndexDeltaD18,
  notionalUpD18,
  STATUS,
  RiskParams,
  riskParamsOf,
} from "../clearinghouse/math";
import type { FuzzReader } from "../../typechain-types";

// ===================================================================== constants

export const GAS = 15_000_000;
export const BREAKER = { OPENING_PAUSED: 1n, SEQUENCER: 2n, VOL_STALE: 4n, SIGMA: 8n, PRICE_JUMP: 16n, PRICE_STALE: 32n } as const;
const PRICE_SCALE = 10n ** 10n; // 8-decimal feeds → D18
const VIRTUAL_SHARES = 10n ** 6n; // LiquidityPool._decimalsOffset() = 6
const UINT96_MAX = 2n ** 96n - 1n;

/** Invariant names, in the order the final report prints them. */
export const INVARIANTS = [
  "solvency", // vault token balance == Σ collateral + pool + insurance + protocol fees (+ donations)
  "ledger-zero-sum", // Δ Σ ledgers == external deposits − withdrawals of the transaction (0 on fills, liquidations, funding)
  "market-totals", // skew, oiLong, oiShort, netCostBasis, longBasis == Σ over positions; account bitmaps match positions
  "pnl-aggregate", // traders' aggregate unrealized PnL (pool NAV) == Σ per-position PnL (funding zero-sum)
  "eth-escrow", // ClearingHouse ETH == Σ escrowed execution fees + Σ claimable ETH
  "ratios", // σ ∈ [σmin, σmax]; MMR/IMR == baseRatios(σ) (independent model); IMR ≥ MMR; bounds
  "insurance", // insurance fund never negative; falls only by BadDebtCovered/ProfitHaircut.fromInsurance
  "share-price", // LP share price falls only by trader profit (premium, price moves), bad debt or socialized loss
  "initial-margin", // a risk-increasing fill leaves equity ≥ initial requirement
  "withdraw-margin", // withdraw succeeds iff amount ≤ independently computed free collateral; leaves min(coll, equity) ≥ IM
  "oi-cap", // a risk-increasing fill leaves its side within OiCapRatio × pool capacity
  "reduce-only", // no risk-increasing fill while a breaker is set (pause, σ, un-poked price jump, stale price)
  "jump-breaker", // no risk-increasing fill at a round that moved more than PriceJumpBreaker from the last folded one
  "close-never-blocked", // a risk-reducing order is only ever cancelled by its own price limit
  "order-timing", // execution only in [commit + minDelay, commit + maxAge]; cancellation only after expiry; limit respected
  "liq-only-liquidatable", // liquidation iff independently predicted status is Liquidatable
  "liq-never-blocked", // a Liquidatable account is liquidated unless rate-limited or the oracle is unusable
  "liq-no-increase", // a liquidation never increases or flips a position
  "liq-reward", // reward == min(feePaid·share, cap) ≤ feePaid, credited once; no account liquidated twice in one tx
  "liq-restores", // after a liquidation that was not rate-limited the account is flat or ≥ initial requirement
  "liq-no-dust", // a liquidation never leaves a position below minPositionNotional (unless rate-limited)
  "liq-second-pays-nothing", // liquidating again in the same state reverts
  "margin-call-grace", // a flag that outlived a recovery (equity ≥ MM seen since) never skips a new episode's grace
  "margin-call", // flags only MarginCallable accounts, deadline = now + grace; clears only healthy accounts
  "adl", // auto-deleveraging only with a pool deficit, only profitable positions, pays ≤ profit
  "lp-dilution", // no LP deposit is accepted at a zero/negative NAV while shares are outstanding (it would take them over)
  "lp-cash", // after an LP withdrawal the pool's cash still covers winning traders' unrealized profit
  "lp-reserve", // an LP withdrawal above maxWithdraw reverts; NAV stays ≥ reserved assets after a withdrawal
  "round-trip", // deposit→open→close→withdraw at an unchanged price returns ≤ deposit − fees (+ funding earned)
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

/** Invariants that currently fail because of reported contract bugs; `SIGMA_FUZZ_ALLOW=a,b` downgrades them to
 * counted warnings (default: every invariant is strict). */
export function allowedFailures(): Set<string> {
  return new Set((process.env.SIGMA_FUZZ_ALLOW ?? "").split(",").map((s) => s.trim()).filter(Boolean));
}

// ===================================================================== stats

export class Stats {
  steps = 0; // transactions (and time jumps) checked
  checks = 0; // individual invariant evaluations
  perInvariant = new Map<string, number>();
  warnings = new Map<string, number>();
  kinds = new Map<string, number>();
  runs = 0;
  ok(name: InvariantName, n = 1) {
    this.checks += n;
    this.perInvariant.set(name, (this.perInvariant.get(name) ?? 0) + n);
  }
  kind(k: string) {
    this.kinds.set(k, (this.kinds.get(k) ?? 0) + 1);
  }
  report(): string {
    const lines = [
      `runs: ${this.runs}   steps (transactions checked): ${this.steps}   invariant evaluations: ${this.checks}`,
      `invariants: ${INVARIANTS.length} (steps × invariants = ${this.steps} × ${INVARIANTS.length} = ${this.steps * INVARIANTS.length})`,
      ...INVARIANTS.map((n) => `  ${n.padEnd(26)} ${String(this.perInvariant.get(n) ?? 0).padStart(9)}`),
      `actions: ${[...this.kinds].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ")}`,
    ];
    if (this.warnings.size) lines.push(`allowed (known-bug) violations: ${[...this.warnings].map(([k, v]) => `${k}=${v}`).join(" ")}`);
    return lines.join("\n");
  }
}

export class InvariantError extends Error {
  constructor(
    public invariant: string,
    msg: string,
  ) {
    super(`[${invariant}] ${msg}`);
  }
}

// ===================================================================== price data

let _returns: number[] | null | undefined;
/** Hourly ETH/USD closes from ../shared/data/eth_usd_1h.csv, resolved from the repository root (null when absent). */
export function hourlyCloses(): number[] | null {
  if (_returns !== undefined) return _returns;
  const repoRoot = path.resolve(__dirname, "../..");
  const file = path.join(repoRoot, "../shared/data/eth_usd_1h.csv");
  if (!fs.existsSync(file)) return (_returns = null);
  const rows = fs.readFileSync(file, "utf8").trim().split("\n").slice(1);
  const closes: number[] = [];
  for (const r of rows) {
    const c = Number(r.split(",")[4]);
    if (Number.isFinite(c) && c > 0) closes.push(c);
  }
  return (_returns = closes.length > 100 ? closes : null);
}

/** Price ratio of a move: `hours` consecutive real hours starting at `idx`, or a generated move when the data
 * set is absent (fallback: log-normal-ish from the same integers, σ ≈ 1%/√h). */
export function moveRatio(idx: number, hours: number, fallbackBps: number): number {
  const closes = hourlyCloses();
  if (!closes) return 1 + (fallbackBps * Math.sqrt(hours)) / 10_000;
  const i = idx % (closes.length - 30);
  return closes[i + hours] / closes[i];
}

// ===================================================================== world

export interface MarketCfg {
  risk: RiskParams;
  priceMaxAge: bigint;
  liqPriceMaxAge: bigint;
  volMaxAge: bigint;
  jumpD18: bigint;
  sigmaBreakerD18: bigint;
  liqWindowSec: bigint;
  liqMaxSize: bigint;
}

export interface World {
  f: Fixture;
  reader: FuzzReader;
  traders: HardhatEthersSigner[];
  lps: HardhatEthersSigner[];
  keepers: HardhatEthersSigner[];
  rt: HardhatEthersSigner; // round-trip trader
  accounts: string[]; // every address that can hold Vault collateral, LP shares or claimable ETH
  idx: Map<string, number>;
  signerByAddr: Map<string, HardhatEthersSigner>;
  markets: MarketCfg[];
  scale: bigint;
  ch: {
    minDelay: bigint;
    maxAge: bigint;
    minFee: bigint;
    hardFloor: bigint;
    grace: bigint;
    expiry: bigint;
    minPosNotional: bigint;
    liqShare: bigint;
    liqCapTokens: bigint;
  };
  ifaces: Interface[];
  reserveFactor: bigint;
  /** Orders fill only at a price round published after their commit (ClearingHouseAwaitingPriceRound). */
  freshRule: boolean;
  /** The LP reserve covers gross open interest (openInterestNotionalD18) rather than net exposure. */
  reserveGross: boolean;
  addr: { ch: string; pool: string; vault: string; automation: string };
  /** Calldata of FuzzReader.snapshotWords(ch, pool, accounts, 0): `readSnap` patches the orderFrom word. */
  snapCall: { to: string; prefix: string; suffix: string };
  /** 10^(18 − decimals) of each market's price feed (a MockV3Aggregator's decimals never change). */
  priceScale: bigint[];
  /** (emitter address, topic0) → event, for the ClearingHouse, Vault and LiquidityPool logs `tx` decodes. */
  events: Map<string, { iface: Interface; fragment: EventFragment }>;
}

/** The fuzz world: the shared fixture with σ from the max of the volatility feed and the on-chain estimator
 * (so price moves also move σ and can trip the jump breaker), a second LP, two keepers, a seeded insurance
 * fund and the automation contract tracking every trader. */
export async function fuzzWorldFixture(): Promise<World> {
  const f = await deployFixture({ markets: DEFAULT_MARKETS });
  const traders = f.traders;
  const lps = [f.lp, f.others[0]];
  const keepers = [f.keeper, f.others[1]];
  const rt = f.others[2];
  const vaultAddr = await f.vault.getAddress();
  const poolAddr = await f.pool.getAddress();
  for (const s of [lps[1], rt, f.admin]) {
    await f.token.mint(s.address, 10n ** 12n * 10n ** 6n);
    await f.token.connect(s).approve(vaultAddr, ethers.MaxUint256);
    await f.token.connect(s).approve(poolAddr, ethers.MaxUint256);
  }
  await f.pool.connect(lps[1]).deposit(200_000n * 10n ** 6n, lps[1].address);
  await f.vault.connect(f.admin).depositInsurance(5_000n * 10n ** 6n);
  await f.automation.track(traders.map((t) => t.address));
  // Traders start with collateral of different sizes (thin and deep accounts).
  for (const [k, t] of traders.entries()) await f.vault.connect(t).deposit(t.address, BigInt([2_000, 10_000, 25_000, 5_000, 50_000][k]) * 10n ** 6n);
  const reader = (await (await ethers.getContractFactory("FuzzReader")).deploy()) as unknown as FuzzReader;
  await reader.waitForDeployment();
  const automation = await f.automation.getAddress();
  const accounts = [...traders, ...lps, ...keepers, rt, f.admin].map((s) => s.address).concat([automation]);
  const readerAddr = await reader.getAddress();
  const chAddr = await f.clearingHouse.getAddress();
  // snapshotWords(ch, pool, accounts, orderFrom): orderFrom is the 4th head word (after the selector).
  const snapData = reader.interface.encodeFunctionData("snapshotWords", [chAddr, poolAddr, accounts, 0n]);
  const snapCall = { to: readerAddr, prefix: snapData.slice(0, 10 + 64 * 3), suffix: snapData.slice(10 + 64 * 4) };
  const events = new Map<string, { iface: Interface; fragment: EventFragment }>();
  for (const [a, iface] of [[chAddr, f.clearingHouse.interface], [vaultAddr, f.vault.interface], [poolAddr, f.pool.interface]] as const) {
    iface.forEachEvent((fragment) => {
      if (!fragment.anonymous) events.set(`${a.toLowerCase()}:${fragment.topicHash}`, { iface, fragment });
    });
  }
  const priceScale: bigint[] = [];
  for (const feed of f.priceFeeds) priceScale.push(10n ** (18n - BigInt(await feed.decimals())));
  const idx = new Map(accounts.map((a, i) => [a, i]));
  const markets: MarketCfg[] = [];
  const n = Number(await f.riskManager.marketCount());
  for (let m = 0; m < n; m++) {
    const p = await f.riskManager.marketParams(m);
    const [liqWindowSec, liqMaxSize] = await f.riskManager.liquidationLimit(m);
    markets.push({
      risk: riskParamsOf(p),
      priceMaxAge: p.priceMaxAge,
      liqPriceMaxAge: p.liquidationPriceMaxAge,
      volMaxAge: p.volMaxAge,
      jumpD18: p.priceJumpBreakerD18,
      sigmaBreakerD18: p.sigmaBreakerD18,
      liqWindowSec,
      liqMaxSize,
    });
  }
  const c = f.clearingHouse;
  const world: World = {
    f,
    reader,
    traders,
    lps,
    keepers,
    rt,
    accounts,
    idx,
    signerByAddr: new Map([...traders, ...lps, ...keepers, rt, f.admin].map((s) => [s.address, s])),
    markets,
    scale: await f.vault.tokenScale(),
    ch: {
      minDelay: await c.minDelay(),
      maxAge: await c.maxAge(),
      minFee: await c.minExecutionFee(),
      hardFloor: await c.hardFloorD18(),
      grace: await c.marginCallGrace(),
      expiry: await c.marginCallExpiry(),
      minPosNotional: await c.minPositionNotionalD18(),
      liqShare: await c.liqRewardShareD18(),
      liqCapTokens: (await c.liqRewardCapD18()) / (await f.vault.tokenScale()),
    },
    reserveFactor: await f.pool.reserveFactorD18(),
    freshRule: f.clearingHouse.interface.fragments.some((x) => x.type === "error" && (x as any).name === "ClearingHouseAwaitingPriceRound"),
    reserveGross: f.clearingHouse.interface.fragments.some((x) => x.type === "function" && (x as any).name === "openInterestNotionalD18"),
    ifaces: [f.clearingHouse.interface, f.vault.interface, f.riskManager.interface, f.pool.interface, f.token.interface, f.automation.interface],
    addr: { ch: chAddr, pool: poolAddr, vault: vaultAddr, automation },
    snapCall,
    priceScale,
    events,
  };
  // The flat reader must return exactly what the ABI reader returns (see FuzzReader.snapshotWords).
  await crossCheckSnap(world, 0n);
  return world;
}

// ===================================================================== snapshots

export interface MarketSnap {
  skew: bigint;
  netBasis: bigint;
  longBasis: bigint;
  oiL: bigint;
  oiS: bigint;
  index: bigint;
  last: bigint;
  answer: bigint;
  updatedAt: bigint;
  price: bigint; // D18
  sigma: bigint;
  mmr: bigint;
  imr: bigint;
  riskOk: boolean;
  breakers: bigint;
  winStart: bigint;
  winSize: bigint;
  estLast: bigint;
}
export interface AccountSnap {
  collateral: bigint;
  markets: bigint;
  claimable: bigint;
  lpShares: bigint;
}
export interface Snap {
  ts: bigint;
  vaultBal: bigint;
  pool: bigint;
  ins: bigint;
  fees: bigint;
  chEth: bigint;
  pendingFees: bigint;
  nextOrderId: bigint;
  navOk: boolean;
  nav: bigint;
  tradersPnl: bigint;
  lpSupply: bigint;
  lpTotalAssets: bigint;
  accounts: AccountSnap[];
  pos: { size: bigint; basis: bigint }[][]; // [account][market]
  markets: MarketSnap[];
}

/** JSON-RPC straight to Hardhat's in-process provider: the harness encodes and decodes its own calls, so a
 * step costs no ethers contract machinery (populate, resolve, re-fetch the transaction, wait). */
export function rpc(method: string, params: unknown[] = []): Promise<any> {
  return network.provider.request({ method, params });
}

/** The protocol state after the latest block, in one eth_call of FuzzReader.snapshotWords (a flat word array,
 * decoded here; see the layout in FuzzReader.sol). With SIGMA_FUZZ_CROSSCHECK=1 every read is also compared
 * with the ABI reader (`snapshot`). */
export async function readSnap(w: World, orderFrom: bigint): Promise<Snap> {
  const snap = decodeSnapWords(w, await readSnapHex(w, orderFrom));
  if (CROSSCHECK) sameSnap(snap, await readSnapAbi(w, orderFrom));
  return snap;
}

function readSnapHex(w: World, orderFrom: bigint): Promise<string> {
  const data = w.snapCall.prefix + orderFrom.toString(16).padStart(64, "0") + w.snapCall.suffix;
  return rpc("eth_call", [{ to: w.snapCall.to, data }, "latest"]);
}

const CROSSCHECK = process.env.SIGMA_FUZZ_CROSSCHECK === "1";
const HEADER_WORDS = 14;
const MARKET_WORDS = 17;

function decodeSnapWords(w: World, hex: string): Snap {
  // ABI encoding of uint256[]: [offset 0x20][length][words]; word i starts at hex offset 2 + 128 + 64·i.
  const u = (i: number) => BigInt("0x" + hex.slice(130 + 64 * i, 194 + 64 * i));
  const s = (i: number) => BigInt.asIntN(256, u(i));
  const n = w.markets.length;
  const A = w.accounts.length;
  const len = HEADER_WORDS + A * (4 + 2 * n) + MARKET_WORDS * n;
  if (hex.length !== 130 + 64 * len || BigInt("0x" + hex.slice(66, 130)) !== BigInt(len) || u(13) !== BigInt(n)) {
    throw new Error(`FuzzReader.snapshotWords returned ${(hex.length - 130) / 64} words, expected ${len} (${A} accounts, ${n} markets)`);
  }
  const accounts: AccountSnap[] = [];
  const pos: { size: bigint; basis: bigint }[][] = [];
  let k = HEADER_WORDS;
  for (let i = 0; i < A; i++, k += 4 + 2 * n) {
    accounts.push({ collateral: u(k), markets: u(k + 1), claimable: u(k + 2), lpShares: u(k + 3) });
    const row = [];
    for (let m = 0; m < n; m++) row.push({ size: s(k + 4 + 2 * m), basis: s(k + 5 + 2 * m) });
    pos.push(row);
  }
  const markets: MarketSnap[] = [];
  for (let m = 0; m < n; m++, k += MARKET_WORDS) {
    const answer = s(k + 6);
    markets.push({
      skew: s(k),
      netBasis: s(k + 1),
      longBasis: s(k + 16),
      oiL: u(k + 2),
      oiS: u(k + 3),
      index: s(k + 4),
      last: u(k + 5),
      answer,
      updatedAt: u(k + 7),
      price: answer > 0n ? answer * PRICE_SCALE : 0n,
      sigma: u(k + 8),
      mmr: u(k + 9),
      imr: u(k + 10),
      riskOk: u(k + 11) !== 0n,
      breakers: u(k + 12),
      winStart: u(k + 13),
      winSize: u(k + 14),
      estLast: u(k + 15),
    });
  }
  return {
    ts: u(0),
    vaultBal: u(1),
    pool: u(2),
    ins: u(3),
    fees: u(4),
    chEth: u(5),
    pendingFees: u(6),
    nextOrderId: u(7),
    navOk: u(8) !== 0n,
    nav: s(9),
    tradersPnl: s(10),
    lpSupply: u(11),
    lpTotalAssets: u(12),
    accounts,
    pos,
    markets,
  };
}

const canonical = (x: unknown) =>
  JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? v.toString() : v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));

function sameSnap(fast: Snap, abi: Snap) {
  const a = canonical(fast);
  const b = canonical(abi);
  if (a !== b) throw new Error(`FuzzReader.snapshotWords disagrees with FuzzReader.snapshot:\n  words: ${a}\n  abi:   ${b}`);
}

/** Reads the state with both FuzzReader functions and fails unless they agree. */
export async function crossCheckSnap(w: World, orderFrom: bigint) {
  sameSnap(decodeSnapWords(w, await readSnapHex(w, orderFrom)), await readSnapAbi(w, orderFrom));
}

/** The reference reader: FuzzReader.snapshot (nested ABI structs) through ethers. */
export async function readSnapAbi(w: World, orderFrom: bigint): Promise<Snap> {
  const r: any = await w.reader.snapshot(w.addr.ch, w.addr.pool, w.accounts, orderFrom);
  const n = w.markets.length;
  const markets: MarketSnap[] = r.markets.map((m: any) => {
    const st = m.state;
    return {
      skew: st.skewD18,
      netBasis: st.netCostBasisD18,
      longBasis: st.longBasisD18,
      oiL: st.oiLongD18,
      oiS: st.oiShortD18,
      index: st.fundingIndexD18,
      last: st.lastFundingTime,
      answer: m.answer,
      updatedAt: m.answerUpdatedAt,
      price: m.answer > 0n ? m.answer * PRICE_SCALE : 0n,
      sigma: m.sigmaD18,
      mmr: m.mmrD18,
      imr: m.imrD18,
      riskOk: m.riskOk,
      breakers: m.breakers,
      winStart: m.liqWindowStart,
      winSize: m.liqWindowSize,
      estLast: m.estimatorLastPriceD18,
    };
  });
  const accounts: AccountSnap[] = r.accounts.map((a: any) => ({
    collateral: a.collateral,
    markets: a.markets,
    claimable: a.claimableEth,
    lpShares: a.lpShares,
  }));
  const pos: { size: bigint; basis: bigint }[][] = [];
  for (let i = 0; i < w.accounts.length; i++) {
    const row = [];
    for (let m = 0; m < n; m++) {
      const p = r.positions[i * n + m];
      row.push({ size: p.sizeD18 as bigint, basis: p.costBasisD18 as bigint });
    }
    pos.push(row);
  }
  return {
    ts: r.timestamp,
    vaultBal: r.vaultTokenBalance,
    pool: r.poolBalance,
    ins: r.insuranceFund,
    fees: r.protocolFees,
    chEth: r.chEthBalance,
    pendingFees: r.pendingFees,
    nextOrderId: r.nextOrderId,
    navOk: r.navOk,
    nav: r.navD18,
    tradersPnl: r.tradersPnlD18,
    lpSupply: r.lpSupply,
    lpTotalAssets: r.lpTotalAssets,
    accounts,
    pos,
    markets,
  };
}

// ===================================================================== independent margin math

export function pendingIndexAt(m: MarketSnap, cfg: MarketCfg, ts: bigint): bigint {
  if (m.last === 0n || m.last === ts) return m.index;
  return m.index + fundingIndexDeltaD18(m.skew, cfg.risk.skewScaleD18, cfg.risk.maxFundingRateD18, m.price, ts - m.last);
}

/** Price usable at `ts` with `maxAge` (ChainlinkOracle.validateAndScale). */
export function priceUsable(m: MarketSnap, ts: bigint, maxAge: bigint): boolean {
  return m.answer > 0n && m.updatedAt !== 0n && m.updatedAt <= ts && ts - m.updatedAt <= maxAge;
}

export interface Margin {
  equity: bigint;
  pnl: bigint;
  im: bigint;
  mm: bigint;
  positions: number;
  markets: number[];
}

/** Equity and requirements of account `i` at time `ts`, from a snapshot (what the contract computes in a
 * transaction mined at `ts` on that state). */
export function marginOf(w: World, s: Snap, i: number, ts: bigint, collateral = s.accounts[i].collateral): Margin {
  let pnl = 0n;
  let im = 0n;
  let mm = 0n;
  const markets: number[] = [];
  for (let m = 0; m < w.markets.length; m++) {
    const p = s.pos[i][m];
    if (p.size === 0n) continue;
    markets.push(m);
    const M = s.markets[m];
    const cfg = w.markets[m];
    pnl += pnlD18(p.size, p.basis, M.price, pendingIndexAt(M, cfg, ts));
    im += requirementD18(abs(p.size), M.price, M.imr, cfg.risk.sizeAddOnD18, cfg.risk.skewScaleD18);
    mm += requirementD18(abs(p.size), M.price, M.mmr, cfg.risk.sizeAddOnD18, cfg.risk.skewScaleD18);
  }
  return { equity: collateral * w.scale + pnl, pnl, im, mm, positions: markets.length, markets };
}

export function statusOf(w: World, equity: bigint, mm: bigint, deadline: bigint, ts: bigint): bigint {
  if (mm === 0n || equity >= mm) return STATUS.Healthy;
  if (equity < mulDiv(mm, w.ch.hardFloor, WAD)) return STATUS.Liquidatable;
  if (deadline === 0n || ts > deadline + w.ch.expiry) return STATUS.MarginCallable;
  if (ts < deadline) return STATUS.MarginCalled;
  return STATUS.Liquidatable;
}

/** Free collateral (token units) as IMarginAccount.freeCollateral defines it, recomputed independently. */
export function freeCollateralOf(w: World, s: Snap, i: number, ts: bigint): bigint {
  const mg = marginOf(w, s, i, ts);
  if (mg.positions === 0) return s.accounts[i].collateral;
  const base = min(s.accounts[i].collateral * w.scale, mg.equity < 0n ? 0n : mg.equity) - mg.im;
  return base <= 0n ? 0n : base / w.scale;
}

// ===================================================================== ghost model

export interface PendingOrder {
  id: bigint;
  account: string;
  market: number;
  size: bigint;
  acceptable: bigint;
  commitTime: bigint;
  fee: bigint;
  expiresAt: bigint;
  conditional: boolean;
  trigger: bigint;
  above: boolean;
  reduceOnly: boolean;
}

export class Ghost {
  now = 0n;
  snap!: Snap;
  pending = new Map<bigint, PendingOrder>();
  deadlines = new Map<string, bigint>();
  recovered = new Set<string>(); // flagged accounts seen at or above maintenance since their flag
  paused: boolean[] = [];
  donated = 0n;
  trace: string[] = [];
  constructor(
    public stats: Stats,
    public allow: Set<string>,
  ) {}
  deadline(a: string) {
    return this.deadlines.get(a) ?? 0n;
  }
  orderFrom(): bigint {
    let lo = this.snap ? this.snap.nextOrderId : 0n;
    for (const id of this.pending.keys()) if (id < lo) lo = id;
    return lo;
  }
  fail(name: InvariantName, msg: string): never | void {
    if (this.allow.has(name)) {
      this.stats.warnings.set(name, (this.stats.warnings.get(name) ?? 0) + 1);
      return;
    }
    throw new InvariantError(name, `${msg}\n  last steps:\n    ${this.trace.slice(-8).join("\n    ")}`);
  }
  check(name: InvariantName, cond: boolean, msg: () => string) {
    if (!cond) this.fail(name, msg());
    else this.stats.ok(name);
  }
}

export async function initGhost(w: World, stats: Stats, allow = allowedFailures()): Promise<Ghost> {
  const g = new Ghost(stats, allow);
  g.snap = await readSnap(w, 0n);
  g.now = g.snap.ts;
  g.paused = w.markets.map(() => false);
  // Feeds were published at deployment; refresh so every run starts from fresh prices and σ.
  return g;
}

// ===================================================================== transactions

export interface Decoded {
  name: string;
  args: any[];
  raw: string;
}

export function revertData(e: any): string | undefined {
  const seen = new Set<any>();
  const walk = (x: any, depth: number): string | undefined => {
    if (!x || typeof x !== "object" || seen.has(x) || depth > 6) return undefined;
    seen.add(x);
    if (typeof x.data === "string" && x.data.startsWith("0x")) return x.data;
    for (const k of ["error", "info", "cause", "data"]) {
      const r = walk(x[k], depth + 1);
      if (r) return r;
    }
    return undefined;
  };
  return walk(e, 0);
}

export function decodeError(w: World, data: string | undefined): Decoded {
  if (!data || data === "0x") return { name: "<empty>", args: [], raw: data ?? "" };
  for (const i of w.ifaces) {
    try {
      const d = i.parseError(data);
      if (d) return { name: d.name, args: [...d.args], raw: data };
    } catch {
      /* next */
    }
  }
  if (data.startsWith("0x08c379a0")) {
    try {
      const [msg] = ethers.AbiCoder.defaultAbiCoder().decode(["string"], "0x" + data.slice(10));
      return { name: `Error(${msg})`, args: [msg], raw: data };
    } catch {
      /* fallthrough */
    }
  }
  if (data.startsWith("0x4e487b71")) return { name: "Panic", args: [BigInt("0x" + data.slice(10))], raw: data };
  return { name: `<unknown ${data.slice(0, 10)}>`, args: [], raw: data };
}

/** A transaction to send: built synchronously by `call` (calldata encoded once, no ethers runner). */
export interface TxReq {
  from: string;
  to: string;
  data: string;
  value?: bigint;
}

export interface RawLog {
  address: string;
  topics: string[];
  data: string;
}

/** eth_getTransactionReceipt as the node returns it (only what the harness reads). */
export interface RawReceipt {
  status: string;
  logs: RawLog[];
}

/** A decoded event of the ClearingHouse, Vault or LiquidityPool (args by name, as in ethers' LogDescription). */
export interface Ev {
  name: string;
  args: Result;
}

const GAS_HEX = "0x" + GAS.toString(16);
const fragments = new WeakMap<Interface, Map<string, FunctionFragment>>();

/** `contract.connect(from).fn(...args, { value, gasLimit: GAS })` as a request for `tx` (from: the contract's
 * runner when omitted). */
export function call(c: { interface: Interface; target: unknown; runner: unknown }, from: { address: string } | null, fn: string, args: readonly unknown[], value?: bigint): TxReq {
  let byName = fragments.get(c.interface);
  if (!byName) fragments.set(c.interface, (byName = new Map()));
  let frag = byName.get(fn);
  if (!frag) byName.set(fn, (frag = c.interface.getFunction(fn)!));
  const sender = from ?? (c.runner as { address?: string } | null);
  if (typeof c.target !== "string" || !sender?.address) throw new Error(`call ${fn}: contract target or sender unknown`);
  return { from: sender.address, to: c.target, data: c.interface.encodeFunctionData(frag, args as unknown[]), value };
}

function rpcTx(r: TxReq) {
  const t: Record<string, string> = { from: r.from, to: r.to, data: r.data, gas: GAS_HEX };
  if (r.value !== undefined) t.value = "0x" + r.value.toString(16);
  return t;
}

export interface TxResult {
  ok: boolean;
  ts: bigint;
  rc?: RawReceipt;
  err?: Decoded;
  events: Ev[];
  pre: Snap;
  post: Snap;
}

function parseLogs(w: World, rc: RawReceipt | undefined): Ev[] {
  if (!rc) return [];
  const out: Ev[] = [];
  for (const l of rc.logs) {
    if (l.topics.length === 0) continue;
    const e = w.events.get(`${l.address.toLowerCase()}:${l.topics[0].toLowerCase()}`);
    if (!e) continue;
    try {
      out.push({ name: e.fragment.name, args: e.iface.decodeEventLog(e.fragment, l.data, l.topics) });
    } catch {
      /* not ours */
    }
  }
  return out;
}

/** Sends one transaction at `g.now + dt`, snapshots the state, and checks every invariant. */
export async function tx(w: World, g: Ghost, label: string, send: () => TxReq, dt = 1n): Promise<TxResult> {
  const pre = g.snap;
  const ts = g.now + (dt < 1n ? 1n : dt);
  await rpc("evm_setNextBlockTimestamp", [Number(ts)]);
  let hash: string | undefined;
  let err: Decoded | undefined;
  try {
    // Hardhat mines a reverting transaction and throws with its revert data.
    hash = await rpc("eth_sendTransaction", [rpcTx(send())]);
  } catch (e: any) {
    err = decodeError(w, revertData(e));
    if (err.name === "<empty>" && !revertData(e)) {
      // Not a revert (a harness or node error): surface it.
      const latest = await rpc("eth_getBlockByNumber", ["latest", false]);
      if (BigInt(latest.timestamp) !== ts) throw e;
    }
  }
  // Both reads see the block just mined.
  const [rc, post] = await Promise.all([hash === undefined ? undefined : (rpc("eth_getTransactionReceipt", [hash]) as Promise<RawReceipt>), readSnap(w, g.orderFrom())]);
  g.now = post.ts;
  const events = parseLogs(w, rc);
  const res: TxResult = { ok: !!rc && rc.status === "0x1", ts, rc, err, events, pre, post };
  g.trace.push(`${label} @${ts} → ${res.ok ? "ok" : `revert ${err?.name}`}${events.length ? " [" + events.map((e) => e.name).join(",") + "]" : ""}`);
  if (g.trace.length > 50) g.trace.shift();
  g.stats.steps++;
  checkTx(w, g, res);
  g.snap = post;
  return res;
}

/** A state change outside the protocol (feed update, mint, time): still a checked step. */
export async function mineAt(w: World, g: Ghost, dt: bigint, label: string) {
  const pre = g.snap;
  const ts = g.now + (dt < 1n ? 1n : dt);
  await rpc("evm_mine", [Number(ts)]);
  const post = await readSnap(w, g.orderFrom());
  g.now = post.ts;
  g.trace.push(`${label} @${ts}`);
  g.stats.steps++;
  checkTx(w, g, { ok: true, ts, events: [], pre, post });
  g.snap = post;
}

/** One eth_call returning static words (raw hex → word i). */
async function viewWords(to: string, data: string): Promise<(i: number) => bigint> {
  const hex: string = await rpc("eth_call", [{ to, data }, "latest"]);
  return (i: number) => {
    const x = hex.slice(2 + 64 * i, 66 + 64 * i);
    if (x.length !== 64) throw new Error(`eth_call to ${to} returned ${hex.length} hex chars, word ${i} missing`);
    return BigInt("0x" + x);
  };
}

const word32 = (x: bigint | string) => (typeof x === "string" ? x.slice(2).toLowerCase() : x.toString(16)).padStart(64, "0");

const checksummed = new Map<string, string>();
/** ethers.getAddress, memoized (checksumming hashes the address: hot in the per-step checks). */
export function addr(a: string): string {
  let c = checksummed.get(a);
  if (c === undefined) checksummed.set(a, (c = ethers.getAddress(a)));
  return c;
}

// ===================================================================== invariant checks per transaction

function ev(res: TxResult, name: string) {
  return res.events.filter((e) => e.name === name);
}

const fmt = (x: unknown) => (typeof x === "bigint" ? x.toString() : JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));

function ledgerSum(s: Snap) {
  let c = 0n;
  for (const a of s.accounts) c += a.collateral;
  return c + s.pool + s.ins + s.fees;
}

function checkTx(w: World, g: Ghost, res: TxResult) {
  const { pre, post } = res;
  (res as any).deadlinesBefore = new Map(g.deadlines);
  const n = w.markets.length;

  // --- solvency: token balance == Σ ledgers (+ direct donations, which no ledger claims)
  const ledgers = ledgerSum(post);
  g.check("solvency", post.vaultBal === ledgers + g.donated, () => `vault balance ${post.vaultBal} != Σ ledgers ${ledgers} + donated ${g.donated}`);

  // --- zero-sum: ledgers move only by what enters or leaves the vault in this transaction
  let external = 0n;
  for (const e of res.events) {
    if (e.name === "Deposited" || e.name === "PoolCredited" || e.name === "InsuranceDeposited") external += e.args.amount as bigint;
    if (e.name === "Withdrawn" || e.name === "PoolDebited" || e.name === "ProtocolFeesWithdrawn") external -= e.args.amount as bigint;
  }
  const dLedger = ledgers - ledgerSum(pre);
  g.check("ledger-zero-sum", dLedger === external, () => `Δ ledgers ${dLedger} != external flow ${external} (${res.events.map((e) => e.name).join(",")})`);

  // --- market totals and bitmaps
  for (let m = 0; m < n; m++) {
    let skew = 0n,
      oiL = 0n,
      oiS = 0n,
      basis = 0n,
      longBasis = 0n;
    for (let i = 0; i < w.accounts.length; i++) {
      const p = post.pos[i][m];
      skew += p.size;
      if (p.size > 0n) oiL += p.size;
      if (p.size < 0n) oiS -= p.size;
      basis += p.basis;
      if (p.size > 0n) longBasis += p.basis;
      if (p.size === 0n) g.check("market-totals", p.basis === 0n, () => `closed position of ${w.accounts[i]} in ${m} keeps basis ${p.basis}`);
    }
    const M = post.markets[m];
    g.check(
      "market-totals",
      M.skew === skew && M.oiL === oiL && M.oiS === oiS && M.netBasis === basis && M.longBasis === longBasis,
      () =>
        `market ${m}: aggregates (skew ${M.skew}, oiL ${M.oiL}, oiS ${M.oiS}, basis ${M.netBasis}, long basis ${M.longBasis}) != Σ positions (${skew}, ${oiL}, ${oiS}, ${basis}, ${longBasis})`,
    );
  }
  for (let i = 0; i < w.accounts.length; i++) {
    let bm = 0n;
    for (let m = 0; m < n; m++) if (post.pos[i][m].size !== 0n) bm |= 1n << BigInt(m);
    g.check("market-totals", post.accounts[i].markets === bm, () => `bitmap of ${w.accounts[i]} ${post.accounts[i].markets} != ${bm}`);
  }

  // --- aggregate PnL == Σ per-position PnL (funding accrual and fills zero-sum between traders and pool)
  if (post.navOk) {
    let sum = 0n;
    let npos = 0n;
    for (let i = 0; i < w.accounts.length; i++) {
      for (let m = 0; m < n; m++) {
        const p = post.pos[i][m];
        if (p.size === 0n) continue;
        npos++;
        sum += pnlD18(p.size, p.basis, post.markets[m].price, pendingIndexAt(post.markets[m], w.markets[m], post.ts));
      }
    }
    const diff = abs(post.tradersPnl - sum);
    g.check("pnl-aggregate", diff <= 2n * npos + 2n, () => `aggregate trader PnL ${post.tradersPnl} vs Σ positions ${sum} (diff ${diff})`);
    g.check("pnl-aggregate", post.nav === post.pool * w.scale - post.tradersPnl, () => `NAV ${post.nav} != pool·scale − trader PnL`);
  }

  // --- ETH escrow
  let claim = 0n;
  for (const a of post.accounts) claim += a.claimable;
  g.check("eth-escrow", post.chEth === post.pendingFees + claim, () => `ClearingHouse ETH ${post.chEth} != escrow ${post.pendingFees} + claimable ${claim}`);

  // --- σ and ratios
  for (let m = 0; m < n; m++) {
    const M = post.markets[m];
    const p = w.markets[m].risk;
    const r = baseRatios(p, M.sigma);
    g.check(
      "ratios",
      M.sigma >= p.sigmaMinD18 && M.sigma <= p.sigmaMaxD18 && M.mmr === r.mmr && M.imr === r.imr && M.imr >= M.mmr && M.mmr >= p.mmrMinD18 && M.mmr <= p.mmrMaxD18 && M.imr <= WAD,
      () => `market ${m}: σ ${M.sigma} mmr ${M.mmr} imr ${M.imr} vs model ${fmt(r)}`,
    );
  }

  // --- insurance fund
  let fromIns = 0n;
  let socialized = 0n;
  for (const e of ev(res, "BadDebtCovered")) {
    fromIns += e.args.fromInsurance as bigint;
    socialized += e.args.socializedToPool as bigint;
  }
  // The other documented draw: a winner's profit beyond the pool's cash (pool NAV < 0) is paid by the fund
  // as far as it can (ProfitHaircut), so that closing is never blocked.
  for (const e of ev(res, "ProfitHaircut")) fromIns += e.args.fromInsurance as bigint;
  g.check("insurance", post.ins >= 0n && post.ins >= pre.ins - fromIns, () => `insurance ${pre.ins} → ${post.ins} with only ${fromIns} drawn by bad debt and profit haircuts`);
  g.check("insurance", post.fees >= pre.fees || ev(res, "ProtocolFeesWithdrawn").length > 0, () => `protocol fees fell ${pre.fees} → ${post.fees}`);

  // --- share price
  checkSharePrice(w, g, res, socialized);

  // --- event-driven checks: margin calls, liquidations, fills, orders, ADL
  checkMarginCallEvents(w, g, res);
  checkLiquidations(w, g, res);
  checkFills(w, g, res);
  checkOrders(w, g, res);
  checkAdl(w, g, res);
  // Flagged accounts seen healthy (equity ≥ MM) start a new episode when they dip again.
  for (const [a, dl] of g.deadlines) {
    if (dl === 0n) continue;
    const i = accountIndex(w, a);
    if (i < 0) continue;
    const mg = marginOf(w, post, i, post.ts);
    if (mg.mm === 0n || mg.equity >= mg.mm) g.recovered.add(a);
  }
}

function checkSharePrice(w: World, g: Ghost, res: TxResult, socialized: bigint) {
  const { pre, post } = res;
  if (!pre.navOk || !post.navOk) return;
  const kind = (res as any).kind as string | undefined;
  if (post.lpSupply !== pre.lpSupply) {
    // LP deposit/withdraw: ERC-4626 rounding favours the pool; price = (totalAssets + 1) / (supply + 10^6).
    if (post.lpSupply > pre.lpSupply && pre.lpSupply > 0n) {
      g.check("lp-dilution", pre.lpTotalAssets > 0n, () => `LP deposit accepted while pool NAV is ${pre.nav} (totalAssets 0, ${pre.lpSupply} shares outstanding): minted ${post.lpSupply - pre.lpSupply} shares, diluting existing LPs to ~0`);
      if (pre.lpTotalAssets === 0n) return;
    }
    const lhs = (post.lpTotalAssets + 1n) * (pre.lpSupply + VIRTUAL_SHARES);
    const rhs = (pre.lpTotalAssets + 1n) * (post.lpSupply + VIRTUAL_SHARES);
    g.check("share-price", lhs >= rhs, () => `LP share price fell on an LP operation: assets ${pre.lpTotalAssets}→${post.lpTotalAssets}, supply ${pre.lpSupply}→${post.lpSupply}`);
    return;
  }
  if (kind === "price") return; // trader profit from an oracle move: NAV may fall
  // Supply unchanged: NAV may fall only by the premium traders receive (fills against the skew), bad debt
  // socialized to the pool, or a few wei of aggregate rounding.
  let allowance = socialized * w.scale;
  let fills = 0n;
  for (const e of ev(res, "PositionModified")) {
    const m = Number(e.args.marketId);
    const price = pre.markets[m].price;
    const prem = (-(e.args.sizeDeltaD18 as bigint) * ((e.args.fillPriceD18 as bigint) - price)) / WAD;
    if (prem > 0n) allowance += prem + 1n;
    fills++;
  }
  const eps = 4n * (fills + 1n) + 2n * BigInt(w.accounts.length * w.markets.length);
  g.check("share-price", post.nav >= pre.nav - allowance - eps, () => `NAV fell ${pre.nav} → ${post.nav} (Δ ${post.nav - pre.nav}) beyond trader premium + socialized loss ${allowance}`);
}

function accountIndex(w: World, a: string): number {
  const i = w.idx.get(addr(a));
  return i === undefined ? -1 : i;
}

function checkMarginCallEvents(w: World, g: Ghost, res: TxResult) {
  const { pre, post, ts } = res;
  const liquidated = new Set(ev(res, "Liquidated").map((e) => addr(e.args.account)));
  for (const e of ev(res, "MarginCallFlagged")) {
    const a = addr(e.args.account);
    const i = accountIndex(w, a);
    if (i >= 0) {
      const mg = marginOf(w, pre, i, ts);
      const st = statusOf(w, mg.equity, mg.mm, g.deadline(a), ts);
      g.check("margin-call", st === STATUS.MarginCallable, () => `flagged ${a} whose predicted status is ${st} (equity ${mg.equity}, mm ${mg.mm})`);
    }
    g.check("margin-call", (e.args.deadline as bigint) === ts + w.ch.grace, () => `deadline ${e.args.deadline} != now + grace`);
    g.deadlines.set(a, e.args.deadline as bigint);
    g.recovered.delete(a);
  }
  for (const e of ev(res, "MarginCallCleared")) {
    const a = addr(e.args.account);
    const i = accountIndex(w, a);
    if (i >= 0 && !liquidated.has(a)) {
      const mg = marginOf(w, post, i, ts);
      g.check("margin-call", mg.equity >= mg.mm, () => `cleared margin call of ${a} below maintenance (equity ${mg.equity}, mm ${mg.mm})`);
    }
    g.deadlines.delete(a);
    g.recovered.delete(a);
  }
}

function checkLiquidations(w: World, g: Ghost, res: TxResult) {
  const { pre, post, ts } = res;
  const seen = new Set<string>();
  const liqFeePaid = new Map<string, bigint>();
  for (const e of ev(res, "LiquidationFeePaid")) liqFeePaid.set(addr(e.args.account), e.args.feePaid as bigint);
  for (const e of ev(res, "Liquidated")) {
    const a = addr(e.args.account);
    g.check("liq-reward", !seen.has(a), () => `${a} liquidated twice in one transaction`);
    seen.add(a);
    const i = accountIndex(w, a);
    if (i < 0) continue;
    const mgPre = marginOf(w, pre, i, ts);
    // Status before this transaction (deadline from the ghost, before events of this tx updated it).
    const dl = ((res as any).deadlinesBefore as Map<string, bigint>).get(a) ?? 0n;
    const st = statusOf(w, mgPre.equity, mgPre.mm, dl, ts);
    g.check("liq-only-liquidatable", st === STATUS.Liquidatable, () => `liquidated ${a} whose predicted status is ${st} (equity ${mgPre.equity}, mm ${mgPre.mm}, deadline ${dl})`);
    const aboveFloor = mgPre.equity >= mulDiv(mgPre.mm, w.ch.hardFloor, WAD);
    g.check("margin-call-grace", !(aboveFloor && g.recovered.has(a)), () => `${a} was liquidated above the hard floor (equity ${mgPre.equity}, mm ${mgPre.mm}) on a margin call flagged before it recovered to ≥ maintenance: the new episode got no grace window`);
    let rateLimited = false;
    for (let m = 0; m < w.markets.length; m++) {
      const before = pre.pos[i][m].size;
      const after = post.pos[i][m].size;
      g.check("liq-no-increase", abs(after) <= abs(before) && (after === 0n || after > 0n === before > 0n), () => `liquidation moved ${a} in ${m} from ${before} to ${after}`);
      if (post.markets[m].winSize >= w.markets[m].liqMaxSize && after !== before) rateLimited = true;
      if (post.markets[m].winSize >= w.markets[m].liqMaxSize && before !== 0n) rateLimited = true;
    }
    const feePaid = e.args.feePaid as bigint;
    const reward = e.args.reward as bigint;
    const expected = min(mulDiv(feePaid, w.ch.liqShare, WAD), w.ch.liqCapTokens);
    g.check("liq-reward", reward === expected && reward <= feePaid && liqFeePaid.get(a) === feePaid, () => `reward ${reward} fee ${feePaid} expected reward ${expected}`);
    const li = accountIndex(w, e.args.liquidator);
    if (li >= 0 && li !== i && ev(res, "Liquidated").length === 1 && ev(res, "Deposited").length === 0) {
      const d = post.accounts[li].collateral - pre.accounts[li].collateral;
      g.check("liq-reward", d === reward, () => `liquidator collateral moved ${d}, reward ${reward}`);
    }
    if (!rateLimited) {
      const mgPost = marginOf(w, post, i, ts);
      g.check("liq-restores", mgPost.positions === 0 || mgPost.equity >= mgPost.im, () => `after liquidation ${a} has equity ${mgPost.equity} < IM ${mgPost.im} with ${mgPost.positions} positions`);
      for (let m = 0; m < w.markets.length; m++) {
        const s = post.pos[i][m].size;
        if (s === 0n || s === pre.pos[i][m].size) continue;
        g.check("liq-no-dust", notionalUpD18(abs(s), post.markets[m].price) >= w.ch.minPosNotional, () => `liquidation left dust ${s} of ${a} in ${m}`);
      }
    }
    (res as any).liquidatedRateLimited = ((res as any).liquidatedRateLimited ?? new Map()).set(a, rateLimited);
  }
}

function increasesRisk(before: bigint, after: bigint) {
  return abs(after) > abs(before) || (after !== 0n && before !== 0n && after > 0n !== before > 0n);
}

function checkFills(w: World, g: Ghost, res: TxResult) {
  const { pre, post, ts } = res;
  const liquidated = new Set(ev(res, "Liquidated").map((e) => addr(e.args.account)));
  const adl = new Set(ev(res, "AutoDeleveraged").map((e) => addr(e.args.account)));
  const mods = ev(res, "PositionModified");
  const perAccount = new Map<string, number>();
  for (const e of mods) perAccount.set(addr(e.args.account), (perAccount.get(addr(e.args.account)) ?? 0) + 1);
  for (const e of mods) {
    const a = addr(e.args.account);
    if (liquidated.has(a) || adl.has(a)) continue;
    const m = Number(e.args.marketId);
    const i = accountIndex(w, a);
    const newSize = e.args.newSizeD18 as bigint;
    const delta = e.args.sizeDeltaD18 as bigint;
    const before = newSize - delta;
    if (!increasesRisk(before, newSize)) continue;
    const M = pre.markets[m];
    const cfg = w.markets[m];
    // Reduce-only: no breaker may be set at the execution (recomputed for time-dependent flags), and a price
    // round that moved more than the jump bound from the last folded round must not be traded into before a poke.
    const staleFlags = (M.breakers & (BREAKER.OPENING_PAUSED | BREAKER.SIGMA | BREAKER.PRICE_JUMP | BREAKER.SEQUENCER)) !== 0n;
    const priceStale = ts - M.updatedAt > cfg.liqPriceMaxAge;
    g.check("reduce-only", !staleFlags && !priceStale && !g.paused[m], () => `risk-increasing fill of ${a} in ${m} while breakers ${M.breakers} / stale ${priceStale} / paused ${g.paused[m]}`);
    if (M.estLast > 0n) {
      const move = mulDiv(abs(M.price - M.estLast), WAD, M.estLast);
      g.check("jump-breaker", move <= cfg.jumpD18, () => `risk-increasing fill of ${a} in market ${m} at ${M.price} although the latest round moved ${move} (> jump bound ${cfg.jumpD18}) from the last folded price ${M.estLast} and no poke has run (PriceJumpBreaker bypass)`);
    }
    if (i >= 0 && perAccount.get(a) === 1) {
      const mg = marginOf(w, post, i, ts);
      g.check("initial-margin", mg.equity >= mg.im, () => `risk-increasing fill left ${a} at equity ${mg.equity} < IM ${mg.im}`);
    }
    if (mods.length === 1) {
      // OI cap of the side that grew, recomputed: at the check the market aggregates are the post-fill ones and
      // the pool ledger is still the pre-transaction one (settlement comes after the check).
      const P = post.markets[m];
      const oi = newSize > 0n ? P.oiL : P.oiS;
      const owed = pnlD18(P.skew, P.netBasis, P.price, P.index);
      let capacity = pre.pool * w.scale;
      if (owed > 0n) capacity -= owed;
      const cap = capacity <= 0n ? 0n : mulDiv(capacity, cfg.risk.oiCapRatioD18, WAD);
      g.check("oi-cap", notionalUpD18(oi, P.price) <= cap, () => `OI ${notionalUpD18(oi, P.price)} above cap ${cap} in ${m}`);
    }
  }
}

function checkOrders(w: World, g: Ghost, res: TxResult) {
  const { ts, pre } = res;
  for (const e of ev(res, "OrderCommitted")) {
    const id = e.args.orderId as bigint;
    g.pending.set(id, {
      id,
      account: addr(e.args.account),
      market: Number(e.args.marketId),
      size: e.args.sizeDeltaD18 as bigint,
      acceptable: e.args.acceptablePriceD18 as bigint,
      commitTime: ts,
      fee: e.args.executionFee as bigint,
      expiresAt: e.args.expiresAt as bigint,
      conditional: false,
      trigger: 0n,
      above: false,
      reduceOnly: false,
    });
  }
  for (const e of ev(res, "OrderModified")) {
    const o = g.pending.get(e.args.orderId as bigint);
    g.check("order-timing", !!o && o.conditional, () => `modified order ${e.args.orderId} is not a pending conditional order`);
    if (!o) continue;
    o.size = e.args.sizeDeltaD18 as bigint;
    o.acceptable = e.args.acceptablePriceD18 as bigint;
    o.commitTime = ts; // minDelay starts again
  }
  for (const e of ev(res, "OrderRearmed")) {
    const o = g.pending.get(e.args.orderId as bigint);
    g.check("order-timing", !!o && o.conditional, () => `re-armed order ${e.args.orderId} is not a pending conditional order`);
    if (o) o.commitTime = ts; // fills at the first round after this moment
  }
  for (const e of ev(res, "OrderTriggerSet")) {
    const o = g.pending.get(e.args.orderId as bigint);
    if (!o) continue;
    o.conditional = true;
    o.trigger = e.args.triggerPriceD18 as bigint;
    o.above = e.args.triggerAbove as boolean;
    o.reduceOnly = e.args.reduceOnly as boolean;
    o.expiresAt = e.args.expiresAt as bigint;
    g.check("order-timing", o.expiresAt > ts + w.ch.minDelay && o.trigger > 0n, () => `conditional order ${o.id} accepted with expiry ${o.expiresAt} / trigger ${o.trigger}`);
  }
  const mods = ev(res, "PositionModified");
  for (const e of ev(res, "OrderExecuted")) {
    const id = e.args.orderId as bigint;
    const o = g.pending.get(id);
    g.check("order-timing", !!o, () => `executed unknown order ${id}`);
    if (!o) continue;
    g.check("order-timing", ts >= o.commitTime + w.ch.minDelay && ts <= o.expiresAt, () => `order ${id} committed ${o.commitTime} (expiry ${o.expiresAt}) executed at ${ts}`);
    if (w.freshRule) {
      g.check("order-timing", pre.markets[o.market].updatedAt > o.commitTime, () => `order ${id} committed at ${o.commitTime} filled at a round published at ${pre.markets[o.market].updatedAt}`);
    }
    if (o.conditional) {
      const p = pre.markets[o.market].price;
      g.check("order-timing", o.above ? p >= o.trigger : p <= o.trigger, () => `conditional order ${id} executed at ${p} without its trigger ${o.above ? "≥" : "≤"} ${o.trigger}`);
    }
    if (o.reduceOnly) {
      const i = accountIndex(w, o.account);
      const pm = mods.find((x) => addr(x.args.account) === o.account && Number(x.args.marketId) === o.market);
      if (i >= 0 && pm) {
        const after = pm.args.newSizeD18 as bigint;
        const before = after - (pm.args.sizeDeltaD18 as bigint);
        g.check("reduce-only", !increasesRisk(before, after), () => `reduce-only order ${id} moved ${o.account} from ${before} to ${after}`);
      }
    }
    const fill = e.args.fillPriceD18 as bigint;
    g.check("order-timing", o.size > 0n ? fill <= o.acceptable : fill >= o.acceptable, () => `order ${id} filled at ${fill} beyond limit ${o.acceptable}`);
    g.pending.delete(id);
  }
  for (const e of ev(res, "OrderCancelled")) {
    const id = e.args.orderId as bigint;
    const o = g.pending.get(id);
    g.check("order-timing", !!o, () => `cancelled unknown order ${id}`);
    if (!o) continue;
    const reason = e.args.reason as string;
    if (reason === "0x") {
      const byOwner = addr(e.args.by) === o.account;
      g.check("order-timing", ts > o.expiresAt || (o.conditional && byOwner), () => `order ${id} cancelled by ${e.args.by} at ${ts} before expiry ${o.expiresAt}`);
    } else {
      g.check("order-timing", ts >= o.commitTime + w.ch.minDelay && ts <= o.expiresAt, () => `order ${id} dropped at execution outside its window`);
      const i = accountIndex(w, o.account);
      const before = i >= 0 ? pre.pos[i][o.market].size : 0n;
      const d = decodeError(w, reason);
      // With a pool deficit (NAV < 0) profitable closes are the auto-deleveraging path's job (checked by the
      // Execute command); with NAV ≥ 0 a close must never be refused for anything but its own price limit.
      const solvent = pre.navOk && pre.nav >= 0n;
      if (i >= 0 && solvent && !increasesRisk(before, before + o.size) && mods.length === 0) {
        g.check(
          "close-never-blocked",
          d.name === "ClearingHouseAcceptablePriceExceeded",
          () => `risk-reducing order ${id} of ${o.account} (size ${before}, delta ${o.size}) was cancelled with ${d.name}(${d.args.map(fmt).join(", ")})`,
        );
      }
    }
    g.pending.delete(id);
  }
}

function checkAdl(w: World, g: Ghost, res: TxResult) {
  const { pre, post, ts } = res;
  for (const e of ev(res, "AutoDeleveraged")) {
    let traderPnl = 0n;
    for (let m = 0; m < w.markets.length; m++) {
      const M = pre.markets[m];
      if (M.oiL === 0n && M.oiS === 0n) continue;
      traderPnl += pnlD18(M.skew, M.netBasis, M.price, pendingIndexAt(M, w.markets[m], ts));
    }
    g.check("adl", traderPnl > pre.pool * w.scale, () => `ADL without a pool deficit (trader PnL ${traderPnl}, pool ${pre.pool})`);
    g.check("adl", (e.args.pnlD18 as bigint) > 0n, () => `ADL of a non-profitable position`);
    const i = accountIndex(w, e.args.account);
    if (i >= 0) {
      const m = Number(e.args.marketId);
      g.check("adl", post.pos[i][m].size === 0n, () => `ADL left a position`);
      const gain = post.accounts[i].collateral - pre.accounts[i].collateral;
      g.check("adl", gain * w.scale <= (e.args.pnlD18 as bigint), () => `ADL paid ${gain} tokens for a profit of ${e.args.pnlD18}`);
    }
  }
}

// ===================================================================== commands

type Cmd = fc.AsyncCommand<Ghost, World, boolean>;

abstract class Base implements Cmd {
  check(): boolean {
    return true;
  }
  abstract run(g: Ghost, w: World): Promise<void>;
  abstract toString(): string;
}

function signerOf(w: World, who: number, pool: "traders" | "keepers" | "lps" | "any"): HardhatEthersSigner {
  if (pool === "traders") return w.traders[who % w.traders.length];
  if (pool === "keepers") return w.keepers[who % w.keepers.length];
  if (pool === "lps") return w.lps[who % w.lps.length];
  const all = [...w.traders, ...w.keepers];
  return all[who % all.length];
}

async function ensureTokens(w: World, g: Ghost, s: HardhatEthersSigner, amount: bigint) {
  const bal = (await viewWords(w.f.token.target as string, "0x70a08231" + word32(s.address)))(0); // balanceOf
  if (bal >= amount) return;
  await tx(w, g, `mint ${s.address.slice(0, 6)}`, () => call(w.f.token, null, "mint", [s.address, amount - bal + 10n ** 6n]));
}

// ---- collateral

class Deposit extends Base {
  constructor(
    readonly who: number,
    readonly usd: number,
  ) {
    super();
  }
  toString() {
    return `Deposit(trader${this.who}, ${this.usd} USD)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("deposit");
    const t = signerOf(w, this.who, "traders");
    const amount = this.usd === 0 ? 1n : BigInt(Math.round(this.usd * 1e6));
    await ensureTokens(w, g, t, amount);
    const i = accountIndex(w, t.address);
    const res = await tx(w, g, this.toString(), () => call(w.f.vault, t, "deposit", [t.address, amount]));
    g.check("ledger-zero-sum", res.ok && res.post.accounts[i].collateral - res.pre.accounts[i].collateral === amount, () => `deposit of ${amount} failed or credited wrong: ${res.err?.name}`);
    // A deposit that cures a live margin call clears it (when the markets can be priced).
    const dl = g.deadline(t.address);
    if (res.ok && dl !== 0n && res.events.every((e) => e.name !== "MarginCallCleared")) {
      const mg = marginOf(w, res.post, i, res.ts);
      const priced = mg.markets.every((m) => priceUsable(res.post.markets[m], res.ts, w.markets[m].priceMaxAge));
      g.check("margin-call", !priced || mg.equity < mg.mm, () => `deposit cured ${t.address} (equity ${mg.equity} ≥ mm ${mg.mm}) but its margin call stayed`);
    }
  }
}

class Withdraw extends Base {
  constructor(
    readonly who: number,
    readonly mode: "pct" | "over" | "all",
    readonly pct: number,
  ) {
    super();
  }
  toString() {
    return `Withdraw(trader${this.who}, ${this.mode}${this.mode === "pct" ? " " + this.pct + "%" : ""})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("withdraw");
    const t = signerOf(w, this.who, "traders");
    const i = accountIndex(w, t.address);
    const ts = g.now + 1n;
    const s = g.snap;
    const mg = marginOf(w, s, i, ts);
    const priced = mg.markets.every((m) => priceUsable(s.markets[m], ts, w.markets[m].priceMaxAge));
    const free = priced ? freeCollateralOf(w, s, i, ts) : 0n;
    let amount: bigint;
    if (this.mode === "over") amount = free + 1n;
    else if (this.mode === "all") amount = s.accounts[i].collateral;
    else amount = (free * BigInt(this.pct)) / 100n;
    if (amount === 0n) amount = 1n;
    const res = await tx(w, g, `${this.toString()} amount=${amount} free=${free}`, () => call(w.f.vault, t, "withdraw", [amount, t.address]));
    const expectOk = priced && amount <= free;
    g.check("withdraw-margin", res.ok === expectOk, () => `withdraw ${amount} with independently computed free collateral ${free} (priced ${priced}): ${res.ok ? "succeeded" : "reverted " + res.err?.name + "(" + (res.err?.args ?? []).map(fmt).join(",") + ")"}`);
    if (res.ok) {
      const after = marginOf(w, res.post, i, res.ts);
      g.check("withdraw-margin", after.positions === 0 || min(res.post.accounts[i].collateral * w.scale, after.equity) >= after.im, () => `withdraw left ${t.address} with min(coll, equity) below IM ${after.im}`);
    }
  }
}

// ---- orders

export type OrderSpec =
  | { kind: "open"; long: boolean; levPct: number }
  | { kind: "close"; pct: number }
  | { kind: "dust"; long: boolean; wei: bigint };

function sizeFor(w: World, g: Ghost, i: number, m: number, spec: OrderSpec): bigint {
  const s = g.snap;
  const M = s.markets[m];
  if (M.price === 0n) return 10n ** 15n;
  if (spec.kind === "dust") return spec.long ? spec.wei : -spec.wei;
  if (spec.kind === "close") {
    const cur = s.pos[i][m].size;
    if (cur === 0n) return 10n ** 16n;
    const d = (-cur * BigInt(spec.pct)) / 100n;
    return d === 0n ? -cur : d;
  }
  const mg = marginOf(w, s, i, g.now + 1n);
  const base = min(s.accounts[i].collateral * w.scale, mg.equity < 0n ? 0n : mg.equity) - mg.im;
  const notional = base > 0n ? (base * WAD) / (M.imr + 10n ** 15n) : 100n * WAD;
  let size = (((notional * BigInt(spec.levPct)) / 100n) * WAD) / M.price;
  if (size === 0n) size = 1n;
  if (size > 2n ** 94n) size = 2n ** 94n;
  return spec.long ? size : -size;
}

function acceptableFor(g: Ghost, m: number, size: bigint, tightBps: number | null): bigint {
  if (tightBps === null) return size > 0n ? UINT96_MAX : 0n;
  const p = g.snap.markets[m].price;
  return size > 0n ? (p * BigInt(10_000 + tightBps)) / 10_000n : (p * BigInt(10_000 - tightBps)) / 10_000n;
}

async function commitOrder(w: World, g: Ghost, label: string, t: HardhatEthersSigner, m: number, size: bigint, acceptable: bigint, feeExtra = 0n) {
  const fee = w.ch.minFee + feeExtra;
  const res = await tx(w, g, label, () => call(w.f.clearingHouse, t, "commitOrder", [m, size, acceptable], fee));
  g.check("order-timing", res.ok === (size !== 0n && size < 2n ** 95n && size >= -(2n ** 95n)), () => `commit of ${size} ${res.ok ? "succeeded" : "reverted " + res.err?.name}`);
  const e = res.events.find((x) => x.name === "OrderCommitted");
  return e ? (e.args.orderId as bigint) : undefined;
}

/** The round an order fills at (F5), re-derived from the feed: walking back at most 16 rounds in the latest
 * round's phase, the first round after the commit (market orders) or the first round of the current run of
 * rounds meeting the trigger after the commit (conditional orders). `exhausted` when the walk did not reach it. */
async function fillRoundOf(w: World, o: PendingOrder) {
  const feed = w.f.priceFeeds[o.market].target as string;
  const scale = w.priceScale[o.market];
  const latest = await viewWords(feed, "0xfeaf968c"); // latestRoundData()
  let id = latest(0);
  let price = BigInt.asIntN(256, latest(1)) * scale;
  let at = latest(3);
  for (let i = 0; ; i++) {
    if ((id & ((1n << 64n) - 1n)) <= 1n) return { price, at, exhausted: false };
    if (i === 16) return { price: 0n, at: 0n, exhausted: true };
    const r = await viewWords(feed, "0x9a6fc8f5" + word32(id - 1n)); // getRoundData(id − 1)
    const a = BigInt.asIntN(256, r(1));
    const u = r(3);
    const p = a * scale;
    const outside = o.conditional && (o.above ? p < o.trigger : p > o.trigger);
    if (a <= 0n || u === 0n || u > at || u <= o.commitTime || outside) return { price, at, exhausted: false };
    id -= 1n;
    price = p;
    at = u;
  }
}

async function executeOrder(w: World, g: Ghost, label: string, id: bigint, keeper: HardhatEthersSigner, early: boolean, waitRound = true) {
  // A copy: the transaction's events update the model's order (a re-arm moves its commit time), and the
  // expectations below are about the order as it was when executed.
  const pending = g.pending.get(id);
  const o = pending ? { ...pending } : undefined;
  // A keeper waits for a Chainlink round published after the commit (a heartbeat at the same answer here).
  if (o && waitRound && !early && w.freshRule && g.snap.markets[o.market].updatedAt <= o.commitTime && g.snap.markets[o.market].answer > 0n) {
    await publishPriceChecked(w, g, o.market, g.snap.markets[o.market].answer, `heartbeat m${o.market}`);
  }
  let dt = 1n;
  if (o && !early) {
    const ready = o.commitTime + w.ch.minDelay;
    if (g.now + 1n < ready) dt = ready - g.now;
  }
  const ts = g.now + dt;
  const fr = o ? await fillRoundOf(w, o) : undefined;
  const res = await tx(w, g, label, () => call(w.f.clearingHouse, keeper, "executeOrder", [id]), dt);
  if (!o) {
    g.check("order-timing", !res.ok && res.err?.name === "ClearingHouseOrderNotFound", () => `executing a non-pending order: ${res.err?.name ?? "succeeded"}`);
    return res;
  }
  const M = res.pre.markets[o.market];
  let expected: string | null = null;
  if (ts < o.commitTime + w.ch.minDelay) expected = "ClearingHouseOrderNotReady";
  else if (ts > o.expiresAt) expected = "ClearingHouseOrderExpired";
  else if (!priceUsable(M, ts, w.markets[o.market].priceMaxAge)) expected = "OracleStale";
  else if (w.freshRule && M.updatedAt <= o.commitTime) expected = "ClearingHouseAwaitingPriceRound";
  else if (o.conditional && !(o.above ? M.price >= o.trigger : M.price <= o.trigger)) expected = "ClearingHouseOrderNotTriggered";
  else if (!o.conditional && fr!.exhausted) expected = "ClearingHouseFillRoundUnknown";
  const rearm = !expected && o.conditional && (fr!.exhausted || ts - fr!.at > w.ch.maxAge);
  if (!expected && res.ok) {
    if (rearm) g.stats.kind("rearm");
    else if (fr!.at < M.updatedAt) g.stats.kind("older-round-fill");
  }
  if (!expected) {
    // F5: re-armed iff the conditional order's run began too long ago; otherwise filled (or cancelled) at the
    // price of its fill round, whoever executes.
    g.check("order-timing", ev(res, "OrderRearmed").length === (rearm && res.ok ? 1 : 0), () => `order ${id}: re-arm expected ${rearm} (run start ${fr!.at}, exhausted ${fr!.exhausted}) at ${ts}`);
    const pm = ev(res, "PositionModified").find((x) => addr(x.args.account) === o.account && Number(x.args.marketId) === o.market);
    if (pm && !rearm) {
      const cfg = w.markets[o.market];
      const want = fillPriceD18(fr!.price, res.pre.markets[o.market].skew, pm.args.sizeDeltaD18 as bigint, cfg.risk.skewScaleD18);
      g.check("order-timing", (pm.args.fillPriceD18 as bigint) === want, () => `order ${id} filled at ${pm.args.fillPriceD18}, expected ${want} from its fill round (${fr!.price} at ${fr!.at})`);
    }
  }
  if (expected) {
    g.check("order-timing", !res.ok && res.err?.name === expected, () => `order ${id} at ${ts} (commit ${o.commitTime}) expected ${expected}, got ${res.ok ? "success" : res.err?.name}`);
  } else {
    g.check("order-timing", res.ok, () => `due order ${id} could not be executed: ${res.err?.name}(${(res.err?.args ?? []).map(fmt).join(",")})`);
  }
  // A profitable close refused because the pool is insolvent (NAV < 0) must have the ADL exit available.
  const cancel = res.events.find((e) => e.name === "OrderCancelled");
  if (cancel && decodeError(w, cancel.args.reason).name === "VaultPoolInsufficient" && res.pre.navOk && res.pre.nav < 0n) {
    let adlOk = false;
    try {
      await w.f.clearingHouse.connect(w.keepers[0]).autoDeleverage.staticCall(o.account, o.market);
      adlOk = true;
    } catch {
      adlOk = false;
    }
    g.check("close-never-blocked", adlOk, () => `profitable close of ${o.account} refused at a pool deficit and auto-deleveraging is not available either`);
  }
  return res;
}

class Commit extends Base {
  constructor(
    readonly who: number,
    readonly m: number,
    readonly spec: OrderSpec,
    readonly tightBps: number | null,
  ) {
    super();
  }
  toString() {
    return `Commit(trader${this.who}, m${this.m}, ${fmt(this.spec)}, limit ${this.tightBps ?? "none"})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("commit");
    const t = signerOf(w, this.who, "traders");
    const m = this.m % w.markets.length;
    const size = sizeFor(w, g, accountIndex(w, t.address), m, this.spec);
    await commitOrder(w, g, `${this.toString()} size=${size}`, t, m, size, acceptableFor(g, m, size, this.tightBps));
  }
}

class Execute extends Base {
  constructor(
    readonly pick: number,
    readonly keeper: number,
    readonly early: boolean,
    readonly waitRound = true,
  ) {
    super();
  }
  toString() {
    return `Execute(pick ${this.pick}, keeper${this.keeper}${this.early ? ", early" : ""}${this.waitRound ? "" : ", no new round"})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("execute");
    const ids = [...g.pending.keys()].sort((a, b) => (a < b ? -1 : 1));
    const id = ids.length ? ids[this.pick % ids.length] : g.snap.nextOrderId + 7n;
    await executeOrder(w, g, `${this.toString()} id=${id}`, id, signerOf(w, this.keeper, "keepers"), this.early, this.waitRound);
  }
}

class Trade extends Base {
  constructor(
    readonly who: number,
    readonly m: number,
    readonly spec: OrderSpec,
    readonly tightBps: number | null,
    readonly keeper: number,
    readonly delay: number,
  ) {
    super();
  }
  toString() {
    return `Trade(trader${this.who}, m${this.m}, ${fmt(this.spec)}, limit ${this.tightBps ?? "none"}, keeper${this.keeper}, +${this.delay}s)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("trade");
    const t = signerOf(w, this.who, "traders");
    const m = this.m % w.markets.length;
    const size = sizeFor(w, g, accountIndex(w, t.address), m, this.spec);
    const id = await commitOrder(w, g, `${this.toString()} commit size=${size}`, t, m, size, acceptableFor(g, m, size, this.tightBps));
    if (id === undefined) return;
    if (this.delay > 0) await mineAt(w, g, BigInt(this.delay), `wait ${this.delay}s`);
    await executeOrder(w, g, `${this.toString()} execute id=${id}`, id, signerOf(w, this.keeper, "keepers"), false);
  }
}

class Cancel extends Base {
  constructor(
    readonly pick: number,
    readonly by: number,
    readonly waitExpiry: boolean,
    readonly owner = false,
  ) {
    super();
  }
  toString() {
    return `Cancel(pick ${this.pick}, ${this.owner ? "by owner" : "by" + this.by}${this.waitExpiry ? ", after expiry" : ""})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("cancel");
    const ids = [...g.pending.keys()].sort((a, b) => (a < b ? -1 : 1));
    if (!ids.length) return;
    const id = ids[this.pick % ids.length];
    const o = g.pending.get(id)!;
    let dt = 1n;
    const exp = o.expiresAt;
    if (this.waitExpiry && g.now + 1n <= exp && exp - g.now < 7n * 86_400n) dt = exp + 1n - g.now;
    const ts = g.now + dt;
    const caller = this.owner && w.signerByAddr.has(o.account) ? w.signerByAddr.get(o.account)! : signerOf(w, this.by, "any");
    const res = await tx(w, g, `${this.toString()} id=${id}`, () => call(w.f.clearingHouse, caller, "cancelOrder", [id]), dt);
    const expectOk = ts > exp || (o.conditional && caller.address === o.account);
    g.check("order-timing", res.ok === expectOk && (expectOk || res.err?.name === "ClearingHouseOrderNotExpired"), () => `cancel of order ${id} at ${ts} (expiry ${exp}): ${res.ok ? "ok" : res.err?.name}`);
  }
}

/** Conditional orders: limit (buy below / sell above), stop-loss and take-profit (reduce-only on the closing
 * side), or an arbitrary trigger; valid or invalid expiries. */
class CommitConditional extends Base {
  constructor(
    readonly who: number,
    readonly m: number,
    readonly spec: OrderSpec,
    readonly offsetBps: number,
    readonly above: boolean,
    readonly reduceOnly: boolean,
    readonly lifetime: number,
  ) {
    super();
  }
  toString() {
    return `CommitConditional(trader${this.who}, m${this.m}, ${fmt(this.spec)}, trigger ${this.above ? "≥" : "≤"} price${this.offsetBps >= 0 ? "+" : ""}${this.offsetBps}bps, ${this.reduceOnly ? "reduce-only, " : ""}life ${this.lifetime}s)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("conditional");
    const t = signerOf(w, this.who, "traders");
    const m = this.m % w.markets.length;
    const size = sizeFor(w, g, accountIndex(w, t.address), m, this.spec);
    const p = g.snap.markets[m].price;
    // Mostly on the far side of the market (a resting trigger); every 4th offset as drawn, which may be met
    // already and must then be refused (F5).
    const off = this.offsetBps % 4 === 0 ? this.offsetBps : this.above ? Math.abs(this.offsetBps) + 1 : -Math.abs(this.offsetBps) - 1;
    const trigger = (p * BigInt(10_000 + off)) / 10_000n;
    const ts = g.now + 1n;
    const expiresAt = ts + BigInt(this.lifetime);
    const acceptable = size > 0n ? UINT96_MAX : 0n;
    const res = await tx(w, g, `${this.toString()} size=${size}`, () =>
      call(w.f.clearingHouse, t, "commitConditionalOrder", [m, size, acceptable, trigger, this.above, this.reduceOnly, expiresAt], w.ch.minFee),
    );
    const valid = size !== 0n && trigger > 0n && expiresAt > ts + w.ch.minDelay && expiresAt <= ts + 90n * 86_400n && !alreadyMet(w, g, m, this.above, trigger, ts);
    g.check("order-timing", res.ok === valid, () => `conditional commit (expiry ${expiresAt} at ${ts}) ${res.ok ? "accepted" : "refused: " + res.err?.name}, expected ${valid ? "accepted" : "refused"}`);
  }
}

/** A conditional trigger already met at the latest usable price is refused at commit/modify (F5). */
function alreadyMet(w: World, g: Ghost, m: number, above: boolean, trigger: bigint, ts: bigint) {
  const M = g.snap.markets[m];
  if (!priceUsable(M, ts, w.markets[m].priceMaxAge)) return false;
  return above ? M.price >= trigger : M.price <= trigger;
}

class Modify extends Base {
  constructor(
    readonly pick: number,
    readonly asOwner: boolean,
    readonly sizePct: number,
    readonly offsetBps: number,
    readonly lifetime: number,
  ) {
    super();
  }
  toString() {
    return `ModifyOrder(pick ${this.pick}, ${this.asOwner ? "owner" : "stranger"}, size ${this.sizePct}%, trigger price${this.offsetBps >= 0 ? "+" : ""}${this.offsetBps}bps, life ${this.lifetime}s)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("modify");
    const ids = [...g.pending.keys()].sort((a, b) => (a < b ? -1 : 1));
    if (!ids.length) return;
    const o = g.pending.get(ids[this.pick % ids.length])!;
    const owner = w.signerByAddr.get(o.account);
    const caller = this.asOwner && owner ? owner : w.keepers[0];
    const size = (o.size * BigInt(this.sizePct)) / 100n;
    const off = this.offsetBps % 4 === 0 ? this.offsetBps : o.above ? Math.abs(this.offsetBps) + 1 : -Math.abs(this.offsetBps) - 1;
    const trigger = (g.snap.markets[o.market].price * BigInt(10_000 + off)) / 10_000n;
    const ts = g.now + 1n;
    const expiresAt = ts + BigInt(this.lifetime);
    const res = await tx(w, g, `${this.toString()} id=${o.id}`, () =>
      call(w.f.clearingHouse, caller, "modifyOrder", [o.id, size, o.acceptable, trigger, expiresAt]),
    );
    const valid = caller.address === o.account && o.conditional && size !== 0n && trigger > 0n && expiresAt > ts + w.ch.minDelay && expiresAt <= ts + 90n * 86_400n && !alreadyMet(w, g, o.market, o.above, trigger, ts);
    g.check("order-timing", res.ok === valid, () => `modify of order ${o.id} by ${caller.address} ${res.ok ? "accepted" : "refused: " + res.err?.name}, expected ${valid ? "accepted" : "refused"}`);
  }
}

// ---- LPs

class LpDeposit extends Base {
  constructor(
    readonly who: number,
    readonly usd: number,
  ) {
    super();
  }
  toString() {
    return `LpDeposit(lp${this.who}, ${this.usd} USD)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("lp-deposit");
    const lp = signerOf(w, this.who, "lps");
    const amount = BigInt(Math.max(1, Math.round(this.usd * 1e6)));
    await ensureTokens(w, g, lp, amount);
    await tx(w, g, this.toString(), () => call(w.f.pool, lp, "deposit", [amount, lp.address]));
  }
}

class LpWithdraw extends Base {
  constructor(
    readonly who: number,
    readonly pct: number,
    readonly over: boolean,
  ) {
    super();
  }
  toString() {
    return `LpWithdraw(lp${this.who}, ${this.over ? "max+1" : this.pct + "% of max"})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("lp-withdraw");
    const lp = signerOf(w, this.who, "lps");
    let maxW: bigint;
    try {
      maxW = (await viewWords(w.addr.pool, "0xce96cb77" + word32(lp.address)))(0); // maxWithdraw
    } catch {
      maxW = 0n;
    }
    // "over": above maxWithdraw by more than the funding one block can add to NAV.
    const amount = this.over ? maxW + maxW / 10_000n + 10n ** 6n : (maxW * BigInt(this.pct)) / 100n;
    if (amount === 0n) return;
    const res = await tx(w, g, `${this.toString()} amount=${amount} max=${maxW}`, () => call(w.f.pool, lp, "withdraw", [amount, lp.address, lp.address]));
    if (this.over) {
      g.check("lp-reserve", !res.ok, () => `LP withdrew ${amount} above maxWithdraw ${maxW}`);
      return;
    }
    if (!res.ok) return; // maxWithdraw was read one block earlier; funding may have moved NAV by a wei
    const post = res.post;
    let exposure = 0n;
    for (const M of post.markets) {
      const size = w.reserveGross ? M.oiL + M.oiS : abs(M.skew);
      if (size !== 0n) exposure += notionalUpD18(size, M.price);
    }
    const reserved = (exposure * w.reserveFactor + WAD * w.scale - 1n) / (WAD * w.scale);
    g.check("lp-reserve", post.lpTotalAssets + 1n >= reserved, () => `LP withdrawal left NAV ${post.lpTotalAssets} below the reserve ${reserved}`);
    // The pool's cash must still pay every winning trader who closes now (closing is never blocked). A close
    // pays its profit in whole tokens, rounded down (MarginMath.toTokensFloor): a dust winner owed less than a
    // token unit is owed nothing (found by seed 20261123: a 1-wei long after a +900% shock, owed 1.8e-14 USD).
    let winners = 0n;
    for (let i = 0; i < w.accounts.length; i++) {
      for (let m = 0; m < w.markets.length; m++) {
        const p = post.pos[i][m];
        if (p.size === 0n) continue;
        const pnl = pnlD18(p.size, p.basis, post.markets[m].price, pendingIndexAt(post.markets[m], w.markets[m], post.ts));
        if (pnl > 0n) winners += pnl / w.scale;
      }
    }
    g.check("lp-cash", post.pool >= winners, () => `after an LP withdrawal of ${amount} the pool holds ${post.pool} tokens but winning traders are owed ${winners} (their closes would be paid only what the pool and insurance fund hold: ProfitHaircut)`);
  }
}

// ---- oracle, σ, time


class PriceMove extends Base {
  constructor(
    readonly m: number,
    readonly idx: number,
    readonly hours: number,
    readonly bps: number,
  ) {
    super();
  }
  toString() {
    return `PriceMove(m${this.m}, csv[${this.idx}]+${this.hours}h, fallback ${this.bps}bps)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("price");
    const m = this.m % w.markets.length;
    const ratio = moveRatio(this.idx, this.hours, this.bps);
    const old = g.snap.markets[m].answer;
    let next = (old * BigInt(Math.round(ratio * 1e9))) / 1_000_000_000n;
    if (next < 10n ** 8n) next = 10n ** 8n;
    await publishPriceChecked(w, g, m, next, `${this.toString()} ratio=${ratio.toFixed(5)}`);
  }
}

async function publishPriceChecked(w: World, g: Ghost, m: number, answer: bigint, label: string) {
  const pre = g.snap;
  await rpc("evm_setNextBlockTimestamp", [Number(g.now + 1n)]);
  await rpc("eth_sendTransaction", [rpcTx(call(w.f.priceFeeds[m], null, "updateAnswer", [answer]))]);
  const post = await readSnap(w, g.orderFrom());
  g.now = post.ts;
  g.trace.push(`${label} @${post.ts}`);
  g.stats.steps++;
  const res: TxResult = { ok: true, ts: post.ts, events: [], pre, post };
  (res as any).kind = "price";
  checkTx(w, g, res);
  g.snap = post;
}

class Shock extends Base {
  constructor(
    readonly m: number,
    readonly pct: number,
  ) {
    super();
  }
  toString() {
    return `Shock(m${this.m}, ${this.pct > 0 ? "+" : ""}${this.pct}%)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("shock");
    const m = this.m % w.markets.length;
    const old = g.snap.markets[m].answer;
    let next = (old * BigInt(100 + this.pct)) / 100n;
    if (next < 10n ** 8n) next = 10n ** 8n;
    await publishPriceChecked(w, g, m, next, this.toString());
  }
}

/** Adversarial move: the price of the market where the most leveraged trader is most exposed moves against
 * it by `pct`% (below the jump bound, so no breaker trips): drives margin calls and liquidations. */
class Squeeze extends Base {
  constructor(readonly pct: number) {
    super();
  }
  toString() {
    return this.pct >= 0 ? `Squeeze(${this.pct}% against the most leveraged trader)` : `Relief(${-this.pct}% in favour of the most leveraged trader)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("squeeze");
    const s = g.snap;
    let best: { m: number; size: bigint; ratio: bigint } | null = null;
    for (const t of w.traders) {
      const i = accountIndex(w, t.address);
      const mg = marginOf(w, s, i, g.now);
      if (mg.positions === 0 || mg.equity <= 0n) continue;
      for (const m of mg.markets) {
        const p = s.pos[i][m].size;
        const ratio = (notionalUpD18(abs(p), s.markets[m].price) * WAD) / mg.equity;
        if (!best || ratio > best.ratio) best = { m, size: p, ratio };
      }
    }
    if (!best) return;
    const old = s.markets[best.m].answer;
    const pct = BigInt(Math.round(this.pct * 100));
    let next = best.size > 0n ? (old * (10_000n - pct)) / 10_000n : (old * (10_000n + pct)) / 10_000n;
    if (next < 10n ** 8n) next = 10n ** 8n;
    await publishPriceChecked(w, g, best.m, next, `${this.toString()} m${best.m}`);
  }
}

class VolMove extends Base {
  constructor(
    readonly m: number,
    readonly percent: number,
  ) {
    super();
  }
  toString() {
    return `VolMove(m${this.m}, ${this.percent}%)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("vol");
    const m = this.m % w.markets.length;
    await tx(w, g, `${this.toString()} feed`, () => call(w.f.volFeeds[m], null, "updateAnswer", [BigInt(this.percent) * 100n]));
    await tx(w, g, `${this.toString()} poke`, () => call(w.f.riskManager, null, "pokeVolatility", [m]));
  }
}

class Poke extends Base {
  constructor(readonly m: number) {
    super();
  }
  toString() {
    return `Poke(m${this.m})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("poke");
    const m = this.m % w.markets.length;
    const res = await tx(w, g, this.toString(), () => call(w.f.riskManager, null, "pokeVolatility", [m]));
    g.check("ratios", res.ok, () => `poke reverted: ${res.err?.name}`);
  }
}

class Refresh extends Base {
  toString() {
    return `Refresh()`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("refresh");
    for (let m = 0; m < w.markets.length; m++) {
      await publishPriceChecked(w, g, m, g.snap.markets[m].answer, `refresh price m${m}`);
      const vf = w.f.volFeeds[m];
      const v = BigInt.asIntN(256, (await viewWords(vf.target as string, "0xfeaf968c"))(1)); // latestRoundData().answer
      await tx(w, g, `refresh vol m${m}`, () => call(vf, null, "updateAnswer", [v]));
      await tx(w, g, `poke m${m}`, () => call(w.f.riskManager, null, "pokeVolatility", [m]));
    }
  }
}

class TimeJump extends Base {
  constructor(readonly dt: number) {
    super();
  }
  toString() {
    return `TimeJump(${this.dt}s)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("time");
    await mineAt(w, g, BigInt(this.dt), this.toString());
  }
}

// ---- margin calls and liquidations

class Flag extends Base {
  constructor(
    readonly who: number,
    readonly by: number,
  ) {
    super();
  }
  toString() {
    return `Flag(trader${this.who}, by${this.by})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("flag");
    const t = signerOf(w, this.who, "traders");
    const i = accountIndex(w, t.address);
    const ts = g.now + 1n;
    const mg = marginOf(w, g.snap, i, ts);
    const st = statusOf(w, mg.equity, mg.mm, g.deadline(t.address), ts);
    const priced = mg.markets.every((m) => priceUsable(g.snap.markets[m], ts, w.markets[m].priceMaxAge));
    const res = await tx(w, g, this.toString(), () => call(w.f.clearingHouse, signerOf(w, this.by, "any"), "flagMarginCall", [t.address]));
    g.check("margin-call", !priced || res.ok === (st === STATUS.MarginCallable), () => `flag of ${t.address} with predicted status ${st}: ${res.ok ? "ok" : res.err?.name}`);
  }
}

class Clear extends Base {
  constructor(readonly who: number) {
    super();
  }
  toString() {
    return `Clear(trader${this.who})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("clear");
    const t = signerOf(w, this.who, "traders");
    const i = accountIndex(w, t.address);
    const ts = g.now + 1n;
    const mg = marginOf(w, g.snap, i, ts);
    const priced = mg.markets.every((m) => priceUsable(g.snap.markets[m], ts, w.markets[m].priceMaxAge));
    const expectOk = g.deadline(t.address) !== 0n && mg.equity >= mg.mm;
    const res = await tx(w, g, this.toString(), () => call(w.f.clearingHouse, null, "clearMarginCall", [t.address]));
    g.check("margin-call", !priced || res.ok === expectOk, () => `clear of ${t.address} (deadline ${g.deadline(t.address)}, equity ${mg.equity}, mm ${mg.mm}): ${res.ok ? "ok" : res.err?.name}`);
  }
}

const LIQ_ALLOWED_REVERTS = new Set(["ClearingHouseLiquidationRateLimited", "ClearingHouseLiquidationsPaused", "OracleStale"]);

class Liquidate extends Base {
  constructor(
    readonly who: number,
    readonly by: number,
  ) {
    super();
  }
  toString() {
    return `Liquidate(trader${this.who}, by${this.by})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("liquidate");
    const t = signerOf(w, this.who, "traders");
    const liquidator = signerOf(w, this.by, "any");
    const i = accountIndex(w, t.address);
    const ts = g.now + 1n;
    const mg = marginOf(w, g.snap, i, ts);
    const st = statusOf(w, mg.equity, mg.mm, g.deadline(t.address), ts);
    const res = await tx(w, g, `${this.toString()} predicted ${st}`, () => call(w.f.clearingHouse, liquidator, "liquidate", [t.address]));
    if (st === STATUS.Liquidatable) {
      const insolvent = res.pre.navOk && res.pre.nav < 0n && res.err?.name === "VaultPoolInsufficient";
      g.check("liq-never-blocked", res.ok || insolvent || LIQ_ALLOWED_REVERTS.has(res.err?.name ?? ""), () => `Liquidatable ${t.address} could not be liquidated: ${res.err?.name}(${(res.err?.args ?? []).map(fmt).join(",")})`);
    } else {
      g.check("liq-only-liquidatable", !res.ok, () => `liquidation of ${t.address} succeeded with predicted status ${st}`);
    }
    if (res.ok) {
      // A second call in the new state pays nothing unless the first was capped by the rate limit.
      const limited = (res as any).liquidatedRateLimited?.get(t.address);
      if (!limited) {
        let second = false;
        try {
          await w.f.clearingHouse.connect(liquidator).liquidate.staticCall(t.address);
          second = true;
        } catch {
          second = false;
        }
        g.check("liq-second-pays-nothing", !second, () => `a second liquidation of ${t.address} in the same state succeeded`);
      }
    }
  }
}

/** Liquidates (or flags) the trader with the lowest equity / maintenance ratio, as a real keeper would. */
class LiquidateRiskiest extends Base {
  constructor(readonly by: number) {
    super();
  }
  toString() {
    return `LiquidateRiskiest(by${this.by})`;
  }
  async run(g: Ghost, w: World) {
    let best = -1;
    let bestH = 0n;
    for (let k = 0; k < w.traders.length; k++) {
      const i = accountIndex(w, w.traders[k].address);
      const mg = marginOf(w, g.snap, i, g.now + 1n);
      if (mg.mm === 0n) continue;
      const h = (mg.equity * WAD) / mg.mm;
      if (best < 0 || h < bestH) [best, bestH] = [k, h];
    }
    if (best < 0) return;
    const t = w.traders[best];
    const mg = marginOf(w, g.snap, accountIndex(w, t.address), g.now + 1n);
    const st = statusOf(w, mg.equity, mg.mm, g.deadline(t.address), g.now + 1n);
    if (st === STATUS.MarginCallable) return new Flag(best, this.by).run(g, w);
    return new Liquidate(best, this.by).run(g, w);
  }
}

class Batch extends Base {
  constructor(
    readonly mask: number,
    readonly keeper: number,
  ) {
    super();
  }
  toString() {
    return `LiquidateBatch(mask ${this.mask.toString(2)}, keeper${this.keeper})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("batch");
    const list = w.traders.filter((_t, k) => (this.mask >> k) & 1).map((t) => t.address);
    if ((this.mask >> 6) & 1 && list.length) list.push(list[0]); // a duplicate must pay nothing twice
    const ts = g.now + 1n;
    const predicted = new Map<string, bigint>();
    for (const a of list) {
      const i = accountIndex(w, a);
      const mg = marginOf(w, g.snap, i, ts);
      predicted.set(a, statusOf(w, mg.equity, mg.mm, g.deadline(a), ts));
    }
    const res = await tx(w, g, this.toString(), () => call(w.f.clearingHouse, signerOf(w, this.keeper, "keepers"), "liquidateBatch", [list]));
    if (!res.ok) {
      g.check("liq-never-blocked", LIQ_ALLOWED_REVERTS.has(res.err?.name ?? "") || ![...predicted.values()].includes(STATUS.Liquidatable), () => `liquidateBatch reverted: ${res.err?.name}(${(res.err?.args ?? []).map(fmt).join(",")})`);
      return;
    }
    const done = new Set(res.events.filter((e) => e.name === "Liquidated").map((e) => addr(e.args.account)));
    for (const [a, st] of predicted) {
      if (st !== STATUS.Liquidatable) g.check("liq-only-liquidatable", !done.has(a), () => `batch liquidated ${a} with predicted status ${st}`);
      else {
        const rl = w.markets.some((_M, m) => res.post.markets[m].winSize >= w.markets[m].liqMaxSize);
        g.check("liq-never-blocked", done.has(a) || rl, () => `batch skipped Liquidatable ${a}`);
      }
    }
  }
}

class Adl extends Base {
  constructor(
    readonly who: number,
    readonly m: number,
  ) {
    super();
  }
  toString() {
    return `AutoDeleverage(trader${this.who}, m${this.m})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("adl");
    // As a keeper does: the most profitable position first (falls back to the generated pick).
    let account = signerOf(w, this.who, "traders").address;
    let m = this.m % w.markets.length;
    let best = 0n;
    for (const t of w.traders) {
      const i = accountIndex(w, t.address);
      for (let k = 0; k < w.markets.length; k++) {
        const p = g.snap.pos[i][k];
        if (p.size === 0n) continue;
        const pnl = pnlD18(p.size, p.basis, g.snap.markets[k].price, pendingIndexAt(g.snap.markets[k], w.markets[k], g.now + 1n));
        if (pnl > best) [best, account, m] = [pnl, t.address, k];
      }
    }
    const res = await tx(w, g, `${this.toString()} → ${account.slice(0, 8)} m${m}`, () => call(w.f.clearingHouse, w.keepers[0], "autoDeleverage", [account, m]));
    const deficit = res.pre.navOk && res.pre.nav < 0n;
    if (!deficit) g.check("adl", !res.ok, () => `ADL succeeded without a pool deficit`);
  }
}

class Accrue extends Base {
  constructor(readonly m: number) {
    super();
  }
  toString() {
    return `AccrueFunding(m${this.m})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("accrue");
    await tx(w, g, this.toString(), () => call(w.f.clearingHouse, null, "accrueFunding", [this.m % w.markets.length]));
  }
}

class Pause extends Base {
  constructor(
    readonly m: number,
    readonly on: boolean,
  ) {
    super();
  }
  toString() {
    return `SetOpeningPaused(m${this.m}, ${this.on})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("pause");
    const m = this.m % w.markets.length;
    const res = await tx(w, g, this.toString(), () => call(w.f.riskManager, w.f.admin, "setOpeningPaused", [m, this.on]));
    if (res.ok) g.paused[m] = this.on;
  }
}

class Insurance extends Base {
  constructor(
    readonly usd: number,
    readonly donate: boolean,
  ) {
    super();
  }
  toString() {
    return `${this.donate ? "Donate" : "DepositInsurance"}(${this.usd} USD)`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind(this.donate ? "donate" : "insurance");
    const amount = BigInt(Math.max(1, Math.round(this.usd * 1e6)));
    if (this.donate) {
      g.donated += amount;
      const r = await tx(w, g, this.toString(), () => call(w.f.token, w.f.admin, "transfer", [w.addr.vault, amount]));
      if (!r.ok) g.donated -= amount;
    } else {
      await tx(w, g, this.toString(), () => call(w.f.vault, w.f.admin, "depositInsurance", [amount]));
    }
  }
}

class Upkeep extends Base {
  constructor(
    readonly job: number,
    readonly keeper: number,
  ) {
    super();
  }
  toString() {
    return `Upkeep(job ${this.job}, keeper${this.keeper})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("upkeep");
    const a = w.f.automation;
    const checkData = ethers.AbiCoder.defaultAbiCoder().encode(["uint8", "uint256", "uint256"], [this.job, 0, 50]);
    let perform: string | undefined;
    try {
      const [needed, data] = await a.checkUpkeep.staticCall(checkData, { from: ethers.ZeroAddress });
      if (needed) perform = data;
    } catch {
      return;
    }
    if (!perform) return;
    const data = perform;
    await tx(w, g, this.toString(), () => call(a, signerOf(w, this.keeper, "keepers"), "performUpkeep", [data]));
  }
}

class RoundTrip extends Base {
  constructor(
    readonly m: number,
    readonly usd: number,
    readonly levPct: number,
    readonly long: boolean,
  ) {
    super();
  }
  toString() {
    return `RoundTrip(m${this.m}, ${this.usd} USD, ${this.levPct}% of max, ${this.long ? "long" : "short"})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("round-trip");
    const m = this.m % w.markets.length;
    const t = w.rt;
    const i = accountIndex(w, t.address);
    const M = g.snap.markets[m];
    if (g.snap.accounts[i].collateral !== 0n || g.snap.pos[i].some((p) => p.size !== 0n)) return;
    if (!priceUsable(M, g.now + w.ch.minDelay * 3n + 10n, w.markets[m].liqPriceMaxAge) || M.breakers !== 0n) return;
    const deposit = BigInt(Math.round(this.usd * 1e6));
    const d = await tx(w, g, `${this.toString()} deposit`, () => call(w.f.vault, t, "deposit", [t.address, deposit]));
    if (!d.ok) return;
    const size = sizeFor(w, g, i, m, { kind: "open", long: this.long, levPct: this.levPct });
    const priceAtStart = g.snap.markets[m].answer;
    let fees = 0n;
    let realized = 0n;
    let funding = 0n;
    let openIndex: bigint | null = null;
    const id1 = await commitOrder(w, g, `${this.toString()} open ${size}`, t, m, size, size > 0n ? UINT96_MAX : 0n);
    if (id1 !== undefined) {
      const r1 = await executeOrder(w, g, `${this.toString()} exec open`, id1, w.keepers[0], false);
      for (const e of r1.events) {
        if (e.name === "TradeSettled" && addr(e.args.account) === t.address) fees += e.args.feePaid as bigint;
        if (e.name === "PositionModified" && addr(e.args.account) === t.address) openIndex = e.args.fundingIndexD18 as bigint;
      }
    }
    const held = g.snap.pos[i][m].size;
    if (held !== 0n) {
      const id2 = await commitOrder(w, g, `${this.toString()} close`, t, m, -held, -held > 0n ? UINT96_MAX : 0n);
      if (id2 !== undefined) {
        const r2 = await executeOrder(w, g, `${this.toString()} exec close`, id2, w.keepers[0], false);
        for (const e of r2.events) {
          if (e.name === "TradeSettled" && addr(e.args.account) === t.address) fees += e.args.feePaid as bigint;
          if (e.name === "PositionModified" && addr(e.args.account) === t.address) {
            realized += e.args.realizedPnlD18 as bigint;
            funding += -held * ((e.args.fundingIndexD18 as bigint) - (openIndex ?? 0n)) / WAD;
          }
        }
      }
    }
    if (g.snap.pos[i][m].size !== 0n) return; // could not close (reported by close-never-blocked)
    g.check("round-trip", g.snap.markets[m].answer === priceAtStart, () => `price moved during the round trip`);
    // Premium and rounding are never in the trader's favour: realized PnL ≤ funding earned (+1 wei rounding).
    g.check("round-trip", realized <= funding + 2n, () => `round trip at an unchanged price realized ${realized} with funding earned ${funding}`);
    const coll = g.snap.accounts[i].collateral;
    const fundingTokens = funding > 0n ? funding / w.scale + 1n : 0n;
    g.check("round-trip", coll <= deposit - fees + fundingTokens, () => `round trip returned ${coll} for a deposit of ${deposit} with fees ${fees}`);
    if (coll > 0n) {
      const wd = await tx(w, g, `${this.toString()} withdraw ${coll}`, () => call(w.f.vault, t, "withdraw", [coll, t.address]));
      g.check("round-trip", wd.ok, () => `flat round-trip trader could not withdraw ${coll}: ${wd.err?.name}`);
    }
  }
}

class ClaimEth extends Base {
  constructor(readonly by: number) {
    super();
  }
  toString() {
    return `ClaimEth(by${this.by})`;
  }
  async run(g: Ghost, w: World) {
    g.stats.kind("claim");
    const s = signerOf(w, this.by, "any");
    const i = accountIndex(w, s.address);
    const res = await tx(w, g, this.toString(), () => call(w.f.clearingHouse, s, "claimEth", []));
    g.check("eth-escrow", res.ok === (res.pre.accounts[i].claimable > 0n), () => `claimEth with ${res.pre.accounts[i].claimable} claimable: ${res.ok ? "ok" : res.err?.name}`);
  }
}

// ===================================================================== arbitraries

const who = fc.nat({ max: 4 });
const mkt = fc.nat({ max: 1 });
const orderSpec: fc.Arbitrary<OrderSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("open" as const), long: fc.boolean(), levPct: fc.oneof(fc.integer({ min: 1, max: 130 }), fc.integer({ min: 70, max: 99 })) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("close" as const), pct: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.constant(100), fc.integer({ min: 101, max: 220 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("dust" as const), long: fc.boolean(), wei: fc.bigInt({ min: 1n, max: 10n ** 15n }) }) },
);
const limit = fc.option(fc.integer({ min: 0, max: 60 }), { freq: 4, nil: null });

export function commandArbitrary(): fc.Arbitrary<Cmd> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.tuple(who, fc.oneof(fc.integer({ min: 1, max: 30_000 }), fc.constant(0))).map(([a, b]) => new Deposit(a, b) as Cmd) },
    { weight: 3, arbitrary: fc.tuple(who, fc.constantFrom("pct" as const, "pct" as const, "over" as const, "all" as const), fc.integer({ min: 1, max: 100 })).map(([a, b, c]) => new Withdraw(a, b, c) as Cmd) },
    { weight: 4, arbitrary: fc.tuple(who, mkt, orderSpec, limit).map(([a, b, c, d]) => new Commit(a, b, c, d) as Cmd) },
    { weight: 4, arbitrary: fc
        .tuple(fc.nat(), fc.nat({ max: 1 }), fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }), fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }))
        .map(([a, b, c, d]) => new Execute(a, b, c, d) as Cmd) },
    { weight: 10, arbitrary: fc.tuple(who, mkt, orderSpec, limit, fc.nat({ max: 1 }), fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 900 }))).map(([a, b, c, d, e, h]) => new Trade(a, b, c, d, e, h) as Cmd) },
    { weight: 2, arbitrary: fc.tuple(fc.nat(), fc.nat({ max: 6 }), fc.boolean(), fc.boolean()).map(([a, b, c, d]) => new Cancel(a, b, c, d) as Cmd) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(who, mkt, orderSpec, fc.integer({ min: -600, max: 600 }), fc.boolean(), fc.boolean(), fc.constantFrom(3, 60, 900, 3600, 86_400, 91 * 86_400))
        .map(([a, b, c, d, e, h, l]) => new CommitConditional(a, b, c, d, e, h, l) as Cmd),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.nat(), fc.boolean(), fc.constantFrom(0, 50, 100, 150), fc.integer({ min: -600, max: 600 }), fc.constantFrom(3, 600, 86_400))
        .map(([a, b, c, d, e]) => new Modify(a, b, c, d, e) as Cmd),
    },
    { weight: 2, arbitrary: fc.tuple(fc.nat({ max: 1 }), fc.integer({ min: 1, max: 300_000 })).map(([a, b]) => new LpDeposit(a, b) as Cmd) },
    { weight: 3, arbitrary: fc.tuple(fc.nat({ max: 1 }), fc.integer({ min: 1, max: 100 }), fc.boolean()).map(([a, b, c]) => new LpWithdraw(a, b, c && b < 15) as Cmd) },
    { weight: 8, arbitrary: fc.tuple(mkt, fc.nat({ max: 68_000 }), fc.integer({ min: 1, max: 24 }), fc.integer({ min: -150, max: 150 })).map(([a, b, c, d]) => new PriceMove(a, b, c, d) as Cmd) },
    { weight: 2, arbitrary: fc.tuple(mkt, fc.constantFrom(-60, -35, -20, -12, -6, -3, 3, 6, 12, 20, 35, 100, 900)).map(([a, b]) => new Shock(a, b) as Cmd) },
    { weight: 4, arbitrary: fc.double({ min: 0.3, max: 9.5, noNaN: true }).map((p) => new Squeeze(Math.round(p * 10) / 10) as Cmd) },
    // Relief: the same trader's market moves in its favour (recoveries after margin calls).
    { weight: 2, arbitrary: fc.double({ min: 0.3, max: 4, noNaN: true }).map((p) => new Squeeze(-Math.round(p * 10) / 10) as Cmd) },
    { weight: 2, arbitrary: fc.tuple(mkt, fc.constantFrom(5, 20, 35, 50, 80, 120, 200, 280, 400)).map(([a, b]) => new VolMove(a, b) as Cmd) },
    { weight: 3, arbitrary: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 60, max: 1800 }), fc.integer({ min: 1800, max: 5000 }), fc.constant(90_000)).map((d) => new TimeJump(d) as Cmd) },
    { weight: 3, arbitrary: mkt.map((m) => new Poke(m) as Cmd) },
    { weight: 2, arbitrary: fc.constant(new Refresh() as Cmd) },
    { weight: 3, arbitrary: fc.tuple(who, fc.nat({ max: 6 })).map(([a, b]) => new Flag(a, b) as Cmd) },
    { weight: 1, arbitrary: who.map((a) => new Clear(a) as Cmd) },
    { weight: 5, arbitrary: fc.tuple(who, fc.nat({ max: 6 })).map(([a, b]) => new Liquidate(a, b) as Cmd) },
    { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 1, max: 127 }), fc.nat({ max: 1 })).map(([a, b]) => new Batch(a, b) as Cmd) },
    { weight: 5, arbitrary: fc.nat({ max: 6 }).map((a) => new LiquidateRiskiest(a) as Cmd) },
    { weight: 1, arbitrary: fc.tuple(who, mkt).map(([a, b]) => new Adl(a, b) as Cmd) },
    { weight: 1, arbitrary: mkt.map((m) => new Accrue(m) as Cmd) },
    { weight: 1, arbitrary: fc.tuple(mkt, fc.boolean()).map(([a, b]) => new Pause(a, b) as Cmd) },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 5_000 }), fc.boolean()).map(([a, b]) => new Insurance(a, b) as Cmd) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(0, 1, 2), fc.nat({ max: 1 })).map(([a, b]) => new Upkeep(a, b) as Cmd) },
    { weight: 2, arbitrary: fc.tuple(mkt, fc.integer({ min: 10, max: 20_000 }), fc.integer({ min: 1, max: 95 }), fc.boolean()).map(([a, b, c, d]) => new RoundTrip(a, b, c, d) as Cmd) },
    { weight: 1, arbitrary: fc.nat({ max: 6 }).map((a) => new ClaimEth(a) as Cmd) },
  );
}

// ===================================================================== runner

export interface CampaignOptions {
  runs: number;
  maxCommands: number;
  seed: number;
  timeLimitMs?: number;
  verbose?: boolean;
  loadWorld: () => Promise<World>; // restores the deployment (loadFixture: evm_revert to its snapshot)
  onRunStart?: (run: number, stats: Stats) => void;
}

export async function runCampaign(opts: CampaignOptions) {
  const stats = new Stats();
  const allow = allowedFailures();
  const property = fc.asyncProperty(fc.commands([commandArbitrary()], { maxCommands: opts.maxCommands, size: "max" }), async (cmds) => {
    const w = await opts.loadWorld();
    stats.runs++;
    opts.onRunStart?.(stats.runs, stats);
    const g = await initGhost(w, stats, allow);
    await fc.asyncModelRun(() => ({ model: g, real: w }), cmds);
  });
  const details = await fc.check(property, {
    numRuns: opts.runs,
    seed: opts.seed,
    interruptAfterTimeLimit: opts.timeLimitMs,
    markInterruptAsFailure: false,
    verbose: opts.verbose ? 1 : 0,
  });
  let report = fc.defaultReportMessage(details) ?? "";
  const err = details.errorInstance as Error | undefined;
  if (details.failed && err) report += `\nFailure after shrinking:\n${err.message}`;
  return { details, stats, report };
}
