// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IClearingHouse} from "../../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../../interfaces/IRiskManager.sol";
import {IVault} from "../../interfaces/IVault.sol";
import {ILiquidityPool} from "../../interfaces/ILiquidityPool.sol";
import {VolatilityEstimator} from "../../libraries/VolatilityEstimator.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

interface IPoolViews {
    function totalSupply() external view returns (uint256);
    function totalAssets() external view returns (uint256);
    function balanceOf(address) external view returns (uint256);
    function maxWithdraw(address) external view returns (uint256);
}

interface ICHViews {
    function claimableEth(address) external view returns (uint256);
    function liquidationWindows(uint256) external view returns (uint64 start, uint192 sizeD18);
}

interface IEstimatorView {
    function estimatorState(uint256 marketId) external view returns (VolatilityEstimator.State memory);
}

/// @title FuzzReader
/// @notice Test-only: reads every piece of Sigma state the stateful fuzzer's invariants need in ONE eth_call,
/// so a fuzz step costs one transaction and one read. Views that may revert (stale oracle) are wrapped.
contract FuzzReader {
    struct MarketSnap {
        IClearingHouse.MarketState state;
        int256 answer; // raw price feed answer (8 decimals)
        uint256 answerUpdatedAt;
        uint256 sigmaD18;
        uint256 mmrD18;
        uint256 imrD18;
        bool riskOk; // marketRisk(false) did not revert
        uint256 breakers;
        uint256 liqWindowStart;
        uint256 liqWindowSize;
        uint256 estimatorLastPriceD18; // price of the last round folded by a poke (jump-breaker reference)
    }

    struct AccountSnap {
        uint256 collateral;
        uint256 markets;
        uint256 claimableEth;
        uint256 lpShares;
    }

    struct Snap {
        uint256 timestamp;
        uint256 vaultTokenBalance;
        uint256 poolBalance;
        uint256 insuranceFund;
        uint256 protocolFees;
        uint256 chEthBalance;
        uint256 pendingFees; // Σ execution fees escrowed in live orders
        uint256 nextOrderId;
        bool navOk;
        int256 navD18;
        int256 tradersPnlD18;
        uint256 lpSupply;
        uint256 lpTotalAssets;
        AccountSnap[] accounts;
        IClearingHouse.Position[] positions; // accounts.length × markets, account-major
        MarketSnap[] markets;
    }

    function snapshot(IClearingHouse ch, address pool, address[] calldata accounts, uint256 orderFrom)
        external
        view
        returns (Snap memory s)
    {
        IVault vault = IVault(ch.vaultAddress());
        IRiskManager rm = IRiskManager(ch.riskManagerAddress());
        uint256 n = rm.marketCount();
        s.timestamp = block.timestamp;
        s.vaultTokenBalance = IERC20(vault.token()).balanceOf(address(vault));
        s.poolBalance = vault.poolBalance();
        s.insuranceFund = vault.insuranceFund();
        s.protocolFees = vault.protocolFees();
        s.chEthBalance = address(ch).balance;
        s.nextOrderId = ch.nextOrderId();
        for (uint256 id = orderFrom; id < s.nextOrderId; ++id) {
            s.pendingFees += ch.order(id).executionFee;
        }
        try ILiquidityPool(pool).navD18() returns (int256 nav) {
            s.navOk = true;
            s.navD18 = nav;
            s.tradersPnlD18 = ch.tradersUnrealizedPnlD18();
            s.lpTotalAssets = IPoolViews(pool).totalAssets();
        } catch {}
        s.lpSupply = IPoolViews(pool).totalSupply();
        s.accounts = new AccountSnap[](accounts.length);
        s.positions = new IClearingHouse.Position[](accounts.length * n);
        for (uint256 i; i < accounts.length; ++i) {
            AccountSnap memory a = s.accounts[i];
            a.collateral = vault.collateralOf(accounts[i]);
            a.markets = ch.accountMarkets(accounts[i]);
            a.claimableEth = ICHViews(address(ch)).claimableEth(accounts[i]);
            a.lpShares = IPoolViews(pool).balanceOf(accounts[i]);
            for (uint256 m; m < n; ++m) {
                s.positions[i * n + m] = ch.position(accounts[i], m);
            }
        }
        s.markets = new MarketSnap[](n);
        for (uint256 m; m < n; ++m) {
            MarketSnap memory ms = s.markets[m];
            ms.state = ch.marketState(m);
            (address feed,) = rm.marketFeeds(m);
            (, ms.answer,, ms.answerUpdatedAt,) = AggregatorV3Interface(feed).latestRoundData();
            (ms.sigmaD18, ms.mmrD18, ms.imrD18) = rm.ratios(m);
            try rm.marketRisk(m, false) returns (IRiskManager.MarketRisk memory r) {
                ms.riskOk = true;
                ms.breakers = r.breakers;
            } catch {}
            ms.estimatorLastPriceD18 = IEstimatorView(address(rm)).estimatorState(m).lastPriceD18;
            (uint64 start, uint192 size) = ICHViews(address(ch)).liquidationWindows(m);
            ms.liqWindowStart = start;
            ms.liqWindowSize = size;
        }
    }
}
