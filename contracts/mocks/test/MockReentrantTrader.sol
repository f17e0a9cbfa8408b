// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IClearingHouse} from "../../interfaces/IClearingHouse.sol";
import {IVault} from "../../interfaces/IVault.sol";

/// @title MockReentrantTrader
/// @notice Test-only attacker (GMX v1, 2025): a trader/keeper contract whose receive() — run when the
/// ClearingHouse pays it an execution fee or refunds one — re-enters the protocol with an armed call
/// (executeOrder, cancelOrder, commitOrder, claimEth, Vault.withdraw…). It records the outcome in an event
/// instead of reverting, so the refund itself succeeds and the test sees exactly what the re-entry did.
contract MockReentrantTrader {
    IClearingHouse public immutable clearingHouse;
    IVault public immutable vault;
    address public hookTarget;
    bytes public hookData;
    uint256 public hookValue;
    bool public revertOnReceive;

    event Reentered(address target, bool ok, bytes4 selector, uint256 gasLeft);

    constructor(IClearingHouse clearingHouse_) {
        clearingHouse = clearingHouse_;
        vault = IVault(clearingHouse_.vaultAddress());
    }

    function arm(address target, bytes calldata data) external {
        hookTarget = target;
        hookData = data;
        hookValue = 0;
    }

    /// @notice Arms a re-entry that forwards `value` wei (e.g. an execution fee for a commit from the hook).
    function armWithValue(address target, bytes calldata data, uint256 value) external {
        hookTarget = target;
        hookData = data;
        hookValue = value;
    }

    function setRevertOnReceive(bool v) external {
        revertOnReceive = v;
    }

    function approveAndDeposit(uint256 amount) external {
        IERC20(vault.token()).approve(address(vault), amount);
        vault.deposit(address(this), amount);
    }

    function withdraw(uint256 amount, address to) external {
        vault.withdraw(amount, to);
    }

    function commit(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18) external payable returns (uint256) {
        return clearingHouse.commitOrder{value: msg.value}(marketId, sizeDeltaD18, acceptablePriceD18);
    }

    function execute(uint256 orderId) external returns (bool) {
        return clearingHouse.executeOrder(orderId);
    }

    function cancel(uint256 orderId) external {
        clearingHouse.cancelOrder(orderId);
    }

    function claim() external {
        clearingHouse.claimEth();
    }

    function liquidate(address account) external returns (uint256) {
        return clearingHouse.liquidate(account);
    }

    receive() external payable {
        address target = hookTarget;
        if (target != address(0)) {
            hookTarget = address(0); // one shot
            (bool ok, bytes memory ret) = target.call{value: hookValue}(hookData);
            bytes4 sel;
            if (ret.length >= 4) sel = bytes4(ret);
            emit Reentered(target, ok, sel, gasleft());
        }
        if (revertOnReceive) revert("no ETH");
    }
}
