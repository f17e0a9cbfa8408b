// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IClearingHouse} from "../../interfaces/IClearingHouse.sol";

/// @title MockRevertBomb
/// @notice Test-only griefer: its receive() reverts with `bombSize` bytes of revert data (a "return bomb"),
/// or, with bombSize = type(uint256).max, burns every unit of gas it is given. Used as trader (refund on
/// cancel) and as keeper (fee on execute) to show neither execution nor cancellation can be blocked.
contract MockRevertBomb {
    IClearingHouse public immutable clearingHouse;
    uint256 public bombSize;

    constructor(IClearingHouse clearingHouse_, uint256 bombSize_) {
        clearingHouse = clearingHouse_;
        bombSize = bombSize_;
    }

    function setBombSize(uint256 n) external {
        bombSize = n;
    }

    function commit(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18) external payable returns (uint256) {
        return clearingHouse.commitOrder{value: msg.value}(marketId, sizeDeltaD18, acceptablePriceD18);
    }

    function execute(uint256 orderId) external returns (bool) {
        return clearingHouse.executeOrder(orderId);
    }

    function claim() external {
        bombSize = 0;
        clearingHouse.claimEth();
    }

    receive() external payable {
        uint256 n = bombSize;
        if (n == 0) return;
        if (n == type(uint256).max) {
            assembly {
                invalid()
            }
        }
        assembly {
            revert(0, n)
        }
    }
}
