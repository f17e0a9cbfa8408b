// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IVault} from "../interfaces/IVault.sol";
import {IMarginAccount} from "../interfaces/IMarginAccount.sol";

/// @title Vault
/// @notice Holds every Sigma token. Invariant: token balance ≥ Σ collateral + pool balance + insurance fund
/// + protocol fees (equal unless someone sent tokens directly).
contract Vault is IVault, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    uint256 internal constant WAD = 1e18;
    uint256 public constant MAX_INSURANCE_SHARE = 0.5e18;

    IERC20 internal immutable _token;
    uint256 public immutable tokenScale;

    // Packed: the clearinghouse address is checked on every settlement, next to the fee split it reads.
    IMarginAccount public clearingHouse;
    uint48 internal _lpFeeShareMicros; // parts per million
    uint48 internal _insuranceFeeShareMicros;
    address public liquidityPool;

    mapping(address => uint256) public collateralOf;

    // Packed: the pool's and the insurance fund's ledgers change together on bad debt.
    uint128 internal _poolBalance;
    uint128 internal _insuranceFund;
    uint256 internal _protocolFees;

    modifier onlyClearingHouse() {
        if (msg.sender != address(clearingHouse)) revert VaultUnauthorized(msg.sender);
        _;
    }

    modifier onlyPool() {
        if (msg.sender != liquidityPool) revert VaultUnauthorized(msg.sender);
        _;
    }

    /// @param token_ the collateral token (≤ 18 decimals, no fee on transfer).
    /// @param admin holder of DEFAULT_ADMIN_ROLE (a timelock in production).
    constructor(IERC20Metadata token_, address admin) {
        uint8 d = token_.decimals();
        if (d > 18) revert VaultUnsupportedDecimals(d);
        _token = IERC20(address(token_));
        tokenScale = 10 ** (18 - d);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _lpFeeShareMicros = 600_000;
        _insuranceFeeShareMicros = 200_000;
        emit FeeSplitSet(0.6e18, 0.2e18);
    }

    /// @notice Admin, once: connects the clearinghouse and the liquidity pool.
    function wire(IMarginAccount clearingHouse_, address liquidityPool_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(clearingHouse) != address(0)) revert VaultAlreadyWired();
        if (address(clearingHouse_) == address(0) || liquidityPool_ == address(0)) revert VaultZeroAmount();
        clearingHouse = clearingHouse_;
        liquidityPool = liquidityPool_;
        emit Wired(address(clearingHouse_), liquidityPool_);
    }

    // ---------------------------------------------------------------- traders

    /// @inheritdoc IVault
    function deposit(address account, uint256 amount) external nonReentrant {
        _deposit(account, amount);
    }

    /// @inheritdoc IVault
    function depositWithPermit(address account, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        // A front-runner may submit the same permit first; the allowance then exists and the deposit proceeds.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _deposit(account, amount);
    }

    /// @inheritdoc IVault
    function withdraw(uint256 amount, address to) external nonReentrant {
        if (amount == 0 || to == address(0)) revert VaultZeroAmount();
        uint256 free = address(clearingHouse) == address(0)
            ? collateralOf[msg.sender]
            : clearingHouse.freeCollateral(msg.sender);
        if (amount > free) revert VaultInsufficientFreeCollateral(msg.sender, amount, free);
        collateralOf[msg.sender] -= amount;
        _token.safeTransfer(to, amount);
        emit Withdrawn(msg.sender, to, amount);
    }

    /// @inheritdoc IVault
    function depositInsurance(uint256 amount) external nonReentrant {
        _pull(msg.sender, amount);
        _insuranceFund += amount.toUint128();
        emit InsuranceDeposited(msg.sender, amount);
    }

    // ---------------------------------------------------------------- admin

    /// @inheritdoc IVault
    function withdrawProtocolFees(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        if (amount == 0 || to == address(0)) revert VaultZeroAmount();
        if (amount > _protocolFees) revert VaultInsufficientProtocolFees(amount, _protocolFees);
        _protocolFees -= amount;
        _token.safeTransfer(to, amount);
        emit ProtocolFeesWithdrawn(to, amount);
    }

    /// @inheritdoc IVault
    function setFeeSplit(uint256 lpShareD18, uint256 insuranceShareD18) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (
            insuranceShareD18 > MAX_INSURANCE_SHARE || lpShareD18 + insuranceShareD18 > WAD
                || lpShareD18 % 1e12 != 0 || insuranceShareD18 % 1e12 != 0
        ) {
            revert VaultInvalidFeeSplit(lpShareD18, insuranceShareD18);
        }
        // Stored in parts per million (checked exact above) to share a slot with the clearinghouse address.
        _lpFeeShareMicros = uint48(lpShareD18 / 1e12);
        _insuranceFeeShareMicros = uint48(insuranceShareD18 / 1e12);
        emit FeeSplitSet(lpShareD18, insuranceShareD18);
    }

    // ---------------------------------------------------------------- clearinghouse

    /// @inheritdoc IVault
    function settleTrade(address account, int256 pnl, uint256 fee)
        external
        onlyClearingHouse
        returns (uint256 collateralAfter)
    {
        uint256 feePaid;
        (collateralAfter, feePaid) = _settle(account, pnl, fee);
        uint256 toInsurance = feePaid * _insuranceFeeShareMicros / 1e6;
        uint256 toPool = feePaid * _lpFeeShareMicros / 1e6;
        uint256 toProtocol = feePaid - toInsurance - toPool;
        // Each ledger is bounded by the vault's token balance (< 2^128 for any real token supply).
        _poolBalance += uint128(toPool);
        _insuranceFund += uint128(toInsurance);
        _protocolFees += toProtocol;
        emit TradeSettled(account, pnl, feePaid, toPool, toInsurance);
    }

    /// @inheritdoc IVault
    function settleLiquidation(
        address account,
        int256 pnl,
        uint256 fee,
        address liquidator,
        uint256 rewardShareD18,
        uint256 rewardCap
    ) external onlyClearingHouse returns (uint256 feePaid, uint256 reward) {
        (, feePaid) = _settle(account, pnl, fee);
        reward = Math.min(Math.mulDiv(feePaid, rewardShareD18, WAD), rewardCap);
        // Crediting the reward as collateral (not a transfer) means a liquidation can never be blocked by the
        // token refusing a transfer (e.g. a blacklisted liquidator or account).
        collateralOf[liquidator] += reward;
        uint256 toInsurance = feePaid - reward;
        _insuranceFund += uint128(toInsurance);
        emit LiquidationFeePaid(account, liquidator, feePaid, reward, toInsurance);
    }

    // ---------------------------------------------------------------- pool

    /// @inheritdoc IVault
    function creditPool(uint256 amount) external onlyPool {
        _poolBalance += amount.toUint128();
        emit PoolCredited(amount, _poolBalance);
    }

    /// @inheritdoc IVault
    function debitPool(address to, uint256 amount) external onlyPool nonReentrant {
        _poolBalance -= amount.toUint128();
        _token.safeTransfer(to, amount);
        emit PoolDebited(to, amount, _poolBalance);
    }

    // ---------------------------------------------------------------- views

    /// @notice Share of trading fees credited to the liquidity pool (D18).
    function lpFeeShareD18() external view returns (uint256) {
        return uint256(_lpFeeShareMicros) * 1e12;
    }

    /// @notice Share of trading fees credited to the insurance fund (D18).
    function insuranceFeeShareD18() external view returns (uint256) {
        return uint256(_insuranceFeeShareMicros) * 1e12;
    }

    /// @inheritdoc IVault
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IVault
    function poolBalance() external view returns (uint256) {
        return _poolBalance;
    }

    /// @inheritdoc IVault
    function insuranceFund() external view returns (uint256) {
        return _insuranceFund;
    }

    /// @inheritdoc IVault
    function protocolFees() external view returns (uint256) {
        return _protocolFees;
    }

    // ---------------------------------------------------------------- internals

    function _deposit(address account, uint256 amount) internal {
        if (account == address(0)) revert VaultZeroAmount();
        _pull(msg.sender, amount);
        collateralOf[account] += amount;
        emit Deposited(account, msg.sender, amount);
        // Let the clearinghouse clear a margin call this deposit cured. Adding margin must never fail, so a
        // failing check (e.g. a stale oracle) is ignored: the flag then clears on the next fill or check.
        if (address(clearingHouse) != address(0)) {
            try clearingHouse.onCollateralAdded(account) {} catch {}
        }
    }

    /// @dev Pulls exactly `amount` or reverts: the balance delta is measured, so fee-on-transfer tokens fail.
    function _pull(address from, uint256 amount) internal {
        if (amount == 0) revert VaultZeroAmount();
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(from, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert VaultFeeOnTransferNotSupported(amount, received);
    }

    /// @dev Moves `pnl` between the trader and the pool, then charges `fee` from what the trader has left.
    /// A loss larger than the collateral is bad debt: the insurance fund pays first, the pool absorbs the rest.
    function _settle(address account, int256 pnl, uint256 fee) internal returns (uint256 c, uint256 feePaid) {
        c = collateralOf[account];
        uint256 pool = _poolBalance;
        if (pnl >= 0) {
            uint256 gain = uint256(pnl);
            if (gain > pool) {
                // The pool cannot pay the whole profit (its NAV went negative): the insurance fund tops it up,
                // and what neither can pay is forfeited, so that closing is never blocked.
                uint256 ins = _insuranceFund;
                uint256 fromInsurance = Math.min(gain - pool, ins);
                _insuranceFund = uint128(ins - fromInsurance);
                emit ProfitHaircut(account, gain, pool, fromInsurance, gain - pool - fromInsurance);
                gain = pool + fromInsurance;
                pool = 0;
            } else {
                pool -= gain;
            }
            c += gain;
        } else {
            uint256 loss = uint256(-pnl);
            if (loss <= c) {
                c -= loss;
                pool += loss;
            } else {
                uint256 shortfall = loss - c;
                uint256 ins = _insuranceFund;
                uint256 fromInsurance = Math.min(shortfall, ins);
                _insuranceFund = uint128(ins - fromInsurance);
                pool += c + fromInsurance;
                emit BadDebtCovered(account, shortfall, fromInsurance, shortfall - fromInsurance);
                c = 0;
            }
        }
        feePaid = Math.min(fee, c);
        c -= feePaid;
        collateralOf[account] = c;
        _poolBalance = pool.toUint128();
    }
}
