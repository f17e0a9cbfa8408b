// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {ChainlinkOracle} from "../libraries/ChainlinkOracle.sol";
import {MarginMath} from "../libraries/MarginMath.sol";
import {FixedPointMath} from "../libraries/FixedPointMath.sol";
import {VolatilityEstimator} from "../libraries/VolatilityEstimator.sol";
import {Roles} from "../libraries/Roles.sol";
import {Breakers} from "../libraries/Breakers.sol";

/// @title RiskManager
/// @notice Holds Sigma's markets, their Chainlink feeds and every per-market risk parameter, and runs the
/// volatility engine. One config path: every parameter goes through `setMarketParam`, is checked against hard
/// bounds and emits `MarketParamSet`. σ and the ratios it implies are stored by `pokeVolatility`, so a trade
/// reads four packed slots and the price feed.
contract RiskManager is IRiskManager, AccessControl {
    using VolatilityEstimator for VolatilityEstimator.Packed;

    uint256 public constant BREAKER_OPENING_PAUSED = Breakers.OPENING_PAUSED;
    uint256 public constant BREAKER_SEQUENCER = Breakers.SEQUENCER;
    uint256 public constant BREAKER_VOL_STALE = Breakers.VOL_STALE;
    uint256 public constant BREAKER_SIGMA = Breakers.SIGMA;
    uint256 public constant BREAKER_PRICE_JUMP = Breakers.PRICE_JUMP;
    uint256 public constant BREAKER_PRICE_STALE = Breakers.PRICE_STALE;

    uint8 public constant SOURCE_FEED = 0;
    uint8 public constant SOURCE_ESTIMATOR = 1;
    uint8 public constant SOURCE_MAX = 2;

    uint256 public constant MAX_MARKETS = 32;
    uint256 public constant MAX_GRACE_PERIOD = 1 days;
    /// @notice A poke folds at most this many price rounds; the keeper pokes again for the rest.
    uint256 public constant MAX_ROUNDS_PER_POKE = 32;
    /// @notice Beyond this backlog a poke folds only the latest round (one return over the whole gap).
    uint256 public constant MAX_BACKLOG = 1024;

    /// @dev Governance view of a market.
    struct Market {
        bytes32 symbol;
        AggregatorV3Interface volFeed;
        uint8 volDecimals;
        uint80 lastVolRoundId;
        MarketParams params;
    }

    /// @dev What every operation reads, derived from `Market.params` and the last poke: four slots.
    struct Hot {
        AggregatorV3Interface priceFeed;
        uint8 priceDecimals;
        bool openingPaused;
        uint24 priceMaxAge;
        uint24 liqPriceMaxAge;
        uint24 volMaxAge;
        // slot 2: σ state
        uint64 sigmaD18;
        uint64 mmrD18;
        uint64 imrD18;
        uint40 sigmaUpdatedAt;
        uint8 flags; // BREAKER_SIGMA | BREAKER_PRICE_JUMP, set by pokes
        uint16 priceJumpBps; // PriceJumpBreaker at 1 bp resolution, next to σ for the per-trade check
        // slot 3
        uint128 skewScaleD18;
        uint64 takerFeeD18;
        uint64 makerFeeD18;
        // slot 4
        uint64 maxFundingRateD18;
        uint64 sizeAddOnD18;
        uint64 liqFeeD18;
        uint64 oiCapRatioD18;
    }

    AggregatorV3Interface public immutable sequencerFeed;
    uint256 public immutable sequencerGracePeriod;

    Market[] internal _markets;
    mapping(uint256 => Hot) internal _hot;
    mapping(uint256 => VolatilityEstimator.Packed) internal _estimators;

    /// @dev Liquidation rate limit, derived from the parameters: one slot for the liquidation path.
    struct LiqLimit {
        uint32 windowSec;
        uint224 maxSizeD18;
    }

    mapping(uint256 => LiqLimit) internal _liqLimits;

    /// @dev The parameters a poke reads, derived from `Market.params` by `_syncHot`: one slot instead of three.
    struct PokeConfig {
        uint64 sigmaMinD18;
        uint64 sigmaMaxD18;
        uint64 sigmaBreakerD18;
        uint32 sigmaDecayHalfLife;
        uint8 sigmaSource;
    }

    mapping(uint256 => PokeConfig) internal _pokeConfigs;

    /// @notice `_marketAt`'s stride no longer matches the Market struct (a development-time guard).
    error RiskMarketLayout();

    /// @param admin holder of DEFAULT_ADMIN_ROLE (a timelock in production).
    /// @param sequencerFeed_ Chainlink L2 sequencer-uptime feed, or zero on L1.
    /// @param sequencerGracePeriod_ seconds after the sequencer comes back before opening and liquidations resume.
    constructor(address admin, AggregatorV3Interface sequencerFeed_, uint256 sequencerGracePeriod_) {
        if (sequencerGracePeriod_ > MAX_GRACE_PERIOD) revert RiskInvalidGracePeriod(sequencerGracePeriod_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        sequencerFeed = sequencerFeed_;
        sequencerGracePeriod = sequencerGracePeriod_;
    }

    // ================================================================ governance

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
        // `_marketAt` (the poke's unchecked access) assumes 8 slots per Market: checked at every listing, so a
        // change of the Market layout fails the first deployment with two markets instead of misreading storage.
        Market storage at = _marketAt(marketId);
        bool sameSlot;
        assembly ("memory-safe") {
            sameSlot := eq(at.slot, m.slot)
        }
        if (!sameSlot) revert RiskMarketLayout();
        m.symbol = symbol;
        m.params = params;
        for (uint256 i; i <= uint256(type(Param).max); ++i) {
            Param p = Param(i);
            uint256 v = _get(params, p);
            _checkBounds(p, v);
            emit MarketParamSet(marketId, p, 0, v);
        }
        _checkCoherent(params);
        _setFeeds(marketId, priceFeed, volFeed);
        _syncHot(marketId);
        emit MarketAdded(marketId, symbol, address(priceFeed), address(volFeed));
        _poke(marketId);
    }

    /// @inheritdoc IRiskManager
    function setMarketParam(uint256 marketId, Param param, uint256 value) external onlyRole(Roles.PARAM_SETTER) {
        Market storage m = _market(marketId);
        _checkBounds(param, value);
        uint256 old = _get(m.params, param);
        _set(m.params, param, value);
        _checkCoherent(m.params);
        _syncHot(marketId);
        emit MarketParamSet(marketId, param, old, value);
        // Ratio parameters take effect at once: σ is kept, the ratios are recomputed.
        Hot storage h = _hot[marketId];
        _storeSigma(marketId, h.sigmaD18, h.sigmaUpdatedAt, h.flags, 0, _estimators[marketId].lastRoundId, true);
    }

    /// @inheritdoc IRiskManager
    function setMarketFeeds(uint256 marketId, AggregatorV3Interface priceFeed, AggregatorV3Interface volFeed)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _market(marketId);
        _setFeeds(marketId, priceFeed, volFeed);
        emit MarketFeedsSet(marketId, address(priceFeed), address(volFeed));
    }

    /// @inheritdoc IRiskManager
    function setOpeningPaused(uint256 marketId, bool paused) external onlyRole(Roles.GUARDIAN) {
        _market(marketId);
        _hot[marketId].openingPaused = paused;
        emit OpeningPausedSet(marketId, paused, msg.sender);
    }

    // ================================================================ volatility engine

    /// @inheritdoc IRiskManager
    function pokeVolatility(uint256 marketId) external returns (uint256 roundsFolded) {
        // A listed market has a price feed: its Hot slot, which the poke reads anyway, proves the id (no read of
        // the markets' length).
        if (address(_hot[marketId].priceFeed) == address(0)) revert RiskUnknownMarket(marketId);
        return _poke(marketId);
    }

    /// @inheritdoc IRiskManager
    function pendingRounds(uint256 marketId) public view returns (uint256) {
        _market(marketId);
        (uint80 latest,,,,) = _hot[marketId].priceFeed.latestRoundData();
        return _distance(_estimators[marketId].lastRoundId, latest);
    }

    /// @inheritdoc IRiskManager
    function pokeNeeded(uint256 marketId) external view returns (bool) {
        Market storage m = _market(marketId);
        Hot storage h = _hot[marketId];
        if (pendingRounds(marketId) > 0) return true;
        if (block.timestamp > uint256(h.sigmaUpdatedAt) + m.params.volMaxAge / 2) return true;
        PokeConfig storage c = _pokeConfigs[marketId];
        VolatilityEstimator.Packed storage e = _estimators[marketId];
        uint256 est;
        if (c.sigmaSource != SOURCE_FEED && e.initialized()) est = Math.min(e.sigmaD18(block.timestamp), type(uint64).max);
        (uint256 target,) = _targetSigma(m, c, h.volMaxAge, est);
        if (target != 0 && target != h.sigmaD18) return true;
        try m.volFeed.latestRoundData() returns (uint80 rid, int256, uint256, uint256, uint80) {
            return rid != m.lastVolRoundId;
        } catch {
            return false;
        }
    }

    function _poke(uint256 marketId) internal returns (uint256 folded) {
        Market storage m = _marketAt(marketId);
        Hot storage h = _hot[marketId];
        VolatilityEstimator.Packed storage e = _estimators[marketId];
        bool jumped;
        (folded, jumped) = _walkRounds(h, e, marketId);

        uint256 flags = h.flags;
        if (jumped) flags |= BREAKER_PRICE_JUMP;
        else if (folded > 0) flags &= ~BREAKER_PRICE_JUMP; // a later clean round clears the breaker

        PokeConfig storage c = _pokeConfigs[marketId];
        // The estimator's σ (cached per clock hour), when the source uses it.
        uint256 est;
        if (c.sigmaSource != SOURCE_FEED && e.initialized()) est = e.cappedSigmaD18(block.timestamp);
        (uint256 target, uint80 volRound) = _targetSigma(m, c, h.volMaxAge, est);
        uint256 stored = h.sigmaD18;
        uint256 sigma = stored;
        uint256 updatedAt = h.sigmaUpdatedAt;
        if (target != 0) {
            if (volRound != 0) m.lastVolRoundId = volRound;
            if (target >= sigma || sigma == 0) {
                sigma = target; // rises apply at once
            } else {
                // Falls decay toward the target with a half-life (hysteresis against whipsaw). A stored time
                // ahead of the block (a node simulating on the next block's state) counts as no time elapsed.
                uint256 w = FixedPointMath.exp2NegD18(
                    (block.timestamp > updatedAt ? block.timestamp - updatedAt : 0) * FixedPointMath.WAD
                        / c.sigmaDecayHalfLife
                );
                sigma = target + Math.mulDiv(sigma - target, w, FixedPointMath.WAD);
            }
            updatedAt = block.timestamp;
        }
        if (sigma == 0) {
            // Nothing usable yet (no feed round, no estimator history): start at σ_max, the safe side.
            sigma = c.sigmaMaxD18;
            updatedAt = block.timestamp;
        }
        // Governance may have moved the bounds since σ was stored: the stored σ never leaves them.
        sigma = Math.min(Math.max(sigma, c.sigmaMinD18), c.sigmaMaxD18);
        if (sigma > c.sigmaBreakerD18) flags |= BREAKER_SIGMA;
        else flags &= ~BREAKER_SIGMA;
        // The ratios depend on σ and the parameters only (a parameter change recomputes them): an unchanged σ
        // keeps them, and the parameters they need are not read.
        _storeSigma(marketId, sigma, updatedAt, flags, folded, e.lastRoundId, sigma != stored);
    }

    /// @dev Walks the price feed's rounds after the last one folded, in order, across phase changes, at most
    /// MAX_ROUNDS_PER_POKE. Rounds that are incomplete, non-positive or not newer than the last folded one are
    /// skipped (never folded). Returns how many were folded and whether one moved more than the jump bound.
    function _walkRounds(Hot storage h, VolatilityEstimator.Packed storage e, uint256 marketId)
        internal
        returns (uint256 folded, bool jumped)
    {
        AggregatorV3Interface feed = h.priceFeed;
        // The latest round's data comes with its id: it is folded from here, without a getRoundData call.
        (uint80 latest, int256 latestAnswer,, uint256 latestUpdatedAt,) = feed.latestRoundData();
        uint80 cursor = e.lastRoundId;
        if (cursor == latest) return (0, false);
        if (cursor == 0 || _distance(cursor, latest) > MAX_BACKLOG) {
            // No history yet, or too far behind to walk: fold the latest round as one return over the gap.
            (folded, jumped) = _foldAnswer(marketId, latest, latestAnswer, latestUpdatedAt, cursor == 0);
            e.lastRoundId = latest;
            return (folded, jumped);
        }
        for (uint256 i; i < MAX_ROUNDS_PER_POKE && cursor != latest; ++i) {
            cursor = _nextRound(feed, cursor, latest);
            (uint256 ok, bool j) = cursor == latest
                ? _foldAnswer(marketId, latest, latestAnswer, latestUpdatedAt, false)
                : _foldRound(marketId, cursor);
            folded += ok;
            jumped = jumped || j;
        }
        e.lastRoundId = cursor;
    }

    /// @dev Reads one round and folds it in; a round the feed cannot return is skipped (returns 0).
    function _foldRound(uint256 marketId, uint80 roundId) internal returns (uint256, bool) {
        try _hot[marketId].priceFeed.getRoundData(roundId) returns (
            uint80, int256 answer, uint256, uint256 updatedAt, uint80
        ) {
            return _foldAnswer(marketId, roundId, answer, updatedAt, false);
        } catch {
            return (0, false);
        }
    }

    /// @dev Folds one round's answer in (or initializes the estimator with it). Incomplete, non-positive, future
    /// or not-newer rounds are rejected: returns 0.
    function _foldAnswer(uint256 marketId, uint80 roundId, int256 answer, uint256 updatedAt, bool initOnly)
        internal
        returns (uint256, bool)
    {
        Hot storage h = _hot[marketId];
        VolatilityEstimator.Packed storage e = _estimators[marketId];
        if (answer <= 0 || updatedAt <= e.lastTime || updatedAt > block.timestamp) return (0, false);
        uint256 p = ChainlinkOracle.scaleToD18(uint256(answer), h.priceDecimals);
        if (initOnly) {
            e.init(p, updatedAt);
            return (0, false);
        }
        uint256 moveD18 = e.update(p, updatedAt);
        if (moveD18 > uint256(h.priceJumpBps) * 1e14) {
            emit PriceJumpDetected(marketId, roundId, moveD18);
            return (1, true);
        }
        return (1, false);
    }

    /// @dev The round after `cursor`: the next id in the same phase, or the first round of the next phase
    /// when `cursor` was the last of its phase (Chainlink roundId = phaseId << 64 | aggregatorRoundId).
    function _nextRound(AggregatorV3Interface feed, uint80 cursor, uint80 latest) internal view returns (uint80) {
        uint16 phase = uint16(cursor >> 64);
        uint16 latestPhase = uint16(latest >> 64);
        if (phase == latestPhase) return cursor + 1;
        uint80 next = cursor + 1;
        try feed.getRoundData(next) returns (uint80, int256, uint256, uint256 updatedAt, uint80) {
            if (updatedAt != 0) return next;
        } catch {}
        return (uint80(phase + 1) << 64) | 1;
    }

    function _distance(uint80 from, uint80 to) internal pure returns (uint256) {
        if (from >= to) return 0;
        if (from >> 64 == to >> 64) return to - from;
        // Across phases the exact count is unknown without walking; the aggregator round of `to` bounds it.
        return uint256(uint64(to)) + 1;
    }

    /// @dev σ the configured sources give now (0 when none is usable), before hysteresis, clamped. `est` is the
    /// estimator's σ capped at 2^64 − 1 (0 when the source ignores it or it has no round yet); the cap changes
    /// nothing, since the result is clamped to SigmaMax ≤ 10e18.
    function _targetSigma(Market storage m, PokeConfig storage c, uint256 volMaxAge, uint256 est)
        internal
        view
        returns (uint256 target, uint80 volRound)
    {
        uint8 source = c.sigmaSource;
        if (source != SOURCE_ESTIMATOR) {
            (target, volRound) = _feedSigma(m, volMaxAge);
        }
        if (source != SOURCE_FEED) {
            target = Math.max(target, est);
        }
        if (target == 0) return (0, volRound);
        target = Math.min(Math.max(target, c.sigmaMinD18), c.sigmaMaxD18);
    }

    /// @dev σ from the Chainlink realized-volatility feed (a percentage: 45.2 means 45.2%); 0 if the round is
    /// invalid or older than VolMaxAge.
    function _feedSigma(Market storage m, uint256 volMaxAge) internal view returns (uint256 sigmaD18, uint80 roundId) {
        try m.volFeed.latestRoundData() returns (uint80 rid, int256 answer, uint256, uint256 updatedAt, uint80) {
            if (answer > 0 && updatedAt != 0 && updatedAt <= block.timestamp && block.timestamp - updatedAt <= volMaxAge)
            {
                return (ChainlinkOracle.scaleToD18(uint256(answer), m.volDecimals) / 100, rid);
            }
        } catch {}
        return (0, 0);
    }

    function _storeSigma(
        uint256 marketId,
        uint256 sigma,
        uint256 updatedAt,
        uint256 flags,
        uint256 folded,
        uint80 roundId,
        bool recompute
    ) internal {
        Hot storage h = _hot[marketId];
        uint256 mmr;
        uint256 imr;
        if (recompute) (mmr, imr) = MarginMath.baseRatios(_ratioParams(_marketAt(marketId).params), sigma);
        else (mmr, imr) = (h.mmrD18, h.imrD18);
        // Hot's σ slot in one write: σ | mmr << 64 | imr << 128 | sigmaUpdatedAt << 192 | flags << 232, keeping
        // priceJumpBps (bits 240–255). σ ≤ SigmaMax ≤ 10e18 and the ratios ≤ 1e18 fit 64 bits, timestamps 40,
        // the breaker flags 8, so no field spills into the next.
        assembly ("memory-safe") {
            let slot := add(h.slot, 1)
            let kept := and(sload(slot), shl(240, 0xffff))
            sstore(slot, or(kept, or(or(sigma, shl(64, mmr)), or(shl(128, imr), or(shl(192, updatedAt), shl(232, flags))))))
        }
        emit VolatilityUpdated(marketId, sigma, mmr, imr, folded, roundId, flags);
    }

    // ================================================================ views

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
        return (address(_hot[marketId].priceFeed), address(m.volFeed));
    }

    /// @inheritdoc IRiskManager
    function marketRisk(uint256 marketId, bool forLiquidation) external view returns (MarketRisk memory r) {
        Hot memory h = _hot[marketId];
        if (address(h.priceFeed) == address(0)) revert RiskUnknownMarket(marketId);
        (, int256 answer,, uint256 updatedAt,) = h.priceFeed.latestRoundData();
        r.priceD18 = ChainlinkOracle.validateAndScale(
            address(h.priceFeed), answer, updatedAt, h.priceDecimals, forLiquidation ? h.liqPriceMaxAge : h.priceMaxAge
        );
        r.priceUpdatedAt = updatedAt;
        r.sigmaD18 = h.sigmaD18;
        r.mmrD18 = h.mmrD18;
        r.imrD18 = h.imrD18;
        r.liqFeeD18 = h.liqFeeD18;
        r.sizeAddOnD18 = h.sizeAddOnD18;
        r.skewScaleD18 = h.skewScaleD18;
        r.takerFeeD18 = h.takerFeeD18;
        r.makerFeeD18 = h.makerFeeD18;
        r.maxFundingRateD18 = h.maxFundingRateD18;
        r.oiCapRatioD18 = h.oiCapRatioD18;
        uint256 b = h.flags;
        // A round not folded yet that jumped from the last folded price trips the breaker at once, so nobody
        // opens at an outlier between its publication and the next poke.
        uint256 folded = _estimators[marketId].lastPriceD18;
        if (folded != 0) {
            uint256 move = Math.mulDiv(r.priceD18 > folded ? r.priceD18 - folded : folded - r.priceD18, FixedPointMath.WAD, folded);
            if (move > uint256(h.priceJumpBps) * 1e14) b |= BREAKER_PRICE_JUMP;
        }
        if (h.openingPaused) b |= BREAKER_OPENING_PAUSED;
        // Sums, not differences: a stored time ahead of the block (a node serving block N's state with block
        // N−1's timestamp) must not underflow in a liquidation's simulation.
        if (block.timestamp > updatedAt + h.liqPriceMaxAge) b |= BREAKER_PRICE_STALE;
        if (block.timestamp > uint256(h.sigmaUpdatedAt) + h.volMaxAge) b |= BREAKER_VOL_STALE;
        if (!ChainlinkOracle.sequencerOk(sequencerFeed, sequencerGracePeriod)) b |= BREAKER_SEQUENCER;
        r.breakers = b;
    }

    /// @inheritdoc IRiskManager
    function liquidationLimit(uint256 marketId) external view returns (uint256 windowSec, uint256 maxSizeD18) {
        LiqLimit memory lim = _liqLimits[marketId];
        return (lim.windowSec, lim.maxSizeD18);
    }

    /// @inheritdoc IRiskManager
    function priceD18(uint256 marketId) external view returns (uint256 price) {
        _market(marketId);
        Hot storage h = _hot[marketId];
        (price,) = ChainlinkOracle.readD18(h.priceFeed, h.priceDecimals, h.priceMaxAge);
    }

    /// @inheritdoc IRiskManager
    function ratios(uint256 marketId) public view returns (uint256 sigmaD18, uint256 mmrD18, uint256 imrD18) {
        _market(marketId);
        Hot storage h = _hot[marketId];
        return (h.sigmaD18, h.mmrD18, h.imrD18);
    }

    /// @inheritdoc IRiskManager
    function sigmaSources(uint256 marketId) external view returns (uint256 feedSigmaD18, uint256 estimatorSigmaD18) {
        Market storage m = _market(marketId);
        (feedSigmaD18,) = _feedSigma(m, m.params.volMaxAge);
        VolatilityEstimator.Packed storage e = _estimators[marketId];
        if (e.initialized()) estimatorSigmaD18 = e.sigmaD18(block.timestamp);
    }

    /// @notice The on-chain estimator's state of a market (for integrators and differential tests).
    function estimatorState(uint256 marketId) external view returns (VolatilityEstimator.State memory) {
        _market(marketId);
        return _estimators[marketId].load();
    }

    /// @inheritdoc IRiskManager
    function maxLeverageD18(uint256 marketId) external view returns (uint256) {
        (,, uint256 imr) = ratios(marketId);
        return FixedPointMath.WAD * FixedPointMath.WAD / imr;
    }

    /// @inheritdoc IRiskManager
    function liquidationsAllowed() external view returns (bool) {
        return ChainlinkOracle.sequencerOk(sequencerFeed, sequencerGracePeriod);
    }

    // ================================================================ internals

    function _market(uint256 marketId) internal view returns (Market storage) {
        if (marketId >= _markets.length) revert RiskUnknownMarket(marketId);
        return _markets[marketId];
    }

    /// @dev `_markets[marketId]` without the length check, for an id known to be listed (the callers checked
    /// its Hot slot or its index). A Market takes 8 slots: symbol, the vol-feed slot, 6 of MarketParams.
    function _marketAt(uint256 marketId) internal pure returns (Market storage m) {
        assembly ("memory-safe") {
            mstore(0, _markets.slot)
            m.slot := add(keccak256(0, 0x20), mul(marketId, 8))
        }
    }

    function _setFeeds(uint256 marketId, AggregatorV3Interface priceFeed, AggregatorV3Interface volFeed) internal {
        Market storage m = _markets[marketId];
        Hot storage h = _hot[marketId];
        h.priceDecimals = _feedDecimals(priceFeed);
        h.priceFeed = priceFeed;
        m.volDecimals = _feedDecimals(volFeed);
        m.volFeed = volFeed;
        m.lastVolRoundId = 0;
        // A new price feed has its own round ids: restart the walk from its latest round.
        _estimators[marketId].lastRoundId = 0;
    }

    function _syncHot(uint256 marketId) internal {
        MarketParams storage p = _markets[marketId].params;
        Hot storage h = _hot[marketId];
        // Bounds keep every value within its field (ages ≤ 7 days < 2^24 s).
        h.priceMaxAge = uint24(p.priceMaxAge);
        h.liqPriceMaxAge = uint24(p.liquidationPriceMaxAge);
        h.volMaxAge = uint24(p.volMaxAge);
        h.skewScaleD18 = p.skewScaleD18;
        h.takerFeeD18 = p.takerFeeD18;
        h.makerFeeD18 = p.makerFeeD18;
        h.maxFundingRateD18 = p.maxFundingRateD18;
        h.sizeAddOnD18 = p.sizeAddOnD18;
        h.liqFeeD18 = p.liqFeeD18;
        h.oiCapRatioD18 = p.oiCapRatioD18;
        h.priceJumpBps = uint16(p.priceJumpBreakerD18 / 1e14); // bounded to [100, 10000] bps
        _pokeConfigs[marketId] = PokeConfig(
            p.sigmaMinD18, p.sigmaMaxD18, p.sigmaBreakerD18, p.sigmaDecayHalfLife, p.sigmaSource
        );
        _liqLimits[marketId] =
            LiqLimit(p.liqWindowSec, uint224(Math.mulDiv(p.skewScaleD18, p.liqLimitD18, FixedPointMath.WAD)));
    }

    function _feedDecimals(AggregatorV3Interface feed) internal view returns (uint8 d) {
        if (address(feed) == address(0) || address(feed).code.length == 0) revert RiskInvalidFeed(address(feed));
        d = feed.decimals();
        if (d > 36) revert RiskInvalidFeed(address(feed));
    }

    /// @dev Reads only the fields the ratios need (two slots of the parameters).
    function _ratioParams(MarketParams storage p) internal view returns (MarginMath.RatioParams memory) {
        return MarginMath.RatioParams({
            zMmD18: p.zMmD18,
            zImD18: p.zImD18,
            sqrtHorizonD18: MarginMath.sqrtHorizonD18(p.horizonSec),
            liqFeeD18: p.liqFeeD18,
            mmrMinD18: p.mmrMinD18,
            mmrMaxD18: p.mmrMaxD18,
            imrMinD18: p.imrMinD18
        });
    }

    /// @notice Hard bounds of every parameter; governance can never leave them.
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
        if (p == Param.SigmaMax) return (0.01e18, 10e18);
        if (p == Param.SkewScale) return (1e18, 1e30);
        if (p == Param.TakerFee) return (0, 0.01e18);
        if (p == Param.MakerFee) return (0, 0.01e18);
        if (p == Param.MaxFundingRate) return (0, 0.1e18);
        if (p == Param.OiCapRatio) return (0, 10e18);
        if (p == Param.PriceMaxAge) return (30, 2 days);
        if (p == Param.LiquidationPriceMaxAge) return (30, 2 days);
        if (p == Param.VolMaxAge) return (60, 7 days);
        if (p == Param.SigmaBreaker) return (0.05e18, 10e18);
        if (p == Param.PriceJumpBreaker) return (0.01e18, 1e18);
        if (p == Param.SigmaDecayHalfLife) return (60, 30 days);
        if (p == Param.SigmaSource) return (0, 2);
        if (p == Param.LiqWindowSec) return (1, 1 days);
        return (0.0001e18, 10e18); // LiqLimit
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
        if (k == Param.VolMaxAge) return p.volMaxAge;
        if (k == Param.SigmaBreaker) return p.sigmaBreakerD18;
        if (k == Param.PriceJumpBreaker) return p.priceJumpBreakerD18;
        if (k == Param.SigmaDecayHalfLife) return p.sigmaDecayHalfLife;
        if (k == Param.SigmaSource) return p.sigmaSource;
        if (k == Param.LiqWindowSec) return p.liqWindowSec;
        return p.liqLimitD18;
    }

    /// @dev Values were bounds-checked first, and every bound fits its field, so the casts cannot truncate.
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
        else if (k == Param.VolMaxAge) p.volMaxAge = uint32(v);
        else if (k == Param.SigmaBreaker) p.sigmaBreakerD18 = uint64(v);
        else if (k == Param.PriceJumpBreaker) p.priceJumpBreakerD18 = uint64(v);
        else if (k == Param.SigmaDecayHalfLife) p.sigmaDecayHalfLife = uint32(v);
        else if (k == Param.SigmaSource) p.sigmaSource = uint8(v);
        else if (k == Param.LiqWindowSec) p.liqWindowSec = uint32(v);
        else p.liqLimitD18 = uint64(v);
    }
}
