// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title MockPhasedAggregator
/// @notice Test double of a Chainlink proxy that behaves like the real one where MockV3Aggregator does not:
/// round ids carry the phase (`roundId = phaseId << 64 | aggregatorRoundId`), a new phase restarts the
/// aggregator round at 1, and `getRoundData` reverts for a round that does not exist ("No data present")
/// instead of returning zeros.
contract MockPhasedAggregator is AggregatorV3Interface {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    uint8 public immutable override decimals;
    uint256 public constant override version = 4;
    uint16 public phaseId = 1;
    uint64 public aggregatorRound;
    uint80 public latestRoundId;
    mapping(uint80 => Round) internal _rounds;

    constructor(uint8 decimals_, int256 initialAnswer) {
        decimals = decimals_;
        pushRound(initialAnswer, block.timestamp);
    }

    /// @notice Appends a round to the current phase with an explicit timestamp; returns its id.
    function pushRound(int256 answer, uint256 updatedAt) public returns (uint80 roundId) {
        aggregatorRound += 1;
        roundId = (uint80(phaseId) << 64) | aggregatorRound;
        _rounds[roundId] = Round(answer, updatedAt, updatedAt);
        latestRoundId = roundId;
    }

    /// @notice Appends many rounds to the current phase in one transaction (long replays in tests).
    function pushRounds(int256[] calldata answers, uint256[] calldata updatedAts) external {
        require(answers.length == updatedAts.length, "length");
        for (uint256 i; i < answers.length; ++i) {
            pushRound(answers[i], updatedAts[i]);
        }
    }

    /// @notice Appends a round timestamped now.
    function updateAnswer(int256 answer) external {
        pushRound(answer, block.timestamp);
    }

    /// @notice Switches the proxy to a new aggregator: the next round is `(phaseId + 1) << 64 | 1`. Rounds of
    /// earlier phases stay readable, as through a real proxy.
    function startPhase() external {
        phaseId += 1;
        aggregatorRound = 0;
    }

    function getRoundData(uint80 roundId) external view override returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = _rounds[roundId];
        require(r.updatedAt != 0, "No data present");
        return (roundId, r.answer, r.startedAt, r.updatedAt, roundId);
    }

    function latestRoundData() external view override returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = _rounds[latestRoundId];
        return (latestRoundId, r.answer, r.startedAt, r.updatedAt, latestRoundId);
    }

    function description() external pure override returns (string memory) {
        return "MockPhasedAggregator";
    }
}
