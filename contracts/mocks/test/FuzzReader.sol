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
/// `snapshot` returns nested structs (the reference); the harness reads `snapshotWords`, the same reads as a flat
/// word array without Solidity's ABI decoding and encoding (40% fewer EVM steps), and checks at setup that both
/// agree.
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

    // ----------------------------------------------------------------------------------------------- flat read
    // Word layout of `snapshotWords` (every value as the ABI word the view returned, signed values sign-extended):
    //   header (HEADER_WORDS): timestamp, vault token balance, pool balance, insurance fund, protocol fees,
    //     ClearingHouse ETH, pending fees, nextOrderId, navOk, navD18, tradersPnlD18, lpSupply, lpTotalAssets,
    //     market count n
    //   per account (4 + 2n): collateral, account market bitmap, claimable ETH, LP shares, then (size, cost basis)
    //     per market
    //   per market (MARKET_WORDS): skew, net cost basis, oiLong, oiShort, funding index, last funding time, feed
    //     answer, answer updatedAt, σ, MMR, IMR, riskOk, breakers, liquidation window start, window size,
    //     estimator last price, longs' cost basis
    uint256 public constant HEADER_WORDS = 14;
    uint256 public constant MARKET_WORDS = 17;

    /// @notice The same reads as `snapshot`, in the same order and with the same revert behaviour (views that
    /// may revert are wrapped exactly where `snapshot` wraps them; any other failing view reverts with its own
    /// data), returned as one flat word array (layout above). `snapshot` spends 45% of its EVM steps (29k of 64k
    /// on the fuzz world) on Solidity's ABI decoding of every sub-call and the encoding of the nested result; on
    /// Hardhat's EVM, which records every step for stack traces, the read dominated a fuzz step's cost. This
    /// version issues the raw STATICCALLs and copies the returned words (3k steps of its own). The fuzz harness
    /// checks at world setup that both agree (and on every read with SIGMA_FUZZ_CROSSCHECK=1).
    /// @dev Pure assembly with a fixed memory layout (the function ends with `return`, so Solidity's memory
    /// model does not matter after entry): 0x00–0x3f scratch (0x20: calldata of the feed call), 0x80 ch, 0xa0
    /// pool, 0xc0 vault, 0xe0 risk manager, 0x100 market count, 0x140–0x183 calldata of the sub-calls, 0x1a0 the
    /// ABI-encoded result ([0x20][length][words]).
    function snapshotWords(address ch, address pool, address[] calldata accounts, uint256 orderFrom)
        external
        view
        returns (uint256[] memory)
    {
        assembly {
            // Bubbles the failing call's revert data, as a high-level call does.
            function fail() {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
            // Sub-calls are written out inline (no Yul function call per read). Calldata at 0x140: the selector
            // is stored as a right-aligned word at 0x124 (so it does not clobber the arguments at 0x144 and 0x164).
            // RETURNDATACOPY beyond the return data halts, so copying the last word of a view's return type
            // checks its size as the ABI decoder of a high-level call does.
            mstore(0x80, ch)
            mstore(0xa0, pool)
            mstore(0x124, 0x430bf08a) // vaultAddress()
            if iszero(staticcall(gas(), ch, 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0xc0, 0, 0x20)
            mstore(0x124, 0x37eca66f) // riskManagerAddress()
            if iszero(staticcall(gas(), ch, 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0xe0, 0, 0x20)
            mstore(0x124, 0xec979082) // marketCount()
            if iszero(staticcall(gas(), mload(0xe0), 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0x100, 0, 0x20)
            mstore(0x1a0, 0x20)

            // header (HEADER_WORDS), at 0x1e0
            mstore(0x1e0, timestamp())
            mstore(0x124, 0xfc0c546a) // token()
            if iszero(staticcall(gas(), mload(0xc0), 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0, 0, 0x20)
            mstore(0x124, 0x70a08231) // token.balanceOf(vault)
            mstore(0x144, mload(0xc0))
            if iszero(staticcall(gas(), mload(0), 0x140, 0x24, 0, 0)) { fail() }
            returndatacopy(0x200, 0, 0x20)
            mstore(0x124, 0x96365d44) // poolBalance()
            if iszero(staticcall(gas(), mload(0xc0), 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0x220, 0, 0x20)
            mstore(0x124, 0xb7902303) // insuranceFund()
            if iszero(staticcall(gas(), mload(0xc0), 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0x240, 0, 0x20)
            mstore(0x124, 0x1ad8b03b) // protocolFees()
            if iszero(staticcall(gas(), mload(0xc0), 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0x260, 0, 0x20)
            mstore(0x280, balance(ch))
            mstore(0x124, 0x2a58b330) // nextOrderId()
            if iszero(staticcall(gas(), ch, 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0x2c0, 0, 0x20)
            // Words not written stay zero (navOk, riskOk... on a failed try): this memory is fresh.
            mstore(0x2a0, 0)
            mstore(0x124, 0x21603f43) // order(id)
            for { let id := orderFrom } lt(id, mload(0x2c0)) { id := add(id, 1) } {
                mstore(0x144, id)
                if iszero(staticcall(gas(), ch, 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(0, 0xc0, 0x20) // Order is 7 words
                returndatacopy(0, 0x60, 0x20) // executionFee
                let f := add(mload(0x2a0), mload(0))
                if lt(f, mload(0x2a0)) { revert(0, 0) }
                mstore(0x2a0, f)
            }
            mstore(0x124, 0x993a659b) // try navD18()
            if staticcall(gas(), pool, 0x140, 4, 0, 0) {
                mstore(0x2e0, 1)
                returndatacopy(0x300, 0, 0x20)
                mstore(0x124, 0x27d4737a) // tradersUnrealizedPnlD18()
                if iszero(staticcall(gas(), ch, 0x140, 4, 0, 0)) { fail() }
                returndatacopy(0x320, 0, 0x20)
                mstore(0x124, 0x01e1d114) // totalAssets()
                if iszero(staticcall(gas(), pool, 0x140, 4, 0, 0)) { fail() }
                returndatacopy(0x360, 0, 0x20)
            }
            mstore(0x124, 0x18160ddd) // totalSupply()
            if iszero(staticcall(gas(), pool, 0x140, 4, 0, 0)) { fail() }
            returndatacopy(0x340, 0, 0x20)
            mstore(0x380, mload(0x100))
            let q := 0x3a0

            for { let i := 0 } lt(i, accounts.length) { i := add(i, 1) } {
                let a := calldataload(add(accounts.offset, shl(5, i)))
                if shr(160, a) { revert(0, 0) }
                mstore(0x144, a)
                mstore(0x124, 0x1aefb107) // collateralOf(a)
                if iszero(staticcall(gas(), mload(0xc0), 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(q, 0, 0x20)
                mstore(0x124, 0xff383ae6) // accountMarkets(a)
                if iszero(staticcall(gas(), ch, 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(add(q, 0x20), 0, 0x20)
                mstore(0x124, 0x4793dc40) // claimableEth(a)
                if iszero(staticcall(gas(), ch, 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(add(q, 0x40), 0, 0x20)
                mstore(0x124, 0x70a08231) // pool.balanceOf(a)
                if iszero(staticcall(gas(), pool, 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(add(q, 0x60), 0, 0x20)
                q := add(q, 0x80)
                mstore(0x124, 0xf11733de) // position(a, m)
                for { let m := 0 } lt(m, mload(0x100)) { m := add(m, 1) } {
                    mstore(0x164, m)
                    if iszero(staticcall(gas(), ch, 0x140, 0x44, 0, 0)) { fail() }
                    returndatacopy(0, 0x40, 0x20) // Position is 3 words
                    returndatacopy(q, 0, 0x40) // sizeD18, costBasisD18
                    q := add(q, 0x40)
                }
            }
            for { let m := 0 } lt(m, mload(0x100)) { m := add(m, 1) } {
                mstore(0x144, m)
                mstore(0x124, 0x0b7afd5a) // marketState(m)
                if iszero(staticcall(gas(), ch, 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(q, 0, 0xc0) // skew, netCostBasis, oiLong, oiShort, fundingIndex, lastFundingTime
                returndatacopy(add(q, 0x200), 0xc0, 0x20) // longBasis (7 words: also checks the size)
                mstore(0x124, 0xed376372) // marketFeeds(m)
                if iszero(staticcall(gas(), mload(0xe0), 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(0, 0, 0x40) // priceFeed, volFeed
                mstore(0x20, shl(224, 0xfeaf968c)) // priceFeed.latestRoundData(), calldata at 0x20
                if iszero(staticcall(gas(), mload(0), 0x20, 4, 0, 0)) { fail() }
                returndatacopy(0, 0x80, 0x20) // 5 words
                returndatacopy(add(q, 0xc0), 0x20, 0x20) // answer
                returndatacopy(add(q, 0xe0), 0x60, 0x20) // updatedAt
                mstore(0x124, 0x771dc86a) // ratios(m)
                if iszero(staticcall(gas(), mload(0xe0), 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(add(q, 0x100), 0, 0x60) // σ, MMR, IMR
                mstore(0x124, 0x4780a9d8) // try marketRisk(m, false)
                mstore(0x164, 0)
                if staticcall(gas(), mload(0xe0), 0x140, 0x44, 0, 0) {
                    returndatacopy(0, 0x180, 0x20) // MarketRisk is 13 words
                    mstore(add(q, 0x160), 1)
                    returndatacopy(add(q, 0x180), 0x160, 0x20) // breakers
                }
                mstore(0x124, 0xcdf291da) // estimatorState(m)
                if iszero(staticcall(gas(), mload(0xe0), 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(0, 0x5a0, 0x20) // State is 46 words
                returndatacopy(add(q, 0x1e0), 0x80, 0x20) // lastPriceD18
                mstore(0x124, 0x0f3e706c) // liquidationWindows(m)
                if iszero(staticcall(gas(), ch, 0x140, 0x24, 0, 0)) { fail() }
                returndatacopy(add(q, 0x1a0), 0, 0x40) // start, size
                q := add(q, 0x220) // MARKET_WORDS
            }
            mstore(0x1c0, shr(5, sub(q, 0x1e0))) // length
            return(0x1a0, sub(q, 0x1a0))
        }
    }
}
