// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {MarginMath} from "../libraries/MarginMath.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";

/// @title ClearingHouseParams
/// @notice The ClearingHouse's global parameters: storage layout, hard bounds and the one setter that checks
/// them and emits `ParamSet`. A linked library (delegatecalled, so it writes the ClearingHouse's storage and
/// its events come from the ClearingHouse) to keep the ClearingHouse under the contract size limit.
/// It also holds the order path's price-round walk (`fillRound`), for the same reason.
library ClearingHouseParams {
    uint256 internal constant WAD = 1e18;
    /// @notice At most this many rounds are walked back from the latest one to find an order's fill round.
    uint256 public constant MAX_ROUND_WALK = 16;

    bytes32 internal constant MIN_DELAY = "minDelay";
    bytes32 internal constant MAX_AGE = "maxAge";
    bytes32 internal constant MIN_EXECUTION_FEE = "minExecutionFee";
    bytes32 internal constant LIQ_REWARD_SHARE = "liqRewardShare";
    bytes32 internal constant LIQ_REWARD_CAP = "liqRewardCapD18";
    bytes32 internal constant MARGIN_CALL_GRACE = "marginCallGrace";
    bytes32 internal constant MARGIN_CALL_EXPIRY = "marginCallExpiry";
    bytes32 internal constant HARD_FLOOR = "hardFloor";
    bytes32 internal constant MIN_POSITION_NOTIONAL = "minPositionNotionalD18";

    /// @notice Three slots: orders read the first, margin calls and liquidations the others.
    struct Params {
        uint32 minDelay;
        uint32 maxAge;
        uint64 minExecutionFee;
        uint64 liqRewardShareD18;
        uint32 marginCallGrace;
        uint32 marginCallExpiry; // a flag stays usable this long after its deadline, then must be renewed
        uint64 hardFloorD18; // below hardFloor × MM an account is liquidatable at once
        uint128 minPositionNotionalD18; // a partial liquidation never leaves a smaller position
        uint128 liqRewardCapTokens; // derived from liqRewardCapD18 at set time
        uint128 liqRewardCapD18;
    }

    /// @notice Same event as IClearingHouse.ParamSet (emitted in the ClearingHouse's context).
    event ParamSet(bytes32 indexed name, uint256 oldValue, uint256 newValue);

    /// @notice Same error as IClearingHouse.ClearingHouseParamOutOfBounds.
    error ClearingHouseParamOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    /// @notice Same errors as IClearingHouse's (conditional-order validation runs here).
    error ClearingHouseInvalidExpiry(uint256 expiresAt);
    error ClearingHouseInvalidOrder();
    error ClearingHouseTriggerAlreadyMet(uint256 priceD18, uint256 triggerPriceD18);

    /// @notice The longest a conditional order may live (ClearingHouse.MAX_CONDITIONAL_LIFETIME).
    uint256 internal constant MAX_CONDITIONAL_LIFETIME = 90 days;

    /// @notice Sets every parameter to its default (construction).
    function setDefaults(Params storage p, uint256 scale) public {
        set(p, MIN_DELAY, 5, scale);
        // An order waits for the first Chainlink round after its commit: on a feed whose heartbeat is longer
        // than this and whose price barely moves, raise maxAge (governance) or orders expire and are refunded.
        set(p, MAX_AGE, 10 minutes, scale);
        set(p, MIN_EXECUTION_FEE, 0.0001 ether, scale);
        set(p, LIQ_REWARD_SHARE, 0.2e18, scale);
        set(p, LIQ_REWARD_CAP, 500e18, scale);
        set(p, MARGIN_CALL_GRACE, 15 minutes, scale);
        // A flag stays usable for 15 min after its deadline (keepers act within blocks); after that a new
        // episode needs a new flag and a new grace window, even if nobody cleared the old one.
        set(p, MARGIN_CALL_EXPIRY, 15 minutes, scale);
        set(p, HARD_FLOOR, 0.75e18, scale);
        set(p, MIN_POSITION_NOTIONAL, 10e18, scale);
    }

    /// @notice Sets one parameter within its bounds and emits ParamSet. Runs in the ClearingHouse's context.
    function set(Params storage p, bytes32 name, uint256 value, uint256 scale) public {
        uint256 old;
        if (name == MIN_DELAY) {
            _bound(name, value, 1, 1 hours);
            if (p.maxAge != 0 && value >= p.maxAge) revert ClearingHouseParamOutOfBounds(name, value, 1, p.maxAge - 1);
            old = p.minDelay;
            p.minDelay = uint32(value);
        } else if (name == MAX_AGE) {
            _bound(name, value, uint256(p.minDelay) + 1, 1 days);
            old = p.maxAge;
            p.maxAge = uint32(value);
        } else if (name == MIN_EXECUTION_FEE) {
            _bound(name, value, 0, 0.1 ether);
            old = p.minExecutionFee;
            p.minExecutionFee = uint64(value);
        } else if (name == LIQ_REWARD_SHARE) {
            _bound(name, value, 0, WAD);
            old = p.liqRewardShareD18;
            p.liqRewardShareD18 = uint64(value);
        } else if (name == LIQ_REWARD_CAP) {
            _bound(name, value, 0, 1e24);
            old = p.liqRewardCapD18;
            p.liqRewardCapD18 = uint128(value);
            p.liqRewardCapTokens = uint128(value / scale);
        } else if (name == MARGIN_CALL_GRACE) {
            _bound(name, value, 1 minutes, 1 days);
            old = p.marginCallGrace;
            p.marginCallGrace = uint32(value);
        } else if (name == MARGIN_CALL_EXPIRY) {
            _bound(name, value, 1 minutes, 7 days);
            old = p.marginCallExpiry;
            p.marginCallExpiry = uint32(value);
        } else if (name == HARD_FLOOR) {
            _bound(name, value, 0.5e18, WAD);
            old = p.hardFloorD18;
            p.hardFloorD18 = uint64(value);
        } else if (name == MIN_POSITION_NOTIONAL) {
            _bound(name, value, 0, 1e22);
            old = p.minPositionNotionalD18;
            p.minPositionNotionalD18 = uint128(value);
        } else {
            revert ClearingHouseParamOutOfBounds(name, value, 0, 0);
        }
        emit ParamSet(name, old, value);
    }

    function _bound(bytes32 name, uint256 value, uint256 min, uint256 max) internal pure {
        if (value < min || value > max) revert ClearingHouseParamOutOfBounds(name, value, min, max);
    }

    /// @dev MarketParams.priceJumpBreakerD18 (field 19 of the static struct `marketParams` returns), read from
    /// the raw return data: decoding the whole struct would cost the ClearingHouse ~1 KB of code for one field.
    /// Public (delegatecalled) so the rare path costs the ClearingHouse no code.
    function priceJumpBound(address riskManager, uint256 marketId) public view returns (uint256 bound) {
        (bool ok, bytes memory ret) = riskManager.staticcall(abi.encodeCall(IRiskManager.marketParams, (marketId)));
        if (!ok || ret.length < 20 * 32) return 0; // unknown: treat any move as a jump (reduce-only)
        assembly ("memory-safe") {
            bound := mload(add(ret, 640)) // 32 (length) + 19 × 32
        }
    }

    // ================================================================= pool views (here for the size limit)

    /// @notice ClearingHouse.navInputsD18: traders' aggregate unrealized PnL incl. pending funding,
    /// Σ |skew| × price (rounded up), and Σ max(side PnL, 0) over both sides, over markets with open interest.
    /// Each side's PnL is computed from its own aggregates with the per-position rounding (toward −∞), so it is
    /// at least the sum of its positions' PnL.
    function navInputs(
        mapping(uint256 => IClearingHouse.MarketState) storage markets,
        address riskManager
    ) public view returns (int256 pnlD18, uint256 netExposureD18, uint256 winnersD18) {
        IRiskManager rm = IRiskManager(riskManager);
        uint256 n = rm.marketCount();
        for (uint256 m; m < n; ++m) {
            IClearingHouse.MarketState storage ms = markets[m];
            if (ms.oiLongD18 == 0 && ms.oiShortD18 == 0) continue;
            IRiskManager.MarketRisk memory r = rm.marketRisk(m, false);
            int256 index = ms.fundingIndexD18;
            uint256 last = ms.lastFundingTime;
            if (last != 0 && last < block.timestamp) {
                index += MarginMath.fundingIndexDeltaD18(
                    ms.skewD18, r.skewScaleD18, r.maxFundingRateD18, r.priceD18, block.timestamp - last
                );
            }
            pnlD18 += MarginMath.pnlD18(ms.skewD18, ms.netCostBasisD18, r.priceD18, index);
            netExposureD18 += MarginMath.notionalUpD18(SignedMath.abs(ms.skewD18), r.priceD18);
            int256 lb = ms.longBasisD18;
            int256 longs = MarginMath.pnlD18(int256(uint256(ms.oiLongD18)), lb, r.priceD18, index);
            int256 shorts = MarginMath.pnlD18(-int256(uint256(ms.oiShortD18)), ms.netCostBasisD18 - lb, r.priceD18, index);
            if (longs > 0) winnersD18 += uint256(longs);
            if (shorts > 0) winnersD18 += uint256(shorts);
        }
    }

    /// @notice ClearingHouse.openInterestNotionalD18: Σ (long + short OI) × price, rounded up.
    function openInterestNotional(mapping(uint256 => IClearingHouse.MarketState) storage markets, address riskManager)
        public
        view
        returns (uint256 total)
    {
        IRiskManager rm = IRiskManager(riskManager);
        uint256 n = rm.marketCount();
        for (uint256 m; m < n; ++m) {
            uint256 oi = uint256(markets[m].oiLongD18) + markets[m].oiShortD18;
            if (oi == 0) continue;
            total += MarginMath.notionalUpD18(oi, rm.priceD18(m));
        }
    }

    // ================================================================= conditional orders

    /// @notice Validates a conditional order's expiry and trigger at commit or modify. A trigger must rest on
    /// the far side of the latest price (F5): an order whose trigger is already met would be a market order the
    /// owner could fire at a round it already knows. Unchecked while the latest round is unusable (stale): the
    /// first usable round is then unknown to the committer.
    function checkTrigger(Params storage p, address riskManager, uint256 marketId, bool above, uint256 trigger, uint256 expiresAt)
        public
        view
    {
        if (expiresAt <= block.timestamp + p.minDelay || expiresAt > block.timestamp + MAX_CONDITIONAL_LIFETIME) {
            revert ClearingHouseInvalidExpiry(expiresAt);
        }
        if (trigger == 0) revert ClearingHouseInvalidOrder();
        try IRiskManager(riskManager).priceD18(marketId) returns (uint256 price) {
            if (above ? price >= trigger : price <= trigger) revert ClearingHouseTriggerAlreadyMet(price, trigger);
        } catch {}
    }

    // ================================================================= order fill round

    /// @notice The price round an order fills at, found by walking back from the latest round: the first round
    /// published after `commitTime` (market orders), or the first round of the current run of rounds meeting
    /// the trigger that is after `commitTime` (conditional orders). The executor's timing therefore does not
    /// choose the price: every execution of the same order at the same rounds fills at the same round.
    /// @dev The walk stays in the latest round's phase (aggregator round ids start at 1 in each phase) and reads
    /// at most MAX_ROUND_WALK earlier rounds. Historical answers are scaled with the latest round's own scaling
    /// (`latestPriceD18 / latestAnswer`, exact for feeds with ≤ 18 decimals), so no `decimals()` read is needed.
    /// @param latestPriceD18 the validated latest price (RiskManager.marketRisk) of the same latest round.
    /// @param trigger the trigger price of a conditional order, 0 for a market order.
    /// @param above whether a conditional order triggers at price ≥ trigger (else ≤).
    /// @return priceD18 the fill round's price, D18.
    /// @return updatedAt the fill round's `updatedAt`.
    /// @return exhausted true when MAX_ROUND_WALK rounds were walked without reaching the start: the fill round
    /// is then unknown (not returned).
    /// @return jumped true when the fill round is not the latest one and moved more than the market's
    /// PriceJumpBreaker from the round before it (a risk-increasing fill must not use it).
    function fillRound(address riskManager, uint256 marketId, uint256 latestPriceD18, uint256 commitTime, uint256 trigger, bool above)
        internal
        view
        returns (uint256 priceD18, uint256 updatedAt, bool exhausted, bool jumped)
    {
        IRiskManager rm = IRiskManager(riskManager);
        (address feedAddr,) = rm.marketFeeds(marketId);
        AggregatorV3Interface feed = AggregatorV3Interface(feedAddr);
        (uint80 id, int256 latestAnswer,, uint256 at,) = feed.latestRoundData();
        priceD18 = latestPriceD18;
        updatedAt = at;
        for (uint256 i;; ++i) {
            if (uint64(id) <= 1) return (priceD18, updatedAt, false, false); // first round of its phase
            if (i == MAX_ROUND_WALK) return (0, 0, true, false);
            try feed.getRoundData(id - 1) returns (uint80, int256 a, uint256, uint256 u, uint80) {
                if (a <= 0 || u == 0 || u > updatedAt) return (priceD18, updatedAt, false, false); // unusable
                uint256 p = Math.mulDiv(uint256(a), latestPriceD18, uint256(latestAnswer));
                if (u <= commitTime || (trigger != 0 && (above ? p < trigger : p > trigger))) {
                    // The current round is the first one: the previous one is not after the commit, or outside
                    // the trigger. Compare with it for the jump breaker when not filling at the latest round.
                    if (i != 0) {
                        uint256 move = Math.mulDiv(priceD18 > p ? priceD18 - p : p - priceD18, WAD, p);
                        jumped = move > priceJumpBound(riskManager, marketId);
                    }
                    return (priceD18, updatedAt, false, jumped);
                }
                (id, priceD18, updatedAt) = (id - 1, p, u);
            } catch {
                return (priceD18, updatedAt, false, false);
            }
        }
    }
}
