// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Roles
/// @notice Role ids shared by Sigma's contracts (OpenZeppelin AccessControl). The admin
/// (`DEFAULT_ADMIN_ROLE`) is meant to sit behind a timelock; the guardian can only make markets safer.
library Roles {
    /// @notice May set bounded risk parameters.
    bytes32 internal constant PARAM_SETTER = keccak256("sigma.role.PARAM_SETTER");
    /// @notice May pause opening (never closing, adding margin or liquidation).
    bytes32 internal constant GUARDIAN = keccak256("sigma.role.GUARDIAN");
}
