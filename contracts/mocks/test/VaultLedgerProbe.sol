// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IVault} from "../../interfaces/IVault.sol";

/// @title VaultLedgerProbe
/// @notice Test helper: reads every ledger of the Vault in one call, so that a long replay can check the
/// solvency identity after each step without hundreds of RPC round trips.
contract VaultLedgerProbe {
    function read(IVault vault, address[] calldata accounts)
        external
        view
        returns (uint256 balance, uint256[] memory collateral, uint256 sumCollateral, uint256 pool, uint256 insurance, uint256 fees)
    {
        balance = IERC20(vault.token()).balanceOf(address(vault));
        collateral = new uint256[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            collateral[i] = vault.collateralOf(accounts[i]);
            sumCollateral += collateral[i];
        }
        pool = vault.poolBalance();
        insurance = vault.insuranceFund();
        fees = vault.protocolFees();
    }
}
