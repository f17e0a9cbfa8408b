// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {ISigmaLens} from "../interfaces/ISigmaLens.sol";
import {MarginMath} from "../libraries/MarginMath.sol";

/// @title SigmaLens
/// @notice Integrator views over the ClearingHouse and RiskManager. Stateless.
contract SigmaLens is ISigmaLens {
    using SafeCast for uint256;

    uint256 internal constant WAD = 1e18;

    IClearingHouse public immutable clearingHouse;
    IRiskManager public immutable riskManager;

    constructor(IClearingHouse clearingHouse_) {
        clearingHouse = clearingHouse_;
        riskManager = IRiskManager(clearingHouse_.riskManagerAddress());
    }

    /// @inheritdoc ISigmaLens
    function liquidationPriceD18(address account, uint256 marketId) external view returns (uint256) {
        int256 s = clearingHouse.position(account, marketId).sizeD18;
        if (s == 0) return 0;
        IClearingHouse.AccountSummary memory a = clearingHouse.accountSummary(account);
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(marketId, false);
        uint256 absS = SignedMath.abs(s);
        uint256 mmr = r.mmrD18 + MarginMath.sizeAddOnD18(absS, r.sizeAddOnD18, r.skewScaleD18);
        // Solve E0 + s·(p − p0) = M_other + |s|·p·mmr for p.
        int256 mOther = a.maintenanceRequirementD18.toInt256()
            - MarginMath.requirementD18(absS, r.priceD18, r.mmrD18, r.sizeAddOnD18, r.skewScaleD18).toInt256();
        int256 num = mOther - a.equityD18 + s * r.priceD18.toInt256() / int256(WAD);
        int256 den = s - (absS * mmr / WAD).toInt256();
        if (den == 0) return 0;
        int256 p = num * int256(WAD) / den;
        return p > 0 ? uint256(p) : 0;
    }

    /// @inheritdoc ISigmaLens
    function healthBatch(address[] calldata accounts) external view returns (IClearingHouse.AccountSummary[] memory out) {
        out = new IClearingHouse.AccountSummary[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            try clearingHouse.accountSummary(accounts[i]) returns (IClearingHouse.AccountSummary memory a) {
                out[i] = a;
            } catch {}
        }
    }

    /// @inheritdoc ISigmaLens
    function quote(uint256 marketId, int256 sizeDeltaD18) external view returns (uint256 fillPriceD18, uint256 feeD18) {
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(marketId, false);
        int256 skew = clearingHouse.marketState(marketId).skewD18;
        fillPriceD18 = MarginMath.fillPriceD18(r.priceD18, skew, sizeDeltaD18, r.skewScaleD18);
        feeD18 = MarginMath.tradeFeeD18(skew, sizeDeltaD18, fillPriceD18, r.takerFeeD18, r.makerFeeD18);
    }

    /// @inheritdoc ISigmaLens
    function fundingRatePerDayD18(uint256 marketId) external view returns (int256) {
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(marketId, false);
        // The index moves by rate·price per day: at a price of 1 the one-day move is the rate.
        return MarginMath.fundingIndexDeltaD18(
            clearingHouse.marketState(marketId).skewD18, r.skewScaleD18, r.maxFundingRateD18, WAD, 1 days
        );
    }

    /// @inheritdoc ISigmaLens
    function breakEvenPriceD18(address account, uint256 marketId) external view returns (uint256) {
        IClearingHouse.Position memory pos = clearingHouse.position(account, marketId);
        if (pos.sizeD18 == 0) return 0;
        IClearingHouse.MarketState memory ms = clearingHouse.marketState(marketId);
        // PnL = size·(p − index) − basis = 0  ⇒  p = basis/size + index.
        int256 p = int256(pos.costBasisD18) * int256(WAD) / pos.sizeD18 + ms.fundingIndexD18;
        return p > 0 ? uint256(p) : 0;
    }
}
