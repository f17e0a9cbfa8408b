// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FixedPointMath} from "./FixedPointMath.sol";

/// @title VolatilityEstimator
/// @notice Sigma's on-chain realized volatility over Chainlink price rounds, O(1) state and work per round.
/// It mirrors sdk/volatility.ts (`VolatilityEstimator`, DEFAULT_VOLATILITY_CONFIG) operation for operation;
/// docs/BACKTEST.md specifies it and reports its backtest. In short: rounds are grouped into periods of at
/// least an hour; a period's variance sample mixes its close-to-close move with its largest excursion (the
/// intra-hour rounds a deviation-triggered feed publishes in a crash); four EWMAs (1 h, 4 h, 1 d, 7 d) are
/// blended, floored at a quarter of a 30-day long-run variance, topped by a tail term for moves beyond two
/// period standard deviations, and scaled by a learned hour-of-day × day-of-week profile.
library VolatilityEstimator {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant WAD36 = 1e36;
    uint256 internal constant YEAR = 365 days;
    uint256 internal constant HOUR = 3600;
    uint256 internal constant DAY = 86400;

    // DEFAULT_VOLATILITY_CONFIG of sdk/volatility.ts.
    uint256 internal constant PERIOD = 1 hours;
    uint256 internal constant BETA = 0.2e18; // weight of the squared max excursion in a period's sample
    uint256 internal constant LONG_RUN_HALF_LIFE = 30 days;
    uint256 internal constant LONG_RUN_FLOOR = 0.25e18;
    uint256 internal constant TAIL_HALF_LIFE = 30 days;
    uint256 internal constant TAIL_THRESHOLD = 2e18;
    uint256 internal constant TAIL_WEIGHT = 1.6e18;
    uint256 internal constant SEASONAL_CAP = 10e18;
    uint256 internal constant INITIAL_SIGMA = 0.8e18;
    /// @dev exp2NegD18(1e18 / 730) and exp2NegD18(7e18 / (24 · 730)): the profile's 730-day half-life for an
    /// hour bucket (visited daily) and a weekday bucket (visited 24 times a week). Checked by a test.
    uint256 internal constant HOUR_DECAY = 999050933962625668;
    uint256 internal constant DAY_DECAY = 999723095978335281;

    uint256 private constant M40 = type(uint40).max;
    uint256 private constant M64 = type(uint64).max;
    uint256 private constant M80 = type(uint80).max;
    uint256 private constant M96 = type(uint96).max;
    uint256 private constant M128 = type(uint128).max;

    /// @dev The estimator's state as integrators and tests see it (`RiskManager.estimatorState`); storage keeps
    /// the same values packed in `Packed`.
    struct State {
        uint80 lastRoundId; // the price feed's last round walked (kept by the RiskManager)
        uint40 lastTime;
        uint40 anchorTime;
        bool initialized;
        uint128 lastPriceD18;
        uint128 anchorPriceD18;
        uint128 maxExcursionD18;
        uint128 tailVarD18;
        uint128[4] variancesD18; // half-lives 1 h, 4 h, 1 d, 7 d
        uint128 longRunVarD18;
        uint128 hourSumD18;
        uint128 daySumD18;
        uint64[24] hourFactorsD18;
        uint64[7] dayFactorsD18;
    }

    /// @dev Storage layout, packed by access: a round that stays inside its period reads and writes slots 0–1
    /// only; a poke that needs σ reads slot 2 too (σ is cached per clock hour: it changes only when a period
    /// closes or the hour of `now` changes); a period close adds slots 3–5 and one hour and one day slot.
    /// Widths: variances keep 128 bits as before; a profile factor is ≤ max(1e18, SEASONAL_CAP) = 10e18 < 2^64,
    /// so hourSum ≤ 24·10e18 and daySum ≤ 7·10e18 fit 80 bits exactly; the max excursion saturates at 2^96 − 1
    /// (a price 7.9e10 times its period's anchor; the 128-bit variances overflow long before that).
    struct Packed {
        // slot 0
        uint80 lastRoundId; // the price feed's last round walked (kept by the RiskManager)
        uint40 lastTime; // 0 until the first round: initialized ⇔ lastTime ≠ 0 (round times are > 0)
        uint40 anchorTime;
        uint96 maxExcursionD18;
        // slot 1
        uint128 lastPriceD18;
        uint128 anchorPriceD18;
        // slot 2
        uint64 sigmaCacheD18; // min(σ, 2^64 − 1) for the clock hour `sigmaCacheHour − 1`
        uint32 sigmaCacheHour; // ⌊t/3600⌋ + 1 of the cached σ; 0: no cache
        uint80 hourSumD18;
        uint80 daySumD18;
        // slots 3–5
        uint128[4] variancesD18; // half-lives 1 h, 4 h, 1 d, 7 d
        uint128 tailVarD18;
        uint128 longRunVarD18;
        // slots 6–13
        uint64[24] hourFactorsD18;
        uint64[7] dayFactorsD18;
    }

    /// @dev Whether a first round was folded in.
    function initialized(Packed storage s) internal view returns (bool) {
        return s.lastTime != 0;
    }

    /// @dev The state, unpacked.
    function load(Packed storage s) internal view returns (State memory st) {
        st.lastRoundId = s.lastRoundId;
        st.lastTime = s.lastTime;
        st.anchorTime = s.anchorTime;
        st.initialized = s.lastTime != 0;
        st.lastPriceD18 = s.lastPriceD18;
        st.anchorPriceD18 = s.anchorPriceD18;
        st.maxExcursionD18 = s.maxExcursionD18;
        st.tailVarD18 = s.tailVarD18;
        st.longRunVarD18 = s.longRunVarD18;
        st.hourSumD18 = s.hourSumD18;
        st.daySumD18 = s.daySumD18;
        // The three packed arrays, by one small loop (Solidity's per-type copy routines cost contract size).
        uint128[4] memory v = st.variancesD18;
        uint64[24] memory hf = st.hourFactorsD18;
        uint64[7] memory df = st.dayFactorsD18;
        uint128[4] storage sv = s.variancesD18;
        uint64[24] storage shf = s.hourFactorsD18;
        uint64[7] storage sdf = s.dayFactorsD18;
        assembly ("memory-safe") {
            // `n` elements of `bits` bits, packed from the low end of consecutive slots from `slot`, to the memory
            // array at `ptr` (one word per element).
            function unpack(slot, n, bits, ptr) {
                let per := div(256, bits)
                let mask := sub(shl(bits, 1), 1)
                for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                    let w := sload(add(slot, div(i, per)))
                    mstore(add(ptr, shl(5, i)), and(shr(mul(mod(i, per), bits), w), mask))
                }
            }
            unpack(sv.slot, 4, 128, v)
            unpack(shf.slot, 24, 64, hf)
            unpack(sdf.slot, 7, 64, df)
        }
    }

    /// @dev First round (t > 0): every variance starts at σ₀², every profile factor at 1; the σ cache is dropped.
    function init(Packed storage s, uint256 priceD18, uint256 t) internal {
        uint256 v0 = INITIAL_SIGMA * INITIAL_SIGMA / WAD;
        s.lastTime = uint40(t);
        s.anchorTime = uint40(t);
        s.maxExcursionD18 = 0;
        s.lastPriceD18 = uint128(priceD18);
        s.anchorPriceD18 = uint128(priceD18);
        s.sigmaCacheD18 = 0;
        s.sigmaCacheHour = 0;
        s.hourSumD18 = uint80(24 * WAD);
        s.daySumD18 = uint80(7 * WAD);
        for (uint256 i; i < 4; ++i) {
            s.variancesD18[i] = uint128(v0);
        }
        // The tail variance is left as it is (0 on a market's first round), as before the packing.
        s.longRunVarD18 = uint128(v0);
        for (uint256 h; h < 24; ++h) {
            s.hourFactorsD18[h] = uint64(WAD);
        }
        for (uint256 d; d < 7; ++d) {
            s.dayFactorsD18[d] = uint64(WAD);
        }
    }

    /// @dev Folds one round (price > 0, t ≥ last time; the caller checks). Returns the round's move from the
    /// previous round, |p − last|/last in D18, for the price-jump breaker.
    function update(Packed storage s, uint256 priceD18, uint256 t) internal returns (uint256 moveD18) {
        // Slots 0 and 1 are read once and written once (see `Packed` for the bit layout).
        uint256 base = _slot(s);
        uint256 w0 = _sload(base);
        uint256 w1 = _sload(base + 1);
        uint256 last = w1 & M128;
        uint256 pa = w1 >> 128;
        uint256 anchorTime = (w0 >> 120) & M40;
        uint256 m = w0 >> 160;
        moveD18 = Math.mulDiv(priceD18 > last ? priceD18 - last : last - priceD18, WAD, last);
        uint256 x = Math.mulDiv(priceD18 >= pa ? priceD18 - pa : pa - priceD18, WAD, pa);
        if (x > m) m = x;
        uint256 dt = t - anchorTime;
        uint256 p = priceD18 & M128; // the uint128 the price was always stored as
        if (dt < PERIOD) {
            // lastTime = t, max excursion = m (saturated), lastPrice = p.
            _sstore(base, (w0 & M80) | (t << 80) | (anchorTime << 120) | (Math.min(m, M96) << 160));
            _sstore(base + 1, (pa << 128) | p);
            return moveD18;
        }
        _fold(base, x, m, dt, anchorTime);
        // lastTime = anchorTime = t, max excursion = 0, lastPrice = anchorPrice = p.
        _sstore(base, (w0 & M80) | (t << 80) | (t << 120));
        _sstore(base + 1, (p << 128) | p);
    }

    /// @dev Closes a period: variance sample, profile, tail, EWMAs and long-run variance, in that order. Each
    /// slot is read once and written once; the σ cache is dropped. EWMA results keep their uint128 width.
    function _fold(uint256 base, uint256 x, uint256 m, uint256 dt, uint256 anchorTime) private {
        uint256 q = Math.mulDiv((WAD - BETA) * x * x + BETA * m * m, YEAR, dt * WAD36);
        uint256 w3 = _sload(base + 3);
        uint256 w4 = _sload(base + 4);
        uint256 v0 = w3 & M128;
        uint256 v1 = w3 >> 128;
        uint256 v2 = w4 & M128;
        uint256 v3 = w4 >> 128;
        uint256 blend = (0.4e18 * v0 + 0.25e18 * v1 + 0.1e18 * v2 + 0.25e18 * v3) / WAD;
        _updateProfile(base, q, v3, anchorTime);
        // Tail: the part of the period's largest excursion beyond TAIL_THRESHOLD period standard deviations.
        uint256 std = Math.sqrt(Math.mulDiv(blend, dt, YEAR) * WAD);
        uint256 thr = TAIL_THRESHOLD * std / WAD;
        uint256 ex = m > thr ? m - thr : 0;
        uint256 qT = Math.mulDiv(ex * ex, YEAR, dt * WAD);
        // TAIL_HALF_LIFE == LONG_RUN_HALF_LIFE: one decay weight for both.
        uint256 a30 = FixedPointMath.decayD18(dt, LONG_RUN_HALF_LIFE);
        uint256 w5 = _sload(base + 5);
        _sstore(base + 5, (_ewma(w5 & M128, qT, a30) & M128) | (_ewma(w5 >> 128, q, a30) << 128));
        v0 = _ewma(v0, q, FixedPointMath.decayD18(dt, 1 hours)) & M128;
        v1 = _ewma(v1, q, FixedPointMath.decayD18(dt, 4 hours));
        _sstore(base + 3, v0 | (v1 << 128));
        v2 = _ewma(v2, q, FixedPointMath.decayD18(dt, 1 days)) & M128;
        v3 = _ewma(v3, q, FixedPointMath.decayD18(dt, 7 days));
        _sstore(base + 4, v2 | (v3 << 128));
    }

    /// @dev The period's move in units of the 7-day σ feeds its hour-of-day and day-of-week buckets.
    function _updateProfile(uint256 base, uint256 q, uint256 vBase, uint256 anchor) private {
        uint256 u = vBase == 0 ? SEASONAL_CAP : Math.sqrt(Math.mulDiv(q, WAD36, vBase));
        if (u > SEASONAL_CAP) u = SEASONAL_CAP;
        uint256 h = (anchor / HOUR) % 24;
        uint256 d = (anchor / DAY + 4) % 7;
        uint256 w2 = _sload(base + 2);
        // Hour factor h: slot 6 + h/4, bits 64·(h%4); day factor d: slot 12 + d/4, bits 64·(d%4).
        uint256 hSlot = base + 6 + h / 4;
        uint256 hShift = (h % 4) * 64;
        uint256 wh = _sload(hSlot);
        uint256 fh = (wh >> hShift) & M64;
        uint256 relH = Math.mulDiv(fh, 24 * WAD, (w2 >> 96) & M80);
        uint256 ud = relH == 0 ? SEASONAL_CAP : Math.mulDiv(u, WAD, relH);
        if (ud > SEASONAL_CAP) ud = SEASONAL_CAP;
        // Factors stay ≤ max(fh, u) ≤ SEASONAL_CAP < 2^64, the sums ≤ 24·SEASONAL_CAP < 2^80.
        uint256 newF = _ewma(fh, u, HOUR_DECAY);
        _sstore(hSlot, (wh & ~(M64 << hShift)) | (newF << hShift));
        uint256 dSlot = base + 12 + d / 4;
        uint256 dShift = (d % 4) * 64;
        uint256 wd = _sload(dSlot);
        uint256 gd = (wd >> dShift) & M64;
        uint256 newG = _ewma(gd, ud, DAY_DECAY);
        _sstore(dSlot, (wd & ~(M64 << dShift)) | (newG << dShift));
        // Slot 2: the new sums, and no σ cache (the variances change).
        _sstore(base + 2, ((((w2 >> 96) & M80) - fh + newF) << 96) | (((w2 >> 176) - gd + newG) << 176));
    }

    function _slot(Packed storage s) private pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _sload(uint256 slot) private view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }

    function _sstore(uint256 slot, uint256 w) private {
        assembly ("memory-safe") {
            sstore(slot, w)
        }
    }

    /// @dev Annualized σ (D18) at time `nowSec`.
    function sigmaD18(Packed storage s, uint256 nowSec) internal view returns (uint256) {
        return Math.sqrt(varianceD18(s, nowSec) * WAD);
    }

    /// @dev min(σ, 2^64 − 1) at time `nowSec` (≥ the last round's time), from the cache when it holds this
    /// clock hour, else computed and cached. σ depends on `nowSec` only through ⌊nowSec/3600⌋ (hour of day and
    /// day of week), and on the state only through what a period close changes, which drops the cache.
    function cappedSigmaD18(Packed storage s, uint256 nowSec) internal returns (uint256 sigma) {
        uint256 key = nowSec / HOUR + 1;
        if (s.sigmaCacheHour == key) return s.sigmaCacheD18;
        sigma = Math.min(sigmaD18(s, nowSec), type(uint64).max);
        s.sigmaCacheD18 = uint64(sigma);
        s.sigmaCacheHour = uint32(key);
    }

    /// @dev s² = max(blend, floor·L) + wT·T, times the profile factor (squared) for the hour/day of `nowSec`.
    function varianceD18(Packed storage s, uint256 nowSec) internal view returns (uint256 v) {
        if (s.lastTime == 0) return INITIAL_SIGMA * INITIAL_SIGMA / WAD;
        v = (0.4e18 * uint256(s.variancesD18[0]) + 0.25e18 * uint256(s.variancesD18[1])
            + 0.1e18 * uint256(s.variancesD18[2]) + 0.25e18 * uint256(s.variancesD18[3])) / WAD;
        uint256 floor = LONG_RUN_FLOOR * s.longRunVarD18 / WAD;
        if (floor > v) v = floor;
        v += TAIL_WEIGHT * s.tailVarD18 / WAD;
        uint256 fh = Math.mulDiv(s.hourFactorsD18[(nowSec / HOUR) % 24], 24 * WAD, s.hourSumD18);
        uint256 gd = Math.mulDiv(s.dayFactorsD18[(nowSec / DAY + 4) % 7], 7 * WAD, s.daySumD18);
        uint256 f = fh * gd / WAD;
        v = Math.mulDiv(Math.mulDiv(v, f, WAD), f, WAD);
    }

    function _ewma(uint256 v, uint256 sample, uint256 a) private pure returns (uint256) {
        return (a * v + (WAD - a) * sample) / WAD;
    }
}
