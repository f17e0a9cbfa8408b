// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IClearingHouse} from "../../interfaces/IClearingHouse.sol";

/// @title MockEthRejectingActor
/// @notice Test-only keeper/trader contract whose ETH receiver can accept, revert or burn all gas, to show that
/// a hostile receiver can neither block an order's execution or cancellation nor lose its ETH (it stays
/// claimable).
contract MockEthRejectingActor {
    enum Mode {
        Accept,
        Revert,
        BurnGas
    }

    IClearingHouse public immutable clearingHouse;
    Mode public mode;
    uint256 private _sink;

    error MockEthRejected();

    constructor(IClearingHouse clearingHouse_, Mode mode_) {
        clearingHouse = clearingHouse_;
        mode = mode_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @notice Executes an order as keeper.
    function execute(uint256 orderId) external returns (bool) {
        return clearingHouse.executeOrder(orderId);
    }

    /// @notice Commits an order as trader, forwarding msg.value as the execution fee.
    function commit(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18) external payable returns (uint256) {
        return clearingHouse.commitOrder{value: msg.value}(marketId, sizeDeltaD18, acceptablePriceD18);
    }

    /// @notice Claims ETH the clearinghouse could not push.
    function claim() external {
        clearingHouse.claimEth();
    }

    receive() external payable {
        if (mode == Mode.Revert) revert MockEthRejected();
        if (mode == Mode.BurnGas) {
            // Write until the forwarded gas runs out.
            for (uint256 i;; ++i) {
                _sink = i;
            }
        }
    }
}
