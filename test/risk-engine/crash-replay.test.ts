// Crash replay: an hourly ETH/USD OHLC path (Black Thursday, 2020-03-12, when ../shared/data has it; a seeded
// synthetic crash of the same length otherwise) is fed round by round through the price feed while twenty
// leveraged traders hold positions and a keeper works every round: poke σ (estimator and feed, MAX), flag
// margin calls, liquidate. After every step the Vault must hold exactly its ledgers, and no account may carry
// negative equity that a recorded BadDebtCovered did not absorb.
import fs from "fs";
import path from "path";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time, setBalance } from "@nomicfoundation/hardhat-network-helpers";
import { parseUnits, keccak256, toUtf8Bytes, Wallet } from "ethers";
import { deployFixture, usdc, chEvents, testTimeout } from "../fixture";
import { DEFAULT_MARKETS, SIGMA_SOURCE } from "../../scripts/lib/params";
import { STATUS, toTokensFloor, vaultEvents } from "../clearinghouse/math";
import { ETH, WEEK, alignToWeek, heartbeat } from "./helpers";
import type { VaultLedgerProbe } from "../../typechain-types";

const CSV = path.join(__dirname, "../../../shared/data/crash_windows/eth_usd_1h_2020-03-12.csv");
const HAVE_DATA = fs.existsSync(CSV);
const HOURS = 168; // the real window's length: 2020-03-10 → 2020-03-17

interface Candle {
  t: bigint; // open time (Unix s)
  open: number;
  high: number;
  low: number;
  close: number;
}

function loadCandles(): Candle[] {
  if (HAVE_DATA) {
    const [header, ...lines] = fs.readFileSync(CSV, "utf8").trim().split(/\r?\n/);
    const cols = header.split(",");
    const at = (name: string) => cols.indexOf(name);
    return lines.map((l) => {
      const v = l.split(",");
      return { t: BigInt(v[at("timestamp_unix")]), open: +v[at("open")], high: +v[at("high")], low: +v[at("low")], close: +v[at("close")] };
    });
  }
  // Seeded synthetic crash of the same length: two calm days, a day losing ~55% with deep intra-hour wicks,
  // then a choppy partial recovery.
  let seed = 20200312;
  const rnd = () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647;
  };
  const out: Candle[] = [];
  let p = 200;
  for (let h = 0; h < HOURS; h++) {
    const drift = h >= 48 && h < 72 ? -0.033 : h >= 72 && h < 96 ? 0.004 : 0;
    const vol = h >= 48 && h < 96 ? 0.05 : 0.01;
    const open = p;
    const close = Math.max(20, open * (1 + drift + (rnd() - 0.5) * vol));
    const high = Math.max(open, close) * (1 + rnd() * vol);
    const low = Math.min(open, close) * (1 - rnd() * vol * (h >= 48 && h < 72 ? 3 : 1));
    out.push({ t: 1583798400n + BigInt(h) * 3600n, open, high, low, close });
    p = close;
  }
  return out;
}

/** Trailing realized volatility of hourly closes, annualized, in percent (what a realized-vol feed publishes). */
function realizedVolPercent(closes: number[]): number {
  if (closes.length < 3) return 50;
  const r = closes.slice(1).map((c, i) => Math.log(c / closes[i]));
  const mean = r.reduce((a, b) => a + b, 0) / r.length;
  const v = r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1);
  return Math.max(1, Math.sqrt(v * 24 * 365) * 100);
}

const answer = (usd: number) => parseUnits(usd.toFixed(8), 8);

const CANDLES = loadCandles();
/** Leverage and side of the twenty traders, in the order they open: high leverage first, while the skew
 * premium is small, shorts interleaved. The production parameters (z_im = 6) at the listing σ of 80% (the
 * estimator's starting value; the feed says 50%) allow about 17×. */
const POPULATION: [number, "long" | "short"][] = [
  [15, "long"], [14, "short"], [14, "long"], [12, "short"], [13, "long"], [8, "short"], [12, "long"], [4, "short"],
  [11, "long"], [10, "long"], [10, "long"], [9, "long"], [8, "long"], [7, "long"], [6, "long"], [5, "long"],
  [4, "long"], [3, "long"], [2, "long"], [12, "long"],
];
const COLLATERAL = 2000;

