// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationMath} from "../../clearinghouse/LiquidationMath.sol";

/// @notice Test harness exposing LiquidationMath's internal steps.
contract LiquidationMathHarness {
    function estimate(LiquidationMath.LiqMarket memory c, LiquidationMath.LiqState memory L, uint256 a) external pure returns (uint256) {
        return LiquidationMath._closeEstimate(c, L, a);
    }

    function g(LiquidationMath.LiqMarket memory c, LiquidationMath.LiqState memory L, uint256 q) external pure returns (int256) {
        return LiquidationMath._gAt(c, L, q);
    }

    function minimal(LiquidationMath.LiqMarket memory c, LiquidationMath.LiqState memory L) external pure returns (uint256 q) {
        (q,) = LiquidationMath.minimalClose(c, L);
    }
}
