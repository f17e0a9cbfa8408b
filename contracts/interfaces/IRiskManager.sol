// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title IRiskManager
/// @notice Sigma's risk engine: markets, their Chainlink feeds and bounded risk parameters, and the
/// volatility σ each market's margin follows. σ comes from a Chainlink realized-volatility feed, from an
/// on-chain estimator folded over the price feed's rounds, or from the larger of both; it is stored by a
/// permissionless `pokeVolatility` (rises apply at once, falls decay with a half-life) together with the
/// maintenance and initial ratios it implies, so that every trade reads a few packed slots.
interface IRiskManager {
    /// @notice Every governed per-market parameter, set through `setMarketParam`.
    enum Param {
        ZMm, // confidence multiplier for maintenance margin (D18)
        ZIm, // confidence multiplier for initial margin (D18), > ZMm
        HorizonSec, // liquidation horizon in seconds
        LiqFee, // liquidation fee ratio (D18), part of both ratios
        MmrMin, // maintenance ratio floor (D18)
        MmrMax, // maintenance ratio cap (D18)
        ImrMin, // initial ratio floor (D18)
        SizeAddOn, // extra ratio per skewScale of position size (D18)
        SigmaMin, // σ floor (D18, 1e18 = 100% annualized)
        SigmaMax, // σ cap (D18)
        SkewScale, // market depth in base units (D18) for premium, funding and add-on
        TakerFee, // fee ratio on the skew-growing part of a trade (D18)
        MakerFee, // fee ratio on the skew-reducing part (D18), ≤ TakerFee
        MaxFundingRate, // funding rate per day at |skew| ≥ skewScale (D18)
        OiCapRatio, // max open interest per side as a multiple of pool NAV (D18)
        PriceMaxAge, // hard max age of a price round: beyond it nothing is priced (seconds)
        LiquidationPriceMaxAge, // max age for liquidations and opening; older → reduce-only (seconds)
        VolMaxAge, // max age of σ (last poke) and of a volatility-feed round (seconds)
        SigmaBreaker, // σ above this turns the market reduce-only (D18)
        PriceJumpBreaker, // one round moving the price more than this (ratio, D18) trips a breaker
        SigmaDecayHalfLife, // half-life of σ falls (hysteresis), seconds
        SigmaSource, // 0 = volatility feed, 1 = on-chain estimator, 2 = max of both
        LiqWindowSec, // liquidation rate-limit window, seconds
        LiqLimit // max size liquidated per window, as a fraction of skewScale (D18)
    }

    /// @notice Packed per-market parameters (see `Param` for meanings).
    struct MarketParams {
        uint64 zMmD18;
        uint64 zImD18;
        uint64 liqFeeD18;
        uint32 horizonSec;
        uint32 priceMaxAge;
        uint64 mmrMinD18;
        uint64 mmrMaxD18;
        uint64 imrMinD18;
        uint64 sizeAddOnD18;
        uint64 sigmaMinD18;
        uint64 sigmaMaxD18;
        uint64 takerFeeD18;
        uint64 makerFeeD18;
        uint128 skewScaleD18;
        uint64 maxFundingRateD18;
        uint32 liquidationPriceMaxAge;
        uint32 volMaxAge;
        uint64 oiCapRatioD18;
        uint64 sigmaBreakerD18;
        uint64 priceJumpBreakerD18;
        uint32 sigmaDecayHalfLife;
        uint8 sigmaSource;
        uint32 liqWindowSec;
        uint64 liqLimitD18;
    }

    /// @notice What the clearinghouse needs about one market for one operation, all D18.
    struct MarketRisk {
        uint256 priceD18;
        uint256 sigmaD18;
        uint256 mmrD18; // maintenance ratio before size add-on
        uint256 imrD18; // initial ratio before size add-on
        uint256 liqFeeD18;
        uint256 sizeAddOnD18;
        uint256 skewScaleD18;
        uint256 takerFeeD18;
        uint256 makerFeeD18;
        uint256 maxFundingRateD18;
        uint256 oiCapRatioD18;
        uint256 breakers; // bitmask of BREAKER_* flags; non-zero means reduce-only
        uint256 priceUpdatedAt; // updatedAt of the price round in use
    }

    /// @notice Emitted when a market is listed.
    event MarketAdded(uint256 indexed marketId, bytes32 indexed symbol, address priceFeed, address volFeed);
    /// @notice Emitted on every parameter change, with the old and new value.
    event MarketParamSet(uint256 indexed marketId, Param indexed param, uint256 oldValue, uint256 newValue);
    /// @notice Emitted when a market's feeds are replaced.
    event MarketFeedsSet(uint256 indexed marketId, address priceFeed, address volFeed);
    /// @notice Emitted when the guardian pauses or resumes opening on a market.
    event OpeningPausedSet(uint256 indexed marketId, bool paused, address indexed by);
    /// @notice Emitted whenever a market's σ in use is recomputed, with the ratios it implies.
    /// @param roundId the last price round folded into the on-chain estimator.
    /// @param breakers the market's breaker flags after the update.
    event VolatilityUpdated(
        uint256 indexed marketId,
        uint256 sigmaD18,
        uint256 mmrD18,
        uint256 imrD18,
        uint256 roundsFolded,
        uint80 roundId,
        uint256 breakers
    );
    /// @notice Emitted when a price round moved more than the jump bound (the market turns reduce-only
    /// until a poke folds a round within bounds).
    event PriceJumpDetected(uint256 indexed marketId, uint80 roundId, uint256 moveD18);

