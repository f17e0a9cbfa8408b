// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {IVault} from "../interfaces/IVault.sol";
import {IMarginAccount} from "../interfaces/IMarginAccount.sol";
import {MarginMath} from "../libraries/MarginMath.sol";

/// @title ClearingHouse
/// @notice Sigma's trading engine: two-step orders executed by permissionless keepers at the Chainlink price
/// at execution time, fills with a skew premium and maker/taker fees, lazily accrued skew funding, cross
/// margin with volatility-driven ratios from the RiskManager, and liquidation. Collateral and the pool's
/// assets live in the Vault; every fill settles there zero-sum.
contract ClearingHouse is IClearingHouse, AccessControl, ReentrancyGuardTransient, Multicall {
    using SafeCast for uint256;
    using SafeCast for int256;

    uint256 internal constant WAD = 1e18;
    /// @notice An account may hold positions in at most this many markets (bounds every per-account loop).
    uint256 public constant MAX_MARKETS_PER_ACCOUNT = 8;

    bytes32 public constant PARAM_MIN_DELAY = "minDelay";
    bytes32 public constant PARAM_MAX_AGE = "maxAge";
    bytes32 public constant PARAM_MIN_EXECUTION_FEE = "minExecutionFee";
    bytes32 public constant PARAM_LIQ_REWARD_SHARE = "liqRewardShare";
    bytes32 public constant PARAM_LIQ_REWARD_CAP = "liqRewardCapD18";

    IVault public immutable vault;
    IRiskManager public immutable riskManager;
    uint256 internal immutable _scale;

    mapping(address => mapping(uint256 => Position)) internal _positions;
    /// @dev Per-account state in one slot. `active` stays set after the first trade so the slot never returns
    /// to zero (re-opening then costs a warm write, not a fresh one).
    struct Account {
        uint32 markets; // bitmap of markets with a position
        bool active;
        uint64 marginCallDeadline;
    }

    mapping(address => Account) internal _accounts;
    mapping(uint256 => MarketState) internal _markets;
    mapping(uint256 => Order) internal _orders;
    mapping(address => uint256) public claimableEth;
    uint256 public nextOrderId;

    // Global parameters, packed into one slot.
    uint32 public minDelay;
    uint32 public maxAge;
    uint64 public minExecutionFee;
    uint64 public liqRewardShareD18;
    uint64 public liqRewardCapTokens; // derived from liqRewardCapD18 at set time
    uint256 public liqRewardCapD18;

    /// @dev One market's snapshot plus the account's position in it, reused within a transaction.
    struct MarketView {
        uint256 marketId;
        IRiskManager.MarketRisk risk;
        int256 fundingIndexD18; // including funding pending since the last accrual
    }

    struct FillResult {
        uint256 price;
        uint256 fee;
        int256 realized;
        int256 newSize;
        bool increasesRisk;
    }

    struct Totals {
        int256 pnlD18;
        uint256 imD18;
        uint256 mmD18;
    }

    constructor(IVault vault_, IRiskManager riskManager_, address admin) {
        vault = vault_;
        riskManager = riskManager_;
        _scale = vault_.tokenScale();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setParam(PARAM_MIN_DELAY, 5);
        _setParam(PARAM_MAX_AGE, 10 minutes);
        _setParam(PARAM_MIN_EXECUTION_FEE, 0.0001 ether);
        _setParam(PARAM_LIQ_REWARD_SHARE, 0.2e18);
        _setParam(PARAM_LIQ_REWARD_CAP, 500e18);
    }

    // ================================================================= orders

    /// @inheritdoc IClearingHouse
    function commitOrder(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18)
        external
        payable
        nonReentrant
        returns (uint256 orderId)
    {
        if (sizeDeltaD18 == 0 || marketId >= riskManager.marketCount()) revert ClearingHouseInvalidOrder();
        if (msg.value < minExecutionFee) revert ClearingHouseExecutionFeeTooLow(msg.value, minExecutionFee);
        orderId = nextOrderId++;
        _orders[orderId] = Order({
            account: msg.sender,
            marketId: uint32(marketId), // < MAX_MARKETS, checked above
            executionFee: msg.value.toUint64(),
            sizeDeltaD18: sizeDeltaD18.toInt96(),
            acceptablePriceD18: acceptablePriceD18.toUint96(),
            commitTime: uint64(block.timestamp)
        });
        emit OrderCommitted(
            orderId,
            msg.sender,
            marketId,
            sizeDeltaD18,
            acceptablePriceD18,
            msg.value,
            block.timestamp + minDelay,
            block.timestamp + maxAge
        );
    }

    /// @inheritdoc IClearingHouse
    function executeOrder(uint256 orderId) external nonReentrant returns (bool filled) {
        Order memory o = _orders[orderId];
        if (o.account == address(0)) revert ClearingHouseOrderNotFound(orderId);
        uint256 readyAt = o.commitTime + minDelay;
        if (block.timestamp < readyAt) revert ClearingHouseOrderNotReady(orderId, readyAt);
        uint256 expiresAt = o.commitTime + maxAge;
        if (block.timestamp > expiresAt) revert ClearingHouseOrderExpired(orderId, expiresAt);
        delete _orders[orderId];
        // Read outside the try: an unusable oracle must revert (the order waits), not cancel the order.
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(o.marketId, false);
        try this.fillOrder(o, r) returns (uint256 fillPrice) {
            filled = true;
            emit OrderExecuted(orderId, o.account, msg.sender, fillPrice);
        } catch (bytes memory reason) {
            _requireTraderCausedFailure(reason);
            emit OrderCancelled(orderId, o.account, msg.sender, reason);
        }
        _payEth(msg.sender, o.executionFee);
    }

    /// @inheritdoc IClearingHouse
    function cancelOrder(uint256 orderId) external nonReentrant {
        Order memory o = _orders[orderId];
        if (o.account == address(0)) revert ClearingHouseOrderNotFound(orderId);
        uint256 expiresAt = o.commitTime + maxAge;
        if (block.timestamp <= expiresAt) revert ClearingHouseOrderNotExpired(orderId, expiresAt);
        delete _orders[orderId];
        emit OrderCancelled(orderId, o.account, msg.sender, "");
        _payEth(o.account, o.executionFee);
    }

    /// @notice Fills an order; called by `executeOrder` on itself so that any revert here cancels the order
    /// instead of leaving it to be retried. Not callable by anyone else.
    function fillOrder(Order calldata o, IRiskManager.MarketRisk calldata r) external returns (uint256 fillPrice) {
        if (msg.sender != address(this)) revert ClearingHouseOnlySelf();
        return _fill(o.account, o.marketId, o.sizeDeltaD18, o.acceptablePriceD18, r);
    }

    // ================================================================= liquidation

    /// @inheritdoc IClearingHouse
    function liquidate(address account) external nonReentrant returns (uint256 reward) {
        if (!riskManager.liquidationsAllowed()) revert ClearingHouseLiquidationsPaused();
        uint256 bitmap = _accounts[account].markets;
        MarketView[] memory views = _loadViews(bitmap, true);
        uint256 collateral = vault.collateralOf(account);
        (int256 equity, Totals memory t) = _margin(account, collateral, views);
        if (bitmap == 0 || equity >= t.mmD18.toInt256()) revert ClearingHouseAccountHealthy(account, equity, t.mmD18);

        int256 pnlD18;
        uint256 feeD18;
        uint256 closedNotional;
        for (uint256 i; i < views.length; ++i) {
            (int256 pnl, uint256 fee, uint256 notional) = _closeForLiquidation(account, views[i]);
            pnlD18 += pnl;
            feeD18 += fee;
            closedNotional += notional;
        }
        _accounts[account].markets = 0;
        uint256 feePaid;
        (feePaid, reward) = vault.settleLiquidation(
            account,
            MarginMath.toTokensFloor(pnlD18, _scale),
            Math.ceilDiv(feeD18, _scale),
            msg.sender,
            liqRewardShareD18,
            liqRewardCapTokens
        );
        emit Liquidated(account, msg.sender, closedNotional, feePaid, reward);
    }

    // ================================================================= funding, ETH, params

    /// @inheritdoc IClearingHouse
    function accrueFunding(uint256 marketId) external nonReentrant {
        MarketView memory v = _loadView(marketId, false);
        MarketState storage ms = _markets[marketId];
        _accrue(ms, v);
        emit FundingAccrued(marketId, v.fundingIndexD18, ms.skewD18, v.risk.priceD18);
    }

    /// @inheritdoc IClearingHouse
    function claimEth() external nonReentrant {
        uint256 amount = claimableEth[msg.sender];
        if (amount == 0) revert ClearingHouseNothingToClaim();
        claimableEth[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert ClearingHouseNothingToClaim();
    }

    /// @inheritdoc IClearingHouse
    function setParam(bytes32 name, uint256 value) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParam(name, value);
    }

    // ================================================================= views

    /// @inheritdoc IClearingHouse
    function vaultAddress() external view returns (address) {
        return address(vault);
    }

    /// @inheritdoc IClearingHouse
    function riskManagerAddress() external view returns (address) {
        return address(riskManager);
    }

    /// @inheritdoc IClearingHouse
    function position(address account, uint256 marketId) external view returns (Position memory) {
        return _positions[account][marketId];
    }

    /// @inheritdoc IClearingHouse
    function marketState(uint256 marketId) external view returns (MarketState memory) {
        return _markets[marketId];
    }

    /// @inheritdoc IClearingHouse
    function order(uint256 orderId) external view returns (Order memory) {
        return _orders[orderId];
    }

    /// @inheritdoc IClearingHouse
    function accountMarkets(address account) external view returns (uint256) {
        return _accounts[account].markets;
    }

    /// @inheritdoc IClearingHouse
    function accountSummary(address account) public view returns (AccountSummary memory s) {
        MarketView[] memory views = _loadViews(_accounts[account].markets, false);
        return _summary(account, views);
    }

    /// @inheritdoc IClearingHouse
    function healthBatch(address[] calldata accounts) external view returns (AccountSummary[] memory out) {
        uint256 n = riskManager.marketCount();
        MarketView[] memory all = new MarketView[](n);
        bool[] memory ok = new bool[](n);
        for (uint256 m; m < n; ++m) {
            try riskManager.marketRisk(m, true) returns (IRiskManager.MarketRisk memory r) {
                all[m] = MarketView(m, r, _pendingIndex(_markets[m], r));
                ok[m] = true;
            } catch {}
        }
        out = new AccountSummary[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            uint256 bitmap = _accounts[accounts[i]].markets;
            MarketView[] memory views = new MarketView[](_popcount(bitmap));
            bool priced = true;
            uint256 k;
            for (uint256 m; bitmap >> m != 0; ++m) {
                if (bitmap & (1 << m) == 0) continue;
                if (!ok[m]) priced = false;
                views[k++] = all[m];
            }
            if (priced) out[i] = _summary(accounts[i], views);
        }
    }

    /// @inheritdoc IMarginAccount
    function freeCollateral(address account) external view returns (uint256) {
        if (_accounts[account].markets == 0) return vault.collateralOf(account);
        return accountSummary(account).freeCollateral;
    }

    /// @inheritdoc IClearingHouse
    function liquidationPriceD18(address account, uint256 marketId) external view returns (uint256) {
        Position memory pos = _positions[account][marketId];
        if (pos.sizeD18 == 0) return 0;
        MarketView[] memory views = _loadViews(_accounts[account].markets, false);
        (int256 equity, Totals memory t) = _margin(account, vault.collateralOf(account), views);
        uint256 price;
        uint256 mmr;
        for (uint256 i; i < views.length; ++i) {
            if (views[i].marketId != marketId) continue;
            price = views[i].risk.priceD18;
            mmr = views[i].risk.mmrD18
                + MarginMath.sizeAddOnD18(SignedMath.abs(pos.sizeD18), views[i].risk.sizeAddOnD18, views[i].risk.skewScaleD18);
        }
        // Solve E0 + s·(p − p0) = M_other + |s|·p·mmr for p, holding σ, funding and other markets fixed.
        int256 s = pos.sizeD18;
        int256 mOther = t.mmD18.toInt256() - (MarginMath.notionalUpD18(SignedMath.abs(s), price) * mmr / WAD).toInt256();
        int256 num = mOther - equity + s * price.toInt256() / int256(WAD);
        int256 den = s - (SignedMath.abs(s) * mmr / WAD).toInt256();
        if (den == 0) return 0;
        int256 p = num * int256(WAD) / den;
        return p > 0 ? uint256(p) : 0;
    }

    /// @inheritdoc IClearingHouse
    function quote(uint256 marketId, int256 sizeDeltaD18) external view returns (uint256 fillPriceD18, uint256 feeD18) {
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(marketId, false);
        int256 skew = _markets[marketId].skewD18;
        fillPriceD18 = MarginMath.fillPriceD18(r.priceD18, skew, sizeDeltaD18, r.skewScaleD18);
        feeD18 = MarginMath.tradeFeeD18(skew, sizeDeltaD18, fillPriceD18, r.takerFeeD18, r.makerFeeD18);
    }

    /// @inheritdoc IClearingHouse
    function fundingRatePerDayD18(uint256 marketId) external view returns (int256) {
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(marketId, false);
        // The index moves by rate·price per day; dividing the one-day move by price gives the rate.
        int256 dayMove = MarginMath.fundingIndexDeltaD18(_markets[marketId].skewD18, r.skewScaleD18, r.maxFundingRateD18, WAD, 1 days);
        return dayMove;
    }

    /// @inheritdoc IMarginAccount
    function tradersUnrealizedPnlD18() public view returns (int256 total) {
        uint256 n = riskManager.marketCount();
        for (uint256 m; m < n; ++m) {
            MarketState storage ms = _markets[m];
            if (ms.oiLongD18 == 0 && ms.oiShortD18 == 0) continue;
            IRiskManager.MarketRisk memory r = riskManager.marketRisk(m, false);
            total += _marketTraderPnl(ms, r.priceD18, _pendingIndex(ms, r));
        }
    }

    /// @inheritdoc IMarginAccount
    function netExposureD18() external view returns (uint256 total) {
        uint256 n = riskManager.marketCount();
        for (uint256 m; m < n; ++m) {
            int256 skew = _markets[m].skewD18;
            if (skew == 0) continue;
            total += MarginMath.notionalUpD18(SignedMath.abs(skew), riskManager.priceD18(m));
        }
    }

    // ================================================================= internals: fills

    function _fill(address account, uint256 marketId, int256 delta, uint256 acceptablePrice, IRiskManager.MarketRisk memory r)
        internal
        returns (uint256)
    {
        MarketState storage ms = _markets[marketId];
        MarketView memory v = MarketView(marketId, r, 0);
        _accrue(ms, v);
        Position memory pos = _positions[account][marketId];
        FillResult memory f;
        f.price = MarginMath.fillPriceD18(r.priceD18, ms.skewD18, delta, r.skewScaleD18);
        if (delta > 0 ? f.price > acceptablePrice : f.price < acceptablePrice) {
            revert ClearingHouseAcceptablePriceExceeded(f.price, acceptablePrice);
        }
        f.newSize = pos.sizeD18 + delta;
        f.increasesRisk = SignedMath.abs(f.newSize) > SignedMath.abs(pos.sizeD18)
            || (f.newSize != 0 && pos.sizeD18 != 0 && (f.newSize > 0) != (pos.sizeD18 > 0));
        if (f.increasesRisk && r.breakers != 0) revert ClearingHouseMarketReduceOnly(marketId, r.breakers);

        f.fee = MarginMath.tradeFeeD18(ms.skewD18, delta, f.price, r.takerFeeD18, r.makerFeeD18);
        f.realized = _applyFill(account, marketId, ms, pos, delta, f.price, v.fundingIndexD18);

        if (f.increasesRisk) _checkOpenInterest(v, ms, f.newSize > 0);
        uint256 collateral =
            vault.settleTrade(account, MarginMath.toTokensFloor(f.realized, _scale), Math.ceilDiv(f.fee, _scale));
        if (f.increasesRisk) _checkInitialMargin(account, collateral, v);
        emit PositionModified(account, marketId, delta, f.price, f.newSize, f.realized, f.fee, v.fundingIndexD18);
        return f.price;
    }

    function _checkInitialMargin(address account, uint256 collateral, MarketView memory known) internal view {
        MarketView[] memory views = _loadViewsWith(_accounts[account].markets, known);
        (int256 equity, Totals memory t) = _margin(account, collateral, views);
        if (equity < t.imD18.toInt256()) revert ClearingHouseInsufficientMargin(account, equity, t.imD18);
    }

    /// @dev Applies a fill to a position and to the market's aggregates. Returns the PnL (including funding)
    /// realized on the part the fill closes, D18.
    function _applyFill(
        address account,
        uint256 marketId,
        MarketState storage ms,
        Position memory pos,
        int256 delta,
        uint256 fill,
        int256 index
    ) internal returns (int256 realized) {
        int256 size = pos.sizeD18;
        int256 newSize = size + delta;
        int256 newBasis;
        (newBasis, realized) = _nextCostBasis(size, pos.costBasisD18, delta, fill, index);

        // Aggregates move by exactly what the position moves, so Σ positions == aggregates to the wei.
        ms.skewD18 = (ms.skewD18 + delta).toInt128();
        ms.netCostBasisD18 = (ms.netCostBasisD18 + newBasis - pos.costBasisD18).toInt128();
        if (size > 0) ms.oiLongD18 -= uint256(size).toUint128();
        else if (size < 0) ms.oiShortD18 -= uint256(-size).toUint128();
        if (newSize > 0) ms.oiLongD18 += uint256(newSize).toUint128();
        else if (newSize < 0) ms.oiShortD18 += uint256(-newSize).toUint128();

        if (newSize == 0) {
            // A closed position's basis is exactly zero; the slot keeps `used` so re-opening is a warm write.
            _positions[account][marketId] = Position(0, 0, true);
            _accounts[account].markets &= ~uint32(1 << marketId);
        } else {
            _positions[account][marketId] = Position(newSize.toInt128(), newBasis.toInt120(), true);
            if (size == 0) {
                Account storage acc = _accounts[account];
                uint32 bitmap = acc.markets;
                if (_popcount(bitmap) >= MAX_MARKETS_PER_ACCOUNT) revert ClearingHouseTooManyMarkets(account);
                acc.markets = bitmap | uint32(1 << marketId);
                acc.active = true;
            }
        }
    }

    /// @dev Cost basis after a fill and the PnL (including funding) realized on the part it closes.
    function _nextCostBasis(int256 size, int256 basis, int256 delta, uint256 fill, int256 index)
        internal
        pure
        returns (int256 newBasis, int256 realized)
    {
        if (size == 0 || (size > 0) == (delta > 0)) {
            return (basis + MarginMath.basisDeltaD18(delta, fill, index), 0);
        }
        uint256 absSize = SignedMath.abs(size);
        uint256 closeAbs = Math.min(absSize, SignedMath.abs(delta));
        // Toward +∞: the closed part's basis rounds up, so the realized PnL rounds against the trader.
        int256 closedBasis = MarginMath.mulDivSigned(basis, closeAbs, absSize, true);
        int256 closedSize = size > 0 ? closeAbs.toInt256() : -closeAbs.toInt256();
        realized = MarginMath.pnlD18(closedSize, closedBasis, fill, index);
        newBasis = basis - closedBasis;
        if (SignedMath.abs(delta) > absSize) {
            // Flip: the rest of the trade opens a new position at the fill price.
            newBasis = MarginMath.basisDeltaD18(size + delta, fill, index);
        }
    }

    /// @dev Closes an account's whole position in one market at the oracle price with the skew premium.
    /// Returns the realized PnL (including funding), the liquidation fee and the closed notional (D18).
    function _closeForLiquidation(address account, MarketView memory v)
        internal
        returns (int256 pnl, uint256 fee, uint256 notional)
    {
        MarketState storage ms = _markets[v.marketId];
        _accrue(ms, v);
        Position memory pos = _positions[account][v.marketId];
        int256 delta = -int256(pos.sizeD18);
        uint256 fill = MarginMath.fillPriceD18(v.risk.priceD18, ms.skewD18, delta, v.risk.skewScaleD18);
        pnl = _applyFill(account, v.marketId, ms, pos, delta, fill, v.fundingIndexD18);
        notional = MarginMath.notionalUpD18(SignedMath.abs(delta), fill);
        fee = Math.mulDiv(notional, v.risk.liqFeeD18, WAD, Math.Rounding.Ceil);
        emit PositionModified(account, v.marketId, delta, fill, 0, pnl, fee, v.fundingIndexD18);
    }

    /// @dev Open interest of the side the trade grew must stay within OiCapRatio × the pool's capacity, taken
    /// as its deposited assets less what it owes this market's traders (their unrealized profit). Other
    /// markets' unrealized PnL is left out so the check stays O(1) per fill; LPs' ERC-4626 NAV includes it all.
    function _checkOpenInterest(MarketView memory v, MarketState storage ms, bool longSide) internal view {
        uint256 oiNotional = MarginMath.notionalUpD18(longSide ? ms.oiLongD18 : ms.oiShortD18, v.risk.priceD18);
        int256 capacity = (vault.poolBalance() * _scale).toInt256();
        int256 owed = _marketTraderPnl(ms, v.risk.priceD18, v.fundingIndexD18);
        if (owed > 0) capacity -= owed;
        uint256 cap = capacity <= 0 ? 0 : Math.mulDiv(uint256(capacity), v.risk.oiCapRatioD18, WAD);
        if (oiNotional > cap) revert ClearingHouseOpenInterestCap(v.marketId, oiNotional, cap);
    }

    /// @dev Folds funding since the last accrual into the market's index at the snapshot's price.
    function _accrue(MarketState storage ms, MarketView memory v) internal {
        uint256 last = ms.lastFundingTime;
        if (last == block.timestamp) {
            v.fundingIndexD18 = ms.fundingIndexD18;
            return;
        }
        int256 index = ms.fundingIndexD18
            + MarginMath.fundingIndexDeltaD18(ms.skewD18, v.risk.skewScaleD18, v.risk.maxFundingRateD18, v.risk.priceD18, last == 0 ? 0 : block.timestamp - last);
        ms.fundingIndexD18 = index.toInt128();
        ms.lastFundingTime = uint64(block.timestamp);
        v.fundingIndexD18 = index;
    }

    function _pendingIndex(MarketState storage ms, IRiskManager.MarketRisk memory r) internal view returns (int256) {
        uint256 last = ms.lastFundingTime;
        if (last == 0 || last == block.timestamp) return ms.fundingIndexD18;
        return ms.fundingIndexD18
            + MarginMath.fundingIndexDeltaD18(ms.skewD18, r.skewScaleD18, r.maxFundingRateD18, r.priceD18, block.timestamp - last);
    }

    // ================================================================= internals: margin

    function _loadView(uint256 marketId, bool forLiquidation) internal view returns (MarketView memory v) {
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(marketId, forLiquidation);
        v = MarketView(marketId, r, _pendingIndex(_markets[marketId], r));
    }

    function _loadViews(uint256 bitmap, bool forLiquidation) internal view returns (MarketView[] memory views) {
        views = new MarketView[](_popcount(bitmap));
        uint256 k;
        for (uint256 m; bitmap >> m != 0; ++m) {
            if (bitmap & (1 << m) != 0) views[k++] = _loadView(m, forLiquidation);
        }
    }

    /// @dev Like `_loadViews` but reuses an already loaded market (saves its oracle reads).
    function _loadViewsWith(uint256 bitmap, MarketView memory known) internal view returns (MarketView[] memory views) {
        views = new MarketView[](_popcount(bitmap));
        uint256 k;
        for (uint256 m; bitmap >> m != 0; ++m) {
            if (bitmap & (1 << m) == 0) continue;
            views[k++] = m == known.marketId ? known : _loadView(m, false);
        }
    }

    /// @dev Equity and requirements of an account given its collateral and the snapshots of its markets.
    function _margin(address account, uint256 collateral, MarketView[] memory views)
        internal
        view
        returns (int256 equity, Totals memory t)
    {
        for (uint256 i; i < views.length; ++i) {
            MarketView memory v = views[i];
            Position memory pos = _positions[account][v.marketId];
            if (pos.sizeD18 == 0) continue;
            uint256 absSize = SignedMath.abs(pos.sizeD18);
            t.pnlD18 += MarginMath.pnlD18(pos.sizeD18, pos.costBasisD18, v.risk.priceD18, v.fundingIndexD18);
            t.imD18 += MarginMath.requirementD18(absSize, v.risk.priceD18, v.risk.imrD18, v.risk.sizeAddOnD18, v.risk.skewScaleD18);
            t.mmD18 += MarginMath.requirementD18(absSize, v.risk.priceD18, v.risk.mmrD18, v.risk.sizeAddOnD18, v.risk.skewScaleD18);
        }
        equity = (collateral * _scale).toInt256() + t.pnlD18;
    }

    function _summary(address account, MarketView[] memory views) internal view returns (AccountSummary memory s) {
        s.collateral = vault.collateralOf(account);
        (int256 equity, Totals memory t) = _margin(account, s.collateral, views);
        s.unrealizedPnlD18 = t.pnlD18;
        s.equityD18 = equity;
        s.initialRequirementD18 = t.imD18;
        s.maintenanceRequirementD18 = t.mmD18;
        // Unrealized profit is not withdrawable: free = min(collateral, equity) − initial requirement.
        int256 base = Math.min(s.collateral * _scale, equity < 0 ? 0 : uint256(equity)).toInt256() - t.imD18.toInt256();
        s.freeCollateral = base <= 0 ? 0 : uint256(base) / _scale;
        if (t.mmD18 == 0) {
            s.healthD18 = type(uint256).max;
        } else {
            s.healthD18 = equity <= 0 ? 0 : Math.mulDiv(uint256(equity), WAD, t.mmD18);
            s.liquidatable = equity < t.mmD18.toInt256();
        }
    }

    /// @dev Traders' aggregate PnL (including funding) in one market, from its aggregates: O(1).
    function _marketTraderPnl(MarketState storage ms, uint256 price, int256 index) internal view returns (int256) {
        return MarginMath.pnlD18(ms.skewD18, ms.netCostBasisD18, price, index);
    }

    // ================================================================= internals: misc

    /// @dev Only errors a trader controls cancel an order; anything else (out of gas, an unexpected revert)
    /// reverts the execution so a keeper cannot force a cancellation by starving the fill of gas.
    function _requireTraderCausedFailure(bytes memory reason) internal pure {
        bytes4 sel;
        if (reason.length >= 4) sel = bytes4(reason);
        if (
            sel == ClearingHouseAcceptablePriceExceeded.selector || sel == ClearingHouseInsufficientMargin.selector
                || sel == ClearingHouseMarketReduceOnly.selector || sel == ClearingHouseOpenInterestCap.selector
                || sel == ClearingHouseTooManyMarkets.selector || sel == MarginMath.MarginMathInvalidFillPrice.selector
                || sel == IVault.VaultPoolInsufficient.selector || sel == SafeCast.SafeCastOverflowedIntDowncast.selector
        ) return;
        assembly ("memory-safe") {
            revert(add(reason, 32), mload(reason))
        }
    }

    /// @dev Pushes ETH with a gas cap; a receiver that reverts or burns gas gets a claimable credit instead,
    /// so it can never block an execution or a cancellation.
    function _payEth(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount, gas: 30_000}("");
        if (!ok) {
            claimableEth[to] += amount;
            emit EthCredited(to, amount);
        }
    }

    function _setParam(bytes32 name, uint256 value) internal {
        uint256 old;
        if (name == PARAM_MIN_DELAY) {
            _bound(name, value, 1, 1 hours);
            if (maxAge != 0 && value >= maxAge) revert ClearingHouseParamOutOfBounds(name, value, 1, maxAge - 1);
            old = minDelay;
            minDelay = uint32(value);
        } else if (name == PARAM_MAX_AGE) {
            _bound(name, value, uint256(minDelay) + 1, 1 days);
            old = maxAge;
            maxAge = uint32(value);
        } else if (name == PARAM_MIN_EXECUTION_FEE) {
            _bound(name, value, 0, 0.1 ether);
            old = minExecutionFee;
            minExecutionFee = uint64(value);
        } else if (name == PARAM_LIQ_REWARD_SHARE) {
            _bound(name, value, 0, WAD);
            old = liqRewardShareD18;
            liqRewardShareD18 = uint64(value);
        } else if (name == PARAM_LIQ_REWARD_CAP) {
            _bound(name, value, 0, 1e24);
            old = liqRewardCapD18;
            liqRewardCapD18 = value;
            liqRewardCapTokens = uint64(value / _scale);
        } else {
            revert ClearingHouseParamOutOfBounds(name, value, 0, 0);
        }
        emit ParamSet(name, old, value);
    }

    function _bound(bytes32 name, uint256 value, uint256 min, uint256 max) internal pure {
        if (value < min || value > max) revert ClearingHouseParamOutOfBounds(name, value, min, max);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        // Kernighan: one iteration per set bit (at most MAX_MARKETS_PER_ACCOUNT in practice).
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }
}
