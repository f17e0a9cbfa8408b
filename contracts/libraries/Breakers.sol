// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Breakers
/// @notice Circuit-breaker flags of `IRiskManager.MarketRisk.breakers`. Any flag makes a market reduce-only.
library Breakers {
    uint256 internal constant OPENING_PAUSED = 1; // guardian pause
    uint256 internal constant SEQUENCER = 2; // L2 sequencer down or in its grace period (also pauses liquidations)
    uint256 internal constant VOL_STALE = 4; // σ not refreshed within VolMaxAge
    uint256 internal constant SIGMA = 8; // σ above the breaker level
    uint256 internal constant PRICE_JUMP = 16; // a price round moved more than the jump bound
    uint256 internal constant PRICE_STALE = 32; // price older than LiquidationPriceMaxAge
}
