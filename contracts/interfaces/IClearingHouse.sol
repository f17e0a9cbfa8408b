// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IMarginAccount} from "./IMarginAccount.sol";

/// @title IClearingHouse
/// @notice Positions, two-step orders, fills, funding and liquidation of Sigma's cross-margined accounts.
/// Sizes are signed base units (D18, positive = long); prices and USD amounts are D18.
interface IClearingHouse is IMarginAccount {
    /// @notice A position of one account in one market.
    /// @dev Funding is folded into the cost basis (one storage slot per position): the position's PnL
    /// including funding is size·(price − fundingIndex) − costBasis, and its break-even price is
    /// (costBasis + size·fundingIndex) / size.
    struct Position {
        int128 sizeD18; // signed base units
        int120 costBasisD18; // Σ size·(fill price − funding index at fill) of the open part
        bool used; // set once the account has traded this market; keeps the slot warm for re-opening
    }

    /// @notice Aggregates of one market, maintained on every fill so pool NAV is O(1) per market.
    struct MarketState {
        int128 skewD18; // Σ sizes
        int128 netCostBasisD18; // Σ cost bases
        uint128 oiLongD18;
        uint128 oiShortD18;
        int96 fundingIndexD18; // cumulative funding per unit of size (USD, D18); longs pay when it rises
        uint32 lastFundingTime;
        int128 longBasisD18; // Σ cost bases of the long positions (the shorts': netCostBasis − longBasis)
    }

    /// @notice A committed order awaiting execution.
    /// @dev Market orders live in two slots; a conditional order adds a `Trigger` slot.
    struct Order {
        address account;
        uint8 marketId;
        uint8 flags; // ORDER_CONDITIONAL | ORDER_TRIGGER_ABOVE | ORDER_REDUCE_ONLY
        uint64 executionFee; // wei, escrowed at commit, paid to the executing keeper
        int96 sizeDeltaD18;
        uint96 acceptablePriceD18; // worst fill price: max for buys, min for sells
        uint64 commitTime; // commit or last modification
    }

    /// @notice Trigger of a conditional order (limit, stop-loss, take-profit).
    struct Trigger {
        uint96 triggerPriceD18; // executable once the oracle price is ≥ (ORDER_TRIGGER_ABOVE) or ≤ this
        uint64 expiresAt;
    }

    /// @notice Where an account stands against its maintenance requirement MM.
    enum AccountStatus {
        Healthy, // equity ≥ MM
        MarginCallable, // hard floor ≤ equity < MM and no live margin call: anyone may flag one
        MarginCalled, // flagged, inside its grace window: top up or reduce before the deadline
        Liquidatable // equity < hard floor, or a margin call's deadline has passed
    }

    /// @notice Margin figures of one account (D18 unless noted).
    struct AccountSummary {
        uint256 collateral; // token units
        int256 unrealizedPnlD18; // including accrued funding
        int256 equityD18; // collateral + unrealized PnL
        uint256 initialRequirementD18;
        uint256 maintenanceRequirementD18;
        uint256 freeCollateral; // token units
        uint256 healthD18; // equity / maintenance requirement (type(uint256).max without positions)
        bool liquidatable;
        AccountStatus status;
        uint256 marginCallDeadline; // 0 when no margin call is live
    }

