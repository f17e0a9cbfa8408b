// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IClearingHouse} from "./IClearingHouse.sol";

/// @title ISigmaLens
/// @notice Read-only helpers for integrators, computed from the ClearingHouse's and RiskManager's views with
/// the same MarginMath the contracts use (kept out of the ClearingHouse for its code size).
interface ISigmaLens {
    /// @notice Price of `marketId` at which the account's equity meets its maintenance requirement, holding σ,
    /// funding and its other markets fixed (0 if there is none, e.g. no position).
    function liquidationPriceD18(address account, uint256 marketId) external view returns (uint256);

    /// @notice Fill price with the skew premium and the trading fee of a trade of `sizeDeltaD18` now (D18).
    function quote(uint256 marketId, int256 sizeDeltaD18) external view returns (uint256 fillPriceD18, uint256 feeD18);

    /// @notice Funding rate per day now (D18; positive: longs pay shorts).
    function fundingRatePerDayD18(uint256 marketId) external view returns (int256);

    /// @notice `accountSummary` of many accounts in one call (for keepers). An account whose markets cannot be
    /// priced right now gets an all-zero summary (status Healthy, not liquidatable) instead of failing the batch.
    function healthBatch(address[] calldata accounts) external view returns (IClearingHouse.AccountSummary[] memory);

    /// @notice Average entry price including funding: the oracle price at which the position's PnL is zero.
    function breakEvenPriceD18(address account, uint256 marketId) external view returns (uint256);
}
