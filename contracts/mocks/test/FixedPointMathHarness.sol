// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMath} from "../../libraries/FixedPointMath.sol";

/// @title FixedPointMathHarness
/// @notice Test-only: exposes FixedPointMath.exp2NegD18 next to its previous table-driven loop, so a test can
/// check that the unrolled version is bit-identical on many inputs in one call.
contract FixedPointMathHarness {
    /// @notice FixedPointMath.exp2NegD18 of each input.
    function exp2NegD18Many(uint256[] calldata xs) external pure returns (uint256[] memory out) {
        out = new uint256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            out[i] = FixedPointMath.exp2NegD18(xs[i]);
        }
    }

    /// @notice The previous implementation (a 64-step loop over the EXP2_FRACTION_D36 table) of each input.
    function exp2NegD18ReferenceMany(uint256[] calldata xs) external pure returns (uint256[] memory out) {
        out = new uint256[](xs.length);
        bytes memory table = FixedPointMath.EXP2_FRACTION_D36;
        for (uint256 k; k < xs.length; ++k) {
            out[k] = _reference(xs[k], table);
        }
    }

    /// @notice Gas of one FixedPointMath.exp2NegD18 call and of one reference call.
    function gasOf(uint256 x) external view returns (uint256 unrolled, uint256 reference_) {
        uint256 g = gasleft();
        FixedPointMath.exp2NegD18(x);
        unrolled = g - gasleft();
        g = gasleft();
        _reference(x, FixedPointMath.EXP2_FRACTION_D36);
        reference_ = g - gasleft();
    }

    function _reference(uint256 xD18, bytes memory table) private pure returns (uint256) {
        uint256 n = xD18 / 1e18;
        if (n >= 120) return 0;
        uint256 fb = ((xD18 % 1e18) << 64) / 1e18;
        uint256 r = 1e36;
        for (uint256 i = 1; i <= 64; ++i) {
            if ((fb >> (64 - i)) & 1 == 1) {
                uint256 c;
                assembly ("memory-safe") {
                    c := shr(136, mload(add(add(table, 32), mul(sub(i, 1), 15))))
                }
                r = r * c / 1e36;
            }
        }
        return (r >> n) / 1e18;
    }
}
