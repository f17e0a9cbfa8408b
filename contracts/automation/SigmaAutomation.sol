// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {AutomationCompatible} from "@chainlink/contracts/src/v0.8/automation/AutomationCompatible.sol";
import {IClearingHouse} from "../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../interfaces/IRiskManager.sol";
import {IVault} from "../interfaces/IVault.sol";

/// @title SigmaAutomation
/// @notice Chainlink Automation entry point for Sigma's keeper jobs, so an operator can register upkeeps on
/// the Automation network instead of (or beside) the TypeScript keepers. One contract, three jobs chosen by
/// `checkData = abi.encode(job, start, count)`:
///   - JOB_POKE: poke σ of every market whose `pokeNeeded` is true;
///   - JOB_ORDERS: execute due orders and cancel expired ones among the last `count` order ids;
///   - JOB_ACCOUNTS: among tracked accounts [start, start + count), liquidate the liquidatable ones and flag
///     margin calls on the margin-callable ones.
/// `performUpkeep` trusts nothing in `performData`: every condition is re-checked on-chain, and the protocol
/// functions it calls re-check again. Execution fees and liquidation rewards accrue to this contract; the
/// owner withdraws them.
contract SigmaAutomation is AutomationCompatible, Ownable {
    uint8 public constant JOB_POKE = 0;
    uint8 public constant JOB_ORDERS = 1;
    uint8 public constant JOB_ACCOUNTS = 2;
    uint256 public constant MAX_BATCH = 50;

    IClearingHouse public immutable clearingHouse;
    IRiskManager public immutable riskManager;
    IVault public immutable vault;

    address[] public tracked;
    mapping(address => bool) public isTracked;

    /// @notice Emitted when an account is added to the list the accounts job scans.
    event AccountTracked(address indexed account);
    /// @notice Emitted after each performUpkeep with what it did.
    event UpkeepPerformed(uint8 indexed job, uint256 actions);

    /// @notice The job id in checkData/performData is unknown.
    error AutomationUnknownJob(uint8 job);

    constructor(IClearingHouse clearingHouse_, address owner_) Ownable(owner_) {
        clearingHouse = clearingHouse_;
        riskManager = IRiskManager(clearingHouse_.riskManagerAddress());
        vault = IVault(clearingHouse_.vaultAddress());
    }

    /// @notice Receives execution fees from the ClearingHouse.
    receive() external payable {}

    /// @notice Adds accounts to the list the accounts job scans (permissionless; duplicates are ignored).
    /// An account with no position is harmless: it is skipped.
    function track(address[] calldata accounts) external {
        for (uint256 i; i < accounts.length; ++i) {
            address a = accounts[i];
            if (isTracked[a] || a == address(0)) continue;
            isTracked[a] = true;
            tracked.push(a);
            emit AccountTracked(a);
        }
    }

    /// @notice Number of tracked accounts.
    function trackedCount() external view returns (uint256) {
        return tracked.length;
    }

    /// @notice Chainlink Automation check, simulated off-chain. See the contract notice for `checkData`.
    function checkUpkeep(bytes calldata checkData)
        external
        view
        cannotExecute
        returns (bool upkeepNeeded, bytes memory performData)
    {
        (uint8 job, uint256 start, uint256 count) = abi.decode(checkData, (uint8, uint256, uint256));
        if (count > MAX_BATCH) count = MAX_BATCH;
        if (job == JOB_POKE) {
            uint256[] memory markets = _marketsToPoke();
            return (markets.length > 0, abi.encode(JOB_POKE, abi.encode(markets)));
        }
        if (job == JOB_ORDERS) {
            (uint256[] memory execute, uint256[] memory cancel) = _dueOrders(count);
            return (execute.length + cancel.length > 0, abi.encode(JOB_ORDERS, abi.encode(execute, cancel)));
        }
        if (job == JOB_ACCOUNTS) {
            (address[] memory liq, address[] memory flag) = _accountsToAct(start, count);
            return (liq.length + flag.length > 0, abi.encode(JOB_ACCOUNTS, abi.encode(liq, flag)));
        }
        revert AutomationUnknownJob(job);
    }

    /// @notice Chainlink Automation perform: re-checks every condition before acting; actions that lost a race
    /// (another keeper was first) are skipped, never fatal.
    function performUpkeep(bytes calldata performData) external {
        (uint8 job, bytes memory data) = abi.decode(performData, (uint8, bytes));
        uint256 actions;
        if (job == JOB_POKE) {
            uint256[] memory markets = abi.decode(data, (uint256[]));
            for (uint256 i; i < markets.length && i < MAX_BATCH; ++i) {
                if (!riskManager.pokeNeeded(markets[i])) continue;
                try riskManager.pokeVolatility(markets[i]) {
                    ++actions;
                } catch {}
            }
        } else if (job == JOB_ORDERS) {
            (uint256[] memory execute, uint256[] memory cancel) = abi.decode(data, (uint256[], uint256[]));
            for (uint256 i; i < execute.length && i < MAX_BATCH; ++i) {
                try clearingHouse.executeOrder(execute[i]) {
                    ++actions;
                } catch {}
            }
            for (uint256 i; i < cancel.length && i < MAX_BATCH; ++i) {
                try clearingHouse.cancelOrder(cancel[i]) {
                    ++actions;
                } catch {}
            }
        } else if (job == JOB_ACCOUNTS) {
            (address[] memory liq, address[] memory flag) = abi.decode(data, (address[], address[]));
            if (liq.length > 0) {
                // liquidateBatch re-checks each account and skips those no longer liquidatable.
                try clearingHouse.liquidateBatch(_cap(liq)) returns (uint256 n, uint256) {
                    actions += n;
                } catch {}
            }
            for (uint256 i; i < flag.length && i < MAX_BATCH; ++i) {
                try clearingHouse.flagMarginCall(flag[i]) {
                    ++actions;
                } catch {}
            }
        } else {
            revert AutomationUnknownJob(job);
        }
        emit UpkeepPerformed(job, actions);
    }

    /// @notice Owner: sends the execution fees this contract earned.
    function withdrawEth(address payable to, uint256 amount) external onlyOwner {
        Address.sendValue(to, amount);
    }

    /// @notice Owner: withdraws liquidation rewards credited to this contract in the Vault.
    function withdrawRewards(uint256 amount, address to) external onlyOwner {
        vault.withdraw(amount, to);
    }

    /// @notice Owner: claims execution fees the ClearingHouse could not push.
    function claimEth() external onlyOwner {
        clearingHouse.claimEth();
    }

    function _marketsToPoke() internal view returns (uint256[] memory out) {
        uint256 n = riskManager.marketCount();
        out = new uint256[](n);
        uint256 k;
        for (uint256 m; m < n; ++m) {
            try riskManager.pokeNeeded(m) returns (bool needed) {
                if (needed) out[k++] = m;
            } catch {}
        }
        assembly ("memory-safe") {
            mstore(out, k)
        }
    }

    function _dueOrders(uint256 count) internal view returns (uint256[] memory execute, uint256[] memory cancel) {
        uint256 next = clearingHouse.nextOrderId();
        uint256 from = next > count ? next - count : 0;
        execute = new uint256[](next - from);
        cancel = new uint256[](next - from);
        uint256 e;
        uint256 c;
        uint256 minDelay = clearingHouse.minDelay();
        uint256 maxAge = clearingHouse.maxAge();
        for (uint256 id = from; id < next; ++id) {
            IClearingHouse.Order memory o = clearingHouse.order(id);
            if (o.account == address(0)) continue;
            bool conditional = o.flags & 1 != 0; // ORDER_CONDITIONAL
            uint256 expiresAt = conditional ? clearingHouse.orderTrigger(id).expiresAt : o.commitTime + maxAge;
            if (block.timestamp > expiresAt) cancel[c++] = id;
            else if (block.timestamp >= o.commitTime + minDelay && _executable(id, o, conditional)) execute[e++] = id;
        }
        assembly ("memory-safe") {
            mstore(execute, e)
            mstore(cancel, c)
        }
    }

    /// @dev An order is worth an upkeep only once a price round newer than its commit exists and, for a
    /// conditional order, its trigger is met (executeOrder would revert otherwise).
    function _executable(uint256 id, IClearingHouse.Order memory o, bool conditional) internal view returns (bool) {
        try riskManager.marketRisk(o.marketId, false) returns (IRiskManager.MarketRisk memory r) {
            if (r.priceUpdatedAt <= o.commitTime) return false;
            if (!conditional) return true;
            uint256 trigger = clearingHouse.orderTrigger(id).triggerPriceD18;
            return o.flags & 2 != 0 ? r.priceD18 >= trigger : r.priceD18 <= trigger; // ORDER_TRIGGER_ABOVE
        } catch {
            return false;
        }
    }

    function _accountsToAct(uint256 start, uint256 count) internal view returns (address[] memory liq, address[] memory flag) {
        uint256 end = start + count;
        if (end > tracked.length) end = tracked.length;
        uint256 n = end > start ? end - start : 0;
        liq = new address[](n);
        flag = new address[](n);
        uint256 nLiq;
        uint256 nFlag;
        for (uint256 i = start; i < end; ++i) {
            try clearingHouse.accountSummary(tracked[i]) returns (IClearingHouse.AccountSummary memory s) {
                if (s.status == IClearingHouse.AccountStatus.Liquidatable) liq[nLiq++] = tracked[i];
                else if (s.status == IClearingHouse.AccountStatus.MarginCallable) flag[nFlag++] = tracked[i];
            } catch {}
        }
        assembly ("memory-safe") {
            mstore(liq, nLiq)
            mstore(flag, nFlag)
        }
    }

    function _cap(address[] memory a) internal pure returns (address[] memory) {
        if (a.length > MAX_BATCH) {
            assembly ("memory-safe") {
                mstore(a, 50)
            }
        }
        return a;
    }
}