    /// @notice The market id does not exist.
    error RiskUnknownMarket(uint256 marketId);
    /// @notice A parameter value lies outside its hard bounds.
    error RiskParamOutOfBounds(Param param, uint256 value, uint256 min, uint256 max);
    /// @notice Parameters contradict each other (e.g. ZIm ≤ ZMm, MakerFee > TakerFee).
    error RiskParamsIncoherent(Param param);
    /// @notice A feed address is zero, not a contract, or its decimals are unusable.
    error RiskInvalidFeed(address feed);
    /// @notice The sequencer grace period is out of bounds.
    error RiskInvalidGracePeriod(uint256 gracePeriod);
    /// @notice Too many markets.
    error RiskTooManyMarkets();

    /// @notice Lists a market with its Chainlink price and volatility feeds and its initial parameters.
    /// @dev Admin only. Every parameter is checked against its bounds; σ starts from the sources now.
    /// @return marketId the new market's id (0, 1, 2…).
    function addMarket(
        bytes32 symbol,
        AggregatorV3Interface priceFeed,
        AggregatorV3Interface volFeed,
        MarketParams calldata params
    ) external returns (uint256 marketId);

    /// @notice Sets one risk parameter of one market, within its hard bounds. Parameter setter only.
    function setMarketParam(uint256 marketId, Param param, uint256 value) external;

    /// @notice Replaces a market's feeds (e.g. after a Chainlink feed migration). Admin only.
    function setMarketFeeds(uint256 marketId, AggregatorV3Interface priceFeed, AggregatorV3Interface volFeed) external;

    /// @notice Pauses or resumes opening and increasing positions on a market. Guardian only.
    /// Closing, reducing, adding margin and liquidation are never paused.
    function setOpeningPaused(uint256 marketId, bool paused) external;

    /// @notice Recomputes σ of a market from its sources and stores it with the ratios it implies.
    /// Permissionless: the caller only pays gas; every number comes from Chainlink.
    /// @return roundsFolded price rounds folded into the on-chain estimator by this call.
    function pokeVolatility(uint256 marketId) external returns (uint256 roundsFolded);

    /// @notice Price rounds published since the last one folded in (what a poke would walk, before its cap).
    function pendingRounds(uint256 marketId) external view returns (uint256);

    /// @notice Whether a poke would change anything: new price rounds, a new volatility-feed round, a σ still
    /// decaying, or a stored σ older than half of VolMaxAge.
    function pokeNeeded(uint256 marketId) external view returns (bool);

    /// @notice Number of listed markets.
    function marketCount() external view returns (uint256);

    /// @notice A market's symbol, e.g. "ETH-PERP".
    function marketSymbol(uint256 marketId) external view returns (bytes32);

    /// @notice A market's parameters.
    function marketParams(uint256 marketId) external view returns (MarketParams memory);

    /// @notice A market's price and volatility feeds.
    function marketFeeds(uint256 marketId) external view returns (address priceFeed, address volFeed);

    /// @notice Snapshot of price, σ, ratios and trading parameters for one operation.
    /// @param forLiquidation when true, a price older than LiquidationPriceMaxAge reverts.
    /// @dev Reverts if the price is invalid or older than PriceMaxAge. A price older than
    /// LiquidationPriceMaxAge, a σ older than VolMaxAge, σ above its breaker, a price jump, a paused market or
    /// a sequencer outage set `breakers` (reduce-only) instead of reverting, so positions can always be reduced.
    function marketRisk(uint256 marketId, bool forLiquidation) external view returns (MarketRisk memory);

    /// @notice Liquidation rate limit of a market: window length (s) and max size per window (D18).
    function liquidationLimit(uint256 marketId) external view returns (uint256 windowSec, uint256 maxSizeD18);

    /// @notice Oracle price (D18) of a market, validated against PriceMaxAge.
    function priceD18(uint256 marketId) external view returns (uint256);

    /// @notice σ in use (annualized, D18) and the maintenance/initial ratios before size add-on.
    function ratios(uint256 marketId) external view returns (uint256 sigmaD18, uint256 mmrD18, uint256 imrD18);

    /// @notice σ each source would give now: the volatility feed (0 if unusable) and the on-chain estimator.
    function sigmaSources(uint256 marketId) external view returns (uint256 feedSigmaD18, uint256 estimatorSigmaD18);

    /// @notice Maximum leverage of a small position now, 1/IMR, D18 (e.g. 47e18 = 47×).
    function maxLeverageD18(uint256 marketId) external view returns (uint256);

    /// @notice Whether liquidations may run: false while the sequencer is down or in its grace period.
    function liquidationsAllowed() external view returns (bool);
}
