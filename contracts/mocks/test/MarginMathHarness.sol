// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MarginMath} from "../../libraries/MarginMath.sol";

/// @notice Test harness exposing MarginMath's internal functions as external pure functions, so that the
/// TypeScript SDK's mirror (sdk/margin.ts) can be compared with the library to the wei (test/sdk).
contract MarginMathHarness {
    function mulDivUp(uint256 a, uint256 b, uint256 d) external pure returns (uint256) {
        return MarginMath.mulDivUp(a, b, d);
    }

    function sqrtHorizonD18(uint256 horizonSec) external pure returns (uint256) {
        return MarginMath.sqrtHorizonD18(horizonSec);
    }

    function moveD18(uint256 zD18, uint256 sigmaD18, uint256 sqrtHD18) external pure returns (uint256) {
        return MarginMath.moveD18(zD18, sigmaD18, sqrtHD18);
    }

    function baseRatios(MarginMath.RatioParams memory p, uint256 sigmaD18) external pure returns (uint256, uint256) {
        return MarginMath.baseRatios(p, sigmaD18);
    }

    function sizeAddOnD18(uint256 absSizeD18, uint256 addOnD18, uint256 skewScaleD18) external pure returns (uint256) {
        return MarginMath.sizeAddOnD18(absSizeD18, addOnD18, skewScaleD18);
    }

    function notionalUpD18(uint256 absSizeD18, uint256 priceD18) external pure returns (uint256) {
        return MarginMath.notionalUpD18(absSizeD18, priceD18);
    }

    function requirementD18(uint256 absSizeD18, uint256 priceD18, uint256 ratioD18, uint256 addOnD18, uint256 skewScaleD18)
        external
        pure
        returns (uint256)
    {
        return MarginMath.requirementD18(absSizeD18, priceD18, ratioD18, addOnD18, skewScaleD18);
    }

    function fillPriceD18(uint256 priceD18, int256 skewD18, int256 sizeDeltaD18, uint256 skewScaleD18)
        external
        pure
        returns (uint256)
    {
        return MarginMath.fillPriceD18(priceD18, skewD18, sizeDeltaD18, skewScaleD18);
    }

    function tradeFeeD18(int256 skewD18, int256 sizeDeltaD18, uint256 fillPriceD18_, uint256 takerD18, uint256 makerD18)
        external
        pure
        returns (uint256)
    {
        return MarginMath.tradeFeeD18(skewD18, sizeDeltaD18, fillPriceD18_, takerD18, makerD18);
    }

    function fundingIndexDeltaD18(
        int256 skewD18,
        uint256 skewScaleD18,
        uint256 maxFundingRatePerDayD18,
        uint256 priceD18,
        uint256 elapsed
    ) external pure returns (int256) {
        return MarginMath.fundingIndexDeltaD18(skewD18, skewScaleD18, maxFundingRatePerDayD18, priceD18, elapsed);
    }

    function mulDivSigned(int256 a, uint256 b, uint256 d, bool up) external pure returns (int256) {
        return MarginMath.mulDivSigned(a, b, d, up);
    }

    function mulSigned(int256 a, int256 b, bool up) external pure returns (int256) {
        return MarginMath.mulSigned(a, b, up);
    }

    function pnlD18(int256 sizeD18, int256 costBasisD18, uint256 priceD18, int256 indexD18) external pure returns (int256) {
        return MarginMath.pnlD18(sizeD18, costBasisD18, priceD18, indexD18);
    }

    function basisDeltaD18(int256 sizeDeltaD18, uint256 fillD18, int256 indexD18) external pure returns (int256) {
        return MarginMath.basisDeltaD18(sizeDeltaD18, fillD18, indexD18);
    }

    function toTokensFloor(int256 amountD18, uint256 scale) external pure returns (int256) {
        return MarginMath.toTokensFloor(amountD18, scale);
    }

    function nextCostBasis(int256 size, int256 basis, int256 delta, uint256 fill, int256 index)
        external
        pure
        returns (int256 newBasis, int256 realized)
    {
        return MarginMath.nextCostBasis(size, basis, delta, fill, index);
    }
}
