// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title ChainlinkOracle
/// @notice The only place Sigma reads a Chainlink feed. Every read checks the answer is positive, that the
/// round is complete and not from the future, and that it is younger than the caller's maximum age; values
/// are normalized to 18 decimals here so that nothing downstream ever sees feed decimals.
library ChainlinkOracle {
    /// @notice The feed answered zero or a negative number.
    error OracleInvalidAnswer(address feed, int256 answer);
    /// @notice The feed's last update is older than the allowed age (or lies in the future).
    error OracleStale(address feed, uint256 updatedAt, uint256 maxAge);
    /// @notice The L2 sequencer-uptime feed reports the sequencer down.
    error OracleSequencerDown(address sequencerFeed);
    /// @notice The sequencer is back up but its grace period has not elapsed yet.
    error OracleSequencerGracePeriod(address sequencerFeed, uint256 upSince, uint256 gracePeriod);

    /// @dev Reads `feed`'s latest round and returns its answer scaled to 18 decimals.
    /// @param decimals the feed's `decimals()`, read once when the feed is configured.
    /// @param maxAge the largest accepted `block.timestamp - updatedAt`, in seconds.
    function readD18(AggregatorV3Interface feed, uint8 decimals, uint256 maxAge)
        internal
        view
        returns (uint256 valueD18, uint256 updatedAt)
    {
        int256 answer;
        (, answer,, updatedAt,) = feed.latestRoundData();
        valueD18 = validateAndScale(address(feed), answer, updatedAt, decimals, maxAge);
    }

    /// @dev Validates one round (latest or historical) and scales it to 18 decimals.
    function validateAndScale(address feed, int256 answer, uint256 updatedAt, uint8 decimals, uint256 maxAge)
        internal
        view
        returns (uint256)
    {
        if (answer <= 0) revert OracleInvalidAnswer(feed, answer);
        // updatedAt == 0 marks an incomplete round; a timestamp ahead of the block is not trustworthy either.
        if (updatedAt == 0 || updatedAt > block.timestamp || block.timestamp - updatedAt > maxAge) {
            revert OracleStale(feed, updatedAt, maxAge);
        }
        return scaleToD18(uint256(answer), decimals);
    }

    /// @dev Converts a `decimals`-decimal fixed-point number to 18 decimals (feeds have at most 36 decimals).
    function scaleToD18(uint256 value, uint8 decimals) internal pure returns (uint256) {
        if (decimals == 18) return value;
        if (decimals < 18) return value * 10 ** (18 - decimals);
        return value / 10 ** (decimals - 18);
    }

    /// @dev Reverts unless the L2 sequencer is up and has been up for at least `gracePeriod` seconds.
    /// Chainlink's uptime feeds answer 0 for up and 1 for down; `startedAt` is when the status last changed.
    /// A zero address means "no sequencer" (L1) and passes.
    function checkSequencer(AggregatorV3Interface sequencerFeed, uint256 gracePeriod) internal view {
        if (address(sequencerFeed) == address(0)) return;
        (, int256 answer, uint256 startedAt,,) = sequencerFeed.latestRoundData();
        if (answer != 0) revert OracleSequencerDown(address(sequencerFeed));
        // startedAt == 0 happens on some L2s before the first round is initialized: treat as down.
        if (startedAt == 0) revert OracleSequencerDown(address(sequencerFeed));
        // A start ahead of the block (a node's inconsistent view) is within the grace period, not an underflow.
        if (startedAt >= block.timestamp || block.timestamp - startedAt <= gracePeriod) {
            revert OracleSequencerGracePeriod(address(sequencerFeed), startedAt, gracePeriod);
        }
    }

    /// @dev Non-reverting variant of `checkSequencer`, for views and circuit breakers.
    function sequencerOk(AggregatorV3Interface sequencerFeed, uint256 gracePeriod) internal view returns (bool) {
        if (address(sequencerFeed) == address(0)) return true;
        (, int256 answer, uint256 startedAt,,) = sequencerFeed.latestRoundData();
        return answer == 0 && startedAt != 0 && startedAt < block.timestamp && block.timestamp - startedAt > gracePeriod;
    }
}