async function crashFixture() {
  await alignToWeek();
  const f = await deployFixture({
    markets: [{ ...DEFAULT_MARKETS[0], price: CANDLES[0].open.toFixed(2), params: { ...DEFAULT_MARKETS[0].params, sigmaSource: SIGMA_SOURCE.MAX } }],
  });
  const probe = (await (await ethers.getContractFactory("VaultLedgerProbe")).deploy()) as unknown as VaultLedgerProbe;
  const traders: Wallet[] = [];
  for (let i = 0; i < POPULATION.length; i++) {
    const w = new Wallet(keccak256(toUtf8Bytes(`sigma crash trader ${i}`)), ethers.provider);
    await setBalance(w.address, 10n ** 19n);
    await f.token.mint(w.address, usdc(COLLATERAL));
    await f.token.connect(w).approve(await f.vault.getAddress(), ethers.MaxUint256);
    await f.vault.connect(w).deposit(w.address, usdc(COLLATERAL));
    traders.push(w);
  }
  const fee = await f.clearingHouse.minExecutionFee();
  const price = CANDLES[0].open;
  const ids: bigint[] = [];
  for (let i = 0; i < traders.length; i++) {
    const [leverage, side] = POPULATION[i];
    const size = parseUnits(((leverage * COLLATERAL) / price).toFixed(6), 18);
    const delta = side === "short" ? -size : size;
    const rc = await (await f.clearingHouse.connect(traders[i]).commitOrder(ETH, delta, delta > 0n ? 2n ** 95n : 0n, { value: fee })).wait();
    ids.push(chEvents(f, rc).find((e) => e.name === "OrderCommitted")!.args.orderId as bigint);
  }
  await time.increase(Number(await f.clearingHouse.minDelay()));
  await heartbeat(f, ETH); // orders execute at a round published after their commit
  for (const id of ids) {
    const rc = await (await f.clearingHouse.connect(f.keeper).executeOrder(id)).wait();
    expect(chEvents(f, rc).some((e) => e.name === "OrderExecuted"), `order ${id} filled`).to.equal(true);
  }
  return { f, probe, traders };
}

