import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import {
  candleRounds,
  correlatedPath,
  generatedStressPath,
  loadOhlcCsv,
  realizedVolPercent,
  Rng,
  stressPhases,
} from "../../scripts/lib/scenario-path";
import { makeAgents, fitSize } from "../../scripts/lib/scenario-agents";
import { parseStartArgs, parseStaticSigma } from "../../scripts/lib/scenario-options";
import { PARAM, parseParamOverrides } from "../../scripts/lib/params";
import { buildPaths, resolveOptions } from "../../scripts/lib/scenario";

describe("npm start — price paths, traders and options", () => {
  it("the seeded PRNG repeats itself and differs across seeds", () => {
    const a = new Rng("x");
    const b = new Rng("x");
    const c = new Rng("y");
    const xs = Array.from({ length: 5 }, () => a.uniform());
    expect(Array.from({ length: 5 }, () => b.uniform())).to.deep.equal(xs);
    expect(Array.from({ length: 5 }, () => c.uniform())).not.to.deep.equal(xs);
    for (const x of xs) expect(x).to.be.within(0, 1);
  });

  it("the generated stress path crashes 30% from its pre-shock level and partly recovers", () => {
    for (const hours of [8, 12, 72, 200]) {
      const phases = stressPhases(hours);
      expect(phases.reduce((s, p) => s + p.hours, 0)).to.equal(hours);
      const p = generatedStressPath("ETH-PERP", hours, 2000, "seed");
      expect(p.candles).to.have.length(hours);
      expect(p.history).to.have.length(24);
      let h = 0;
      const end: Record<string, number> = {};
      for (const ph of phases) {
        h += ph.hours;
        end[ph.name] = p.candles[h - 1].close;
      }
      const preShock = end.calm;
      expect(end.crash / preShock).to.be.closeTo(0.7, 1e-9);
      expect(end.recovery / preShock).to.be.closeTo(0.82, 1e-9);
      for (const c of p.candles) {
        expect(c.high).to.be.at.least(Math.max(c.open, c.close));
        expect(c.low).to.be.at.most(Math.min(c.open, c.close));
      }
    }
    expect(generatedStressPath("ETH-PERP", 24, 2000, "a")).to.deep.equal(generatedStressPath("ETH-PERP", 24, 2000, "a"));
    expect(() => stressPhases(7)).to.throw(/at least 8 hours/);
  });

  it("publishes open → first extreme → second extreme → close, a round per deviation step in a fast leg", () => {
    const near = (xs: number[], ys: number[]) => {
      expect(xs).to.have.length(ys.length);
      xs.forEach((x, i) => expect(x).to.be.closeTo(ys[i], 1e-9));
    };
    // A small leg is one round: 100 → 100.6 (≥ 0.5 %, < 2 steps) → 100.05 → 99.9 (the close, under 0.5 %).
    const small = candleRounds({ t: 0, open: 100, high: 100.6, low: 100.05, close: 99.9 }, 100, 0.005);
    near(small.map((r) => r.price), [100.6, 100.05, 99.9]);
    expect(small.map((r) => r.offset)).to.deep.equal([15 * 60, 30 * 60, 45 * 60]);
    // 100 → 103 → 90 → 95: n = ⌊|ln(p/last)| / |ln(1 ± 0.005)|⌋ = 5, 26 and 10 rounds in equal geometric steps,
    // one block (12 s) apart from the slot's start, each leg ending exactly at its point.
    const falling = candleRounds({ t: 0, open: 100, high: 103, low: 90, close: 95 }, 100, 0.005);
    const legs = [1, 2, 3].map((slot) => falling.filter((r) => r.slot === slot));
    expect(legs.map((l) => l.length)).to.deep.equal([5, 26, 10]);
    near(legs[0].map((r) => r.price), [1, 2, 3, 4, 5].map((k) => 100 * 1.03 ** (k / 5)));
    expect(legs.map((l) => l[l.length - 1].price)).to.deep.equal([103, 90, 95]);
    expect(legs[1].map((r) => r.offset)).to.deep.equal(legs[1].map((_, j) => 30 * 60 + 12 * j));
    for (const l of legs) for (let j = 1; j < l.length; j++) expect(Math.abs(l[j].price / l[j - 1].price - 1)).to.be.at.least(0.005);
    // A 60 % leg is capped at 40 rounds (larger steps); the open leg of a rising hour under the threshold is skipped.
    expect(candleRounds({ t: 0, open: 100, high: 100.2, low: 40, close: 40 }, 100, 0.005).filter((r) => r.slot === 2)).to.have.length(40);
    const rising = candleRounds({ t: 0, open: 100, high: 110, low: 99.9, close: 108 }, 100, 0.005);
    expect(rising.filter((r) => r.slot === 1)).to.have.length(0);
    expect(rising.filter((r) => r.slot === 2)).to.have.length(19);
    expect(rising.filter((r) => r.slot === 3)).to.have.length(3);
    const flat = { t: 0, open: 100, high: 100.1, low: 99.9, close: 100 };
    const r = candleRounds(flat, 100, 0.005);
    expect(r).to.have.length(1); // the close is always published (heartbeat)
    expect(r[0].offset).to.equal(45 * 60);
  });

  it("computes annualized realized volatility from hourly closes", () => {
    expect(realizedVolPercent([1, 2, 3])).to.equal(null);
    // Alternating ±1% hourly log returns: σ = 1% · √8760 ≈ 93.6%.
    const closes = [100];
    for (let i = 0; i < 24; i++) closes.push(closes[i] * Math.exp(i % 2 ? -0.01 : 0.01));
    expect(realizedVolPercent(closes)).to.be.closeTo(Math.sqrt(8760), 1e-6);
  });

  it("reads an hourly OHLC CSV and derives a correlated BTC path", () => {
    const dir = mkdtempSync(join(tmpdir(), "sigma-csv-"));
    try {
      const file = join(dir, "p.csv");
      const rows = ["timestamp_unix,open,high,low,close,volume"];
      let p = 200;
      for (let i = 0; i < 10; i++) {
        const c = p * (i < 5 ? 0.97 : 1.01);
        rows.push(`${1583798400 + i * 3600},${p},${Math.max(p, c) * 1.01},${Math.min(p, c) * 0.99},${c},1000`);
        p = c;
      }
      writeFileSync(file, rows.join("\n") + "\n");
      const path = loadOhlcCsv(file);
      expect(path.candles).to.have.length(10);
      expect(path.candles[0]).to.include({ t: 1583798400, open: 200 });
      const [eth, btc] = buildPaths(resolveOptions({ pricesCsv: file, hours: 6 }));
      expect(eth.candles).to.have.length(6);
      expect(btc.candles).to.have.length(6);
      expect(btc.candles[5].close).to.be.lessThan(btc.candles[0].open); // follows ETH down
      const again = correlatedPath(eth, "BTC-PERP", 60000, 0.8, 0.25, "sigma");
      expect(again.candles).to.deep.equal(btc.candles);
      writeFileSync(file, "time,o,h,l,c\n1,2,3,1,2\n");
      expect(() => loadOhlcCsv(file)).to.throw(/expected columns/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("makes deterministic traders on both markets, with dip buyers", () => {
    const a = makeAgents({ traders: 32, seed: "s", btcShare: 0.25, dipShare: 0.1 });
    expect(makeAgents({ traders: 32, seed: "s", btcShare: 0.25, dipShare: 0.1 })).to.deep.equal(a);
    expect(a.filter((t) => t.market === "BTC-PERP")).to.have.length(8);
    expect(a.filter((t) => t.dipAt !== undefined)).to.have.length(3);
    expect(new Set(a.map((t) => t.address)).size).to.equal(32);
  });

  it("gives every trader an absolute leverage (2–20×, mostly 5–10×); relative mode keeps the rest of the profile", () => {
    const abs = makeAgents({ traders: 32, seed: "s", btcShare: 0.25, dipShare: 0.1 });
    const rel = makeAgents({ traders: 32, seed: "s", btcShare: 0.25, dipShare: 0.1, leverage: "relative" });
    for (const t of abs) {
      expect(t.leverageMode).to.equal("absolute");
      expect(t.leverage).to.be.at.least(2).and.at.most(20);
    }
    expect(abs.filter((t) => t.leverage >= 5 && t.leverage <= 10).length).to.be.greaterThan(10);
    // Same traders (market, side, collateral, reserve, behaviour, dip level): only the leverage differs.
    const rest = (t: (typeof abs)[number]) => ({ ...t, tier: undefined, leverage: undefined, leverageMode: undefined });
    expect(abs.map(rest)).to.deep.equal(rel.map(rest));
    for (const t of rel) expect(t.leverageMode).to.equal("relative");
    // Relative "max"/"high" leverage is a fraction of 1/IMR.
    for (const t of rel.filter((x) => x.tier === "max" || x.tier === "high")) expect(t.leverage).to.be.lessThan(1);
  });

  it("sizes a near-max-leverage entry so that it still meets initial margin after premium and fee", () => {
    const k = { price: 2000, skew: 2000, imr: 0.03, addOn: 0.01, skewScale: 100000, takerFee: 0.0005 };
    const want = (0.95 / 0.03) * 10000 / 2000;
    const size = fitSize(want, 10000, k);
    expect(size).to.be.lessThan(want).and.greaterThan(0);
    const fill = k.price * (1 + (2 * k.skew + size) / (2 * k.skewScale));
    const equity = 10000 - size * (fill - k.price) - size * fill * k.takerFee;
    expect(equity).to.be.at.least(size * k.price * (k.imr + (k.addOn * size) / k.skewScale));
  });

  it("reads options from the environment and the command line", () => {
    const a = parseStartArgs([], { SIGMA_HOURS: "24", SIGMA_TRADERS: "5", SIGMA_SEED: "x", SIGMA_QUIET: "1" });
    expect(a.scenario).to.include({ hours: 24, traders: 5, seed: "x" });
    expect(a.quiet).to.equal(true);
    expect(a.out).to.equal("reports");
    const b = parseStartArgs(["--", "--prices", "f.csv", "--hours=48", "--static-sigma", "80", "--out", "o"], { SIGMA_HOURS: "24" });
    expect(b.scenario).to.include({ pricesCsv: "f.csv", hours: 48 });
    expect(b.scenario.staticSigma).to.deep.equal({ "ETH-PERP": 0.8, "BTC-PERP": 0.8 });
    expect(b.out).to.equal("o");
    expect(parseStaticSigma("ETH-PERP=120,BTC-PERP=90")).to.deep.equal({ "ETH-PERP": 1.2, "BTC-PERP": 0.9 });
    expect(parseStartArgs(["--leverage", "relative"], {}).scenario.leverage).to.equal("relative");
    expect(parseStartArgs([], { SIGMA_LEVERAGE: "absolute" }).scenario.leverage).to.equal("absolute");
    expect(() => parseStartArgs(["--leverage", "max"], {})).to.throw(/absolute or relative/);
    expect(() => parseStartArgs(["--nope"], {})).to.throw(/unknown option/);
    expect(() => parseStartArgs(["--hours", "x"], {})).to.throw(/integer/);
    expect(() => parseStaticSigma("ETH-PERP=120")).to.throw(/missing for BTC-PERP/);
  });

  it("overrides risk parameters of every market by their IRiskManager.Param names (--param)", () => {
    expect(parseParamOverrides("ImrMin=0.1, LiqWindowSec=120,SkewScale=5000")).to.deep.equal({
      imrMinD18: 10n ** 17n,
      liqWindowSec: 120n,
      skewScaleD18: 5000n * 10n ** 18n,
    });
    // Every Param name but SigmaSource maps to a MarketParams field.
    for (const name of Object.keys(PARAM).filter((k) => k !== "SigmaSource")) {
      const isD18 = !/Sec$|Age$|HalfLife$/.test(name);
      const o = parseParamOverrides(`${name}=${isD18 ? "0.5" : "7"}`);
      expect(Object.values(o), name).to.deep.equal([isD18 ? 5n * 10n ** 17n : 7n]);
    }
    expect(parseStartArgs(["--param", "ImrMin=0.1"], {}).scenario.params).to.deep.equal({ imrMinD18: 10n ** 17n });
    expect(parseStartArgs([], { SIGMA_PARAMS: "MmrMin=0.02" }).scenario.params).to.deep.equal({ mmrMinD18: 2n * 10n ** 16n });
    expect(() => parseParamOverrides("SigmaSource=1")).to.throw(/unknown or fixed parameter SigmaSource/);
    expect(() => parseParamOverrides("Nope=1")).to.throw(/unknown or fixed parameter Nope/);
    expect(() => parseParamOverrides("HorizonSec=1.5")).to.throw(/non-negative integer/);
    expect(() => parseParamOverrides("ImrMin=-0.1")).to.throw(/non-negative decimal/);
    expect(() => parseParamOverrides("ImrMin")).to.throw(/non-negative decimal/);
    // The options carry them into both configurations.
    expect(resolveOptions({ params: { imrMinD18: 10n ** 17n } }).params).to.deep.equal({ imrMinD18: 10n ** 17n });
    expect(resolveOptions({}).params).to.deep.equal({});
  });
});