    /// @notice Emitted when an order is committed.
    event OrderCommitted(
        uint256 indexed orderId,
        address indexed account,
        uint256 indexed marketId,
        int256 sizeDeltaD18,
        uint256 acceptablePriceD18,
        uint256 executionFee,
        uint256 executableAt,
        uint256 expiresAt
    );
    /// @notice Emitted when a conditional order is committed or modified (after its OrderCommitted).
    event OrderTriggerSet(uint256 indexed orderId, uint256 triggerPriceD18, bool triggerAbove, bool reduceOnly, uint256 expiresAt);
    /// @notice Emitted when the owner modifies a conditional order (its minDelay restarts).
    event OrderModified(uint256 indexed orderId, int256 sizeDeltaD18, uint256 acceptablePriceD18);
    /// @notice Emitted when a keeper fills an order.
    event OrderExecuted(uint256 indexed orderId, address indexed account, address indexed keeper, uint256 fillPriceD18);
    /// @notice Emitted when an execution finds a conditional order whose current trigger run began more than
    /// `maxAge` ago (or more than 16 rounds ago): the order is not filled at an old round nor at one the executor
    /// picks; it is re-armed (commit time = now) and fills at the first round after this moment. No fee is paid.
    event OrderRearmed(uint256 indexed orderId, address indexed by);
    /// @notice Emitted when an order is dropped: at execution for a reason the trader controls (the keeper is
    /// still paid), or after expiry (the fee is refunded). `reason` is the ABI-encoded custom error or empty.
    event OrderCancelled(uint256 indexed orderId, address indexed account, address indexed by, bytes reason);
    /// @notice Emitted on every fill and liquidation of a position.
    event PositionModified(
        address indexed account,
        uint256 indexed marketId,
        int256 sizeDeltaD18,
        uint256 fillPriceD18,
        int256 newSizeD18,
        int256 realizedPnlD18, // including the funding of the closed part
        uint256 feeD18,
        int256 fundingIndexD18 // the market's funding index at the fill
    );
    /// @notice Emitted when funding is accrued by `accrueFunding` (fills accrue too and report the index in
    /// PositionModified).
    event FundingAccrued(uint256 indexed marketId, int256 fundingIndexD18, int256 skewD18, uint256 priceD18);
    /// @notice Emitted when an account is liquidated, fully or partially (`remainingMarkets` != 0).
    event Liquidated(
        address indexed account,
        address indexed liquidator,
        uint256 closedNotionalD18,
        uint256 feePaid,
        uint256 reward,
        uint256 remainingMarkets
    );
    /// @notice Emitted when someone flags a margin call on an account.
    event MarginCallFlagged(address indexed account, address indexed by, uint256 deadline, int256 equityD18, uint256 maintenanceD18);
    /// @notice Emitted when a margin call is cleared (the account is healthy again, or it was liquidated).
    event MarginCallCleared(address indexed account);
    /// @notice Emitted when a profitable position is closed to cover a pool deficit (the last resort after
    /// the insurance fund and the pool): `haircutD18` of its profit is forfeited.
    event AutoDeleveraged(address indexed account, uint256 indexed marketId, int256 sizeD18, uint256 priceD18, int256 pnlD18, uint256 haircutD18);
    /// @notice Emitted on every change of a global parameter.
    event ParamSet(bytes32 indexed name, uint256 oldValue, uint256 newValue);
    /// @notice ETH that could not be pushed (reverting receiver) is kept claimable.
    event EthCredited(address indexed to, uint256 amount);

    /// @notice Unknown order id (never existed, executed, or cancelled).
    error ClearingHouseOrderNotFound(uint256 orderId);
    /// @notice Executed before `minDelay` elapsed.
    error ClearingHouseOrderNotReady(uint256 orderId, uint256 executableAt);
    /// @notice Executed after `maxAge`: cancel it instead.
    error ClearingHouseOrderExpired(uint256 orderId, uint256 expiresAt);
    /// @notice No Chainlink price round has been published since the order was committed: executing at the
    /// round its owner already knew would allow latency arbitrage, so the order waits for the next round.
    error ClearingHouseAwaitingPriceRound(uint256 orderId, uint256 priceUpdatedAt, uint256 commitTime);
    /// @notice A conditional order's trigger is already met at the latest price (commit or modify): it would be
    /// a market order at a round the owner already knows (F5). A limit/stop order rests on the far side.
    error ClearingHouseTriggerAlreadyMet(uint256 priceD18, uint256 triggerPriceD18);
    /// @notice More than 16 rounds were published since the market order's commit: its first round after the
    /// commit is not walked back to; the order can only expire (and be cancelled with a refund).
    error ClearingHouseFillRoundUnknown(uint256 orderId);
    /// @notice A conditional order's trigger is not met at the current oracle price.
    error ClearingHouseOrderNotTriggered(uint256 orderId, uint256 priceD18, uint256 triggerPriceD18);
    /// @notice A reduce-only order would open or increase a position.
    error ClearingHouseReduceOnly(uint256 marketId);
    /// @notice Only the order's owner may do this (or: market orders cannot be modified).
    error ClearingHouseNotOrderOwner(uint256 orderId, address caller);
    /// @notice A conditional order's expiry is in the past or too far ahead.
    error ClearingHouseInvalidExpiry(uint256 expiresAt);
    /// @notice Cancelled before expiry (an order cannot be withdrawn once the price may be known).
    error ClearingHouseOrderNotExpired(uint256 orderId, uint256 expiresAt);
    /// @notice The fill price is worse than the trader's acceptable price.
    error ClearingHouseAcceptablePriceExceeded(uint256 fillPriceD18, uint256 acceptablePriceD18);
    /// @notice After the trade the account's equity is below its initial requirement.
    error ClearingHouseInsufficientMargin(address account, int256 equityD18, uint256 requiredD18);
    /// @notice The market is reduce-only (paused by the guardian or a circuit breaker); `breakers` says why.
    error ClearingHouseMarketReduceOnly(uint256 marketId, uint256 breakers);
    /// @notice The trade would take a side's open interest over its cap.
    error ClearingHouseOpenInterestCap(uint256 marketId, uint256 oiNotionalD18, uint256 capD18);
    /// @notice Zero size, or a value that does not fit its field.
    error ClearingHouseInvalidOrder();
    /// @notice Execution fee below the minimum.
    error ClearingHouseExecutionFeeTooLow(uint256 sent, uint256 minimum);
    /// @notice The account already has positions in the maximum number of markets.
    error ClearingHouseTooManyMarkets(address account);
    /// @notice Liquidation attempted on an account that is not liquidatable (healthy, or in a margin call's grace).
    error ClearingHouseAccountHealthy(address account, int256 equityD18, uint256 maintenanceD18);
    /// @notice A margin call can only be flagged on an account in the MarginCallable state.
    error ClearingHouseCannotFlag(address account, AccountStatus status);
    /// @notice Every market this account needs liquidated has used its liquidation allowance for the window.
    error ClearingHouseLiquidationRateLimited(address account);
    /// @notice Auto-deleveraging needs a pool deficit (traders' unrealized PnL above the pool's assets).
    error ClearingHouseNoPoolDeficit();
    /// @notice Auto-deleveraging only closes profitable positions.
    error ClearingHouseNotProfitable(address account, uint256 marketId);
    /// @notice Liquidations are paused while the L2 sequencer is down or in its grace period.
    error ClearingHouseLiquidationsPaused();
    /// @notice The fill ran out of gas: the keeper must retry with more gas (the order stays).
    error ClearingHouseFillOutOfGas();
    /// @notice Only the contract itself may call this.
    error ClearingHouseOnlySelf();
    /// @notice A global parameter outside its bounds.
    error ClearingHouseParamOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    /// @notice No claimable ETH, or the transfer failed.
    error ClearingHouseNothingToClaim();

