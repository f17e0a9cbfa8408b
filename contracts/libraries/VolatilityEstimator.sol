// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FixedPointMath} from "./FixedPointMath.sol";

/// @title VolatilityEstimator
/// @notice Realized volatility folded in round by round from a Chainlink price feed: O(1) state and O(1)
/// work per round. Time-aware EWMA of annualized squared simple returns: a return r over dt seconds is the
/// variance sample r²·(1 year / dt), weighted by 1 − 2^(−dt/halfLife), so irregular Chainlink rounds
/// (deviation-triggered bursts, heartbeats) count by the time they cover, not by their number.
library VolatilityEstimator {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant YEAR = 365 days;
    uint256 internal constant HALF_LIFE = 24 hours;

    struct State {
        uint80 lastRoundId;
        uint64 lastUpdatedAt;
        uint112 lastPriceD18;
        uint256 varianceD18; // annualized variance (σ²), D18
    }

    function initialized(State storage s) internal view returns (bool) {
        return s.lastUpdatedAt != 0;
    }

    function init(State storage s, uint256 priceD18, uint256 updatedAt) internal {
        s.lastPriceD18 = uint112(priceD18);
        s.lastUpdatedAt = uint64(updatedAt);
    }

    /// @dev Folds one round in. Returns |r| in D18 (the size of the move, for the jump breaker).
    function update(State storage s, uint256 priceD18, uint256 updatedAt) internal returns (uint256 moveD18) {
        uint256 last = s.lastPriceD18;
        uint256 dt = updatedAt - s.lastUpdatedAt;
        moveD18 = Math.mulDiv(priceD18 > last ? priceD18 - last : last - priceD18, WAD, last);
        uint256 sample = Math.mulDiv(moveD18 * moveD18, YEAR, dt * WAD);
        uint256 w = FixedPointMath.exp2NegD18(dt * WAD / HALF_LIFE);
        s.varianceD18 = Math.mulDiv(s.varianceD18, w, WAD) + Math.mulDiv(sample, WAD - w, WAD);
        s.lastPriceD18 = uint112(priceD18);
        s.lastUpdatedAt = uint64(updatedAt);
    }

    /// @dev Annualized σ in D18: sqrt(variance).
    function sigmaD18(State storage s) internal view returns (uint256) {
        return Math.sqrt(s.varianceD18 * WAD);
    }
}
