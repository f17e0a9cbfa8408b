// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {MarginMath} from "../libraries/MarginMath.sol";

/// @title LiquidationMath
/// @notice How much of a position a partial liquidation closes. Deployed as a linked library (external
/// functions) to keep the ClearingHouse under the contract size limit; pure, so it holds no state.
library LiquidationMath {
    using SafeCast for uint256;
    using SafeCast for int256;

    uint256 internal constant WAD = 1e18;

    /// @notice Running figures of one liquidation (D18).
    struct LiqState {
        uint256 collateral;
        int256 equity;
        uint256 im;
        uint256 buffer;
        int256 pnl;
        uint256 fee;
        uint256 closedNotional;
    }

    /// @notice One market's inputs to the minimal-close search.
    struct LiqMarket {
        uint256 marketId;
        IClearingHouse.Position pos;
        int256 skew;
        uint256 priceD18;
        uint256 imrD18;
        uint256 liqFeeD18;
        uint256 sizeAddOnD18;
        uint256 skewScaleD18;
        int256 index;
        uint256 imBefore;
        int256 pnlBefore;
    }

    /// @notice Effect of closing part of a position (D18).
    struct CloseEffect {
        int256 dEquity;
        uint256 imAfter;
        uint256 fill;
        uint256 fee;
    }

    /// @notice Smallest q with g(q) = equity after closing q − initial requirement after it ≥ buffer, or |size|
    /// if none, and the effect of closing it. g is concave in q (premium, fee and size add-on are quadratic):
    /// the closed-form root of its quadratic starts the search within a few wei; an exponential search then
    /// brackets the answer with exact evaluations (the contract's own rounding) and a binary search finishes.
    function minimalClose(LiqMarket memory c, LiqState memory L) public pure returns (uint256 q, CloseEffect memory e) {
        uint256 a = SignedMath.abs(c.pos.sizeD18);
        int256 target = L.buffer.toInt256();
        q = _closeEstimate(c, L, a);
        if (q >= a) return (a, closeEffect(c, a));
        // One Newton step on the exact g (the estimate's coefficients are truncated to D18), then check the
        // neighbours: usually three exact evaluations in all.
        e = closeEffect(c, q);
        int256 gq = _g(c, L, e);
        int256 slope = _slope(c, L, q);
        if (slope > 0) {
            int256 dq = (target - gq) * int256(WAD) / slope;
            int256 q1 = int256(q) + dq + (target > gq ? int256(1) : int256(0));
            if (q1 >= 0 && uint256(q1) < a && uint256(q1) != q) {
                q = uint256(q1);
                e = closeEffect(c, q);
                gq = _g(c, L, e);
            }
        }
        if (gq >= target) {
            if (q == 0) return (q, e);
            if (_gAt(c, L, q - 1) < target) return (q, e);
        } else if (q + 1 < a) {
            CloseEffect memory above = closeEffect(c, q + 1);
            if (_g(c, L, above) >= target) return (q + 1, above);
        }
        uint256 lo;
        uint256 hi;
        uint256 step = 1;
        if (_gAt(c, L, q) >= target) {
            // Invariant sought: g(lo) < target ≤ g(hi).
            hi = q;
            while (true) {
                if (hi <= step) {
                    if (_gAt(c, L, 0) >= target) return (0, closeEffect(c, 0));
                    lo = 0;
                    break;
                }
                lo = hi - step;
                if (_gAt(c, L, lo) < target) break;
                hi = lo;
                step *= 2;
            }
        } else {
            lo = q;
            while (true) {
                hi = lo + step;
                if (hi >= a) {
                    hi = a;
                    if (_gAt(c, L, a) < target) return (a, closeEffect(c, a));
                    break;
                }
                if (_gAt(c, L, hi) >= target) break;
                lo = hi;
                step *= 2;
            }
        }
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_gAt(c, L, mid) >= target) hi = mid;
            else lo = mid;
        }
        return (hi, closeEffect(c, hi));
    }

    /// @dev Equity after closing q minus the initial requirement after it (D18), with the contract's rounding.
    function _gAt(LiqMarket memory c, LiqState memory L, uint256 q) internal pure returns (int256) {
        return _g(c, L, closeEffect(c, q));
    }

    function _g(LiqMarket memory c, LiqState memory L, CloseEffect memory e) internal pure returns (int256) {
        return L.equity + e.dEquity - (L.im - c.imBefore + e.imAfter).toInt256();
    }

    /// @dev Effect of closing q of a position: change of equity, the market's new initial requirement, the
    /// fill price and the liquidation fee (D18).
    function closeEffect(LiqMarket memory c, uint256 q) public pure returns (CloseEffect memory e) {
        LiqMarket memory r = c;
        int256 size = c.pos.sizeD18;
        int256 delta = size > 0 ? -q.toInt256() : q.toInt256();
        e.fill = MarginMath.fillPriceD18(r.priceD18, c.skew, delta, r.skewScaleD18);
        (int256 newBasis, int256 realized) = MarginMath.nextCostBasis(size, c.pos.costBasisD18, delta, e.fill, c.index);
        e.fee = MarginMath.mulDivUp(MarginMath.notionalUpD18(q, e.fill), r.liqFeeD18, WAD);
        int256 pnlAfter = MarginMath.pnlD18(size + delta, newBasis, r.priceD18, c.index);
        e.dEquity = realized + pnlAfter - c.pnlBefore - e.fee.toInt256();
        e.imAfter = MarginMath.requirementD18(SignedMath.abs(size + delta), r.priceD18, r.imrD18, r.sizeAddOnD18, r.skewScaleD18);
    }

    /// @dev g'(q) = B + 2·C·q in D18 (USD per unit of size), from the same coefficients as the estimate.
    function _slope(LiqMarket memory c, LiqState memory L, uint256 q) internal pure returns (int256) {
        (int256 B, int256 negC) = _coefficients(c, L, SignedMath.abs(c.pos.sizeD18));
        return B - 2 * negC * q.toInt256() / int256(WAD);
    }

    function _coefficients(LiqMarket memory c, LiqState memory, uint256 a) internal pure returns (int256 B, int256 negC) {
        LiqMarket memory r = c;
        int256 p = r.priceD18.toInt256();
        int256 S = r.skewScaleD18.toInt256();
        int256 w = int256(WAD);
        int256 s = c.pos.sizeD18 > 0 ? int256(1) : int256(-1);
        int256 phi = r.liqFeeD18.toInt256();
        int256 kOverS = c.skew * w / S;
        B = p * (s * kOverS - phi * (w + kOverS) / w + r.imrD18.toInt256() + 2 * r.sizeAddOnD18.toInt256() * a.toInt256() / S) / w;
        negC = p * ((w - s * phi) / 2 + r.sizeAddOnD18.toInt256()) / S; // −C > 0
    }

    /// @dev Closed-form start for `_minimalClose`. With s = sign(size), a = |size|, p the oracle price, K the
    /// skew, S the skew scale, φ the liquidation fee, i the initial ratio and α the size add-on, closing x
    /// units changes equity − requirement by g(x) = A + B·x + C·x² where
    ///   A = equity − IM − buffer,  B = p·(s·K/S − φ·(1 + K/S) + i + 2·α·a/S),  C = p·((s·φ − 1)/2 − α)/S.
    /// C < 0, so the smallest root is (B − √(B² − 4·A·C)) / (−2·C) when it exists.
    function _closeEstimate(LiqMarket memory c, LiqState memory L, uint256 a) internal pure returns (uint256) {
        int256 w = int256(WAD);
        int256 A = L.equity - (L.im + L.buffer).toInt256();
        if (A >= 0) return 0;
        (int256 B, int256 negC) = _coefficients(c, L, a);
        if (B <= 0 || negC <= 0) return a;
        // disc = B² − 4·|A|·|C| in D36.
        int256 disc = B * B - 4 * (-A) * negC;
        if (disc < 0) return a;
        uint256 root = Math.sqrt(uint256(disc));
        int256 x = (B - root.toInt256()) * w / (2 * negC);
        if (x <= 0) return 0;
        return uint256(x) > a ? a : uint256(x);
    }

}
