// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title ILiquidityPool
/// @notice Sigma's LP vault (ERC-4626 over the collateral token), the counterparty to traders' net position.
/// NAV = assets the pool holds in the Vault − traders' unrealized PnL (including accrued funding).
interface ILiquidityPool {
    /// @notice Admin changed the reserve factor.
    event ReserveFactorSet(uint256 oldValueD18, uint256 newValueD18);
    /// @notice Emitted when the admin sets the NAV band (and at construction).
    event NavBandSet(uint256 oldBps, uint256 newBps);

    /// @notice Reserve factor outside its bounds.
    error PoolReserveFactorOutOfBounds(uint256 value, uint256 min, uint256 max);
    /// @notice NAV band outside [0, MAX_NAV_BAND_BPS].
    error PoolNavBandOutOfBounds(uint256 value, uint256 max);
    /// @notice The token delivered fewer tokens than asked.
    error PoolFeeOnTransferNotSupported(uint256 expected, uint256 received);

    /// @notice Sets the share of traders' net exposure the pool keeps in reserve (withdrawals stop there).
    function setReserveFactor(uint256 reserveFactorD18) external;

    /// @notice Admin: sets the NAV band in basis points (F7). Deposits and mints are priced at the highest NAV
    /// and withdrawals and redeems at the lowest NAV the pool would have if every price were anywhere within
    /// ± band of its oracle price: a spread of band × net exposure that stays with the remaining LPs.
    function setNavBand(uint256 bps) external;

    /// @notice The NAV range used for pricing LP flows, D18: `navD18() ± navBandBps × net exposure`.
    function navRangeD18() external view returns (int256 lowD18, int256 highD18);

    /// @notice Assets the pool must keep to back open interest: gross OI notional · reserveFactor, token units.
    function reservedAssets() external view returns (uint256);

    /// @notice Assets LPs may withdraw in total right now: min(NAV, pool cash − what winning traders are
    /// owed) − reserved, floored at zero. Traders' unrealized losses raise NAV but are not cash (F9).
    function availableAssets() external view returns (uint256);

    /// @notice Pool NAV in D18 (signed: negative only if traders' profit exceeds the pool).
    function navD18() external view returns (int256);
}
