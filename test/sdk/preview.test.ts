// The SDK's trade preview as a pure function (no chain): reduce-only clamping, and the deposit it says a
// risk-increasing trade is short of initial margin is exactly the smallest that makes the trade pass.
import { expect } from "chai";
import fc from "fast-check";
import {
  AccountParams,
  AccountState,
  AccountStatus,
  INFINITE_HEALTH,
  MarketRisk,
  MarketState,
  Position,
  TradeInput,
  accountSummary,
  previewTrade,
} from "../../sdk/margin";

const WAD = 10n ** 18n;
const SCALE = 10n ** 12n; // USDC
const PARAMS: AccountParams = { tokenScale: SCALE, hardFloorD18: (3n * WAD) / 4n, marginCallExpiry: 4n * 3600n };
const NOW = 1_800_000_000n;

const d18 = (x: number) => BigInt(Math.round(x * 1e6)) * 10n ** 12n;

function risk(over: Partial<MarketRisk> = {}): MarketRisk {
  return {
    priceD18: d18(2000),
    sigmaD18: d18(0.5),
    mmrD18: d18(0.0194),
    imrD18: d18(0.029),
    liqFeeD18: d18(0.005),
    sizeAddOnD18: d18(0.01),
    skewScaleD18: d18(100000),
    takerFeeD18: d18(0.0005),
    makerFeeD18: d18(0.0002),
    maxFundingRateD18: d18(0.03),
    oiCapRatioD18: d18(2),
    breakers: 0n,
    ...over,
  };
}

/** A market whose aggregates include the account's position and `other` traders' net position. */
function marketWith(pos: Position, other: bigint, over: Partial<MarketState> = {}): MarketState {
  const long = (x: bigint) => (x > 0n ? x : 0n);
  return {
    skewD18: pos.sizeD18 + other,
    netCostBasisD18: pos.costBasisD18 + (other * 2000n),
    oiLongD18: long(pos.sizeD18) + long(other),
    oiShortD18: long(-pos.sizeD18) + long(-other),
    fundingIndexD18: 0n,
    lastFundingTime: NOW - 600n,
    ...over,
  };
}

function input(pos: Position, collateral: bigint, delta: bigint, extra: Partial<TradeInput> = {}): TradeInput {
  const account: AccountState = { address: "0xabc", collateral, positions: new Map([[0, pos]]), marginCallDeadline: 0n };
  return {
    account,
    markets: new Map([[0, { risk: risk(), state: marketWith(pos, d18(50)) }]]),
    params: PARAMS,
    poolBalance: 10n ** 15n,
    marketId: 0,
    sizeDeltaD18: delta,
    now: NOW,
    ...extra,
  };
}

describe("SDK trade preview (pure)", function () {
  it("an account without positions: free collateral is all of it, health is infinite", function () {
    const s = accountSummary({ collateral: 1234n, positions: new Map(), marginCallDeadline: 0n }, new Map(), PARAMS, NOW);
    expect(s.freeCollateral).to.equal(1234n);
    expect(s.healthD18).to.equal(INFINITE_HEALTH);
    expect(s.status).to.equal(AccountStatus.Healthy);
    expect(s.equityD18).to.equal(1234n * SCALE);
  });

  it("reduce-only orders are clamped to the position and refused when they would open or grow one", function () {
    const pos = { sizeD18: d18(5), costBasisD18: d18(5 * 1990) };
    const clamped = previewTrade({ ...input(pos, 10_000_000_000n, -d18(8)), reduceOnly: true });
    expect(clamped.accepted).to.equal(true);
    expect(clamped.sizeDeltaD18).to.equal(-d18(5));
    expect(clamped.positionAfter).to.deep.equal({ sizeD18: 0n, costBasisD18: 0n });
    const grow = previewTrade({ ...input(pos, 10_000_000_000n, d18(1)), reduceOnly: true });
    expect(grow.rejection).to.deep.equal({ errorName: "ClearingHouseReduceOnly", args: [0n] });
    // Without reduce-only the same sell flips the position.
    expect(previewTrade(input(pos, 10_000_000_000n, -d18(8))).positionAfter!.sizeD18).to.equal(-d18(3));
  });

  it("a refused trade still shows its post-trade figures and the margin it lacks", function () {
    const p = previewTrade(input({ sizeD18: 0n, costBasisD18: 0n }, 1_000_000_000n, d18(30))); // $1,000 for $60,000
    expect(p.accepted).to.equal(false);
    expect(p.rejection!.errorName).to.equal("ClearingHouseInsufficientMargin");
    expect(p.after!.initialRequirementD18).to.be.greaterThan(p.after!.equityD18);
    expect(p.marginShortfallTokens).to.be.greaterThan(0n);
    expect(p.before.collateral).to.equal(1_000_000_000n);
  });

  it("marginShortfallTokens is the smallest deposit that passes initial margin (fast-check)", function () {
    const arb = fc.record({
      size: fc.bigInt({ min: -(10n ** 21n), max: 10n ** 21n }),
      entryBps: fc.integer({ min: -3000, max: 3000 }),
      collateral: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 9n }), fc.bigInt({ min: 0n, max: 10n ** 11n })),
      delta: fc.bigInt({ min: -(2n * 10n ** 21n), max: 2n * 10n ** 21n }).filter((x) => x !== 0n),
      taker: fc.bigInt({ min: 0n, max: 10n ** 16n }),
      addOn: fc.bigInt({ min: 0n, max: 10n ** 17n }),
      index: fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
    });
    let refused = 0;
    fc.assert(
      fc.property(arb, (a) => {
        const basis = (a.size * 2000n * BigInt(10_000 + a.entryBps)) / 10_000n;
        const base = input({ sizeD18: a.size, costBasisD18: basis }, a.collateral, a.delta);
        const snap = base.markets.get(0)!;
        const markets = new Map([
          [0, { risk: { ...snap.risk, takerFeeD18: a.taker, sizeAddOnD18: a.addOn }, state: { ...snap.state, fundingIndexD18: a.index } }],
        ]);
        const run = (c: bigint) => previewTrade({ ...base, markets, account: { ...base.account, collateral: c } });
        const p = run(a.collateral);
        if (p.rejection?.errorName !== "ClearingHouseInsufficientMargin") {
          if (p.accepted) expect(p.marginShortfallTokens).to.equal(0n);
          return;
        }
        refused++;
        const need = p.marginShortfallTokens!;
        expect(need).to.be.greaterThan(0n);
        expect(run(a.collateral + need).rejection?.errorName).to.not.equal("ClearingHouseInsufficientMargin");
        expect(run(a.collateral + need - 1n).rejection?.errorName).to.equal("ClearingHouseInsufficientMargin");
      }),
      { numRuns: 300 },
    );
    expect(refused).to.be.greaterThan(20);
  });
});
