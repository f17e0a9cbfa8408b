// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title MockERC20
/// @notice Test/local collateral token: configurable decimals, ERC-2612 permit (like USDC), open mint, and a
/// USDC-style blacklist to test that nobody can block their own liquidation.
contract MockERC20 is ERC20, ERC20Permit {
    uint8 private immutable _decimals;
    mapping(address => bool) public blacklisted;

    error MockBlacklisted(address account);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) ERC20Permit(name_) {
        _decimals = decimals_;
    }

    /// @notice Mints `amount` to `to` (anyone may call: local use only).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Blocks or unblocks transfers from and to `account`.
    function setBlacklisted(address account, bool value) external {
        blacklisted[account] = value;
    }

    /// @inheritdoc ERC20
    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blacklisted[from]) revert MockBlacklisted(from);
        if (blacklisted[to]) revert MockBlacklisted(to);
        super._update(from, to, value);
    }
}
