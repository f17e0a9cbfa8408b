// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {ChainlinkOracle} from "../libraries/ChainlinkOracle.sol";
import {MarginMath} from "../libraries/MarginMath.sol";
import {Roles} from "../libraries/Roles.sol";

/// @title RiskManager
/// @notice Holds Sigma's markets, their Chainlink feeds and every per-market risk parameter, and turns the
/// Chainlink volatility feed into maintenance and initial margin ratios. One config path: every parameter
/// goes through `setMarketParam`, is checked against hard bounds and emits `MarketParamSet`.
contract RiskManager is IRiskManager, AccessControl {
    uint256 public constant BREAKER_OPENING_PAUSED = 1;
    uint256 public constant BREAKER_SEQUENCER = 2;
    uint256 public constant BREAKER_VOL_STALE = 4;

    uint256 public constant MAX_MARKETS = 32;
    uint256 public constant MAX_GRACE_PERIOD = 1 days;

    /// @dev Laid out so one operation reads three slots besides the parameters.
    struct Market {
        bytes32 symbol;
        AggregatorV3Interface priceFeed;
        uint8 priceDecimals;
        uint8 volDecimals;
        bool openingPaused;
        AggregatorV3Interface volFeed;
        uint64 sqrtHorizonD18; // sqrt(horizon / 1 year), derived from HorizonSec when it is set
        MarketParams params;
    }

    struct Sequencer {
        AggregatorV3Interface feed;
        uint32 gracePeriod;
    }

    Market[] internal _markets;
    Sequencer internal _sequencer;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IRiskManager
    function addMarket(
        bytes32 symbol,
        AggregatorV3Interface priceFeed,
        AggregatorV3Interface volFeed,
        MarketParams calldata params
    ) external onlyRole(DEFAULT_ADMIN_ROLE) returns (uint256 marketId) {
        if (_markets.length >= MAX_MARKETS) revert RiskTooManyMarkets();
        marketId = _markets.length;
        Market storage m = _markets.push();
        m.symbol = symbol;
        _setFeeds(m, priceFeed, volFeed);
        m.params = params;
        m.sqrtHorizonD18 = uint64(MarginMath.sqrtHorizonD18(params.horizonSec));
        for (uint256 i; i <= uint256(type(Param).max); ++i) {
            Param p = Param(i);
            uint256 v = _get(params, p);
            _checkBounds(p, v);
            emit MarketParamSet(marketId, p, 0, v);
        }
        _checkCoherent(params);
        emit MarketAdded(marketId, symbol, address(priceFeed), address(volFeed));
    }

    /// @inheritdoc IRiskManager
    function setMarketParam(uint256 marketId, Param param, uint256 value) external onlyRole(Roles.PARAM_SETTER) {
        Market storage m = _market(marketId);
        _checkBounds(param, value);
        uint256 old = _get(m.params, param);
        _set(m.params, param, value);
        if (param == Param.HorizonSec) m.sqrtHorizonD18 = uint64(MarginMath.sqrtHorizonD18(value));
        _checkCoherent(m.params);
        emit MarketParamSet(marketId, param, old, value);
    }

    /// @inheritdoc IRiskManager
    function setMarketFeeds(uint256 marketId, AggregatorV3Interface priceFeed, AggregatorV3Interface volFeed)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setFeeds(_market(marketId), priceFeed, volFeed);
        emit MarketFeedsSet(marketId, address(priceFeed), address(volFeed));
    }

    /// @inheritdoc IRiskManager
    function setSequencerFeed(AggregatorV3Interface feed, uint256 gracePeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (gracePeriod > MAX_GRACE_PERIOD) revert RiskInvalidGracePeriod(gracePeriod);
        _sequencer = Sequencer(feed, uint32(gracePeriod));
        emit SequencerFeedSet(address(feed), gracePeriod);
    }

    /// @inheritdoc IRiskManager
    function setOpeningPaused(uint256 marketId, bool paused) external onlyRole(Roles.GUARDIAN) {
        _market(marketId).openingPaused = paused;
        emit OpeningPausedSet(marketId, paused, msg.sender);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IRiskManager
    function marketCount() external view returns (uint256) {
        return _markets.length;
    }

    /// @inheritdoc IRiskManager
    function marketSymbol(uint256 marketId) external view returns (bytes32) {
        return _market(marketId).symbol;
    }

    /// @inheritdoc IRiskManager
    function marketParams(uint256 marketId) external view returns (MarketParams memory) {
        return _market(marketId).params;
    }

    /// @inheritdoc IRiskManager
    function marketFeeds(uint256 marketId) external view returns (address, address) {
        Market storage m = _market(marketId);
        return (address(m.priceFeed), address(m.volFeed));
    }

    /// @inheritdoc IRiskManager
    function marketRisk(uint256 marketId, bool forLiquidation) external view returns (MarketRisk memory r) {
        Market storage m = _market(marketId);
        MarketParams memory p = m.params;
        (r.priceD18,) = ChainlinkOracle.readD18(
            m.priceFeed, m.priceDecimals, forLiquidation ? p.liquidationPriceMaxAge : p.priceMaxAge
        );
        bool volFresh;
        (r.sigmaD18, volFresh) = _sigma(m, p);
        (r.mmrD18, r.imrD18) = MarginMath.baseRatios(_ratioParams(p, m.sqrtHorizonD18), r.sigmaD18);
        r.liqFeeD18 = p.liqFeeD18;
        r.sizeAddOnD18 = p.sizeAddOnD18;
        r.skewScaleD18 = p.skewScaleD18;
        r.takerFeeD18 = p.takerFeeD18;
        r.makerFeeD18 = p.makerFeeD18;
        r.maxFundingRateD18 = p.maxFundingRateD18;
        r.oiCapRatioD18 = p.oiCapRatioD18;
        if (m.openingPaused) r.breakers |= BREAKER_OPENING_PAUSED;
        if (!volFresh) r.breakers |= BREAKER_VOL_STALE;
        Sequencer memory seq = _sequencer;
        if (!ChainlinkOracle.sequencerOk(seq.feed, seq.gracePeriod)) r.breakers |= BREAKER_SEQUENCER;
    }

    /// @inheritdoc IRiskManager
    function priceD18(uint256 marketId) external view returns (uint256 price) {
        Market storage m = _market(marketId);
        (price,) = ChainlinkOracle.readD18(m.priceFeed, m.priceDecimals, m.params.priceMaxAge);
    }

    /// @inheritdoc IRiskManager
    function ratios(uint256 marketId) public view returns (uint256 sigmaD18, uint256 mmrD18, uint256 imrD18) {
        Market storage m = _market(marketId);
        MarketParams memory p = m.params;
        (sigmaD18,) = _sigma(m, p);
        (mmrD18, imrD18) = MarginMath.baseRatios(_ratioParams(p, m.sqrtHorizonD18), sigmaD18);
    }

    /// @inheritdoc IRiskManager
    function maxLeverageD18(uint256 marketId) external view returns (uint256) {
        (,, uint256 imr) = ratios(marketId);
        return MarginMath.WAD * MarginMath.WAD / imr;
    }

    /// @inheritdoc IRiskManager
    function liquidationsAllowed() external view returns (bool) {
        Sequencer memory seq = _sequencer;
        return ChainlinkOracle.sequencerOk(seq.feed, seq.gracePeriod);
    }

    /// @notice The L2 sequencer-uptime feed (zero on L1) and its grace period in seconds.
    function sequencer() external view returns (address feed, uint256 gracePeriod) {
        return (address(_sequencer.feed), _sequencer.gracePeriod);
    }

    // ---------------------------------------------------------------- internals

    function _market(uint256 marketId) internal view returns (Market storage) {
        if (marketId >= _markets.length) revert RiskUnknownMarket(marketId);
        return _markets[marketId];
    }

    function _setFeeds(Market storage m, AggregatorV3Interface priceFeed, AggregatorV3Interface volFeed) internal {
        m.priceFeed = priceFeed;
        m.priceDecimals = _feedDecimals(priceFeed);
        m.volFeed = volFeed;
        m.volDecimals = _feedDecimals(volFeed);
    }

    function _feedDecimals(AggregatorV3Interface feed) internal view returns (uint8 d) {
        if (address(feed) == address(0) || address(feed).code.length == 0) revert RiskInvalidFeed(address(feed));
        d = feed.decimals();
        if (d > 36) revert RiskInvalidFeed(address(feed));
    }

    /// @dev σ from the Chainlink realized-volatility feed (a percentage: 45.2 means 45.2%), clamped to
    /// [σ_min, σ_max]. A bad or stale round falls back to σ_max: margin errs on the safe side and the
    /// market turns reduce-only rather than freezing closes.
    function _sigma(Market storage m, MarketParams memory p) internal view returns (uint256 sigmaD18, bool fresh) {
        try m.volFeed.latestRoundData() returns (uint80, int256 answer, uint256, uint256 updatedAt, uint80) {
            if (answer > 0 && updatedAt != 0 && updatedAt <= block.timestamp && block.timestamp - updatedAt <= p.volMaxAge)
            {
                sigmaD18 = ChainlinkOracle.scaleToD18(uint256(answer), m.volDecimals) / 100;
                fresh = true;
            }
        } catch {}
        if (!fresh) return (p.sigmaMaxD18, false);
        if (sigmaD18 < p.sigmaMinD18) sigmaD18 = p.sigmaMinD18;
        if (sigmaD18 > p.sigmaMaxD18) sigmaD18 = p.sigmaMaxD18;
    }

    function _ratioParams(MarketParams memory p, uint256 sqrtHorizonD18) internal pure returns (MarginMath.RatioParams memory) {
        return MarginMath.RatioParams({
            zMmD18: p.zMmD18,
            zImD18: p.zImD18,
            sqrtHorizonD18: sqrtHorizonD18,
            liqFeeD18: p.liqFeeD18,
            mmrMinD18: p.mmrMinD18,
            mmrMaxD18: p.mmrMaxD18,
            imrMinD18: p.imrMinD18
        });
    }

    /// @dev Hard bounds of every parameter; governance can never leave them.
    function bounds(Param p) public pure returns (uint256 min, uint256 max) {
        if (p == Param.ZMm) return (1e18, 10e18);
        if (p == Param.ZIm) return (1e18, 15e18);
        if (p == Param.HorizonSec) return (5 minutes, 7 days);
        if (p == Param.LiqFee) return (0, 0.05e18);
        if (p == Param.MmrMin) return (0.001e18, 0.5e18);
        if (p == Param.MmrMax) return (0.001e18, 0.9e18);
        if (p == Param.ImrMin) return (0.001e18, 1e18);
        if (p == Param.SizeAddOn) return (0, 1e18);
        if (p == Param.SigmaMin) return (0.01e18, 5e18);
        if (p == Param.SigmaMax) return (0.01e18, 20e18);
        if (p == Param.SkewScale) return (1e18, 1e30);
        if (p == Param.TakerFee) return (0, 0.01e18);
        if (p == Param.MakerFee) return (0, 0.01e18);
        if (p == Param.MaxFundingRate) return (0, 0.1e18);
        if (p == Param.OiCapRatio) return (0, 10e18);
        if (p == Param.PriceMaxAge) return (30, 2 days);
        if (p == Param.LiquidationPriceMaxAge) return (30, 2 days);
        return (60, 7 days); // VolMaxAge
    }

    function _checkBounds(Param p, uint256 v) internal pure {
        (uint256 min, uint256 max) = bounds(p);
        if (v < min || v > max) revert RiskParamOutOfBounds(p, v, min, max);
    }

    function _checkCoherent(MarketParams memory p) internal pure {
        if (p.zImD18 <= p.zMmD18) revert RiskParamsIncoherent(Param.ZIm);
        if (p.mmrMaxD18 < p.mmrMinD18) revert RiskParamsIncoherent(Param.MmrMax);
        if (p.imrMinD18 < p.mmrMinD18) revert RiskParamsIncoherent(Param.ImrMin);
        if (p.sigmaMaxD18 < p.sigmaMinD18) revert RiskParamsIncoherent(Param.SigmaMax);
        if (p.makerFeeD18 > p.takerFeeD18) revert RiskParamsIncoherent(Param.MakerFee);
        if (p.liquidationPriceMaxAge > p.priceMaxAge) revert RiskParamsIncoherent(Param.LiquidationPriceMaxAge);
    }

    function _get(MarketParams memory p, Param k) internal pure returns (uint256) {
        if (k == Param.ZMm) return p.zMmD18;
        if (k == Param.ZIm) return p.zImD18;
        if (k == Param.HorizonSec) return p.horizonSec;
        if (k == Param.LiqFee) return p.liqFeeD18;
        if (k == Param.MmrMin) return p.mmrMinD18;
        if (k == Param.MmrMax) return p.mmrMaxD18;
        if (k == Param.ImrMin) return p.imrMinD18;
        if (k == Param.SizeAddOn) return p.sizeAddOnD18;
        if (k == Param.SigmaMin) return p.sigmaMinD18;
        if (k == Param.SigmaMax) return p.sigmaMaxD18;
        if (k == Param.SkewScale) return p.skewScaleD18;
        if (k == Param.TakerFee) return p.takerFeeD18;
        if (k == Param.MakerFee) return p.makerFeeD18;
        if (k == Param.MaxFundingRate) return p.maxFundingRateD18;
        if (k == Param.OiCapRatio) return p.oiCapRatioD18;
        if (k == Param.PriceMaxAge) return p.priceMaxAge;
        if (k == Param.LiquidationPriceMaxAge) return p.liquidationPriceMaxAge;
        return p.volMaxAge;
    }

    /// @dev Values were bounds-checked first, and every bound fits the field, so the casts cannot truncate.
    function _set(MarketParams storage p, Param k, uint256 v) internal {
        if (k == Param.ZMm) p.zMmD18 = uint64(v);
        else if (k == Param.ZIm) p.zImD18 = uint64(v);
        else if (k == Param.HorizonSec) p.horizonSec = uint32(v);
        else if (k == Param.LiqFee) p.liqFeeD18 = uint64(v);
        else if (k == Param.MmrMin) p.mmrMinD18 = uint64(v);
        else if (k == Param.MmrMax) p.mmrMaxD18 = uint64(v);
        else if (k == Param.ImrMin) p.imrMinD18 = uint64(v);
        else if (k == Param.SizeAddOn) p.sizeAddOnD18 = uint64(v);
        else if (k == Param.SigmaMin) p.sigmaMinD18 = uint64(v);
        else if (k == Param.SigmaMax) p.sigmaMaxD18 = uint64(v);
        else if (k == Param.SkewScale) p.skewScaleD18 = uint128(v);
        else if (k == Param.TakerFee) p.takerFeeD18 = uint64(v);
        else if (k == Param.MakerFee) p.makerFeeD18 = uint64(v);
        else if (k == Param.MaxFundingRate) p.maxFundingRateD18 = uint64(v);
        else if (k == Param.OiCapRatio) p.oiCapRatioD18 = uint64(v);
        else if (k == Param.PriceMaxAge) p.priceMaxAge = uint32(v);
        else if (k == Param.LiquidationPriceMaxAge) p.liquidationPriceMaxAge = uint32(v);
        else p.volMaxAge = uint32(v);
    }
}
