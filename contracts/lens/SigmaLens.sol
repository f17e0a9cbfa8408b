// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {ISigmaLens} from "../interfaces/ISigmaLens.sol";
import {MarginMath} from "../libraries/MarginMath.sol";
import {IVault} from "../interfaces/IVault.sol";

/// @notice The ClearingHouse's margin parameters the lens needs (public getters outside IClearingHouse).
interface IClearingHouseMarginParams {
    /// @notice Below hardFloor × maintenance requirement an account is liquidatable at once (D18).
    function hardFloorD18() external view returns (uint64);
    /// @notice How long after its deadline a margin call still makes an account liquidatable (seconds).
    function marginCallExpiry() external view returns (uint32);
}

/// @title SigmaLens
/// @notice Integrator views over the ClearingHouse and RiskManager. Stateless.
contract SigmaLens is ISigmaLens {
    using SafeCast for uint256;

    /// @notice One market's snapshot as the ClearingHouse's views use it.
    struct MarketSnapshot {
        uint256 marketId;
        bool priced; // false when RiskManager.marketRisk(marketId, false) reverts (stale price, …): `risk` is zero
        IRiskManager.MarketRisk risk;
        int256 fundingIndexD18; // including funding pending since the last accrual
    }

    uint256 internal constant WAD = 1e18;
    /// @dev Account market bitmaps are 32 bits wide in the ClearingHouse.
    uint256 internal constant MAX_MARKETS = 32;

    IClearingHouse public immutable clearingHouse;
    IRiskManager public immutable riskManager;
    IVault public immutable vault;

    constructor(IClearingHouse clearingHouse_) {
        clearingHouse = clearingHouse_;
        riskManager = IRiskManager(clearingHouse_.riskManagerAddress());
        vault = IVault(clearingHouse_.vaultAddress());
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
    /// @dev Same figures as `ClearingHouse.accountSummary` (the same MarginMath calls in the same order), but each
    /// market's snapshot (`RiskManager.marketRisk(m, false)` and the pending funding index) is read once per
    /// batch, and an account's margin-call deadline only when its equity is below maintenance. Per account:
    /// its market bitmap, one position per market and its collateral.
    function healthBatch(address[] calldata accounts) external view returns (IClearingHouse.AccountSummary[] memory out) {
        out = new IClearingHouse.AccountSummary[](accounts.length);
        Batch memory b = _batch();
        for (uint256 i; i < accounts.length; ++i) {
            _evaluate(b, accounts[i], out[i]);
        }
    }

    /// @notice Every market's risk snapshot (price and its round time, σ, ratios, breakers) and pending funding
    /// index: keepers compare it between blocks to know when a new price or σ round needs a full health scan.
    function marketSnapshots() external view returns (MarketSnapshot[] memory out) {
        uint256 n = riskManager.marketCount();
        out = new MarketSnapshot[](n);
        for (uint256 m; m < n; ++m) {
            out[m].marketId = m;
            try this.marketView(m) returns (IRiskManager.MarketRisk memory r, int256 index) {
                out[m].priced = true;
                out[m].risk = r;
                out[m].fundingIndexD18 = index;
            } catch {}
        }
    }

    /// @notice What the ClearingHouse's views load for one market: `RiskManager.marketRisk(marketId, false)` and
    /// the funding index including funding pending since the last accrual. Reverts where they revert.
    function marketView(uint256 marketId) external view returns (IRiskManager.MarketRisk memory r, int256 fundingIndexD18) {
        r = riskManager.marketRisk(marketId, false);
        fundingIndexD18 = _pendingIndex(clearingHouse.marketState(marketId), r);
    }

    /// @dev Everything a batch reads once: the ClearingHouse's margin parameters and the markets' snapshots
    /// (loaded lazily, the first time an account of the batch holds the market).
    struct Batch {
        uint256 scale;
        uint256 hardFloorD18;
        uint256 marginCallExpiry;
        uint256 loaded; // bitmap: market snapshot read
        uint256 unpriced; // bitmap: marketRisk reverted (stale, unknown market…)
        IRiskManager.MarketRisk[] risk;
        int256[] index;
    }

    function _batch() internal view returns (Batch memory b) {
        IClearingHouseMarginParams p = IClearingHouseMarginParams(address(clearingHouse));
        b.scale = vault.tokenScale();
        b.hardFloorD18 = p.hardFloorD18();
        b.marginCallExpiry = p.marginCallExpiry();
        b.risk = new IRiskManager.MarketRisk[](MAX_MARKETS);
        b.index = new int256[](MAX_MARKETS);
    }

    /// @dev Loads market `m` into the batch if needed; false when it cannot be priced now.
    function _market(Batch memory b, uint256 m) internal view returns (bool) {
        uint256 bit = 1 << m;
        if (b.loaded & bit == 0) {
            b.loaded |= bit;
            // Through an external self-call so that anything `accountSummary` would revert on while loading the
            // market (oracle checks, the pending funding) marks it unpriced instead of failing the batch.
            try this.marketView(m) returns (IRiskManager.MarketRisk memory r, int256 index) {
                b.risk[m] = r;
                b.index[m] = index;
            } catch {
                b.unpriced |= bit;
            }
        }
        return b.unpriced & bit == 0;
    }

    /// @dev `ClearingHouse._summary` over the batch's snapshots; leaves `s` all zero when one of the account's
    /// markets cannot be priced (where `accountSummary` reverts).
    function _evaluate(Batch memory b, address account, IClearingHouse.AccountSummary memory s) internal view {
        uint256 bitmap = clearingHouse.accountMarkets(account);
        for (uint256 m; bitmap >> m != 0; ++m) {
            if (bitmap & (1 << m) != 0 && (m >= MAX_MARKETS || !_market(b, m))) return;
        }
        int256 pnl;
        uint256 im;
        uint256 mm;
        for (uint256 m; bitmap >> m != 0; ++m) {
            if (bitmap & (1 << m) == 0) continue;
            IClearingHouse.Position memory pos = clearingHouse.position(account, m);
            if (pos.sizeD18 == 0) continue;
            IRiskManager.MarketRisk memory r = b.risk[m];
            uint256 absSize = SignedMath.abs(pos.sizeD18);
            pnl += MarginMath.pnlD18(pos.sizeD18, pos.costBasisD18, r.priceD18, b.index[m]);
            im += MarginMath.requirementD18(absSize, r.priceD18, r.imrD18, r.sizeAddOnD18, r.skewScaleD18);
            mm += MarginMath.requirementD18(absSize, r.priceD18, r.mmrD18, r.sizeAddOnD18, r.skewScaleD18);
        }
        s.collateral = vault.collateralOf(account);
        int256 equity = (s.collateral * b.scale).toInt256() + pnl;
        s.unrealizedPnlD18 = pnl;
        s.equityD18 = equity;
        s.initialRequirementD18 = im;
        s.maintenanceRequirementD18 = mm;
        int256 base = Math.min(s.collateral * b.scale, equity < 0 ? 0 : uint256(equity)).toInt256() - im.toInt256();
        s.freeCollateral = base <= 0 ? 0 : uint256(base) / b.scale;
        s.healthD18 = mm == 0 ? type(uint256).max : (equity <= 0 ? 0 : Math.mulDiv(uint256(equity), WAD, mm));
        if (mm == 0 || equity >= mm.toInt256()) return; // Healthy; no margin call to report
        uint256 deadline = clearingHouse.marginCallDeadline(account);
        IClearingHouse.AccountStatus st;
        if (equity < Math.mulDiv(mm, b.hardFloorD18, WAD).toInt256()) st = IClearingHouse.AccountStatus.Liquidatable;
        else if (deadline == 0 || block.timestamp > deadline + b.marginCallExpiry) st = IClearingHouse.AccountStatus.MarginCallable;
        else if (block.timestamp < deadline) st = IClearingHouse.AccountStatus.MarginCalled;
        else st = IClearingHouse.AccountStatus.Liquidatable;
        s.status = st;
        s.liquidatable = st == IClearingHouse.AccountStatus.Liquidatable;
        if (st == IClearingHouse.AccountStatus.MarginCalled || s.liquidatable) s.marginCallDeadline = deadline;
    }

    /// @dev `ClearingHouse._pendingIndex`: the funding index including funding pending since the last accrual.
    function _pendingIndex(IClearingHouse.MarketState memory ms, IRiskManager.MarketRisk memory r) internal view returns (int256) {
        uint256 last = ms.lastFundingTime;
        if (last == 0 || last >= block.timestamp) return ms.fundingIndexD18;
        return ms.fundingIndexD18
            + MarginMath.fundingIndexDeltaD18(ms.skewD18, r.skewScaleD18, r.maxFundingRateD18, r.priceD18, block.timestamp - last);
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
