// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title FixedPointMath
/// @notice Deterministic 18-decimal helpers the TypeScript SDK mirrors operation for operation.
library FixedPointMath {
    uint256 internal constant WAD = 1e18;
    /// @dev ln(2) in D18, rounded down.
    uint256 internal constant LN2_D18 = 693147180559945309;

    /// @dev 2^(−x) for x ≥ 0 in D18, rounded down. x = n + f (integer n, fraction f): 2^(−f) = e^(−f·ln2)
    /// by its Taylor series (terms until one rounds to zero, at most 40), then shifted right by n.
    function exp2NegD18(uint256 xD18) internal pure returns (uint256) {
        uint256 n = xD18 / WAD;
        if (n >= 60) return 0;
        uint256 y = (xD18 % WAD) * LN2_D18 / WAD; // ≤ ln 2
        // e^(−y) = Σ (−y)^k / k!; positive and negative terms are summed apart to stay in uint256.
        uint256 pos = WAD;
        uint256 neg;
        uint256 term = WAD;
        for (uint256 k = 1; k <= 40; ++k) {
            term = term * y / (k * WAD);
            if (term == 0) break;
            if (k % 2 == 1) neg += term;
            else pos += term;
        }
        return (pos - neg) >> n;
    }
}
