import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { sigmaFixture, trade, setPrice, usdc, d18, ETH, BTC, Fixture, chEvents } from "../fixture";
import { PARAM, baseParams } from "../../scripts/lib/params";
import { ROLES } from "../../scripts/lib/deploy";

const BREAKER_OPENING_PAUSED = 1n;
const DAY = 86400n;

/** Hard bounds of every governed parameter (the specification the contract must enforce). */
const BOUNDS: Record<keyof typeof PARAM, [bigint, bigint]> = {
  ZMm: [d18(1), d18(10)],
  ZIm: [d18(1), d18(15)],
  HorizonSec: [300n, 7n * DAY],
  LiqFee: [0n, d18("0.05")],
  MmrMin: [d18("0.001"), d18("0.5")],
  MmrMax: [d18("0.001"), d18("0.9")],
  ImrMin: [d18("0.001"), d18(1)],
  SizeAddOn: [0n, d18(1)],
  SigmaMin: [d18("0.01"), d18(5)],
  SigmaMax: [d18("0.01"), d18(10)],
  SkewScale: [d18(1), 10n ** 30n],
  TakerFee: [0n, d18("0.01")],
  MakerFee: [0n, d18("0.01")],
  MaxFundingRate: [0n, d18("0.1")],
  OiCapRatio: [0n, d18(10)],
  PriceMaxAge: [30n, 2n * DAY],
  LiquidationPriceMaxAge: [30n, 2n * DAY],
  VolMaxAge: [60n, 7n * DAY],
  SigmaBreaker: [d18("0.05"), d18(10)],
  PriceJumpBreaker: [d18("0.01"), d18(1)],
  SigmaDecayHalfLife: [60n, 30n * DAY],
  SigmaSource: [0n, 2n],
  LiqWindowSec: [1n, DAY],
  LiqLimit: [d18("0.0001"), d18(10)],
};

/** MarketParams field of each Param. */
const FIELD: Record<keyof typeof PARAM, string> = {
  ZMm: "zMmD18",
  ZIm: "zImD18",
  HorizonSec: "horizonSec",
  LiqFee: "liqFeeD18",
  MmrMin: "mmrMinD18",
  MmrMax: "mmrMaxD18",
  ImrMin: "imrMinD18",
  SizeAddOn: "sizeAddOnD18",
  SigmaMin: "sigmaMinD18",
  SigmaMax: "sigmaMaxD18",
  SkewScale: "skewScaleD18",
  TakerFee: "takerFeeD18",
  MakerFee: "makerFeeD18",
  MaxFundingRate: "maxFundingRateD18",
  OiCapRatio: "oiCapRatioD18",
  PriceMaxAge: "priceMaxAge",
  LiquidationPriceMaxAge: "liquidationPriceMaxAge",
  VolMaxAge: "volMaxAge",
  SigmaBreaker: "sigmaBreakerD18",
  PriceJumpBreaker: "priceJumpBreakerD18",
  SigmaDecayHalfLife: "sigmaDecayHalfLife",
  SigmaSource: "sigmaSource",
  LiqWindowSec: "liqWindowSec",
  LiqLimit: "liqLimitD18",
};

/** An in-bounds value for each Param that is coherent with the default parameters. */
const VALID: Record<keyof typeof PARAM, bigint> = {
  ZMm: d18(4),
  ZIm: d18(6),
  HorizonSec: 7200n,
  LiqFee: d18("0.01"),
  MmrMin: d18("0.008"),
  MmrMax: d18("0.3"),
  ImrMin: d18("0.02"),
  SizeAddOn: d18("0.02"),
  SigmaMin: d18("0.2"),
  SigmaMax: d18(4),
  SkewScale: d18(200000),
  TakerFee: d18("0.001"),
  MakerFee: d18("0.0001"),
  MaxFundingRate: d18("0.05"),
  OiCapRatio: d18(3),
  PriceMaxAge: 7200n,
  LiquidationPriceMaxAge: 3000n,
  VolMaxAge: 100000n,
  SigmaBreaker: d18(3),
  PriceJumpBreaker: d18("0.2"),
  SigmaDecayHalfLife: 3600n,
  SigmaSource: 1n,
  LiqWindowSec: 120n,
  LiqLimit: d18("0.1"),
};

