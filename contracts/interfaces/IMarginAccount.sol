// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IMarginAccount
/// @notice What the vault and the pool need from the clearinghouse.
interface IMarginAccount {
    /// @notice Collateral the account may withdraw now, in token units: min(collateral, equity) minus the
    /// initial requirement, floored at zero. Unrealized profit is never withdrawable.
    function freeCollateral(address account) external view returns (uint256);

    /// @notice Traders' aggregate unrealized PnL including accrued funding, all markets, D18 (the pool is
    /// the counterparty, so pool NAV = pool balance − this).
    function tradersUnrealizedPnlD18() external view returns (int256);

    /// @notice Called by the Vault after collateral is added to `account`: clears a margin call the deposit cured.
    function onCollateralAdded(address account) external;

    /// @notice Gross open interest notional, Σ over markets of (long OI + short OI)·price, D18. The pool keeps
    /// a share of it in reserve: winners are paid from the pool's cash even when losers' losses (which net
    /// them out in the NAV) are not cash yet.
    function openInterestNotionalD18() external view returns (uint256);
}
