// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IVault
/// @notice Custody of Sigma's collateral token. Keeps one ledger, in token units, of every claim on the
/// tokens it holds: each trader's collateral, the liquidity pool's assets, the insurance fund and protocol
/// fees. Only the clearinghouse moves value between ledgers, and every move is zero-sum.
interface IVault {
    /// @notice Collateral credited to `account`, paid by `from`.
    event Deposited(address indexed account, address indexed from, uint256 amount);
    /// @notice Collateral of `account` sent to `to`.
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice Tokens added to the liquidity pool's ledger by the pool contract.
    event PoolCredited(uint256 amount, uint256 poolBalance);
    /// @notice Tokens of the pool sent to an LP.
    event PoolDebited(address indexed to, uint256 amount, uint256 poolBalance);
    /// @notice A fill's realized PnL (including funding) and fee applied to a trader, in token units.
    event TradeSettled(address indexed account, int256 pnl, uint256 feePaid, uint256 feeToPool, uint256 feeToInsurance);
    /// @notice A liquidation's fee paid: `reward` to the liquidator, the rest to the insurance fund.
    event LiquidationFeePaid(address indexed account, address indexed liquidator, uint256 feePaid, uint256 reward, uint256 toInsurance);
    /// @notice The one path for bad debt: a trader's negative balance covered by the insurance fund first,
    /// then absorbed (socialized) by the liquidity pool.
    event BadDebtCovered(address indexed account, uint256 shortfall, uint256 fromInsurance, uint256 socializedToPool);
    /// @notice A trader's realized profit exceeded what the pool holds: the pool paid `fromPool`, the insurance
    /// fund `fromInsurance`, and `forfeited` was not paid (the last-resort socialization of a pool deficit).
    event ProfitHaircut(address indexed account, uint256 profit, uint256 fromPool, uint256 fromInsurance, uint256 forfeited);
    /// @notice Someone topped up the insurance fund.
    event InsuranceDeposited(address indexed from, uint256 amount);
    /// @notice Admin moved accrued protocol fees out.
    event ProtocolFeesWithdrawn(address indexed to, uint256 amount);
    /// @notice Admin changed how trading fees are split.
    event FeeSplitSet(uint256 lpShareD18, uint256 insuranceShareD18);
    /// @notice One-time wiring of the clearinghouse and the liquidity pool.
    event Wired(address clearingHouse, address liquidityPool);

    /// @notice Zero amount or zero address given.
    error VaultZeroAmount();
    /// @notice The token delivered fewer tokens than asked: fee-on-transfer tokens are not supported.
    error VaultFeeOnTransferNotSupported(uint256 expected, uint256 received);
    /// @notice Withdrawal larger than what the margin check leaves free.
    error VaultInsufficientFreeCollateral(address account, uint256 requested, uint256 available);
    /// @notice Caller is not the clearinghouse / pool.
    error VaultUnauthorized(address caller);
    /// @notice The pool cannot pay a trader's realized profit (auto-deleveraging is the risk engine's job).
    error VaultPoolInsufficient(uint256 required, uint256 available);
    /// @notice Collateral tokens with more than 18 decimals are not supported.
    error VaultUnsupportedDecimals(uint8 decimals);
    /// @notice Fee shares add up to more than 100%.
    error VaultInvalidFeeSplit(uint256 lpShareD18, uint256 insuranceShareD18);
    /// @notice The clearinghouse and pool were already wired.
    error VaultAlreadyWired();
    /// @notice More protocol fees requested than accrued.
    error VaultInsufficientProtocolFees(uint256 requested, uint256 available);

    /// @notice Deposits `amount` tokens from the caller as collateral of `account` (self or another).
    function deposit(address account, uint256 amount) external;

    /// @notice Like `deposit`, with an ERC-2612 permit so no separate approve transaction is needed.
    /// @dev If the permit was already used (front-run), the deposit still succeeds when the allowance suffices.
    function depositWithPermit(address account, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Withdraws `amount` of the caller's collateral to `to`, at most what the margin check leaves free.
    function withdraw(uint256 amount, address to) external;

    /// @notice Adds `amount` tokens from the caller to the insurance fund.
    function depositInsurance(uint256 amount) external;

    /// @notice Admin: sends accrued protocol fees to `to`.
    function withdrawProtocolFees(address to, uint256 amount) external;

    /// @notice Admin: sets the shares of trading fees that go to LPs and to the insurance fund (rest: protocol).
    /// Shares are D18 with a resolution of one part per million (multiples of 1e12).
    function setFeeSplit(uint256 lpShareD18, uint256 insuranceShareD18) external;

    /// @notice Clearinghouse only: applies a fill's realized PnL and fee to `account`, zero-sum with the pool,
    /// the insurance fund and protocol fees; covers bad debt through the waterfall.
    /// @return collateralAfter the account's collateral after settlement, in token units.
    function settleTrade(address account, int256 pnl, uint256 fee) external returns (uint256 collateralAfter);

    /// @notice Clearinghouse only: settles a liquidation; the fee (capped at what is left) pays the liquidator
    /// `min(fee·rewardShare, rewardCap)` as collateral and the rest to the insurance fund.
    function settleLiquidation(
        address account,
        int256 pnl,
        uint256 fee,
        address liquidator,
        uint256 rewardShareD18,
        uint256 rewardCap
    ) external returns (uint256 feePaid, uint256 reward);

    /// @notice Pool only: records `amount` tokens the pool just moved into the vault.
    function creditPool(uint256 amount) external;

    /// @notice Pool only: pays `amount` of the pool's assets to `to`.
    function debitPool(address to, uint256 amount) external;

    /// @notice The collateral token.
    function token() external view returns (address);
    /// @notice 10^(18 − token decimals): multiply token units by it to get D18.
    function tokenScale() external view returns (uint256);
    /// @notice Collateral of `account` in token units.
    function collateralOf(address account) external view returns (uint256);
    /// @notice The liquidity pool's deposited assets (before traders' unrealized PnL), token units.
    function poolBalance() external view returns (uint256);
    /// @notice Insurance fund, token units.
    function insuranceFund() external view returns (uint256);
    /// @notice Accrued protocol fees, token units.
    function protocolFees() external view returns (uint256);
}
