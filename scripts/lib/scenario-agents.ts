// Traders of the scenario: deterministic profiles (market, side, leverage, collateral, what they do when
// margin-called) and the agent loop that acts on the chain for them. The same profiles run in every
// configuration. Leverage (default, "absolute"): each trader wants a fixed leverage in × drawn once (2–20×,
// most 5–10×), identical under dynamic and static margin and only capped by what the configuration allows
// at entry (1/IMR); a cancelled entry is retried (smaller if it was refused for margin). "relative" (the former population):
// the "max"/"high" tiers take a fraction of each configuration's own maximum leverage.
import { getAddress, keccak256, parseUnits, toUtf8Bytes } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { Rng } from "./scenario-path";
import { STATUS, TickReport } from "./scenario-keeper";
import { n18, World } from "./scenario-world";

export type Tier = "max" | "high" | "moderate" | "low";
export type Behaviour = "passive" | "top-up" | "reduce";
/** How traders choose leverage: a fixed figure in × (default) or a fraction of the configuration's maximum. */
export type LeverageMode = "absolute" | "relative";

export interface AgentProfile {
  id: string;
  index: number;
  address: string;
  market: string;
  side: 1 | -1;
  tier: Tier;
  /** How `leverage` reads. */
  leverageMode: LeverageMode;
  /** "absolute": desired leverage in ×, capped at the maximum (1/IMR) at entry. "relative": "max"/"high":
   * fraction of the maximum leverage (1/IMR) at entry; "moderate"/"low": leverage in ×, capped at 90% of the maximum. */
  leverage: number;
  /** Collateral deposited before trading (USD). */
  collateral: number;
  /** Extra funds in the wallet for top-ups (USD). */
  reserve: number;
  behaviour: Behaviour;
  /** Dip buyer: opens only once the market has fallen this much from its first price (0.12 = 12%). */
  dipAt?: number;
}

export interface AgentOptions {
  traders: number;
  seed: string;
  /** Share of traders on BTC-PERP (the rest trade ETH-PERP). */
  btcShare: number;
  /** Share of traders who wait for a dip to buy (ETH-PERP longs near max leverage). */
  dipShare: number;
  /** Default "absolute". */
  leverage?: LeverageMode;
}

/**
 * Desired leverage in × (absolute mode): "low" 2–5× (20 %), "moderate" 5–10× (50 %), "high" 10–15× (20 %),
 * "max" 15–20× (10 %), log-uniform within each bucket. Drawn from its own stream so that the rest of the
 * profile (market, side, collateral, behaviour) is the same as in relative mode.
 */
export function absoluteLeverage(rng: Rng): { tier: Tier; leverage: number } {
  const tier = rng.pick<Tier>([["low", 0.2], ["moderate", 0.5], ["high", 0.2], ["max", 0.1]]);
  const [lo, hi] = tier === "low" ? [2, 5] : tier === "moderate" ? [5, 10] : tier === "high" ? [10, 15] : [15, 20];
  return { tier, leverage: round2(Math.exp(rng.range(Math.log(lo), Math.log(hi)))) };
}