const NAMES = Object.keys(PARAM) as (keyof typeof PARAM)[];

async function param(f: Fixture, marketId: number, name: keyof typeof PARAM): Promise<bigint> {
  const p = await f.riskManager.marketParams(marketId);
  return BigInt((p as unknown as Record<string, bigint>)[FIELD[name]]);
}

async function execOrder(f: Fixture, trader: (typeof f.traders)[number], marketId: number, size: bigint) {
  const { receipt } = await trade(f, trader, marketId, size);
  const evs = chEvents(f, receipt);
  const cancelled = evs.find((e) => e.name === "OrderCancelled");
  return {
    filled: evs.some((e) => e.name === "OrderExecuted"),
    reason: cancelled ? f.clearingHouse.interface.parseError(cancelled.args.reason) : null,
  };
}

describe("RiskManager governance", () => {
  describe("bounded parameters", () => {
    for (const name of NAMES) {
      const id = PARAM[name];
      const [lo, hi] = BOUNDS[name];
      it(`${name}: out of [${lo}, ${hi}] reverts with RiskParamOutOfBounds(param, value, min, max) and changes nothing`, async () => {
        const f = await loadFixture(sigmaFixture);
        const before = await param(f, ETH, name);
        await expect(f.riskManager.setMarketParam(ETH, id, hi + 1n))
          .to.be.revertedWithCustomError(f.riskManager, "RiskParamOutOfBounds")
          .withArgs(id, hi + 1n, lo, hi);
        if (lo > 0n) {
          await expect(f.riskManager.setMarketParam(ETH, id, lo - 1n))
            .to.be.revertedWithCustomError(f.riskManager, "RiskParamOutOfBounds")
            .withArgs(id, lo - 1n, lo, hi);
        }
        await expect(f.riskManager.setMarketParam(ETH, id, ethers.MaxUint256))
          .to.be.revertedWithCustomError(f.riskManager, "RiskParamOutOfBounds")
          .withArgs(id, ethers.MaxUint256, lo, hi);
        expect(await param(f, ETH, name)).to.equal(before);
      });

      it(`${name}: an in-bounds value is stored and emits MarketParamSet(marketId, param, old, new)`, async () => {
        const f = await loadFixture(sigmaFixture);
        const old = await param(f, ETH, name);
        const btcBefore = await param(f, BTC, name);
        const value = VALID[name];
        expect(value).to.not.equal(old);
        await expect(f.riskManager.setMarketParam(ETH, id, value))
          .to.emit(f.riskManager, "MarketParamSet")
          .withArgs(ETH, id, old, value);
        expect(await param(f, ETH, name)).to.equal(value);
        // Only that market changed.
        expect(await param(f, BTC, name)).to.equal(btcBefore);
      });
    }

    it("the bounds themselves are accepted where coherent (e.g. LiqFee 0 and 5%, TakerFee 1%, OiCapRatio 0 and 10)", async () => {
      const f = await loadFixture(sigmaFixture);
      for (const [id, v] of [
        [PARAM.LiqFee, 0n],
        [PARAM.LiqFee, d18("0.05")],
        [PARAM.TakerFee, d18("0.01")],
        [PARAM.MakerFee, 0n],
        [PARAM.OiCapRatio, 0n],
        [PARAM.OiCapRatio, d18(10)],
        [PARAM.SkewScale, d18(1)],
        [PARAM.SkewScale, 10n ** 30n],
        [PARAM.HorizonSec, 300n],
        [PARAM.HorizonSec, 7n * DAY],
      ] as const) {
        await expect(f.riskManager.setMarketParam(ETH, id, v)).to.emit(f.riskManager, "MarketParamSet");
      }
      expect((await f.riskManager.marketParams(ETH)).horizonSec).to.equal(7n * DAY);
    });

    it("every parameter set to its upper bound (where coherent) is stored exactly, never truncated to its field", async () => {
      const f = await loadFixture(sigmaFixture);
      const truncated: string[] = [];
      for (const name of NAMES) {
        const hi = BOUNDS[name][1];
        try {
          await f.riskManager.setMarketParam.staticCall(ETH, PARAM[name], hi);
        } catch {
          continue; // incoherent with the other defaults (e.g. ZMm = 10 > ZIm)
        }
        await f.riskManager.setMarketParam(ETH, PARAM[name], hi);
        const stored = await param(f, ETH, name);
        if (stored !== hi) truncated.push(`${name}: set ${hi}, stored ${stored}`);
      }
      expect(truncated).to.deep.equal([]);
    });

    it("a parameter of an unknown market reverts with RiskUnknownMarket", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.riskManager.setMarketParam(7, PARAM.LiqFee, 0n))
        .to.be.revertedWithCustomError(f.riskManager, "RiskUnknownMarket")
        .withArgs(7);
      await expect(f.riskManager.ratios(7)).to.be.revertedWithCustomError(f.riskManager, "RiskUnknownMarket").withArgs(7);
      await expect(f.riskManager.marketRisk(7, false))
        .to.be.revertedWithCustomError(f.riskManager, "RiskUnknownMarket")
        .withArgs(7);
    });
  });

  describe("coherence", () => {
    for (const [label, name, value, culprit] of [
      ["ZIm equal to ZMm", "ZIm", d18(3), "ZIm"],
      ["ZIm below ZMm", "ZIm", d18(2), "ZIm"],
      ["ZMm raised to ZIm", "ZMm", d18(5), "ZIm"],
      ["MmrMax below MmrMin", "MmrMax", d18("0.004"), "MmrMax"],
      ["MmrMin above MmrMax", "MmrMin", d18("0.3"), "MmrMax"],
      ["ImrMin below MmrMin", "ImrMin", d18("0.004"), "ImrMin"],
      ["MmrMin above ImrMin", "MmrMin", d18("0.02"), "ImrMin"],
      ["SigmaMax below SigmaMin", "SigmaMax", d18("0.05"), "SigmaMax"],
      ["SigmaMin above SigmaMax", "SigmaMin", d18(4), "SigmaMax"],
      ["MakerFee above TakerFee", "MakerFee", d18("0.0006"), "MakerFee"],
      ["TakerFee below MakerFee", "TakerFee", d18("0.0001"), "MakerFee"],
      ["LiquidationPriceMaxAge above PriceMaxAge", "LiquidationPriceMaxAge", 5000n, "LiquidationPriceMaxAge"],
      ["PriceMaxAge below LiquidationPriceMaxAge", "PriceMaxAge", 3000n, "LiquidationPriceMaxAge"],
    ] as const) {
      it(`${label} reverts with RiskParamsIncoherent(${culprit}) and changes nothing`, async () => {
        const f = await loadFixture(sigmaFixture);
        const before = await f.riskManager.marketParams(ETH);
        await expect(f.riskManager.setMarketParam(ETH, PARAM[name], value))
          .to.be.revertedWithCustomError(f.riskManager, "RiskParamsIncoherent")
          .withArgs(PARAM[culprit]);
        expect(await f.riskManager.marketParams(ETH)).to.deep.equal(before);
      });
    }
  });

  describe("addMarket", () => {
    it("lists a market, emitting MarketParamSet(id, p, 0, v) for every parameter and MarketAdded", async () => {
      const f = await loadFixture(sigmaFixture);
      const V = await ethers.getContractFactory("MockV3Aggregator");
      const pf = await V.deploy(8, 150n * 10n ** 8n);
      const vf = await V.deploy(2, 8000n);
      const params = baseParams({ sigmaSource: 0n, skewScaleD18: d18(1000000) });
      const symbol = ethers.encodeBytes32String("SOL-PERP");
      const tx = f.riskManager.addMarket(symbol, await pf.getAddress(), await vf.getAddress(), params);
      await expect(tx)
        .to.emit(f.riskManager, "MarketAdded")
        .withArgs(2, symbol, await pf.getAddress(), await vf.getAddress());
      for (const name of NAMES) {
        await expect(tx)
          .to.emit(f.riskManager, "MarketParamSet")
          .withArgs(2, PARAM[name], 0n, (params as unknown as Record<string, bigint>)[FIELD[name]]);
      }
      expect(await f.riskManager.marketCount()).to.equal(3n);
      expect(await f.riskManager.priceD18(2)).to.equal(d18(150));
      expect((await f.riskManager.ratios(2))[0]).to.equal(d18("0.8"));
    });

    it("rejects out-of-bounds and incoherent parameters and non-admin callers", async () => {
      const f = await loadFixture(sigmaFixture);
      const pf = await f.priceFeeds[ETH].getAddress();
      const vf = await f.volFeeds[ETH].getAddress();
      const symbol = ethers.encodeBytes32String("X");
      await expect(f.riskManager.addMarket(symbol, pf, vf, baseParams({ liqFeeD18: d18("0.06") })))
        .to.be.revertedWithCustomError(f.riskManager, "RiskParamOutOfBounds")
        .withArgs(PARAM.LiqFee, d18("0.06"), 0n, d18("0.05"));
      await expect(f.riskManager.addMarket(symbol, pf, vf, baseParams({ zImD18: d18(2) })))
        .to.be.revertedWithCustomError(f.riskManager, "RiskParamsIncoherent")
        .withArgs(PARAM.ZIm);
      await expect(f.riskManager.connect(f.traders[0]).addMarket(symbol, pf, vf, baseParams()))
        .to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount")
        .withArgs(f.traders[0].address, ethers.ZeroHash);
      expect(await f.riskManager.marketCount()).to.equal(2n);
    });
  });

  describe("roles", () => {
    it("only the PARAM_SETTER role can set parameters (AccessControlUnauthorizedAccount)", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t] = f.traders;
      await expect(f.riskManager.connect(t).setMarketParam(ETH, PARAM.LiqFee, d18("0.01")))
        .to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount")
        .withArgs(t.address, ROLES.PARAM_SETTER);
      // The admin too, once it no longer holds the role; a new setter can.
      await f.riskManager.revokeRole(ROLES.PARAM_SETTER, f.admin.address);
      await expect(f.riskManager.setMarketParam(ETH, PARAM.LiqFee, d18("0.01")))
        .to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount")
        .withArgs(f.admin.address, ROLES.PARAM_SETTER);
      await f.riskManager.grantRole(ROLES.PARAM_SETTER, t.address);
      await expect(f.riskManager.connect(t).setMarketParam(ETH, PARAM.LiqFee, d18("0.01")))
        .to.emit(f.riskManager, "MarketParamSet")
        .withArgs(ETH, PARAM.LiqFee, d18("0.005"), d18("0.01"));
    });

    it("a non-guardian cannot pause opening, not even a parameter setter", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, setter] = f.traders;
      await expect(f.riskManager.connect(t).setOpeningPaused(ETH, true))
        .to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount")
        .withArgs(t.address, ROLES.GUARDIAN);
      await f.riskManager.grantRole(ROLES.PARAM_SETTER, setter.address);
      await expect(f.riskManager.connect(setter).setOpeningPaused(ETH, true))
        .to.be.revertedWithCustomError(f.riskManager, "AccessControlUnauthorizedAccount")
        .withArgs(setter.address, ROLES.GUARDIAN);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    });
  });

  describe("guardian pause", () => {
    it("setOpeningPaused emits OpeningPausedSet and sets BREAKER_OPENING_PAUSED on that market only", async () => {
      const f = await loadFixture(sigmaFixture);
      await expect(f.riskManager.setOpeningPaused(ETH, true))
        .to.emit(f.riskManager, "OpeningPausedSet")
        .withArgs(ETH, true, f.admin.address);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(BREAKER_OPENING_PAUSED);
      expect((await f.riskManager.marketRisk(ETH, true)).breakers).to.equal(BREAKER_OPENING_PAUSED);
      expect((await f.riskManager.marketRisk(BTC, false)).breakers).to.equal(0n);
      await expect(f.riskManager.setOpeningPaused(ETH, false))
        .to.emit(f.riskManager, "OpeningPausedSet")
        .withArgs(ETH, false, f.admin.address);
      expect((await f.riskManager.marketRisk(ETH, false)).breakers).to.equal(0n);
    });

    it("while paused, opening is cancelled with ClearingHouseMarketReduceOnly but closing, depositing, withdrawing free collateral and liquidation work", async () => {
      const f = await loadFixture(sigmaFixture);
      const [t, u, e] = f.traders;
      // No funding, so that free collateral does not shrink between reading it and withdrawing it.
      await f.riskManager.setMarketParam(ETH, PARAM.MaxFundingRate, 0n);
      for (const x of [t, u, e]) await f.vault.connect(x).deposit(x.address, usdc(10000));
      await trade(f, t, ETH, d18(10));
      await trade(f, e, ETH, d18(90));

      await f.riskManager.setOpeningPaused(ETH, true);

      // Opening a new position, increasing one and flipping one are all refused; the keeper is still paid.
      const keeperEth = await ethers.provider.getBalance(f.keeper.address);
      let o = await execOrder(f, u, ETH, d18(1));
      expect(o.filled).to.equal(false);
      expect(o.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
      expect(o.reason!.args).to.deep.equal([BigInt(ETH), BREAKER_OPENING_PAUSED]);
      expect((await f.clearingHouse.position(u.address, ETH)).sizeD18).to.equal(0n);
      expect(await ethers.provider.getBalance(f.keeper.address)).to.be.greaterThan(keeperEth - d18("0.01"));
      o = await execOrder(f, t, ETH, d18(1));
      expect(o.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
      o = await execOrder(f, t, ETH, -d18(15));
      expect(o.reason!.name).to.equal("ClearingHouseMarketReduceOnly");
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(d18(10));

      // Another market is unaffected.
      o = await execOrder(f, u, BTC, d18("0.1"));
      expect(o.filled).to.equal(true);

      // Reducing and closing fill.
      o = await execOrder(f, t, ETH, -d18(4));
      expect(o.filled).to.equal(true);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(d18(6));

      // Adding margin and withdrawing free collateral work.
      await expect(f.vault.connect(t).deposit(t.address, usdc(1000))).to.emit(f.vault, "Deposited");
      const free = await f.clearingHouse.freeCollateral(t.address);
      expect(free > 0n).to.equal(true);
      await expect(f.vault.connect(t).withdraw(free, t.address))
        .to.emit(f.vault, "Withdrawn")
        .withArgs(t.address, t.address, free);

      o = await execOrder(f, t, ETH, -d18(6));
      expect(o.filled).to.equal(true);
      expect((await f.clearingHouse.position(t.address, ETH)).sizeD18).to.equal(0n);

      // Liquidation still runs.
      await setPrice(f, ETH, "1900");
      expect((await f.clearingHouse.accountSummary(e.address)).liquidatable).to.equal(true);
      await expect(f.clearingHouse.connect(f.keeper).liquidate(e.address)).to.emit(f.clearingHouse, "Liquidated");
      expect((await f.clearingHouse.position(e.address, ETH)).sizeD18 < d18(90)).to.equal(true);

      // Unpausing restores opening.
      await f.riskManager.setOpeningPaused(ETH, false);
      o = await execOrder(f, u, ETH, d18(1));
      expect(o.filled).to.equal(true);
    });
  });
});
