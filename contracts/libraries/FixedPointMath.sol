// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title FixedPointMath
/// @notice Deterministic 18-decimal helpers the TypeScript side (sdk/volatility.ts) mirrors operation for
/// operation.
library FixedPointMath {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant WAD36 = 1e36;

    /// @dev EXP2_FRACTION_D36[i−1] = ⌊2^(−2^(−i))·1e36⌋ for i = 1..64, 15 bytes each (sdk/volatility.ts).
    bytes internal constant EXP2_FRACTION_D36 =
        hex"882f0e53f249c00935696b680a428fa1f364ead73674d6a49ba7d6b47bafb09bca3bdba49bf2f496f4ee0ab2acb86d7ca75708f9349a27ecdca820b3bc7753e230fbb4c5dfc98be8643d61be84b4e534683d31609b3bda2db033bf8d899fea1472486658fc6920192ac0127de9c97f7149f3170be7bb5fa9c0551aa5c5771d22ac1529ac2c8698c07671ad062c2b6617fe92315d19b9c0871f5b674e7ab8bbeda3b0c3cca7c08f76bd56170a95519294e2da3baac093a290fec9ffc86d351c1e1ac437c095b8837faf4261884edcc91b8757c096c37eeb4bd9683b1b4b361d5abac09748fd2be582d3ad858d1a96140cc0978bbc6ee54b12c369eb8de2652dc097ad1c1911ef96929d2f5469e015c097bdcbf0537261c90e36f12f710cc097c623dc7efff7bfb7bfc063f4e9c097ca4fd2b779d092e04f528035b7c097cc65cddc6380aa887d6af8a578c097cd70cb710389a8e56ca020ae36c097cdf64a3bde5a65969619d94eaac097ce3909a16e75d36be6c94072e7c097ce5a69543f304e39400cf13728c097ce6b192da9b8bc990927b459ecc097ce73711a5f87c00742db0e0c43c097ce779d10ba91f4cdf6bf309be9c097ce79b30be81fbbf536abfe4724c097ce7abe097ee8cab9d028181456c097ce7b43884a4ddce85b487234abc097ce7b8647b00088b2b0714ea2bfc097ce7ba7a762d9e7449eebec3333c097ce7bb8573c4698b8c722c74205c097ce7bc0af28fcf1fda77c97e91cc097ce7bc4db1f581ec2cab9190654c097ce7bc6f11a85b52e091b3fc793c097ce7bc7fc181c8065d37d4cb4e3c097ce7bc88196e7e602437a918eb7c097ce7bc8c4564d98d09e2c43946dc097ce7bc8e5b6007237d431e07d7bc097ce7bc8f665d9deeb715fdfeb8ec097ce7bc8febdc695454081abe0fbc097ce7bc902e9bcf072283544eb4ac097ce7bc904ffb81e089c17be3458c097ce7bc9060ab5b4d3d60b2609d9c097ce7bc90690348039730564c0d7c097ce7bc906d2f3e5ec4182a6cf66c097ce7bc906f45398c5a8c1508372c097ce7bc907050372325c60a788a8c097ce7bc9070d5b5ee8b630539610c097ce7bc90711875543e31829bf77c097ce7bc907139d5071798c14dcd7c097ce7bc90714a84e0844c60a6db2c097ce7bc907152dccd3aa630536abc097ce7bc90715708c395d31829b49c097ce7bc9071591ebec3698c14da2c097ce7bc90715a29bc5a34c60a6d0c097ce7bc90715aaf3b259a6305367c097ce7bc90715af1fa8b4d31829b3c097ce7bc90715b135a3e2698c14d9c097ce7bc90715b240a17934c60a6cc097ce7bc90715b2c620449a630536";

    /// @dev 2^(−x) for x ≥ 0 in D18: x = n + f; f as 64 binary digits fb = ⌊f·2^64/1e18⌋; r starts at 1e36 and
    /// for each set digit i (from the most significant) r = ⌊r·2^(−2^(−i))⌋ at 1e36 precision; the result is
    /// ⌊⌊r/2^n⌋/1e18⌋ (0 for n ≥ 120). Within one wei of ⌊2^(−x)·1e18⌋.
    function exp2NegD18(uint256 xD18) internal pure returns (uint256) {
        uint256 n = xD18 / WAD;
        if (n >= 120) return 0;
        uint256 fb = ((xD18 % WAD) << 64) / WAD;
        uint256 r = WAD36;
        bytes memory table = EXP2_FRACTION_D36;
        for (uint256 i = 1; i <= 64; ++i) {
            if ((fb >> (64 - i)) & 1 == 1) {
                uint256 c;
                // Load the 15-byte constant i−1: a 32-byte word at its offset, keep its top 15 bytes.
                assembly ("memory-safe") {
                    c := shr(136, mload(add(add(table, 32), mul(sub(i, 1), 15))))
                }
                r = r * c / WAD36;
            }
        }
        return (r >> n) / WAD;
    }

    /// @dev Decay weight 2^(−dt/halfLife) in D18.
    function decayD18(uint256 dtSec, uint256 halfLifeSec) internal pure returns (uint256) {
        return exp2NegD18(dtSec * WAD / halfLifeSec);
    }
}
