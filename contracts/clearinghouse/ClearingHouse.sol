// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {IVault} from "../interfaces/IVault.sol";
import {IMarginAccount} from "../interfaces/IMarginAccount.sol";
import {MarginMath} from "../libraries/MarginMath.sol";
import {LiquidationMath} from "./LiquidationMath.sol";
import {ClearingHouseParams} from "./ClearingHouseParams.sol";
import {Roles} from "../libraries/Roles.sol";
import {Breakers} from "../libraries/Breakers.sol";

/// @title ClearingHouse
/// @notice Sigma's trading engine: two-step orders executed by permissionless keepers at the price of the
/// first Chainlink round after their commit (F5), fills with a skew premium and maker/taker fees, lazily accrued skew funding, cross
/// margin with volatility-driven ratios from the RiskManager, and liquidation. Collateral and the pool's
/// assets live in the Vault; every fill settles there zero-sum.
contract ClearingHouse is IClearingHouse, ReentrancyGuardTransient {
    using SafeCast for uint256;
    using SafeCast for int256;

    uint256 internal constant WAD = 1e18;
    /// @notice An account may hold positions in at most this many markets (bounds every per-account loop).
    uint256 public constant MAX_MARKETS_PER_ACCOUNT = 8;


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
    mapping(uint256 => Trigger) internal _triggers;

    uint8 public constant ORDER_CONDITIONAL = 1;
    uint8 public constant ORDER_TRIGGER_ABOVE = 2;
    uint8 public constant ORDER_REDUCE_ONLY = 4;
    /// @notice The longest a conditional order may live.
    uint256 public constant MAX_CONDITIONAL_LIFETIME = 90 days;
    mapping(address => uint256) public claimableEth;
    uint256 public nextOrderId;

    /// @dev Global parameters, set through `setParam` (bounds, events: ClearingHouseParams).
    ClearingHouseParams.Params internal _p;

    /// @dev Per-market liquidation rate limit state.
    struct LiquidationWindow {
        uint64 start;
        uint192 sizeD18;
    }

    mapping(uint256 => LiquidationWindow) public liquidationWindows;

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

    /// @dev Roles live in the RiskManager, Sigma's governance hub: one place to grant and revoke them.
    constructor(IVault vault_, IRiskManager riskManager_) {
        vault = vault_;
        riskManager = riskManager_;
        _scale = vault_.tokenScale();
        ClearingHouseParams.setDefaults(_p, _scale);
    }

    // ================================================================= orders
    // Functions that make no value-moving external call (commit, modify, flag, clear, accrue) need no
    // reentrancy guard: re-entering them from a payout callback only sees settled state.

    /// @inheritdoc IClearingHouse
    function commitOrder(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18)
        external
        payable
        returns (uint256 orderId)
    {
        orderId = _commit(marketId, sizeDeltaD18, acceptablePriceD18, 0);
        emit OrderCommitted(
            orderId, msg.sender, marketId, sizeDeltaD18, acceptablePriceD18, msg.value, block.timestamp + _p.minDelay, block.timestamp + _p.maxAge
        );
    }

    /// @inheritdoc IClearingHouse
    function commitConditionalOrder(
        uint256 marketId,
        int256 sizeDeltaD18,
        uint256 acceptablePriceD18,
        uint256 triggerPriceD18,
        bool triggerAbove,
        bool reduceOnly,
        uint256 expiresAt
    ) external payable returns (uint256 orderId) {
        uint8 flags = ORDER_CONDITIONAL | (triggerAbove ? ORDER_TRIGGER_ABOVE : 0) | (reduceOnly ? ORDER_REDUCE_ONLY : 0);
        orderId = _commit(marketId, sizeDeltaD18, acceptablePriceD18, flags);
        _setTrigger(orderId, marketId, flags, triggerPriceD18, expiresAt);
        emit OrderCommitted(
            orderId, msg.sender, marketId, sizeDeltaD18, acceptablePriceD18, msg.value, block.timestamp + _p.minDelay, expiresAt
        );
        emit OrderTriggerSet(orderId, triggerPriceD18, triggerAbove, reduceOnly, expiresAt);
    }

    /// @inheritdoc IClearingHouse
    function modifyOrder(
        uint256 orderId,
        int256 sizeDeltaD18,
        uint256 acceptablePriceD18,
        uint256 triggerPriceD18,
        uint256 expiresAt
    ) external {
        Order storage o = _orders[orderId];
        if (o.account != msg.sender || o.flags & ORDER_CONDITIONAL == 0) revert ClearingHouseNotOrderOwner(orderId, msg.sender);
        if (sizeDeltaD18 == 0) revert ClearingHouseInvalidOrder();
        o.sizeDeltaD18 = sizeDeltaD18.toInt96();
        o.acceptablePriceD18 = acceptablePriceD18.toUint96();
        o.commitTime = uint64(block.timestamp);
        _setTrigger(orderId, o.marketId, o.flags, triggerPriceD18, expiresAt);
        emit OrderModified(orderId, sizeDeltaD18, acceptablePriceD18);
        emit OrderTriggerSet(
            orderId, triggerPriceD18, o.flags & ORDER_TRIGGER_ABOVE != 0, o.flags & ORDER_REDUCE_ONLY != 0, expiresAt
        );
    }

    function _commit(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18, uint8 flags)
        internal
        returns (uint256 orderId)
    {
        if (sizeDeltaD18 == 0 || marketId >= riskManager.marketCount()) revert ClearingHouseInvalidOrder();
        if (msg.value < _p.minExecutionFee) revert ClearingHouseExecutionFeeTooLow(msg.value, _p.minExecutionFee);
        orderId = nextOrderId++;
        _orders[orderId] = Order({
            account: msg.sender,
            marketId: uint8(marketId), // < MAX_MARKETS (32), checked above
            flags: flags,
            executionFee: msg.value.toUint64(),
            sizeDeltaD18: sizeDeltaD18.toInt96(),
            acceptablePriceD18: acceptablePriceD18.toUint96(),
            commitTime: uint64(block.timestamp)
        });
    }

    /// @dev Validation (expiry, trigger, F5's resting-trigger rule) lives in the linked library (size).
    function _setTrigger(uint256 orderId, uint256 marketId, uint8 flags, uint256 triggerPriceD18, uint256 expiresAt) internal {
        ClearingHouseParams.checkTrigger(_p, address(riskManager), marketId, flags & ORDER_TRIGGER_ABOVE != 0, triggerPriceD18, expiresAt);
        _triggers[orderId] = Trigger(triggerPriceD18.toUint96(), uint64(expiresAt));
    }

    function _met(uint8 flags, uint256 price, uint256 trigger) internal pure returns (bool) {
        return flags & ORDER_TRIGGER_ABOVE != 0 ? price >= trigger : price <= trigger;
    }

    function _expiry(uint256 orderId, Order memory o) internal view returns (uint256) {
        return o.flags & ORDER_CONDITIONAL != 0 ? _triggers[orderId].expiresAt : o.commitTime + _p.maxAge;
    }

    /// @inheritdoc IClearingHouse
    function executeOrder(uint256 orderId) external nonReentrant returns (bool filled) {
        Order memory o = _orders[orderId];
        if (o.account == address(0)) revert ClearingHouseOrderNotFound(orderId);
        uint256 readyAt = o.commitTime + _p.minDelay;
        if (block.timestamp < readyAt) revert ClearingHouseOrderNotReady(orderId, readyAt);
        uint256 expiresAt = _expiry(orderId, o);
        if (block.timestamp > expiresAt) revert ClearingHouseOrderExpired(orderId, expiresAt);
        // Read outside the try: an unusable oracle must revert (the order waits), not cancel the order.
        IRiskManager.MarketRisk memory r = riskManager.marketRisk(o.marketId, false);
        if (r.priceUpdatedAt <= o.commitTime) revert ClearingHouseAwaitingPriceRound(orderId, r.priceUpdatedAt, o.commitTime);
        bool conditional = o.flags & ORDER_CONDITIONAL != 0;
        uint256 trigger;
        if (conditional) {
            trigger = _triggers[orderId].triggerPriceD18;
            if (!_met(o.flags, r.priceD18, trigger)) revert ClearingHouseOrderNotTriggered(orderId, r.priceD18, trigger);
        }
        // F5: the fill uses the first round after the commit (of the trigger's current run), whoever executes
        // and whenever: the executor's timing does not choose the price.
        (uint256 basePrice, uint256 roundAt, bool exhausted, bool jumped) = ClearingHouseParams.fillRound(
            address(riskManager), o.marketId, r.priceD18, o.commitTime, trigger, o.flags & ORDER_TRIGGER_ABOVE != 0
        );
        if (conditional) {
            if (exhausted || block.timestamp - roundAt > _p.maxAge) {
                // The run began too long ago to fill at its first round, and a later round would be the
                // executor's pick. Re-arm: the order now fills at the first round after this moment (if its
                // trigger still holds), as a market order committed now would. Never blocks a stop-loss.
                _orders[orderId].commitTime = uint64(block.timestamp);
                emit OrderRearmed(orderId, msg.sender);
                return false;
            }
            delete _triggers[orderId];
        } else if (exhausted) {
            revert ClearingHouseFillRoundUnknown(orderId);
        }
        if (jumped) r.breakers |= Breakers.PRICE_JUMP;
        delete _orders[orderId];
        try this.fillOrder(o, r, basePrice) returns (uint256 fillPrice) {
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
        uint256 expiresAt = _expiry(orderId, o);
        bool ownerMayCancel = o.flags & ORDER_CONDITIONAL != 0 && msg.sender == o.account;
        if (block.timestamp <= expiresAt && !ownerMayCancel) revert ClearingHouseOrderNotExpired(orderId, expiresAt);
        delete _orders[orderId];
        if (o.flags & ORDER_CONDITIONAL != 0) delete _triggers[orderId];
        emit OrderCancelled(orderId, o.account, msg.sender, "");
        _payEth(o.account, o.executionFee);
    }

    /// @notice Fills an order; called by `executeOrder` on itself so that any revert here cancels the order
    /// instead of leaving it to be retried. Not callable by anyone else.
    /// `basePriceD18` is the oracle price of the order's fill round; margin, funding and caps use `r` (latest).
    function fillOrder(Order calldata o, IRiskManager.MarketRisk calldata r, uint256 basePriceD18) external returns (uint256 fillPrice) {
        if (msg.sender != address(this)) revert ClearingHouseOnlySelf();
        int256 delta = o.sizeDeltaD18;
        if (o.flags & ORDER_REDUCE_ONLY != 0) {
            // Clamp to the position: a reduce-only order closes at most what is open, never flips or opens.
            int256 size = _positions[o.account][o.marketId].sizeD18;
            if (size == 0 || (size > 0) == (delta > 0)) revert ClearingHouseReduceOnly(o.marketId);
            if (SignedMath.abs(delta) > SignedMath.abs(size)) delta = -size;
        }
        return _fill(o.account, o.marketId, delta, o.acceptablePriceD18, r, basePriceD18);
    }

    // ================================================================= margin calls and liquidation

    /// @inheritdoc IClearingHouse
    function flagMarginCall(address account) external returns (uint256 deadline) {
        MarketView[] memory views = _loadViews(_accounts[account].markets, false);
        (int256 equity, Totals memory t) = _margin(account, vault.collateralOf(account), views);
        AccountStatus st = _status(equity, t.mmD18, _accounts[account].marginCallDeadline);
        if (st != AccountStatus.MarginCallable) revert ClearingHouseCannotFlag(account, st);
        deadline = block.timestamp + _p.marginCallGrace;
        _accounts[account].marginCallDeadline = uint64(deadline);
        emit MarginCallFlagged(account, msg.sender, deadline, equity, t.mmD18);
    }

    /// @inheritdoc IClearingHouse
    function clearMarginCall(address account) external {
        if (!_clearIfHealthy(account)) revert ClearingHouseCannotFlag(account, AccountStatus.MarginCalled);
    }

    /// @inheritdoc IMarginAccount
    function onCollateralAdded(address account) external {
        if (msg.sender != address(vault)) revert ClearingHouseOnlySelf();
        if (_accounts[account].marginCallDeadline != 0) _clearIfHealthy(account);
    }

    /// @inheritdoc IClearingHouse
    function liquidate(address account) external nonReentrant returns (uint256 reward) {
        MarketView[] memory views = _loadViews(_accounts[account].markets, true);
        // The sequencer flag is the same in every market's snapshot.
        if (views.length != 0 && views[0].risk.breakers & Breakers.SEQUENCER != 0) revert ClearingHouseLiquidationsPaused();
        bool done;
        (done, reward) = _liquidate(account, views, true);
    }

    /// @inheritdoc IClearingHouse
    function liquidateBatch(address[] calldata accounts) external nonReentrant returns (uint256 liquidated, uint256 reward) {
        // One cheap read of the first market for the sequencer flag (shared by all markets).
        if (riskManager.marketRisk(0, false).breakers & Breakers.SEQUENCER != 0) revert ClearingHouseLiquidationsPaused();
        // One oracle read per market for the whole batch; funding is accrued once per market too.
        uint256 n = riskManager.marketCount();
        MarketView[] memory all = new MarketView[](n);
        for (uint256 m; m < n; ++m) {
            if (_markets[m].oiLongD18 == 0 && _markets[m].oiShortD18 == 0) continue;
            all[m] = _loadView(m, true);
            _accrue(_markets[m], all[m]);
        }
        for (uint256 i; i < accounts.length; ++i) {
            uint32 bitmap = _accounts[accounts[i]].markets;
            if (bitmap == 0) continue;
            MarketView[] memory views = new MarketView[](_popcount(bitmap));
            uint256 k;
            for (uint256 m; bitmap >> m != 0; ++m) {
                if (bitmap & (1 << m) != 0) views[k++] = all[m];
            }
            (bool done, uint256 r) = _liquidate(accounts[i], views, false);
            if (done) {
                ++liquidated;
                reward += r;
            }
        }
    }

    /// @inheritdoc IClearingHouse
    function autoDeleverage(address account, uint256 marketId) external nonReentrant {
        (int256 owed,,) = navInputsD18();
        int256 deficit = owed - (vault.poolBalance() * _scale).toInt256();
        if (deficit <= 0) revert ClearingHouseNoPoolDeficit();
        MarketView memory v = _loadView(marketId, false);
        MarketState storage ms = _markets[marketId];
        _accrue(ms, v);
        Position memory pos = _positions[account][marketId];
        int256 pnl = MarginMath.pnlD18(pos.sizeD18, pos.costBasisD18, v.risk.priceD18, v.fundingIndexD18);
        if (pos.sizeD18 == 0 || pnl <= 0) revert ClearingHouseNotProfitable(account, marketId);
        // Closed at the oracle price (no premium, no fee): the trader loses only the forfeited profit.
        int256 realized = _applyFill(account, marketId, ms, pos, -int256(pos.sizeD18), v.risk.priceD18, v.fundingIndexD18);
        // Pay the profit beyond the deficit, and never more than the pool holds (losers' unrealized losses are
        // not cash yet); the rest is forfeited.
        uint256 gain = realized > 0 ? uint256(realized) : 0;
        uint256 payout = Math.min(gain - Math.min(gain, uint256(deficit)), vault.poolBalance() * _scale);
        uint256 haircut = gain - payout;
        vault.settleTrade(account, MarginMath.toTokensFloor(realized - haircut.toInt256(), _scale), 0);
        emit AutoDeleveraged(account, marketId, pos.sizeD18, v.risk.priceD18, realized, haircut);
    }

    /// @dev Partially liquidates `account` given snapshots of its markets. Returns whether anything was
    /// liquidated and the caller's reward; reverts instead when `strict` (single liquidations).
    function _liquidate(address account, MarketView[] memory views, bool strict) internal returns (bool, uint256) {
        LiquidationMath.LiqState memory L;
        L.collateral = vault.collateralOf(account);
        Totals memory t;
        (L.equity, t) = _margin(account, L.collateral, views);
        L.im = t.imD18;
        AccountStatus st = _status(L.equity, t.mmD18, _accounts[account].marginCallDeadline);
        if (st != AccountStatus.Liquidatable) {
            if (strict) revert ClearingHouseAccountHealthy(account, L.equity, t.mmD18);
            return (false, 0);
        }
        // Two token units of buffer absorb the rounding of the final token settlement.
        L.buffer = 2 * _scale;
        bool[] memory visited = new bool[](views.length);
        for (uint256 round; round < views.length; ++round) {
            if (L.equity >= (L.im + L.buffer).toInt256()) break;
            uint256 i = _riskiest(account, views, visited);
            visited[i] = true;
            _liquidateMarket(account, views[i], L);
        }
        if (L.closedNotional == 0) {
            if (strict) revert ClearingHouseLiquidationRateLimited(account);
            return (false, 0);
        }
        return (true, _settleLiquidation(account, L));
    }

    function _settleLiquidation(address account, LiquidationMath.LiqState memory L) internal returns (uint256 reward) {
        Account storage acc = _accounts[account];
        if (acc.marginCallDeadline != 0) {
            acc.marginCallDeadline = 0;
            emit MarginCallCleared(account);
        }
        uint256 feePaid;
        (feePaid, reward) = vault.settleLiquidation(
            account,
            MarginMath.toTokensFloor(L.pnl, _scale),
            Math.ceilDiv(L.fee, _scale),
            msg.sender,
            _p.liqRewardShareD18,
            _p.liqRewardCapTokens
        );
        emit Liquidated(account, msg.sender, L.closedNotional, feePaid, reward, acc.markets);
    }

    /// @dev The unvisited market with the largest maintenance requirement.
    function _riskiest(address account, MarketView[] memory views, bool[] memory visited) internal view returns (uint256 best) {
        if (views.length == 1) return 0;
        uint256 bestMm;
        bool found;
        for (uint256 i; i < views.length; ++i) {
            if (visited[i]) continue;
            IRiskManager.MarketRisk memory r = views[i].risk;
            uint256 mm = MarginMath.requirementD18(
                SignedMath.abs(_positions[account][views[i].marketId].sizeD18), r.priceD18, r.mmrD18, r.sizeAddOnD18, r.skewScaleD18
            );
            if (!found || mm > bestMm) {
                (best, bestMm, found) = (i, mm, true);
            }
        }
    }

    /// @dev Closes, in one market, the smallest size that restores equity ≥ initial requirement + buffer
    /// (all of it if that is impossible or the rest would be dust), capped by the market's rate limit.
    function _liquidateMarket(address account, MarketView memory v, LiquidationMath.LiqState memory L) internal {
        MarketState storage ms = _markets[v.marketId];
        _accrue(ms, v);
        LiquidationMath.LiqMarket memory c = _liqMarket(account, v, ms.skewD18);
        uint256 absSize = SignedMath.abs(c.pos.sizeD18);
        (uint256 q, LiquidationMath.CloseEffect memory e) = LiquidationMath.minimalClose(c, L);
        uint256 capped = q;
        if (MarginMath.notionalUpD18(absSize - q, v.risk.priceD18) < _p.minPositionNotionalD18) capped = absSize;
        capped = _rateLimit(v.marketId, capped);
        if (capped == 0) return;
        if (capped != q) e = LiquidationMath.closeEffect(c, capped);
        _applyLiquidation(account, c, capped, e, L);
    }

    function _liqMarket(address account, MarketView memory v, int256 skew)
        internal
        view
        returns (LiquidationMath.LiqMarket memory c)
    {
        Position memory pos = _positions[account][v.marketId];
        IRiskManager.MarketRisk memory r = v.risk;
        c = LiquidationMath.LiqMarket(
            v.marketId, pos, skew, r.priceD18, r.imrD18, r.liqFeeD18, r.sizeAddOnD18, r.skewScaleD18, v.fundingIndexD18, 0, 0
        );
        c.imBefore = MarginMath.requirementD18(SignedMath.abs(pos.sizeD18), r.priceD18, r.imrD18, r.sizeAddOnD18, r.skewScaleD18);
        c.pnlBefore = MarginMath.pnlD18(pos.sizeD18, pos.costBasisD18, r.priceD18, v.fundingIndexD18);
    }

    function _applyLiquidation(
        address account,
        LiquidationMath.LiqMarket memory c,
        uint256 q,
        LiquidationMath.CloseEffect memory e,
        LiquidationMath.LiqState memory L
    ) internal {
        int256 delta = c.pos.sizeD18 > 0 ? -q.toInt256() : q.toInt256();
        int256 realized = _applyFill(account, c.marketId, _markets[c.marketId], c.pos, delta, e.fill, c.index);
        L.pnl += realized;
        L.fee += e.fee;
        L.closedNotional += MarginMath.notionalUpD18(q, e.fill);
        L.equity += e.dEquity;
        L.im = L.im - c.imBefore + e.imAfter;
        emit PositionModified(account, c.marketId, delta, e.fill, c.pos.sizeD18 + delta, realized, e.fee, c.index);
    }

    /// @dev Caps q by what is left of the market's liquidation allowance in the current window and records it.
    function _rateLimit(uint256 marketId, uint256 q) internal returns (uint256) {
        (uint256 windowSec, uint256 maxSize) = riskManager.liquidationLimit(marketId);
        LiquidationWindow memory w = liquidationWindows[marketId];
        if (block.timestamp >= w.start + windowSec) w = LiquidationWindow(uint64(block.timestamp), 0);
        uint256 left = maxSize > w.sizeD18 ? maxSize - w.sizeD18 : 0;
        if (q > left) q = left;
        w.sizeD18 += uint192(q);
        liquidationWindows[marketId] = w;
        return q;
    }

    function _clearIfHealthy(address account) internal returns (bool) {
        if (_accounts[account].marginCallDeadline == 0) return false;
        MarketView[] memory views = _loadViews(_accounts[account].markets, false);
        (int256 equity, Totals memory t) = _margin(account, vault.collateralOf(account), views);
        if (equity < t.mmD18.toInt256()) return false;
        _accounts[account].marginCallDeadline = 0;
        emit MarginCallCleared(account);
        return true;
    }

    function _status(int256 equity, uint256 mm, uint256 deadline) internal view returns (AccountStatus) {
        if (mm == 0 || equity >= mm.toInt256()) return AccountStatus.Healthy;
        if (equity < Math.mulDiv(mm, _p.hardFloorD18, WAD).toInt256()) return AccountStatus.Liquidatable;
        if (deadline == 0 || block.timestamp > deadline + _p.marginCallExpiry) return AccountStatus.MarginCallable;
        if (block.timestamp < deadline) return AccountStatus.MarginCalled;
        return AccountStatus.Liquidatable;
    }

    // ================================================================= funding, ETH, params

    /// @inheritdoc IClearingHouse
    function accrueFunding(uint256 marketId) external {
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
    function setParam(bytes32 name, uint256 value) external {
        if (!IAccessControl(address(riskManager)).hasRole(Roles.PARAM_SETTER, msg.sender)) {
            revert IAccessControl.AccessControlUnauthorizedAccount(msg.sender, Roles.PARAM_SETTER);
        }
        ClearingHouseParams.set(_p, name, value, _scale);
    }

    // ================================================================= views

    /// @inheritdoc IClearingHouse
    function minDelay() external view returns (uint32) {
        return _p.minDelay;
    }

    /// @inheritdoc IClearingHouse
    function maxAge() external view returns (uint32) {
        return _p.maxAge;
    }

    /// @notice Minimum execution fee escrowed with an order (wei).
    function minExecutionFee() external view returns (uint64) {
        return _p.minExecutionFee;
    }

    /// @notice Share of the liquidation fee paid to the liquidator (D18).
    function liqRewardShareD18() external view returns (uint64) {
        return _p.liqRewardShareD18;
    }

    /// @notice Cap of the liquidator's reward (D18 USD; in token units it is this ÷ the token scale, rounded down).
    function liqRewardCapD18() external view returns (uint256) {
        return _p.liqRewardCapD18;
    }

    /// @notice Grace window of a margin call (seconds).
    function marginCallGrace() external view returns (uint32) {
        return _p.marginCallGrace;
    }

    /// @notice How long after its deadline a margin call still makes an account liquidatable (seconds).
    function marginCallExpiry() external view returns (uint32) {
        return _p.marginCallExpiry;
    }

    /// @notice Below hardFloor × maintenance requirement an account is liquidatable at once (D18).
    function hardFloorD18() external view returns (uint64) {
        return _p.hardFloorD18;
    }

    /// @notice A partial liquidation never leaves a position smaller than this notional (D18 USD).
    function minPositionNotionalD18() external view returns (uint128) {
        return _p.minPositionNotionalD18;
    }

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
    function orderTrigger(uint256 orderId) external view returns (Trigger memory) {
        return _triggers[orderId];
    }

    /// @inheritdoc IClearingHouse
    function marginCallDeadline(address account) external view returns (uint256) {
        return _accounts[account].marginCallDeadline;
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

    /// @inheritdoc IMarginAccount
    function freeCollateral(address account) external view returns (uint256) {
        if (_accounts[account].markets == 0) return vault.collateralOf(account);
        return accountSummary(account).freeCollateral;
    }

    /// @inheritdoc IMarginAccount
    function tradersUnrealizedPnlD18() external view returns (int256 total) {
        (total,,) = navInputsD18();
    }

    /// @inheritdoc IClearingHouse
    function navInputsD18() public view returns (int256 pnlD18, uint256 netExposureD18, uint256 winnersD18) {
        return ClearingHouseParams.navInputs(_markets, address(riskManager));
    }

    /// @inheritdoc IMarginAccount
    function openInterestNotionalD18() external view returns (uint256) {
        return ClearingHouseParams.openInterestNotional(_markets, address(riskManager));
    }

    // ================================================================= internals: fills

    function _fill(
        address account,
        uint256 marketId,
        int256 delta,
        uint256 acceptablePrice,
        IRiskManager.MarketRisk memory r,
        uint256 basePrice
    ) internal returns (uint256) {
        MarketState storage ms = _markets[marketId];
        MarketView memory v = MarketView(marketId, r, 0);
        _accrue(ms, v);
        Position memory pos = _positions[account][marketId];
        FillResult memory f;
        f.price = MarginMath.fillPriceD18(basePrice, ms.skewD18, delta, r.skewScaleD18);
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
        else if (_accounts[account].marginCallDeadline != 0) _clearIfHealthyWith(account, collateral, v);
        emit PositionModified(account, marketId, delta, f.price, f.newSize, f.realized, f.fee, v.fundingIndexD18);
        return f.price;
    }

    function _clearIfHealthyWith(address account, uint256 collateral, MarketView memory known) internal {
        MarketView[] memory views = _loadViewsWith(_accounts[account].markets, known);
        (int256 equity, Totals memory t) = _margin(account, collateral, views);
        if (equity >= t.mmD18.toInt256()) {
            _accounts[account].marginCallDeadline = 0;
            emit MarginCallCleared(account);
        }
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
        (newBasis, realized) = MarginMath.nextCostBasis(size, pos.costBasisD18, delta, fill, index);

        // Aggregates move by exactly what the position moves, so Σ positions == aggregates to the wei.
        ms.skewD18 = (ms.skewD18 + delta).toInt128();
        ms.netCostBasisD18 = (ms.netCostBasisD18 + newBasis - pos.costBasisD18).toInt128();
        int256 longBasis = ms.longBasisD18; // the shorts' basis is what is left of the net (F9)
        if (size > 0) {
            ms.oiLongD18 -= uint256(size).toUint128();
            longBasis -= pos.costBasisD18;
        } else if (size < 0) {
            ms.oiShortD18 -= uint256(-size).toUint128();
        }
        if (newSize > 0) {
            ms.oiLongD18 += uint256(newSize).toUint128();
            longBasis += newBasis;
        } else if (newSize < 0) {
            ms.oiShortD18 += uint256(-newSize).toUint128();
        }
        ms.longBasisD18 = longBasis.toInt128();

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

    /// @dev Folds funding since the last accrual into the market's index at the snapshot's price. A last
    /// accrual at or after `block.timestamp` accrues nothing: a node may serve a call block N's state with block
    /// N−1's timestamp (anvil under load does), and a liquidation must not revert with an underflow then.
    function _accrue(MarketState storage ms, MarketView memory v) internal {
        uint256 last = ms.lastFundingTime;
        if (last >= block.timestamp) {
            v.fundingIndexD18 = ms.fundingIndexD18;
            return;
        }
        uint256 elapsed = last == 0 ? 0 : block.timestamp - last;
        int256 index = ms.fundingIndexD18
            + MarginMath.fundingIndexDeltaD18(
                ms.skewD18, v.risk.skewScaleD18, v.risk.maxFundingRateD18, v.risk.priceD18, elapsed
            );
        ms.fundingIndexD18 = index.toInt96();
        ms.lastFundingTime = uint32(block.timestamp);
        v.fundingIndexD18 = index;
    }

    function _pendingIndex(MarketState storage ms, IRiskManager.MarketRisk memory r) internal view returns (int256) {
        uint256 last = ms.lastFundingTime;
        if (last == 0 || last >= block.timestamp) return ms.fundingIndexD18;
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
        }
        uint256 deadline = _accounts[account].marginCallDeadline;
        s.status = _status(equity, t.mmD18, deadline);
        s.liquidatable = s.status == AccountStatus.Liquidatable;
        if (s.status == AccountStatus.MarginCalled || s.status == AccountStatus.Liquidatable) s.marginCallDeadline = deadline;
    }

    /// @dev Traders' aggregate PnL (including funding) in one market, from its aggregates: O(1).
    function _marketTraderPnl(MarketState storage ms, uint256 price, int256 index) internal view returns (int256) {
        return MarginMath.pnlD18(ms.skewD18, ms.netCostBasisD18, price, index);
    }

    // ================================================================= internals: misc

    /// @dev A fill that reverted with a reason (a custom error: price limit, margin, caps, reduce-only…)
    /// cancels the order. A revert without data — out of gas — reverts the execution, so a keeper cannot force
    /// a cancellation by starving the fill of gas.
    function _requireTraderCausedFailure(bytes memory reason) internal pure {
        if (reason.length == 0) revert ClearingHouseFillOutOfGas();
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

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        // Kernighan: one iteration per set bit (at most MAX_MARKETS_PER_ACCOUNT in practice).
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }
}