/** Deterministic trader profiles. Addresses depend only on the index (stable across seeds and runs). */
export function makeAgents(o: AgentOptions): AgentProfile[] {
  const rng = new Rng(`${o.seed}/agents`);
  const mode: LeverageMode = o.leverage ?? "absolute";
  const levRng = new Rng(`${o.seed}/agents/leverage`);
  const n = o.traders;
  const nBtc = Math.min(n - 1, Math.round(n * o.btcShare));
  const nDip = n >= 5 ? Math.max(1, Math.round(n * o.dipShare)) : 0;
  // Deterministic shuffle of slots: which indices trade BTC and which buy the dip.
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const btc = new Set(order.slice(0, nBtc));
  const dip = new Set(order.slice(nBtc, nBtc + nDip));
  const out: AgentProfile[] = [];
  for (let i = 0; i < n; i++) {
    const id = `T${String(i + 1).padStart(2, "0")}`;
    const address = getAddress("0x" + keccak256(toUtf8Bytes(`sigma/start/trader/${i}`)).slice(-40));
    const collateral = Math.round(Math.exp(rng.range(Math.log(2_000), Math.log(25_000))) / 100) * 100;
    const behaviour = rng.pick<Behaviour>([["passive", 0.4], ["top-up", 0.35], ["reduce", 0.25]]);
    const reserve = behaviour === "top-up" ? Math.round((collateral * rng.range(0.3, 1)) / 100) * 100 : 0;
    const abs = absoluteLeverage(levRng);
    if (dip.has(i)) {
      const relLev = round2(rng.range(0.85, 0.92));
      const dipAt = round2(rng.range(0.1, 0.16));
      const lev = mode === "absolute" ? abs : { tier: "max" as Tier, leverage: relLev };
      out.push({ id, index: i, address, market: "ETH-PERP", side: 1, ...lev, leverageMode: mode, collateral, reserve, behaviour, dipAt });
      continue;
    }
    const tier = rng.pick<Tier>([["max", 0.25], ["high", 0.25], ["moderate", 0.3], ["low", 0.2]]);
    const leverage =
      tier === "max" ? rng.range(0.85, 0.93) : tier === "high" ? rng.range(0.5, 0.8) : tier === "moderate" ? rng.range(4, 12) : rng.range(1.5, 4);
    const side = rng.uniform() < 0.6 ? 1 : -1;
    const lev = mode === "absolute" ? abs : { tier, leverage: round2(leverage) };
    out.push({ id, index: i, address, market: btc.has(i) ? "BTC-PERP" : "ETH-PERP", side, ...lev, leverageMode: mode, collateral, reserve, behaviour });
  }
  return out;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
/** Absolute mode: how many times a cancelled entry is retried. */
const MAX_ENTRY_RETRIES = 3;

/** A trader's state in one world. */
export interface AgentState {
  p: AgentProfile;
  signer: HardhatEthersSigner;
  /** Entry attempted (the order may still have been cancelled). */
  entered: boolean;
  entryOrder?: bigint;
  entryHour?: number;
  /** Size of the entry order, base units. */
  entrySize?: number;
  /** Leverage of the entry fill: notional / collateral. */
  entryLeverage?: number;
  /** The entry's maximum leverage (1/IMR) when it was committed. */
  entryMaxLeverage?: number;
  entryFailed?: string;
  /** Absolute mode: entries cancelled so far (each is retried; 20 % less leverage after a margin refusal). */
  entryRetries: number;
  /** The last entry was refused for margin: the retry asks for 20 % less. */
  entryShrink?: boolean;
  /** Leverage asked for by the last entry (×). */
  entryAsked?: number;
  deposited: number;
  reserveLeft: number;
  topUps: number;
  reduces: number;
  handledDeadline: bigint;
}

export interface ActContext {
  hour: number;
  /** First price of each market's path (for dip buyers' drawdown). */
  firstPrice: Record<string, number>;
}

/** What the agents did in one step. */
export interface ActReport {
  commits: number;
  topUps: number;
  reduces: number;
  entries: number;
}

/** Acts for every trader of a world after a keeper tick: entries, top-ups and reductions. */
export class Agents {
  readonly states: AgentState[];
  private readonly byAddress = new Map<string, AgentState>();
  private fee?: bigint;

  constructor(profiles: AgentProfile[], signers: HardhatEthersSigner[]) {
    this.states = profiles.map((p, i) => ({
      p,
      signer: signers[i],
      entered: false,
      entryRetries: 0,
      deposited: p.collateral,
      reserveLeft: p.reserve,
      topUps: 0,
      reduces: 0,
      handledDeadline: 0n,
    }));
    for (const s of this.states) this.byAddress.set(s.p.address.toLowerCase(), s);
  }

  /** Records the fills and cancellations of the agents' orders seen by a keeper tick. */
  observe(t: TickReport): void {
    for (const o of t.orders) {
      const s = this.byAddress.get(o.account.toLowerCase());
      if (!s || s.entryOrder !== o.orderId) continue;
      if (o.filled) {
        s.entryLeverage = (s.entrySize! * n18(o.fillPriceD18 ?? 0n)) / s.deposited;
        s.entryFailed = undefined;
      } else if (s.p.leverageMode === "absolute" && s.entryRetries < MAX_ENTRY_RETRIES) {
        // Cancelled: the trader tries again at the next step (as real traders do), asking for less if it was
        // refused for margin, re-quoted at the new price otherwise (acceptable price exceeded, expired).
        s.entryRetries++;
        s.entryShrink = /Margin/.test(o.reason ?? "");
        s.entered = false;
        s.entryOrder = undefined;
        s.entryFailed = undefined;
      } else s.entryFailed = o.reason ?? "cancelled";
    }
  }

  async act(w: World, t: TickReport, ctx: ActContext): Promise<ActReport> {
    const r: ActReport = { commits: 0, topUps: 0, reduces: 0, entries: 0 };
    const ch = w.d.clearingHouse;
    const fee = (this.fee ??= await ch.minExecutionFee());
    const health = new Map(t.health.map((h) => [h.account.toLowerCase(), h]));
    // Size of this step's entries not yet filled, per market: later entries price their skew premium with it.
    const pendingSkew = new Map<number, number>();
    for (const s of this.states) {
      const m = marketId(w, s.p.market);
      const wm = w.markets[m];
      // Entries: at the first step, or once the drawdown reaches a dip buyer's level.
      if (!s.entered) {
        const drawdown = 1 - wm.lastPublished / ctx.firstPrice[s.p.market];
        if (s.p.dipAt !== undefined && drawdown < s.p.dipAt) continue;
        const risk = await w.d.riskManager.marketRisk(m, false);
        const maxLev = 1 / n18(risk.imrD18);
        const lev =
          s.p.leverageMode === "absolute"
            ? Math.min(s.entryAsked === undefined ? s.p.leverage : s.entryShrink ? s.entryAsked * 0.8 : s.entryAsked, maxLev)
            : s.p.tier === "max" || s.p.tier === "high"
              ? s.p.leverage * maxLev
              : Math.min(s.p.leverage, 0.9 * maxLev);
        s.entryAsked = lev;
        const price = wm.lastPublished;
        const size = fitSize(
          s.p.side * (lev * s.deposited) / price,
          s.deposited,
          {
            price,
            skew: n18((await ch.marketState(m)).skewD18) + (pendingSkew.get(m) ?? 0),
            imr: n18(risk.imrD18),
            addOn: n18(risk.sizeAddOnD18),
            skewScale: n18(risk.skewScaleD18),
            takerFee: n18(risk.takerFeeD18),
          },
        );
        pendingSkew.set(m, (pendingSkew.get(m) ?? 0) + size);
        const sizeD18 = parseUnits(size.toFixed(12), 18);
        const acceptable = parseUnits((price * (s.p.side > 0 ? 1.02 : 0.98)).toFixed(8), 18);
        const res = await w.clock.trySend(() => ch.connect(s.signer).commitOrder(m, sizeD18, acceptable, { value: fee }));
        s.entered = true;
        s.entryHour = ctx.hour;
        s.entryMaxLeverage = maxLev;
        s.entrySize = Math.abs(size);
        if (res.receipt) {
          const ev = res.receipt.logs.map((l) => safeParse(w, l)).find((e) => e?.name === "OrderCommitted");
          s.entryOrder = ev?.args.orderId as bigint;
          r.commits++;
          r.entries++;
        } else {
          s.entryFailed = res.error;
        }
        continue;
      }
      // Margin calls: each margin-called trader reacts once per call, as its profile says.
      const h = health.get(s.p.address.toLowerCase());
      if (!h || h.status !== STATUS.MarginCalled || h.marginCallDeadline === s.handledDeadline) continue;
      s.handledDeadline = h.marginCallDeadline;
      if (s.p.behaviour === "top-up" && s.reserveLeft > 0) {
        // Bring equity back to the initial requirement, with 2% to spare.
        const need = Number(h.initialD18 - h.equityD18) / 1e18;
        const amount = Math.min(s.reserveLeft, Math.ceil(need * 1.02 * 100) / 100);
        if (amount <= 0) continue;
        const units = parseUnits(amount.toFixed(w.tokenDecimals), w.tokenDecimals);
        const res = await w.clock.trySend(() => w.d.vault.connect(s.signer).deposit(s.p.address, units));
        if (res.receipt) {
          s.reserveLeft -= amount;
          s.deposited += amount;
          s.topUps++;
          r.topUps++;
        }
      } else if (s.p.behaviour === "reduce") {
        const pos = await ch.position(s.p.address, m);
        if (pos.sizeD18 === 0n) continue;
        const delta = -pos.sizeD18 / 2n;
        const price = wm.lastPublished;
        const acceptable = parseUnits((price * (delta > 0n ? 1.03 : 0.97)).toFixed(8), 18);
        const res = await w.clock.trySend(() => ch.connect(s.signer).commitOrder(m, delta, acceptable, { value: fee }));
        if (res.receipt) {
          s.reduces++;
          r.reduces++;
          r.commits++;
        }
      }
    }
    return r;
  }
}

/** Market figures a trader sizes an entry with. */
interface SizingInputs {
  price: number;
  skew: number;
  imr: number;
  addOn: number;
  skewScale: number;
  takerFee: number;
}

/**
 * Shrinks a desired entry (signed size) until the account's equity after the fill — collateral minus the
 * skew premium paid against the oracle price and the taker fee — covers the initial requirement with 1% to
 * spare (MarginMath.fillPriceD18 and requirementD18, in floating point). What a careful wallet does with
 * SigmaLens.quote before committing, so "near max leverage" entries are not cancelled for margin.
 */
export function fitSize(size: number, collateral: number, k: SizingInputs): number {
  for (let i = 0; i < 40; i++) {
    const fill = k.price * (1 + (2 * k.skew + size) / (2 * k.skewScale));
    const abs = Math.abs(size);
    const cost = size * (fill - k.price) + abs * fill * k.takerFee;
    const im = abs * k.price * (k.imr + (k.addOn * abs) / k.skewScale);
    if (collateral - cost >= im * 1.01) return size;
    size *= 0.95;
  }
  return size;
}

function marketId(w: World, symbol: string): number {
  const m = w.markets.find((x) => x.symbol === symbol);
  if (!m) throw new Error(`unknown market ${symbol}`);
  return m.marketId;
}

function safeParse(w: World, l: Parameters<World["d"]["clearingHouse"]["interface"]["parseLog"]>[0]) {
  try {
    return w.d.clearingHouse.interface.parseLog(l);
  } catch {
    return null;
  }
}