    /// @notice Commits an order of `sizeDeltaD18` (positive buys) on `marketId`, executable by any keeper
    /// between `minDelay` and `maxAge` from now at the oracle price at execution. `msg.value` is the keeper's
    /// execution fee (≥ `minExecutionFee`).
    /// @param acceptablePriceD18 worst accepted fill price: a maximum for buys, a minimum for sells.
    function commitOrder(uint256 marketId, int256 sizeDeltaD18, uint256 acceptablePriceD18)
        external
        payable
        returns (uint256 orderId);

    /// @notice Commits a conditional order: executable by any keeper after `minDelay` once the Chainlink price
    /// is ≥ `triggerPriceD18` (`triggerAbove`) or ≤ it, until `expiresAt`, at the first round of that run
    /// within `acceptablePriceD18`. The trigger must not be met at the latest price when committed or modified
    /// (`ClearingHouseTriggerAlreadyMet`). Limit: a buy below / sell above the market; stop-loss and take-profit: reduce-only
    /// orders on the closing side. A reduce-only order never opens or grows a position (its size is clamped to
    /// the position's). `msg.value` is the keeper's execution fee.
    function commitConditionalOrder(
        uint256 marketId,
        int256 sizeDeltaD18,
        uint256 acceptablePriceD18,
        uint256 triggerPriceD18,
        bool triggerAbove,
        bool reduceOnly,
        uint256 expiresAt
    ) external payable returns (uint256 orderId);

    /// @notice The owner modifies a conditional order; its `minDelay` starts again.
    function modifyOrder(
        uint256 orderId,
        int256 sizeDeltaD18,
        uint256 acceptablePriceD18,
        uint256 triggerPriceD18,
        uint256 expiresAt
    ) external;

    /// @notice Executes a due order. It fills at the price of a round chosen by the order, not by the caller: the
    /// first Chainlink round published after its commit (market orders), or the first round of the current run
    /// of rounds meeting the trigger published after its commit/modify (conditional orders); the latest round
    /// gives margin, funding and caps. The caller earns the execution fee whether the order fills or is
    /// cancelled for a reason the trader controls (price limit, margin, caps, reduce-only). A conditional
    /// order whose run began more than `maxAge` ago is re-armed instead (`OrderRearmed`, no fee).
    /// @return filled true if the order filled, false if it was cancelled or re-armed.
    function executeOrder(uint256 orderId) external returns (bool filled);

