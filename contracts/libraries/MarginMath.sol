// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";

/// @title MarginMath
/// @notice Sigma's pricing and margin formulas in one pure library (mirrored exactly by the TypeScript SDK).
/// All values are 18-decimal fixed point (`D18`). Every rounding goes against the trader: requirements and
/// fees round up, a trader's PnL rounds down, a buyer's fill price rounds up and a seller's down.
library MarginMath {
    using SafeCast for uint256;
    using SafeCast for int256;

    uint256 internal constant WAD = 1e18;
    uint256 internal constant YEAR = 365 days;
    uint256 internal constant DAY = 1 days;

    /// @notice The skew premium would push the fill price to zero or below.
    error MarginMathInvalidFillPrice(int256 skewD18, int256 sizeDeltaD18);

    /// @notice Parameters that turn σ into margin ratios (all D18 except where noted).
    struct RatioParams {
        uint256 zMmD18; // confidence multiplier for maintenance
        uint256 zImD18; // confidence multiplier for initial margin (> zMm)
        uint256 sqrtHorizonD18; // sqrt(liquidation horizon / 1 year)
        uint256 liqFeeD18; // liquidation fee ratio, added to both ratios
        uint256 mmrMinD18;
        uint256 mmrMaxD18;
        uint256 imrMinD18;
    }

    /// @dev ⌈a·b/d⌉ with plain checked arithmetic: every caller's a·b stays far below 2^256 (sizes < 2^128,
    /// prices and ratios < 2^96), and an overflow would revert rather than wrap. Cheaper than Math.mulDiv.
    function mulDivUp(uint256 a, uint256 b, uint256 d) internal pure returns (uint256) {
        uint256 p = a * b;
        return p == 0 ? 0 : (p - 1) / d + 1;
    }

    /// @dev sqrt(horizonSec / 1 year) in D18, rounded down (computed once when the horizon is set).
    function sqrtHorizonD18(uint256 horizonSec) internal pure returns (uint256) {
        return Math.sqrt(Math.mulDiv(horizonSec, WAD * WAD, YEAR));
    }

    /// @dev The price move at confidence z over the horizon: z·σ·sqrt(h/1y), rounded up.
    function moveD18(uint256 zD18, uint256 sigmaD18, uint256 sqrtHD18) internal pure returns (uint256) {
        return mulDivUp(mulDivUp(zD18, sigmaD18, WAD), sqrtHD18, WAD);
    }

    /// @dev Maintenance and initial ratios before the size add-on.
    /// MMR = clamp(z_mm·σ√h + liqFee, mmrMin, mmrMax); IMR = clamp(z_im·σ√h + liqFee, imrMin, 1), IMR ≥ MMR.
    function baseRatios(RatioParams memory p, uint256 sigmaD18) internal pure returns (uint256 mmrD18, uint256 imrD18) {
        mmrD18 = Math.min(Math.max(moveD18(p.zMmD18, sigmaD18, p.sqrtHorizonD18) + p.liqFeeD18, p.mmrMinD18), p.mmrMaxD18);
        imrD18 = Math.min(Math.max(moveD18(p.zImD18, sigmaD18, p.sqrtHorizonD18) + p.liqFeeD18, p.imrMinD18), WAD);
        if (imrD18 < mmrD18) imrD18 = mmrD18;
    }

    /// @dev Extra ratio for large positions: addOn·|size|/skewScale, rounded up (deep positions cost more).
    function sizeAddOnD18(uint256 absSizeD18, uint256 addOnD18, uint256 skewScaleD18) internal pure returns (uint256) {
        return mulDivUp(absSizeD18, addOnD18, skewScaleD18);
    }

    /// @dev |size|·price, rounded up (used for requirements and fees).
    function notionalUpD18(uint256 absSizeD18, uint256 priceD18) internal pure returns (uint256) {
        return mulDivUp(absSizeD18, priceD18, WAD);
    }

    /// @dev Margin requirement of one position: |size|·price·(ratio + size add-on), rounded up.
    function requirementD18(uint256 absSizeD18, uint256 priceD18, uint256 ratioD18, uint256 addOnD18, uint256 skewScaleD18)
        internal
        pure
        returns (uint256)
    {
        uint256 ratio = ratioD18 + sizeAddOnD18(absSizeD18, addOnD18, skewScaleD18);
        return mulDivUp(notionalUpD18(absSizeD18, priceD18), ratio, WAD);
    }

    /// @dev Fill price with the skew premium: p·(1 + (skewBefore + skewAfter)/2 / skewScale).
    /// Buys round up, sells round down.
    function fillPriceD18(uint256 priceD18, int256 skewD18, int256 sizeDeltaD18, uint256 skewScaleD18)
        internal
        pure
        returns (uint256)
    {
        int256 twoScale = (2 * skewScaleD18).toInt256();
        int256 num = twoScale + 2 * skewD18 + sizeDeltaD18;
        if (num <= 0) revert MarginMathInvalidFillPrice(skewD18, sizeDeltaD18);
        return sizeDeltaD18 > 0
            ? mulDivUp(priceD18, uint256(num), uint256(twoScale))
            : priceD18 * uint256(num) / uint256(twoScale);
    }

    /// @dev Trading fee: the part of the trade that moves skew toward zero pays the maker rate, the rest
    /// the taker rate, both on the fill notional, rounded up.
    function tradeFeeD18(int256 skewD18, int256 sizeDeltaD18, uint256 fillPriceD18_, uint256 takerD18, uint256 makerD18)
        internal
        pure
        returns (uint256)
    {
        uint256 absDelta = SignedMath.abs(sizeDeltaD18);
        uint256 makerPart;
        if (skewD18 != 0 && (skewD18 > 0) != (sizeDeltaD18 > 0)) {
            makerPart = Math.min(absDelta, SignedMath.abs(skewD18));
        }
        uint256 weighted = makerPart * makerD18 + (absDelta - makerPart) * takerD18;
        return Math.mulDiv(weighted, fillPriceD18_, WAD * WAD, Math.Rounding.Ceil);
    }

    /// @dev Funding index change over `elapsed` seconds: clamp(skew/skewScale, −1, 1)·maxRatePerDay·price·dt/1d,
    /// in USD per unit of size (D18). Positive means longs pay shorts. The magnitude rounds down.
    function fundingIndexDeltaD18(
        int256 skewD18,
        uint256 skewScaleD18,
        uint256 maxFundingRatePerDayD18,
        uint256 priceD18,
        uint256 elapsed
    ) internal pure returns (int256) {
        if (skewD18 == 0 || elapsed == 0 || maxFundingRatePerDayD18 == 0) return 0;
        uint256 proportion = Math.min(Math.mulDiv(SignedMath.abs(skewD18), WAD, skewScaleD18), WAD);
        uint256 magnitude = Math.mulDiv(proportion * maxFundingRatePerDayD18, priceD18 * elapsed, WAD * WAD * DAY);
        int256 d = magnitude.toInt256();
        return skewD18 > 0 ? d : -d;
    }

    /// @dev a·b/d for signed a, rounded toward +∞ when `up`, toward −∞ otherwise.
    function mulDivSigned(int256 a, uint256 b, uint256 d, bool up) internal pure returns (int256) {
        bool neg = a < 0;
        // Toward +∞ means a larger magnitude for positives and a smaller one for negatives.
        Math.Rounding r = (up != neg) ? Math.Rounding.Ceil : Math.Rounding.Floor;
        uint256 absA = SignedMath.abs(a);
        int256 m = (r == Math.Rounding.Ceil ? mulDivUp(absA, b, d) : absA * b / d).toInt256();
        return neg ? -m : m;
    }

    /// @dev a·b/1e18 for signed a and b, rounded toward +∞ when `up`, toward −∞ otherwise.
    function mulSigned(int256 a, int256 b, bool up) internal pure returns (int256) {
        // |a|, |b| < 2^128 in every caller, so negating a cannot overflow.
        return mulDivSigned(b < 0 ? -a : a, SignedMath.abs(b), WAD, up);
    }

    /// @dev PnL of a position including funding at `priceD18` and funding index `indexD18`:
    /// size·price − size·index − costBasis, rounded toward −∞ (against the trader).
    function pnlD18(int256 sizeD18, int256 costBasisD18, uint256 priceD18, int256 indexD18) internal pure returns (int256) {
        return mulDivSigned(sizeD18, priceD18, WAD, false) - mulSigned(sizeD18, indexD18, true) - costBasisD18;
    }

    /// @dev Cost basis added by opening `sizeDeltaD18` at `fillD18` with funding index `indexD18`:
    /// delta·(fill − index), rounded toward +∞ (against the trader).
    function basisDeltaD18(int256 sizeDeltaD18, uint256 fillD18, int256 indexD18) internal pure returns (int256) {
        return mulDivSigned(sizeDeltaD18, fillD18, WAD, true) - mulSigned(sizeDeltaD18, indexD18, false);
    }

    /// @dev Converts a signed D18 amount to token units, rounding toward −∞ (a trader's gain rounds down,
    /// a trader's loss rounds up).
    function toTokensFloor(int256 amountD18, uint256 scale) internal pure returns (int256) {
        if (amountD18 >= 0) return amountD18 / int256(scale);
        return -int256(Math.ceilDiv(uint256(-amountD18), scale));
    }

    /// @dev Cost basis after a fill and the PnL (including funding) realized on the part it closes.
    function nextCostBasis(int256 size, int256 basis, int256 delta, uint256 fill, int256 index)
        internal
        pure
        returns (int256 newBasis, int256 realized)
    {
        if (size == 0 || (size > 0) == (delta > 0)) {
            return (basis + basisDeltaD18(delta, fill, index), 0);
        }
        uint256 absSize = SignedMath.abs(size);
        uint256 closeAbs = Math.min(absSize, SignedMath.abs(delta));
        // Toward +∞: the closed part's basis rounds up, so the realized PnL rounds against the trader.
        int256 closedBasis = mulDivSigned(basis, closeAbs, absSize, true);
        int256 closedSize = size > 0 ? SafeCast.toInt256(closeAbs) : -SafeCast.toInt256(closeAbs);
        realized = pnlD18(closedSize, closedBasis, fill, index);
        newBasis = basis - closedBasis;
        if (SignedMath.abs(delta) > absSize) {
            // Flip: the rest of the trade opens a new position at the fill price.
            newBasis = basisDeltaD18(size + delta, fill, index);
        }
    }

}
