// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IVault} from "../interfaces/IVault.sol";
import {IMarginAccount} from "../interfaces/IMarginAccount.sol";
import {ILiquidityPool} from "../interfaces/ILiquidityPool.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";

/// @title LiquidityPool
/// @notice ERC-4626 LP vault. Its assets live in the Vault's pool ledger (so fills move no tokens); its NAV
/// subtracts traders' unrealized PnL. A virtual-share offset of 10^6 defeats first-depositor inflation, and
/// withdrawals stop at the reserve that open interest needs. LP flows are priced on a NAV band (F7): deposits
/// and mints at the highest NAV, withdrawals and redeems at the lowest NAV the pool could have with every price
/// anywhere within ± `navBandBps` of the oracle's, so depositing before a known round (moves under the feed's
/// deviation threshold) and withdrawing after it does not pay. The band is zero when traders are flat.
/// Withdrawals never take the cash winning traders are owed (F9): what LPs may take in total is
/// min(NAV, cash − winners' profit) − reserve.
contract LiquidityPool is ILiquidityPool, ERC4626, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    uint256 public constant MIN_RESERVE_FACTOR = 0.05e18;
    uint256 public constant MAX_RESERVE_FACTOR = 2e18;

    IVault public immutable vault;
    IMarginAccount public immutable clearingHouse;
    uint256 public reserveFactorD18;
    /// @notice Upper bound of `navBandBps` (5%).
    uint256 public constant MAX_NAV_BAND_BPS = 500;
    /// @notice Half-width of the NAV band, in basis points of net exposure (default 50: Chainlink's 0.5%
    /// deviation threshold, the largest move a round can bring that its watchers could know in advance).
    uint256 public navBandBps;

    /// @param vault_ the Vault holding the pool's assets.
    /// @param clearingHouse_ source of traders' unrealized PnL and net exposure.
    constructor(IVault vault_, IMarginAccount clearingHouse_, address admin, string memory name_, string memory symbol_)
        ERC20(name_, symbol_)
        ERC4626(IERC20(vault_.token()))
    {
        vault = vault_;
        clearingHouse = clearingHouse_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        reserveFactorD18 = 0.5e18;
        emit ReserveFactorSet(0, 0.5e18);
        navBandBps = 50;
        emit NavBandSet(0, 50);
    }

    /// @inheritdoc ILiquidityPool
    function setReserveFactor(uint256 reserveFactorD18_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (reserveFactorD18_ < MIN_RESERVE_FACTOR || reserveFactorD18_ > MAX_RESERVE_FACTOR) {
            revert PoolReserveFactorOutOfBounds(reserveFactorD18_, MIN_RESERVE_FACTOR, MAX_RESERVE_FACTOR);
        }
        emit ReserveFactorSet(reserveFactorD18, reserveFactorD18_);
        reserveFactorD18 = reserveFactorD18_;
    }

    /// @inheritdoc ILiquidityPool
    function setNavBand(uint256 bps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bps > MAX_NAV_BAND_BPS) revert PoolNavBandOutOfBounds(bps, MAX_NAV_BAND_BPS);
        emit NavBandSet(navBandBps, bps);
        navBandBps = bps;
    }

    /// @inheritdoc ILiquidityPool
    function navRangeD18() public view returns (int256 lowD18, int256 highD18) {
        (int256 pnl, uint256 exposure,) = IClearingHouse(address(clearingHouse)).navInputsD18();
        int256 nav = (vault.poolBalance() * vault.tokenScale()).toInt256() - pnl;
        int256 band = Math.mulDiv(exposure, navBandBps, 10_000, Math.Rounding.Ceil).toInt256();
        return (nav - band, nav + band);
    }

    /// @dev The band's NAV in token units: the high end rounded up, the low end down (both against the LP
    /// entering or leaving), floored at zero.
    function _bandAssets(bool high) internal view returns (uint256) {
        (int256 low, int256 hi) = navRangeD18();
        int256 nav = high ? hi : low;
        if (nav <= 0) return 0;
        return high ? Math.ceilDiv(uint256(nav), vault.tokenScale()) : uint256(nav) / vault.tokenScale();
    }

    function _sharesAt(uint256 assets, uint256 nav, Math.Rounding rounding) internal view returns (uint256) {
        return Math.mulDiv(assets, totalSupply() + 10 ** _decimalsOffset(), nav + 1, rounding);
    }

    function _assetsAt(uint256 shares, uint256 nav, Math.Rounding rounding) internal view returns (uint256) {
        return Math.mulDiv(shares, nav + 1, totalSupply() + 10 ** _decimalsOffset(), rounding);
    }

    /// @notice Shares a deposit mints: priced at the high end of the NAV band.
    function previewDeposit(uint256 assets) public view override returns (uint256) {
        return _sharesAt(assets, _bandAssets(true), Math.Rounding.Floor);
    }

    /// @notice Assets a mint costs: priced at the high end of the NAV band.
    function previewMint(uint256 shares) public view override returns (uint256) {
        return _assetsAt(shares, _bandAssets(true), Math.Rounding.Ceil);
    }

    /// @notice Shares a withdrawal burns: priced at the low end of the NAV band.
    function previewWithdraw(uint256 assets) public view override returns (uint256) {
        return _sharesAt(assets, _bandAssets(false), Math.Rounding.Ceil);
    }

    /// @notice Assets a redemption pays: priced at the low end of the NAV band.
    function previewRedeem(uint256 shares) public view override returns (uint256) {
        return _assetsAt(shares, _bandAssets(false), Math.Rounding.Floor);
    }

    /// @inheritdoc ILiquidityPool
    function navD18() public view returns (int256) {
        return (vault.poolBalance() * vault.tokenScale()).toInt256() - clearingHouse.tradersUnrealizedPnlD18();
    }

    /// @notice NAV in token units, rounded down and floored at zero.
    function totalAssets() public view override returns (uint256) {
        int256 nav = navD18();
        return nav <= 0 ? 0 : uint256(nav) / vault.tokenScale();
    }

    /// @inheritdoc ILiquidityPool
    function reservedAssets() public view returns (uint256) {
        return Math.mulDiv(clearingHouse.openInterestNotionalD18(), reserveFactorD18, 1e18 * vault.tokenScale(), Math.Rounding.Ceil);
    }

    /// @inheritdoc ILiquidityPool
    function availableAssets() public view returns (uint256) {
        (int256 pnl,, uint256 winnersD18) = IClearingHouse(address(clearingHouse)).navInputsD18();
        uint256 scale = vault.tokenScale();
        uint256 cash = vault.poolBalance();
        int256 navNow = (cash * scale).toInt256() - pnl;
        uint256 nav = navNow <= 0 ? 0 : uint256(navNow) / scale;
        // Cash winners are owed stays (F9): losers' losses count in NAV but are collected only up to their
        // collateral, so they are not cash an LP can take.
        uint256 owed = Math.ceilDiv(winnersD18, scale);
        uint256 free = Math.min(nav, cash > owed ? cash - owed : 0);
        uint256 reserved = reservedAssets();
        return free > reserved ? free - reserved : 0;
    }

    /// @notice No deposits while shares exist but NAV is zero or negative: a new deposit would otherwise buy
    /// the existing LPs' claim on a recovery for nothing.
    function maxDeposit(address receiver) public view override returns (uint256) {
        if (totalSupply() > 0 && totalAssets() == 0) return 0;
        return super.maxDeposit(receiver);
    }

    /// @notice Same rule as `maxDeposit`.
    function maxMint(address receiver) public view override returns (uint256) {
        if (totalSupply() > 0 && totalAssets() == 0) return 0;
        return super.maxMint(receiver);
    }

    /// @notice At most the owner's assets (at the low end of the NAV band) and what the reserve leaves free.
    function maxWithdraw(address owner) public view override returns (uint256) {
        return Math.min(previewRedeem(balanceOf(owner)), availableAssets());
    }

    /// @notice At most the owner's shares and the shares of what the reserve leaves free (low end of the band).
    function maxRedeem(address owner) public view override returns (uint256) {
        uint256 low = _bandAssets(false);
        if (low == 0) return 0; // the shares would pay nothing
        return Math.min(balanceOf(owner), _sharesAt(availableAssets(), low, Math.Rounding.Floor));
    }

    /// @dev Virtual shares: 10^6 shares per unit of asset make donation attacks cost 10^6× what they steal.
    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }

    /// @dev Tokens go straight from the LP to the Vault; the delta is measured (no fee-on-transfer).
    function _deposit(address caller, address receiver, uint256 assets, uint256 shares) internal override nonReentrant {
        IERC20 t = IERC20(asset());
        uint256 before = t.balanceOf(address(vault));
        t.safeTransferFrom(caller, address(vault), assets);
        uint256 received = t.balanceOf(address(vault)) - before;
        if (received != assets) revert PoolFeeOnTransferNotSupported(assets, received);
        vault.creditPool(assets);
        _mint(receiver, shares);
        emit Deposit(caller, receiver, assets, shares);
    }

    /// @dev Burns first, then the Vault pays the receiver (checks-effects-interactions).
    function _withdraw(address caller, address receiver, address owner, uint256 assets, uint256 shares)
        internal
        override
        nonReentrant
    {
        if (caller != owner) _spendAllowance(owner, caller, shares);
        _burn(owner, shares);
        vault.debitPool(receiver, assets);
        emit Withdraw(caller, receiver, owner, assets, shares);
    }
}