    /// @notice Cancels an order and refunds its execution fee to the trader: anyone may cancel an expired order;
    /// the owner may also cancel a conditional order at any time.
    function cancelOrder(uint256 orderId) external;

    /// @notice Liquidates a Liquidatable account partially: in its riskiest market first, closes the smallest
    /// size that brings equity back above the initial requirement (the whole position when the rest would be
    /// dust), at the oracle price with the skew premium, within each market's per-window rate limit. The
    /// caller earns a capped share of the liquidation fee, credited as Vault collateral.
    /// @return reward paid to the caller, token units.
    function liquidate(address account) external returns (uint256 reward);

    /// @notice Liquidates every Liquidatable account of the list and skips the others (never reverts for one
    /// account's state). Oracle reads are shared across the batch.
    /// @return liquidated how many accounts were liquidated; reward the caller's total reward (token units).
    function liquidateBatch(address[] calldata accounts) external returns (uint256 liquidated, uint256 reward);

    /// @notice Flags a margin call on a MarginCallable account: its grace window starts now. Anyone may call.
    /// @return deadline the end of the grace window.
    function flagMarginCall(address account) external returns (uint256 deadline);

    /// @notice Clears the margin call of an account that is healthy again. Anyone may call.
    function clearMarginCall(address account) external;


    /// @notice Last resort when the pool's assets no longer cover traders' unrealized PnL: closes a profitable
    /// position at the oracle price, forfeiting up to the deficit from its profit. Keepers pick the most
    /// profitable positions first (off-chain ranking from the index); the contract checks deficit and profit.
    function autoDeleverage(address account, uint256 marketId) external;

    /// @notice Accrues funding of a market up to now. Anyone may call; fills do it too.
    function accrueFunding(uint256 marketId) external;

    /// @notice Sends ETH owed to the caller (execution fees or refunds a push could not deliver).
    function claimEth() external;

    /// @notice Parameter setter (role held in the RiskManager): sets a global parameter (`minDelay`, `maxAge`, `minExecutionFee`, `liqRewardShare`,
    /// `liqRewardCapD18`, `marginCallGrace`, `marginCallExpiry`, `hardFloor`, `minPositionNotionalD18`) within
    /// its bounds.
    function setParam(bytes32 name, uint256 value) external;

    /// @notice Id the next committed order will get (ids are sequential from 0).
    function nextOrderId() external view returns (uint256);

    /// @notice The pool's NAV inputs in one pass: traders' aggregate unrealized PnL (incl. pending funding,
    /// as `tradersUnrealizedPnlD18`), the net exposure Σ_markets |skew| × price (rounded up), and what the
    /// winning side of each market is owed, Σ_markets max(longs' PnL, 0) + max(shorts' PnL, 0), all D18. The
    /// pool's NAV moves by at most `netExposure × x` when every price moves by a fraction x. `winners` is at
    /// least the profit winners would realize closing now, less only what losers on their own side owe; the
    /// pool keeps that much cash (F9), since a loser's loss beyond its collateral is never collected.
    function navInputsD18() external view returns (int256 pnlD18, uint256 netExposureD18, uint256 winnersD18);
    /// @notice Seconds an order must wait after commit before it can execute.
    function minDelay() external view returns (uint32);
    /// @notice Seconds after commit at which an order expires.
    function maxAge() external view returns (uint32);
    /// @notice The Vault.
    function vaultAddress() external view returns (address);
    /// @notice The RiskManager.
    function riskManagerAddress() external view returns (address);
    /// @notice A position.
    function position(address account, uint256 marketId) external view returns (Position memory);
    /// @notice A market's aggregates.
    function marketState(uint256 marketId) external view returns (MarketState memory);
    /// @notice A pending order.
    function order(uint256 orderId) external view returns (Order memory);
    /// @notice The trigger of a pending conditional order (zero for market orders).
    function orderTrigger(uint256 orderId) external view returns (Trigger memory);
    /// @notice The account's stored margin-call deadline (0 if none was flagged or it was cleared). A deadline
    /// more than `marginCallExpiry` in the past no longer counts.
    function marginCallDeadline(address account) external view returns (uint256);
    /// @notice Bitmap of the markets the account has positions in.
    function accountMarkets(address account) external view returns (uint256);
    /// @notice Equity, requirements, free collateral and health of an account.
    function accountSummary(address account) external view returns (AccountSummary memory);
}
