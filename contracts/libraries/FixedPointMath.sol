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
        // solhint-disable-next-line max-line-length
        hex"882f0e53f249c00935696b680a428fa1f364ead73674d6a49ba7d6b47bafb09bca3bdba49bf2f496f4ee0ab2acb86d7ca75708f9349a27ecdca820b3bc7753e230fbb4c5dfc98be8643d61be84b4e534683d31609b3bda2db033bf8d899fea1472486658fc6920192ac0127de9c97f7149f3170be7bb5fa9c0551aa5c5771d22ac1529ac2c8698c07671ad062c2b6617fe92315d19b9c0871f5b674e7ab8bbeda3b0c3cca7c08f76bd56170a95519294e2da3baac093a290fec9ffc86d351c1e1ac437c095b8837faf4261884edcc91b8757c096c37eeb4bd9683b1b4b361d5abac09748fd2be582d3ad858d1a96140cc0978bbc6ee54b12c369eb8de2652dc097ad1c1911ef96929d2f5469e015c097bdcbf0537261c90e36f12f710cc097c623dc7efff7bfb7bfc063f4e9c097ca4fd2b779d092e04f528035b7c097cc65cddc6380aa887d6af8a578c097cd70cb710389a8e56ca020ae36c097cdf64a3bde5a65969619d94eaac097ce3909a16e75d36be6c94072e7c097ce5a69543f304e39400cf13728c097ce6b192da9b8bc990927b459ecc097ce73711a5f87c00742db0e0c43c097ce779d10ba91f4cdf6bf309be9c097ce79b30be81fbbf536abfe4724c097ce7abe097ee8cab9d028181456c097ce7b43884a4ddce85b487234abc097ce7b8647b00088b2b0714ea2bfc097ce7ba7a762d9e7449eebec3333c097ce7bb8573c4698b8c722c74205c097ce7bc0af28fcf1fda77c97e91cc097ce7bc4db1f581ec2cab9190654c097ce7bc6f11a85b52e091b3fc793c097ce7bc7fc181c8065d37d4cb4e3c097ce7bc88196e7e602437a918eb7c097ce7bc8c4564d98d09e2c43946dc097ce7bc8e5b6007237d431e07d7bc097ce7bc8f665d9deeb715fdfeb8ec097ce7bc8febdc695454081abe0fbc097ce7bc902e9bcf072283544eb4ac097ce7bc904ffb81e089c17be3458c097ce7bc9060ab5b4d3d60b2609d9c097ce7bc90690348039730564c0d7c097ce7bc906d2f3e5ec4182a6cf66c097ce7bc906f45398c5a8c1508372c097ce7bc907050372325c60a788a8c097ce7bc9070d5b5ee8b630539610c097ce7bc90711875543e31829bf77c097ce7bc907139d5071798c14dcd7c097ce7bc90714a84e0844c60a6db2c097ce7bc907152dccd3aa630536abc097ce7bc90715708c395d31829b49c097ce7bc9071591ebec3698c14da2c097ce7bc90715a29bc5a34c60a6d0c097ce7bc90715aaf3b259a6305367c097ce7bc90715af1fa8b4d31829b3c097ce7bc90715b135a3e2698c14d9c097ce7bc90715b240a17934c60a6cc097ce7bc90715b2c620449a630536";

    /// @dev 2^(−x) for x ≥ 0 in D18: x = n + f; f as 64 binary digits fb = ⌊f·2^64/1e18⌋; r starts at 1e36 and
    /// for each set digit i (from the most significant) r = ⌊r·2^(−2^(−i))⌋ at 1e36 precision; the result is
    /// ⌊⌊r/2^n⌋/1e18⌋ (0 for n ≥ 120). Within one wei of ⌊2^(−x)·1e18⌋.
    /// Unrolled, with the 64 factors of EXP2_FRACTION_D36 inline (no table copied to memory): r ≤ 1e36 and every
    /// factor < 1e36, so r·factor < 2^256 and the unchecked products equal the checked ones.
    // solhint-disable-next-line function-max-lines
    function exp2NegD18(uint256 xD18) internal pure returns (uint256 r) {
        uint256 n = xD18 / WAD;
        if (n >= 120) return 0;
        uint256 fb = ((xD18 % WAD) << 64) / WAD;
        assembly ("memory-safe") {
            // 1e36, kept on the stack: fb < 2^64, so the `or` adds nothing, but it stops the optimizer from
            // re-materializing the 15-byte literal at each of the 64 steps (about 900 bytes of code).
            let w36 := or(1000000000000000000000000000000000000, shr(128, fb))
            r := w36
            // The fraction's digits, most significant first, each in turn moved to the sign bit.
            let f := shl(192, fb)
            if slt(f, 0) { r := div(mul(r, 707106781186547524400844362104849039), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 840896415253714543031125476233214895), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 917004043204671231743541594794144428), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 957603280698573646936305635147915443), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 978572062087700134509161125813435745), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 989228013193975484129124959065583667), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 994599423483633175652477686222166314), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 997296056085470126257659913847922601), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 998647112890970173588121318085920408), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999323327502650752360283659843738041), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999661606496243683942196868762815655), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999830788931929063117480780197673898), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999915390886613497533724971564188727), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999957694548431132543967537300997975), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999978847050491929826500671130393274), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999989423469314464242210592253154316), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999994711720674283007702412770305325), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999997355856841394982252346365042709), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999998677927546759705317767598010636), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999338963554895261780529006245097), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999669481722826465117383688205751), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999834740847757938858809473148280), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999917370420465145722351332142646), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999958685209379116899151960952490), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999979342604476194454662509785831), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999989671302184756228051944159016), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999994835651079042864137276512748), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999997417825536187619587855879235), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999998708912767260356672656284649), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999354456383421815055875720996), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999677228191658816707807941718), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999838614095816385648869389483), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999919307047904937148175786687), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999959653523951654655023133491), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999979826761975623847745372677), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999989913380987761053931137308), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999994956690493867809480181332), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999997478345246930725368743827), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999998739172623464567841535203), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999369586311732085210058423), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999684793155865992927351917), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999842396577932984044256635), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999921198288966488917273486), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999960599144483243682423035), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999980299572241621647158090), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999990149786120810775065688), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999995074893060405375404505), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999997537446530202684670167), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999998768723265101341577062), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999384361632550670599026), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999692180816275335252136), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999846090408137667614224), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999923045204068833804151), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999961522602034416901335), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999980761301017208450482), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999990380650508604225195), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999995190325254302112585), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999997595162627151056290), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999998797581313575528144), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999999398790656787764071), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999999699395328393882035), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999999849697664196941017), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999999924848832098470508), w36) }
            f := add(f, f)
            if slt(f, 0) { r := div(mul(r, 999999999999999999962424416049235254), w36) }
            r := div(shr(n, r), 1000000000000000000)
        }
    }

    /// @dev Decay weight 2^(−dt/halfLife) in D18.
    function decayD18(uint256 dtSec, uint256 halfLifeSec) internal pure returns (uint256) {
        return exp2NegD18(dtSec * WAD / halfLifeSec);
    }
}