describe(`risk engine: crash replay (${HAVE_DATA ? "real ETH/USD hourly data, 2020-03-12 window" : "generated crash path: shared data not found"})`, () => {
  it(`${HOURS} hours × 3 rounds with 20 leveraged traders and a keeper every round: the Vault holds exactly its ledgers after every step and every shortfall is a recorded BadDebtCovered`, async function () {
    this.timeout(testTimeout(180_000));
    if (!HAVE_DATA) console.log(`      (no ${CSV}: replaying a seeded synthetic crash of ${HOURS} hours instead)`);
    expect(CANDLES.length).to.equal(HOURS);
    const { f, probe, traders } = await loadFixture(crashFixture);
    const accounts = [...traders.map((t) => t.address), f.keeper.address, f.lp.address, f.admin.address];
    const vaultAddr = await f.vault.getAddress();

    const stats = { rounds: 0, flagged: 0, liquidations: 0, badDebts: 0, shortfall: 0n, fromInsurance: 0n, socialized: 0n, maxSigma: 0n };
    const clearingHouse = await f.clearingHouse.getAddress();
    /** One view call: every ledger, each account's equity and status, and σ. Asserts the solvency identity. */
    const snapshot = async (where: string) => {
      const s = await probe.read(vaultAddr, clearingHouse, ETH, accounts);
      expect(s.balance, `vault balance = Σ ledgers ${where}`).to.equal(s.sumCollateral + s.pool + s.insurance + s.fees);
      if (s.sigmaD18 > stats.maxSigma) stats.maxSigma = s.sigmaD18;
      return s;
    };

    /** One keeper pass: poke σ, flag margin calls, liquidate; then the end-of-step invariants. */
    const keeperStep = async (where: string) => {
      await f.riskManager.connect(f.keeper).pokeVolatility(ETH, { gasLimit: 2_000_000 });
      const before = await snapshot(`${where}, after the poke`);
      const liq = accounts.filter((_, i) => BigInt(before.status[i]) === STATUS.Liquidatable);
      for (const a of accounts.filter((_, i) => BigInt(before.status[i]) === STATUS.MarginCallable)) {
        await expect(f.clearingHouse.connect(f.keeper).flagMarginCall(a)).to.emit(f.clearingHouse, "MarginCallFlagged");
        stats.flagged++;
      }
      if (liq.length > 0) {
        const rc = await (await f.clearingHouse.connect(f.keeper).liquidateBatch(liq)).wait();
        const ch = chEvents(f, rc);
        const liquidated = ch.filter((e) => e.name === "Liquidated").map((e) => e.args.account as string);
        expect(liquidated, `${where}: every liquidatable account is liquidated`).to.deep.equal(liq);
        stats.liquidations += liquidated.length;
        for (const e of vaultEvents(f, rc).filter((x) => x.name === "BadDebtCovered")) {
          const { account, shortfall, fromInsurance, socializedToPool } = e.args;
          expect(shortfall, "shortfall = insurance part + pool part").to.equal(fromInsurance + socializedToPool);
          // The shortfall is exactly what the account's realized loss left unpaid.
          const realized = ch
            .filter((x) => x.name === "PositionModified" && x.args.account === account)
            .reduce((s, x) => s + (x.args.realizedPnlD18 as bigint), 0n);
          const coll = before.collateral[accounts.indexOf(account)];
          expect(shortfall, `${where}: shortfall of ${account}`).to.equal(-(coll + toTokensFloor(realized, 10n ** 12n)));
          stats.badDebts++;
          stats.shortfall += shortfall;
          stats.fromInsurance += fromInsurance;
          stats.socialized += socializedToPool;
        }
      }
      // After the keeper's pass no account may carry a loss nobody recorded. Without liquidations the snapshot
      // taken after the poke already shows it (negative equity is always Liquidatable).
      const after = liq.length > 0 ? await snapshot(`${where}, after the keeper`) : before;
      after.equityD18.forEach((eq, i) => {
        expect(eq >= 0n, `${where}: ${accounts[i]} has unrecorded negative equity ${eq}`).to.equal(true);
      });
    };

    await snapshot("after opening");
    // The history moves to the chain's present by whole weeks: hours of day and weekdays stay the real ones.
    const shift = ((BigInt(await time.latest()) - CANDLES[0].t) / WEEK + 1n) * WEEK;
    const closes: number[] = [];
    for (let h = 0; h < CANDLES.length; h++) {
      const c = CANDLES[h];
      // Two intra-hour rounds for the extremes (in the order the candle most likely visited them), then the close.
      const path = c.close < c.open ? [c.high, c.low, c.close] : [c.low, c.high, c.close];
      for (let k = 0; k < 3; k++) {
        await time.setNextBlockTimestamp(Number(c.t + shift + BigInt(k + 1) * 1200n));
        await f.priceFeeds[ETH].updateAnswer(answer(path[k]));
        if (k === 2) {
          closes.push(c.close);
          await f.volFeeds[ETH].updateAnswer(parseUnits(realizedVolPercent(closes.slice(-25)).toFixed(2), 2));
        }
        stats.rounds++;
        await keeperStep(`hour ${h} round ${k} @ ${path[k].toFixed(2)}`);
      }
    }

    // Totals: every shortfall was absorbed by the insurance fund or the pool, through BadDebtCovered.
    expect(stats.shortfall).to.equal(stats.fromInsurance + stats.socialized);
    expect(stats.liquidations > 0, "the crash liquidates someone").to.equal(true);
    expect(stats.flagged > 0, "the crash issues margin calls").to.equal(true);
    expect(stats.maxSigma > 10n ** 18n / 2n, "σ rises with the crash").to.equal(true);
    const end = await snapshot("at the end");
    expect(end.pool > 0n).to.equal(true);
    end.equityD18.forEach((eq, i) => expect(eq >= 0n, `${accounts[i]} ends with negative equity`).to.equal(true));
    console.log(
      `      ${stats.rounds} rounds, ${stats.flagged} margin calls, ${stats.liquidations} liquidations, ${stats.badDebts} bad debts ` +
        `(shortfall ${Number(stats.shortfall) / 1e6} USDC: ${Number(stats.fromInsurance) / 1e6} insurance + ${Number(stats.socialized) / 1e6} pool), ` +
        `max σ ${Number(stats.maxSigma / 10n ** 14n) / 100}%`,
    );
  });
});

