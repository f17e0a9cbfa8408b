// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Compiles Chainlink's own MockV3Aggregator into this project's artifacts, for tests and local runs.
import {MockV3Aggregator} from "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol";
