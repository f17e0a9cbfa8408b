// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IVault} from "../../interfaces/IVault.sol";
import {IClearingHouse} from "../../interfaces/IClearingHouse.sol";
import {IRiskManager} from "../../interfaces/IRiskManager.sol";

/// @title VaultLedgerProbe
/// @notice Test helper: reads every ledger of the Vault, and the margin state of a list of accounts, in one
/// call, so that a long replay can check the solvency identity after each step without hundreds of RPC round
/// trips.
contract VaultLedgerProbe {
    struct Snapshot {
        uint256 balance; // collateral token held by the Vault
        uint256 sumCollateral;
        uint256 pool;
        uint256 insurance;
        uint256 fees;
        uint256 sigmaD18; // σ in use on `marketId`
        uint256[] collateral;
        int256[] equityD18;
        uint8[] status; // IClearingHouse.AccountStatus
    }

    function read(IVault vault, IClearingHouse clearingHouse, uint256 marketId, address[] calldata accounts)
        external
        view
        returns (Snapshot memory s)
    {
        s.balance = IERC20(vault.token()).balanceOf(address(vault));
        s.collateral = new uint256[](accounts.length);
        s.equityD18 = new int256[](accounts.length);
        s.status = new uint8[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            s.collateral[i] = vault.collateralOf(accounts[i]);
            s.sumCollateral += s.collateral[i];
            IClearingHouse.AccountSummary memory a = clearingHouse.accountSummary(accounts[i]);
            s.equityD18[i] = a.equityD18;
            s.status[i] = uint8(a.status);
        }
        s.pool = vault.poolBalance();
        s.insurance = vault.insuranceFund();
        s.fees = vault.protocolFees();
        (s.sigmaD18,,) = IRiskManager(clearingHouse.riskManagerAddress()).ratios(marketId);
    }
}
