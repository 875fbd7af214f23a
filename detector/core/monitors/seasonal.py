"""Seasonal adjustment: the reference of a signal whose values follow the hour of the day or
of the week (in event time), so that its PIT positions are uniform within every hour and the
detectors see only what moves away from the usual value *for that hour* (pure; no I/O).

How a signal learns its season (detector.core.monitors.signal drives it):

1. The warm-up (`warmup_events` values) is fitted as always. Its event times give the traffic
   rate. If a week of such traffic fits in `season_max_warmup_events` values, the signal learns
   over one week of event time (hour-of-week buckets), else over one day if that fits (hour of
   day), without alerting meanwhile: before a full cycle has been seen, whether a daily or
   weekly component exists cannot be known, and watching a cyclic signal against a reference
   learned in one hour is what raised an alert every evening. Faster traffic (a day does not
   fit) is not kept blind for a day or a week of millions of events: it watches against its
   warm-up's reference over its first day, then against that day's hours (decided as at a
   cycle's end; the other kind of day, weekend or weekdays, learned blind until the week has
   shown it) while it learns one week of event time from every `every`-th value (about four
   million values a week), and switches at the week's end (`Plan.watching`, `Plan.day_ms`).
   Against its warm-up's reference all week, as it watched before, every cyclic signal
   alarmed all week.
2. Over that cycle (`SeasonLearner`) the signal keeps, per hour-of-week bucket, the count and
   the fixed-point sums of t and t² (t: the value on a robust, scale-free scale, `Scaler`) or
   the count of each category (a 0/1 rate: of 0s and 1s), plus a thinned sample of t spread
   over the cycle. Integer sums do not depend on how the values were batched, and neither does
   which values are learned from (by position), so neither does anything decided from them.
3. At the cycle's end a chi-square test on the bucket means (and log
   variances) against the within-bucket spread decides whether the daily component, and then
   a weekly one on top of it, is significant. Not significant: no adjustment (the warm-up's
   reference, as before). Significant: `NumericSeason` standardises t with the location and
   scale of its bucket (hour of week or hour of day, shrunk towards the coarser bucket when
   the bucket saw few events; interpolated between hours except where they step, `_steps`),
   and the pooled reference is fitted on the standardised sample (a count is judged over its
   unit: `NumericSeason.statistics_t`);
   categories get per-bucket expected shares (`CategoricalSeason`), their mix watched through
   the category that strays most from them (`MixStatistic`), and rates per-bucket
   expected rates (`BinarySeason`: the PIT of a bit under its hour's rate, and for river's
   binary detectors the bit adjusted for its hour, `BinarySeason.adjust`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from detector.core.monitors.reference import CategoricalReference, NumericReference, spread_of

HOUR_MS = 3_600_000
DAY_HOURS, WEEK_HOURS = 24, 168
KIND_HOURS = 2 * DAY_HOURS  # the hours of a weekday and of a Saturday or Sunday (`_groups`)
FIXED_POINT = 2.0**16  # t is summed as integers of 1/65536: exact, so batching cannot change a sum
T_LIMIT = (
    20.0  # |t| is clipped here (asinh(20): 2.4e8 scales from the median), so sums cannot overflow
)
# A bucket's estimates are shrunk towards those of its coarser bucket with this weight in events:
# an hour of the week towards that hour of its kind of day, an hour of a kind of day or of the
# day (barely: a daily cycle is usually the larger one, and a stronger pull would bias every
# hour towards the day's mean) towards the coarser.
PRIOR_EVENTS = {DAY_HOURS: 1.0, KIND_HOURS: 1.0, WEEK_HOURS: 20.0}
SIGNIFICANCE_SIGMAS = 6.0  # a component is significant when its chi-square exceeds df + this × sd
STEP_SIGMAS = 4.0  # a bucket's estimates step at its end when their discontinuity is this many se
POOLED_SAMPLE = 1024  # values of t kept over the cycle for the pooled reference (1024 to 2047)
# ...and by a signal that watches while it learns (fast traffic): a pooled reference from about
# 1,500 values misplaces the mean of the PIT statistics by about 1/√1,500 = 0.026 of their sd
# at every hour (the ECDF's error), which at hundreds of events a second is half the minimum
# effect, so that most detector hits passed it; from 8,192 to 16,383 values, about 0.009.
POOLED_SAMPLE_WATCHING = 8192
# Values a week a signal that watches while it learns learns from (every k-th of faster traffic):
# about 24,000 an hour of the week, so an hour's mean is known to about 0.0065 of its sd (a
# million, 0.013 of it, left fast traffic 50 false alarms in 3 days where 4 million leave 14;
# 16 million, 8, but at about 40% more CPU: BENCHMARKS.md, "Minimum effect and fast seasonal
# traffic").
LEARNED_WHILE_WATCHING = 4_000_000
MIN_SCALE = 1e-9
GOLDEN_FRACTION = (np.sqrt(5.0) - 1.0) / 2.0  # k × this mod 1: evenly spread for any k (Weyl)
PENDING = 64  # values a learner collects before adding them up (SeasonLearner.take)


def hour_of_week(ts_ms: np.ndarray) -> np.ndarray:
    """Hour-of-week bucket (0..167, UTC, from Thursday 00:00: the epoch's weekday) of event times."""
    return (np.asarray(ts_ms, dtype=np.int64) // HOUR_MS) % WEEK_HOURS


@dataclass(frozen=True)
class Plan:
    """What a signal's season learning covers: `hours` of event time (24 or 168) from its first
    value, ending at the first value at or after `end_ms`; every `every`-th value is learned
    from and every `stride`-th (a multiple of `every`) kept in the sample. `watching`: the
    signal watches meanwhile (traffic too fast to stay blind), against its warm-up's reference
    until `day_ms`, then with the season of its first day (all week when `day_ms` is 0: plans
    saved before first days)."""

    hours: int
    end_ms: int
    stride: int
    every: int = 1
    watching: bool = False
    day_ms: int = 0

    @property
    def sample_size(self) -> int:
        """The fewest values the sample keeps over the cycle (it keeps fewer than twice that)."""
        return POOLED_SAMPLE_WATCHING if self.watching else POOLED_SAMPLE

    def to_state(self) -> list[Any]:
        return list(astuple(self))

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> Plan:
        hours, end_ms, stride, every, watching = state[:5]
        day_ms = state[5] if len(state) > 5 else 0  # (a plan saved before first days)
        return cls(int(hours), int(end_ms), int(stride), int(every), bool(watching), int(day_ms))


def plan(ts_ms: np.ndarray, max_events: int) -> Plan | None:
    """The season to learn after a warm-up whose values came at event times `ts_ms`: a week if
    a week at the warm-up's rate fits in `max_events` values, else a day if a day does, both
    blind; else a week learned from every `every`-th value (about LEARNED_WHILE_WATCHING of
    them) while watching, with its first day's season after that day. None (no seasonal
    adjustment) if `max_events` is 0 or the times do not move."""
    if max_events <= 0 or len(ts_ms) < 2:
        return None
    first, span = int(ts_ms.min()), int(ts_ms.max() - ts_ms.min())
    if span <= 0:
        return None
    per_ms = (len(ts_ms) - 1) / span
    for hours in (WEEK_HOURS, DAY_HOURS):
        expected = per_ms * hours * HOUR_MS
        if expected <= max_events:
            return Plan(hours, first + hours * HOUR_MS, max(1, int(expected // POOLED_SAMPLE)))
    expected = per_ms * WEEK_HOURS * HOUR_MS
    every = max(1, int(expected // LEARNED_WHILE_WATCHING))
    stride = max(every, int(expected // POOLED_SAMPLE_WATCHING) // every * every)
    return Plan(
        WEEK_HOURS,
        first + WEEK_HOURS * HOUR_MS,
        stride,
        every,
        watching=True,
        day_ms=first + DAY_HOURS * HOUR_MS,
    )


@dataclass(frozen=True)
class Scaler:
    """t = (x - median) / scale, with the warm-up's median and interquartile scale: the same for
    any unit (scale-free), and linear, so that a cycle of the scale (a lognormal amount, a
    latency) stays one of the scale. A heavy tail makes the bucket moments noisy, and so their
    differences not significant: such a signal keeps its unadjusted reference. `grid`: 1 when
    every warm-up value was a whole number (a count), whose statistics are then taken over its
    unit (`NumericSeason.statistics_t`), else 0."""

    median: float
    scale: float
    grid: float = 0.0

    @classmethod
    def fit(cls, sample: np.ndarray) -> Scaler:
        q25, q50, q75 = np.quantile(sample, [0.25, 0.5, 0.75])
        scale = (q75 - q25) / 1.349
        if not scale > MIN_SCALE:
            scale = max(float(np.std(sample)), abs(float(q50)) * 1e-3, MIN_SCALE)
        grid = 1.0 if np.array_equal(sample, np.round(sample)) else 0.0
        return cls(float(q50), float(scale), grid)

    def transform(self, x: np.ndarray) -> np.ndarray:
        t = (np.asarray(x, dtype=np.float64) - self.median) / self.scale
        return np.clip(t, -T_LIMIT, T_LIMIT)

    def to_state(self) -> list[float]:
        return [self.median, self.scale, self.grid]

    @classmethod
    def from_state(cls, state: Sequence[float]) -> Scaler:
        """(a scaler saved before grids has two entries: continuous, as it was)"""
        return cls(*(float(value) for value in state))


@dataclass(frozen=True)
class NumericSeason:
    """Per-bucket location and scale of t; `standardise` maps a value to its bucket's z,
    `statistics` to its PIT statistics under the pooled reference of z (`reference_sample`)."""

    scaler: Scaler
    location: np.ndarray  # per bucket, 24 or 168
    scale: np.ndarray
    steps: np.ndarray  # per bucket: location or scale steps at its end (`_steps`)

    @property
    def buckets(self) -> int:
        return len(self.location)

    def standardise(self, x: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """z of values x at event times ts_ms: t less the location, over the scale, of that
        moment, both interpolated linearly between the centres of the hours around it (a
        bucket's mean is that of its whole hour: without interpolation, a cycle that moves
        within the hour would leave a saw-tooth), except across an hour's end where they step
        (a weekend that starts at midnight): on each side of it, the line through the centres
        of that side's two nearest hours is extended to the step."""
        return self.standardise_t(self.scaler.transform(x), ts_ms)

    def standardise_t(self, t: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """z of values already on the scaler's scale."""
        first, second, weight = _neighbours(ts_ms, self.buckets)
        if self.steps.any():  # (most seasons have none: 12 ns a value saved)
            step = self.steps[first]
            early, late = step & (weight < 0.5), step & (weight >= 0.5)  # before, after a step
            first, second = (
                np.where(early, first - 1, np.where(late, second, first)) % self.buckets,
                np.where(early, first, np.where(late, second + 1, second)) % self.buckets,
            )
            weight = np.where(early, weight + 1.0, np.where(late, weight - 1.0, weight))
        location = self.location[first] + weight * (self.location[second] - self.location[first])
        scale = self.scale[first] + weight * (self.scale[second] - self.scale[first])
        return (t - location) / np.maximum(scale, MIN_SCALE)

    def reference_sample(self, t: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """z of a sample of t (in order, as kept) to fit the pooled reference on; a count's t
        spread over its unit first, evenly and by its place in the sample (a deterministic
        low-discrepancy sequence), so that the reference is that of the count spread over its
        unit, which `statistics_t` averages over."""
        if self.scaler.grid:
            spread = (np.arange(1, len(t) + 1) * GOLDEN_FRACTION) % 1.0 - 0.5
            t = t + spread * (self.scaler.grid / self.scaler.scale)
        return self.standardise_t(t, ts_ms)

    def statistics(
        self, reference: NumericReference, x: np.ndarray, ts_ms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The PIT statistics (location, spread) of values x at ts_ms (`statistics_t`)."""
        return self.statistics_t(reference, self.scaler.transform(x), ts_ms)

    def statistics_t(
        self, reference: NumericReference, t: np.ndarray, ts_ms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The PIT statistics (location u, spread `spread_of(u)`) of values already on the
        scaler's scale, under the pooled reference: of their z, or for a count, their means over
        its unit's cell of z. A count's z lie on a lattice whose phase moves with the hour's location and
        scale; at single points of the pooled reference (which mixes all phases) an hour's
        statistics moved with that phase, the spread most (a cell across the median): sessions
        of mean 2-9 left cycles of ±0.09 sd a few hours long that no hourly offset removes,
        and at hundreds of events a second most of fast traffic's false alarms."""
        if not self.scaler.grid:
            u = reference.transform(self.standardise_t(t, ts_ms))
            return u, spread_of(u)
        half = 0.5 * self.scaler.grid / self.scaler.scale
        return reference.mean_over(
            self.standardise_t(t - half, ts_ms), self.standardise_t(t + half, ts_ms)
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "median": self.scaler.median,
            "scale_t": self.scaler.scale,
            "grid": self.scaler.grid,
            "location": self.location,
            "scale": self.scale,
            "steps": self.steps,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NumericSeason:
        location = np.asarray(state["location"], dtype=np.float64)
        return cls(
            # (a season learned before grids: continuous, as it was)
            Scaler(float(state["median"]), float(state["scale_t"]), float(state.get("grid", 0.0))),
            location,
            np.asarray(state["scale"], dtype=np.float64),
            # (a season learned before steps were: interpolated everywhere, as it was)
            np.asarray(state.get("steps", np.zeros(len(location))), dtype=bool),
        )


@dataclass(frozen=True)
class CategoricalSeason:
    """Per-bucket shares of category codes (the reference's, 'other' last), in the reference's
    order of codes: `transform` gives the mid-PIT of each code under its bucket's shares."""

    shares: np.ndarray  # (buckets, codes)

    @property
    def buckets(self) -> int:
        return len(self.shares)

    def transform(self, codes: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """Mid-PIT of each code under the shares of its moment: those of the hours around it,
        interpolated linearly between their centres, as a number's location and scale are (a
        bucket's shares are those of its whole hour: without interpolation a mix that moves
        through the day leaves a saw-tooth, which fast traffic shows)."""
        before, after, weight = _neighbours(ts_ms, self.buckets)
        low = self._middles[before, codes]
        return low + weight * (self._middles[after, codes] - low)

    @cached_property
    def share_points(self) -> np.ndarray:
        """The shares as integers of 2⁻²⁰ (MixStatistic sums them exactly)."""
        return np.rint(self.shares * SHARE_POINT).astype(np.int64)

    @cached_property
    def _middles(self) -> np.ndarray:
        return np.cumsum(self.shares, axis=1) - 0.5 * self.shares

    def to_state(self) -> dict[str, Any]:
        return {"shares": self.shares}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalSeason:
        return cls(np.asarray(state["shares"], dtype=np.float64))


SHARE_POINT = 1 << 20  # a bucket's shares as integers of 2⁻²⁰ (MixStatistic)
WEIGHT_POINT = 1 << 10  # interpolation weights between buckets as integers of 2⁻¹⁰
UNIT = SHARE_POINT * WEIGHT_POINT  # one value's expected counts sum to about this
MIX_WINDOW_BLOCKS = 64  # blocks (1,024 values) whose counts choose the category watched
MIX_MIN_SPREAD = 0.1 * 0.9  # p(1 − p) below this is not scaled up further (MixStatistic)


class MixStatistic:
    """The location statistic of a category mix judged against its hour's shares: the value's
    indicator of the category that strayed most from its hours' shares over the last
    MIX_WINDOW_BLOCKS completed blocks, standardised under its hour's share.

    For each block that category k is chosen from the blocks before it: the one whose count
    lies most standard deviations from its expected count (the sum of its hours' shares), the
    sign s = ±1 of that deviation kept. Each value of the block then gives
    u = 1/2 + s·(b − p)·c, b = 1 if it is k, p its hour's share of k, c = √(1/12 / max(p(1 − p),
    MIX_MIN_SPREAD)), in [−0.47, 1.47]. Given everything before, u has mean 1/2 and (for
    0.1 ≤ p ≤ 0.9; less beyond) variance 1/12 under the hour's shares, as a PIT value has: the
    detectors' thresholds and the minimum effect hold on it, and its variance is the same at
    every hour (ADWIN's, pooled over its window, is each hour's). A category
    that gains or loses mass moves u by the share it gained in sd units of its indicator at
    that hour, the most any statistic of one category's share can (its likelihood ratio), where
    the mid-PIT in the reference's order saw it through that order and the other categories'
    spacing (docs/detection.md, "Daily and weekly cycles"). Blocks count values from the
    statistic's start, and their counts are integers (shares and interpolation weights
    quantised), so the choice, and every u, depend only on the order of the values, not on
    batching. Before the first block u is 1/2.

    The work is linear in values plus blocks × categories: a block's expected counts are its
    buckets' shares weighted by the sum of its values' interpolation weights (a block's values
    fall in one or two hours), not a row of shares per value."""

    def __init__(self, codes: int, block_events: int) -> None:
        self.codes = codes
        self.block_events = block_events
        # per completed block (the last MIX_WINDOW_BLOCKS): counts less expected counts per code,
        # then expected counts, in units of 1 / UNIT
        self.window = np.zeros((0, 2 * codes), dtype=np.int64)
        self.carry = np.zeros(2 * codes, dtype=np.int64)  # the unfinished block's sums
        self.carried = 0  # values in the unfinished block

    def transform(
        self, codes: np.ndarray, ts_ms: np.ndarray, season: CategoricalSeason
    ) -> np.ndarray:
        """The statistic of category `codes` (in order) at event times `ts_ms`, under the
        shares of `season`; advances the blocks."""
        n = len(codes)
        if not n:
            return np.empty(0)
        width, points = self.codes, season.share_points
        before, after, weight = _neighbours(ts_ms, season.buckets)
        later = (weight * WEIGHT_POINT).astype(np.int64)  # (floored: exact for any batching)
        earlier = WEIGHT_POINT - later
        size = self.block_events
        starts = np.arange((size - self.carried) % size, n, size)
        edges = np.concatenate(([0], starts[starts > 0]))  # each block's first value here
        here = np.diff(np.append(edges, n))
        blocks = len(edges)
        block = np.repeat(np.arange(blocks), here)
        sums = np.zeros((blocks, 2 * width), dtype=np.int64)
        sums[:, :width] = UNIT * np.bincount(
            block * width + codes, minlength=blocks * width
        ).reshape(blocks, width)
        sums[:, width:] = _bucket_sums(block, before, earlier, after, later, points, blocks)
        sums[:, :width] -= sums[:, width:]
        sums[0] += self.carry  # the unfinished block goes on
        lengths = here.copy()
        lengths[0] += self.carried
        complete = lengths == size  # all but perhaps the last
        # The i-th block here follows the window's blocks and the i before it here.
        done = np.concatenate((self.window, sums[complete]))
        totals = np.concatenate((np.zeros((1, 2 * width), np.int64), np.cumsum(done, axis=0)))
        ending = len(self.window) + np.arange(blocks)
        recent = totals[ending] - totals[np.maximum(ending - MIX_WINDOW_BLOCKS, 0)]
        deviation, count = recent[:, :width] / UNIT, recent[:, width:] / UNIT
        values = np.maximum(count.sum(axis=1, keepdims=True), 1.0)
        spread = np.sqrt(count * np.maximum(1.0 - count / values, 0.0))
        z = np.divide(deviation, spread, out=np.zeros_like(deviation), where=spread > 0)
        chosen = np.argmax(np.abs(z), axis=1)
        sign = np.sign(z[np.arange(blocks), chosen])
        watched = chosen[block]
        share = (points[before, watched] * earlier + points[after, watched] * later) / UNIT
        scale = np.sqrt(1.0 / 12.0 / np.maximum(share * (1.0 - share), MIX_MIN_SPREAD))
        self.window = done[-MIX_WINDOW_BLOCKS:]
        if complete[-1]:
            self.carry, self.carried = np.zeros(2 * width, dtype=np.int64), 0
        else:
            self.carry, self.carried = sums[-1], int(lengths[-1])
        return 0.5 + sign[block] * ((codes == watched) - share) * scale

    def to_state(self) -> dict[str, Any]:
        return {"window": self.window, "carry": self.carry, "carried": self.carried}

    @classmethod
    def from_state(cls, codes: int, block_events: int, state: dict[str, Any]) -> MixStatistic:
        mix = cls(codes, block_events)
        mix.window = np.asarray(state["window"], dtype=np.int64).reshape(-1, 2 * codes)
        mix.carry = np.asarray(state["carry"], dtype=np.int64)
        mix.carried = int(state["carried"])
        return mix


@dataclass(frozen=True)
class BinarySeason(CategoricalSeason):
    """A 0/1 rate's season: its per-bucket shares of 0 and 1 (a rate is a two-category mix:
    `transform` gives a bit's mid-PIT under its hour's rate, as for categories), and `rate`, the
    share of 1s over the learned cycle, the level `adjust` keeps for the binary detectors."""

    rate: float

    def adjust(self, bits: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """Bits as values in [0, 1] whose mean is `rate` at every hour: y = r + s·(b − p), p the
        bit's hour's rate, r the cycle's, s = min(1, r/p, (1 − r)/(1 − p)) the largest factor
        that keeps y in [0, 1]. River's binary detectors keep their false-alarm budget on y:
        each value spans at most 1 (HDDM_A's Hoeffding bound holds as for bits) and its
        variance s²·p(1 − p) is at most r(1 − r) (DDM's binomial spread of a rate r stays an
        upper bound); a shift Δ of an hour's rate moves y's mean by s·Δ."""
        expected = np.clip(self.shares[hour_of_week(ts_ms) % self.buckets, 1], 1e-12, 1 - 1e-12)
        rate = self.rate
        factor = np.minimum(1.0, np.minimum(rate / expected, (1.0 - rate) / (1.0 - expected)))
        adjusted = rate + factor * (np.asarray(bits, dtype=np.float64) - expected)
        return np.clip(adjusted, 0.0, 1.0)  # (rounding only: y is in [0, 1] by construction)

    def to_state(self) -> dict[str, Any]:
        return {"shares": self.shares, "rate": self.rate}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BinarySeason:
        return cls(np.asarray(state["shares"], dtype=np.float64), float(state["rate"]))


STATISTIC_POINT = 2.0**20  # PIT statistics (in [0, 1]) are summed as integers of 2⁻²⁰
HARMONICS = 2  # daily harmonics of a statistic's offsets (Recentring)


class Recentring:
    """Per hour-of-day offsets of a standardised signal's PIT statistics, learned over its first
    week watched and subtracted: those of its first day from the end of that day, those of the
    whole week from the end of the week on.

    Standardising fixes location and scale, not shape: a bounded or discrete value whose shape
    changes over the day (a confidence that piles up at 0.5, a count of small mean) leaves its
    PIT statistics ±0.02 off their level at some hours, a slow daily cycle that ADWIN finds in
    the end. Each statistic's mean per hour of the day (about 1,000 values an hour and a day at
    20 a minute: standard error 0.01 after a day, 0.004 after a week) less its mean over all
    hours is that cycle; only differences between hours are removed, so a change that moves
    every hour stays whole. Each period ends at the first value at or after `until_ms` (the
    day), then `final_ms` (the week), in event time, whatever the batches."""

    def __init__(self, statistics: int, until_ms: int, final_ms: int) -> None:
        self.until_ms = until_ms
        self.final_ms = final_ms
        self.learning = True  # until the week's end
        self.sums = np.zeros((statistics, 2, DAY_HOURS), dtype=np.int64)
        self.counts = np.zeros((2, DAY_HOURS), dtype=np.int64)
        # (statistics, 48: weekday hours, then weekend hours) once the first day is over
        self.offsets: np.ndarray | None = None

    def apply(self, statistics: list[np.ndarray], ts_ms: np.ndarray) -> list[np.ndarray]:
        """The statistics of values at ts_ms (in order), learned from and recentred."""
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        hours = _day_kind_hour(ts_ms)
        if not self.learning and self.offsets is not None:
            return [values - self.offsets[row, hours] for row, values in enumerate(statistics)]
        out = [np.array(values, dtype=np.float64) for values in statistics]
        start, total = 0, len(ts_ms)
        while start < total:
            end = total
            if self.learning:
                boundary = self.until_ms if self.offsets is None else self.final_ms
                past = np.flatnonzero(ts_ms[start:] >= boundary)
                end = start + int(past[0]) if len(past) else total
                self._learn([values[start:end] for values in statistics], hours[start:end])
            if self.offsets is not None:
                for row, values in enumerate(out):
                    values[start:end] -= self.offsets[row, hours[start:end]]
            if end < total:  # a period is over
                self.learning = self.offsets is None
                self.offsets = self._offsets()
            start = end
        return out

    def _learn(self, statistics: list[np.ndarray], hours: np.ndarray) -> None:
        """Add to the per-hour sums (fixed point: a batch's sum per hour is exact in a float64,
        so bincount's sums are the integers np.add.at would give)."""
        for row, values in enumerate(statistics):
            fixed = np.round(values * STATISTIC_POINT)
            self.sums[row] += (
                np.bincount(hours, fixed, 2 * DAY_HOURS).astype(np.int64).reshape(2, -1)
            )
        self.counts += np.bincount(hours, minlength=2 * DAY_HOURS).reshape(2, -1)

    def _offsets(self) -> np.ndarray:
        """Per statistic, after the first day: the daily harmonics (HARMONICS of them) fitted to
        its hourly means by weighted least squares, if significant against the noise of a
        uniform PIT's statistic (variance 1/12), else none (an hour's mean over one day has a
        standard error of about 0.01, and offsets made of noise would be a daily cycle of their
        own). After the week, per kind of day (weekdays, weekends: the shape of a weekend hour
        is not that of a weekday's), its hourly means fitted by a level and the harmonics less
        the mean of everything learned, if significant, else the harmonics of all days. Either
        way centred, so that the offsets of the values learned from average 0: harmonics average
        0 over the hours, not over values that crowd into the busy hours, and the first day's,
        uncentred, moved fast traffic's statistics by up to 0.01 sd for a week, then back at
        the week's refit."""
        counts = self.counts.astype(np.float64)  # (2, 24)
        sums = self.sums / STATISTIC_POINT  # (statistics, 2, 24)
        together = counts.sum(axis=0)
        offsets = np.zeros((len(sums), 2, DAY_HOURS))
        for row in range(len(sums)):
            pooled = _daily_fit(sums[row].sum(axis=0), together, None)
            offsets[row] = pooled if pooled is not None else 0.0
            if not self.learning:  # the week's
                level = sums[row].sum() / max(counts.sum(), 1.0)
                for kind in range(2):
                    own = _daily_fit(sums[row, kind], counts[kind], level)
                    if own is not None:
                        offsets[row, kind] = own
            offsets[row] -= np.sum(counts * offsets[row]) / max(counts.sum(), 1.0)
        return offsets.reshape(len(sums), 2 * DAY_HOURS)

    def to_state(self) -> dict[str, Any]:
        return {
            "until_ms": self.until_ms,
            "final_ms": self.final_ms,
            "learning": self.learning,
            "sums": self.sums,
            "counts": self.counts,
            "offsets": self.offsets,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Recentring:
        sums = np.asarray(state["sums"], dtype=np.int64).reshape(-1, 2, DAY_HOURS)
        recentring = cls(len(sums), int(state["until_ms"]), int(state["final_ms"]))
        recentring.learning = bool(state["learning"])
        recentring.sums = sums
        recentring.counts = np.asarray(state["counts"], dtype=np.int64).reshape(2, DAY_HOURS)
        if state["offsets"] is not None:
            recentring.offsets = np.asarray(state["offsets"], dtype=np.float64).reshape(
                -1, 2 * DAY_HOURS
            )
        return recentring


class SeasonLearner:
    """Per-bucket evidence over one cycle of event time (see the module docstring), for numbers
    (`scaler` given: sums of t), categories (`reference` given: counts per reference code,
    'other' last; the learner codes values itself, so a re-baseline of the signal meanwhile
    does not change what its counts mean) or 0/1 rates (neither: counts of 0s and 1s)."""

    def __init__(
        self,
        plan: Plan,
        scaler: Scaler | None = None,
        reference: CategoricalReference | None = None,
    ) -> None:
        self.plan = plan
        self.scaler = scaler
        self.reference = reference
        self.index = reference.index() if reference is not None else {}
        self.seen = 0  # values offered (learned from: every plan.every-th)
        # a watching plan's first day, judged against the warm-up's reference (then its own)
        self.first_day = plan.watching and plan.day_ms > 0
        # columns of counts: a category's codes, 'other' last; a number's one; a rate's 0 and 1
        codes = reference.other_code + 1 if reference is not None else 2 - (scaler is not None)
        # Per hour of the week: counts (of each code) and the fixed-point sums of t and t²,
        # allocated with the first values added (a fast model's first hour adds none).
        self.counts = np.zeros((0, codes), dtype=np.int64)
        self.sums = np.zeros((2, 0), dtype=np.int64)
        self.stride = plan.stride  # every stride-th value is in the sample
        self.sample = np.empty(0)  # thinned t, with its event time
        self.sample_ts = np.empty(0, dtype=np.int64)
        # values learned from, not yet added: positions (from the cycle's first), times, values
        self.pending_positions: list[int] = []
        self.pending_ts: list[int] = []
        self.pending_values: list[Any] = []

    @property
    def blind(self) -> bool:
        """The signal does not watch while it learns (slow traffic: the whole cycle)."""
        return not self.plan.watching

    @property
    def phase_end_ms(self) -> int:
        """Where what is learned now ends: a watching plan's first day, else the cycle."""
        return self.plan.day_ms if self.first_day else self.plan.end_ms

    def until_end(self, ts_ms: np.ndarray) -> int:
        """How many of values at ts_ms (in order) are in the phase: up to the first at its end."""
        ts_ms = np.asarray(ts_ms)
        end_ms = self.phase_end_ms
        if not len(ts_ms) or ts_ms.max() < end_ms:
            return len(ts_ms)
        return int(np.argmax(ts_ms >= end_ms))

    def blind_run(self, ts_ms: np.ndarray) -> int:
        """How many of values at ts_ms (in order) come before the first the signal watches: all
        in a blind phase; while a watching plan learns its week after its first day, those of
        the other kind of day (Saturdays and Sundays, or weekdays) than most of its first day,
        whose hours the first day's season cannot know (its first weekend alarmed on every
        signal whose weekend differs)."""
        if self.blind:
            return len(ts_ms)
        if self.first_day or not self.plan.day_ms:  # (0: a plan saved before first days)
            return 0
        first_kind = _weekend(np.array([self.plan.day_ms - DAY_HOURS * HOUR_MS // 2]))[0]
        other = _weekend(np.asarray(ts_ms, dtype=np.int64)) != first_kind
        return len(ts_ms) if other.all() else int(np.argmin(other))

    def watched_run(self, ts_ms: np.ndarray) -> int:
        """How many of values at ts_ms (in order, the first watched) the signal watches before
        the phase ends or `blind_run` starts again."""
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        end = self.until_end(ts_ms)
        if self.first_day or not self.plan.day_ms or not end:
            return end
        kinds = _weekend(ts_ms[:end])
        other = np.flatnonzero(kinds != kinds[0])
        return int(other[0]) if len(other) else end

    def take(
        self, values: np.ndarray | Sequence[Any], ts_ms: np.ndarray, inside: bool = False
    ) -> int:
        """Learn from values in order (numbers, or categories) until the phase ends; return how
        many were taken (fewer than given: the phase ended at the first value not taken;
        `inside`: the caller knows they are all in it). The
        values learned from wait in `pending` until PENDING of them (or a decision) are there:
        the sums are integers and the sample is every stride-th position, so when they are
        added changes nothing, and a batch of fast traffic costs a slice, not a learning step."""
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        take = len(ts_ms) if inside else self.until_end(ts_ms)
        every = self.plan.every
        rows = np.arange((-self.seen) % every, take, every)
        if len(rows):
            self.pending_positions.extend((self.seen + rows).tolist())
            self.pending_ts.extend(ts_ms[rows].tolist())
            if isinstance(values, np.ndarray):
                self.pending_values.extend(values[rows].tolist())
            else:
                self.pending_values.extend(map(values.__getitem__, rows.tolist()))
            if len(self.pending_values) >= PENDING:
                self.flush()
        self.seen += take
        return take

    def flush(self) -> None:
        """Add the pending values to the per-bucket counts and sums, and to the sample."""
        if not self.pending_values:
            return
        positions = np.asarray(self.pending_positions, dtype=np.int64)
        ts_ms = np.asarray(self.pending_ts, dtype=np.int64)
        values = self.pending_values
        self.pending_positions, self.pending_ts, self.pending_values = [], [], []
        if not len(self.counts):
            self.counts = np.zeros((WEEK_HOURS, self.counts.shape[1]), dtype=np.int64)
            self.sums = np.zeros((2, WEEK_HOURS), dtype=np.int64)
        buckets = hour_of_week(ts_ms)
        if self.scaler is None:
            if self.reference is None:  # a rate's bits are their own codes
                codes = np.asarray(values, dtype=np.int64)
            else:
                other = self.reference.other_code
                codes = np.fromiter(
                    (self.index.get(value, other) for value in values),
                    dtype=np.int64,
                    count=len(values),
                )
            np.add.at(self.counts, (buckets, codes), 1)
            return
        t = self.scaler.transform(np.asarray(values, dtype=np.float64))
        q = np.round(t * FIXED_POINT).astype(np.int64)
        np.add.at(self.counts[:, 0], buckets, 1)
        np.add.at(self.sums[0], buckets, q)
        np.add.at(self.sums[1], buckets, q * q)
        kept = (positions % self.stride) == 0
        if kept.any():
            self.sample = np.concatenate((self.sample, t[kept]))
            self.sample_ts = np.concatenate((self.sample_ts, ts_ms[kept]))
        while len(self.sample) >= 2 * self.plan.sample_size:  # rate underestimated: thin more
            self.sample, self.sample_ts = self.sample[::2], self.sample_ts[::2]
            self.stride *= 2

    # -- deciding ---------------------------------------------------------------------

    def numeric_season(self) -> NumericSeason | None:
        """The per-bucket standardisation, if a daily (and weekly) component is significant."""
        assert self.scaler is not None
        self.flush()
        n = self.counts[:, 0].astype(np.float64)
        total = n.sum()
        if total < 2:
            return None
        sum_t = self.sums[0] / FIXED_POINT
        sum_tt = self.sums[1] / FIXED_POINT**2
        centred = self.sample - self.sample.mean() if len(self.sample) else self.sample
        kurtosis = float(np.mean(centred**4) / np.mean(centred**2) ** 2) if centred.any() else 3.0
        hours = _buckets_to_use(
            lambda group: _location_scale_chi2(n, sum_t, sum_tt, group, kurtosis),
            self.plan.hours,
        )
        if hours is None:
            return None
        location, scale, count = (
            _as_buckets(a, hours)
            for a in (*_shrunk_moments(n, sum_t, sum_tt, hours), _fold(n, hours))
        )
        return NumericSeason(self.scaler, location, scale, _steps(location, scale, count, kurtosis))

    def categorical_season(self) -> CategoricalSeason | None:
        """Per-bucket shares, if the category mix depends on the hour (of the day or week)."""
        self.flush()
        counts = self.counts.astype(np.float64)
        if counts.sum() < 2:
            return None
        hours = _buckets_to_use(
            lambda group: _independence_chi2(counts, group),
            self.plan.hours,
        )
        if hours is None:
            return None
        return CategoricalSeason(_as_buckets(_shrunk_shares(counts, hours), hours))

    def binary_season(self) -> BinarySeason | None:
        """A rate's per-bucket shares of 0 and 1, if its rate depends on the hour."""
        season = self.categorical_season()
        if season is None:
            return None
        ones, total = self.counts[:, 1].sum(), self.counts.sum()
        return BinarySeason(season.shares, float(ones / total))

    def location_level(self, season: CategoricalSeason) -> tuple[float, float]:
        """Mean and variance of the location statistic (mid-PIT) over the cycle's codes."""
        counts = _fold(self.counts.astype(np.float64), season.buckets)
        middles = season._middles
        total = counts.sum()
        mean = float(np.sum(counts * middles) / total)
        return mean, float(np.sum(counts * (middles - mean) ** 2) / total)

    def other_share(self) -> float:
        """Share of the cycle's categories outside the reference ('other')."""
        return float(self.counts[:, -1].sum() / max(self.counts.sum(), 1))

    def pooled_sample(self, season: NumericSeason) -> np.ndarray:
        """The thinned sample of the cycle, standardised by its bucket, for the pooled reference."""
        return season.reference_sample(self.sample, self.sample_ts)

    # -- state ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_state(),
            "scaler": None if self.scaler is None else self.scaler.to_state(),
            "reference": None if self.reference is None else self.reference.to_state(),
            "seen": self.seen,
            "first_day": self.first_day,
            "stride": self.stride,
            "counts": self.counts,
            "sums": self.sums,
            "sample": self.sample,
            "sample_ts": self.sample_ts,
            "pending_positions": self.pending_positions,
            "pending_ts": self.pending_ts,
            "pending_values": self.pending_values,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeasonLearner:
        scaler, reference = state["scaler"], state["reference"]
        learner = cls(
            Plan.from_state(state["plan"]),
            None if scaler is None else Scaler.from_state(scaler),
            None if reference is None else CategoricalReference.from_state(reference),
        )
        learner.seen = int(state["seen"])
        # (a learner saved before first days has a plan without one: not in it)
        learner.first_day = bool(state.get("first_day", learner.first_day))
        learner.stride = int(state["stride"])
        codes = learner.counts.shape[1]
        learner.counts = np.asarray(state["counts"], dtype=np.int64).reshape(-1, codes)
        learner.sums = np.asarray(state["sums"], dtype=np.int64).reshape(2, -1)
        learner.sample = np.asarray(state["sample"], dtype=np.float64)
        learner.sample_ts = np.asarray(state["sample_ts"], dtype=np.int64)
        learner.pending_positions = [int(p) for p in state["pending_positions"]]
        learner.pending_ts = [int(t) for t in state["pending_ts"]]
        learner.pending_values = list(state["pending_values"])
        return learner


def _day_kind_hour(ts_ms: np.ndarray) -> np.ndarray:
    """0..23: the hour (UTC) of a weekday's event time; 24..47: of a Saturday's or Sunday's."""
    days, into = np.divmod(ts_ms, DAY_HOURS * HOUR_MS)
    weekend = (days + 3) % 7 >= 5  # the epoch was a Thursday
    return weekend * DAY_HOURS + into // HOUR_MS


def _weekend(ts_ms: np.ndarray) -> np.ndarray:
    """Whether event times fall on a Saturday or a Sunday (UTC)."""
    return _day_kind_hour(ts_ms) >= DAY_HOURS


def _neighbours(ts_ms: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each event time: the buckets whose centres (half past each hour) bracket it, and the
    weight of the later one. Integer arithmetic up to the weight, so identical for any batching."""
    since_centre = np.asarray(ts_ms, dtype=np.int64) - HOUR_MS // 2
    hours, into = np.divmod(since_centre, HOUR_MS)
    before = hours % buckets
    return before, (before + 1) % buckets, into / HOUR_MS


def _bucket_sums(
    block: np.ndarray,
    before: np.ndarray,
    earlier: np.ndarray,
    after: np.ndarray,
    later: np.ndarray,
    points: np.ndarray,
    blocks: int,
) -> np.ndarray:
    """Per block, the expected counts of its values (units 1 / UNIT): the shares `points` of
    each value's two buckets, weighted `earlier` and `later`, summed per (block, bucket) first."""
    buckets = len(points)
    keys, where = np.unique(
        np.concatenate((block * buckets + before, block * buckets + after)), return_inverse=True
    )
    # (float sums of integers below 2⁵³: exact)
    weights = np.bincount(where, np.concatenate((earlier, later))).astype(np.int64)
    per_key = weights[:, None] * points[keys % buckets]
    first = np.searchsorted(keys // buckets, np.arange(blocks))
    return np.add.reduceat(per_key, first, axis=0)


def _groups(hours: int) -> np.ndarray:
    """The group of each hour of the week (`hour_of_week`) among `hours` groups: its hour of the
    week (168), of a weekday or of a weekend day (48: weekdays' first), of the day (24), or one
    group of all (1)."""
    hour = np.arange(WEEK_HOURS)
    return _day_kind_hour(hour * HOUR_MS) if hours == KIND_HOURS else hour % hours


def _parents(hours: int) -> np.ndarray:
    """The coarser group (`_coarser`) of each of `hours` groups."""
    return _groups(KIND_HOURS) if hours == WEEK_HOURS else np.arange(hours) % _coarser(hours)


def _fold(per_week: np.ndarray, hours: int) -> np.ndarray:
    """Hour-of-week rows summed into their `hours` groups (`_groups`)."""
    if hours != KIND_HOURS:
        return per_week.reshape(WEEK_HOURS // hours, hours, *per_week.shape[1:]).sum(axis=0)
    folded = np.zeros((hours, *per_week.shape[1:]), dtype=per_week.dtype)
    np.add.at(folded, _groups(hours), per_week)
    return folded


def _as_buckets(per_group: np.ndarray, hours: int) -> np.ndarray:
    """A season's buckets of estimates per group: 48 groups (a weekday's hours, a weekend day's)
    as the 168 hours of the week they stand for; 24 or 168 as they are."""
    return per_group[_groups(hours)] if hours == KIND_HOURS else per_group


def _buckets_to_use(
    chi2_between: Callable[[int], tuple[float, float]], learned_hours: int
) -> int | None:
    """The groups of hours (`_groups`) whose differences are significant (None: none): 24 if
    the daily component is; then 168 if the hours of the week differ beyond their kind of day's,
    else 48 if weekends differ from weekdays. Most weekly cycles are weekends that differ, and
    an hour of a weekday estimated from five days has √5 less noise than from one: at hundreds
    of events a second, one Monday's hours learned apart left statistics 0.05 sd off there.

    `chi2_between(hours)` returns (chi-square, degrees of freedom) of the differences between
    groups of `hours` beyond those between groups of the next coarser grouping."""
    daily, df = chi2_between(DAY_HOURS)
    if not _significant(daily, df):
        return None
    if learned_hours < WEEK_HOURS:
        return DAY_HOURS
    if _significant(*chi2_between(WEEK_HOURS)):
        return WEEK_HOURS
    return KIND_HOURS if _significant(*chi2_between(KIND_HOURS)) else DAY_HOURS


def _significant(chi2: float, df: float) -> bool:
    return df > 0 and chi2 > df + SIGNIFICANCE_SIGMAS * np.sqrt(2.0 * df)


def _daily_fit(sums: np.ndarray, counts: np.ndarray, level: float | None) -> np.ndarray | None:
    """Hourly means (sums over counts, 24 hours) fitted by a level and daily harmonics
    (HARMONICS of them) by weighted least squares, less `level` (None: less the fitted level,
    i.e. the harmonics alone); None when too few hours were seen or the fit is not
    significantly away from that level (chi-square against a uniform PIT's noise, df +
    SIGNIFICANCE_SIGMAS sd)."""
    phase = 2 * np.pi * (np.arange(DAY_HOURS) + 0.5) / DAY_HOURS
    k = np.arange(1, HARMONICS + 1)
    waves = np.column_stack(
        (np.ones(DAY_HOURS), np.cos(np.outer(phase, k)), np.sin(np.outer(phase, k)))
    )
    seen = counts > 0
    if seen.sum() <= waves.shape[1]:
        return None
    weight = np.sqrt(counts)
    means = sums / np.maximum(counts, 1.0)
    fit = np.linalg.lstsq((waves * weight[:, None])[seen], (means * weight)[seen], rcond=None)[0]
    away = waves[:, 1:] @ fit[1:] if level is None else waves @ fit - level
    chi2 = float(np.sum(counts * away**2) * 12.0)
    df = waves.shape[1] - (level is None)
    if not _significant(chi2, float(df)):
        return None
    return away + _hourly_residuals(means - waves @ fit, counts, waves.shape[1])


def _hourly_residuals(residuals: np.ndarray, counts: np.ndarray, fitted: int) -> np.ndarray:
    """What the harmonics leave of each hour's mean, if that is significant against a uniform
    PIT statistic's noise (variance 1/12 per value), shrunk towards 0 by the share of its
    variance that is not noise (empirical Bayes); else nothing. At tens of events a minute an
    hour's mean over a day is too noisy for this to matter; at hundreds a second it is known
    to a few ten-thousandths, and a count's or a bounded value's shape leaves hours whose
    statistic sits a few hundredths off the harmonics."""
    seen = counts > 0
    noise = 1.0 / (12.0 * np.maximum(counts, 1.0))
    chi2 = float(np.sum(residuals[seen] ** 2 / noise[seen]))
    if not _significant(chi2, float(seen.sum() - fitted)):
        return np.zeros(DAY_HOURS)
    spread = max(float(np.mean(residuals[seen] ** 2 - noise[seen])), 0.0)
    return np.where(seen, residuals * spread / (spread + noise), 0.0)


def _coarser(hours: int) -> int:
    return {WEEK_HOURS: KIND_HOURS, KIND_HOURS: DAY_HOURS}.get(hours, 1)


def _location_scale_chi2(
    n: np.ndarray, sum_t: np.ndarray, sum_tt: np.ndarray, hours: int, kurtosis: float
) -> tuple[float, float]:
    """Chi-square of the bucket means and log variances (buckets of `hours`) around those of
    their coarser bucket, with its degrees of freedom; buckets of fewer than 3 values are left
    out. A log variance's sampling variance is (kurtosis - 1) / (n - 1): 2 / (n - 1) for normal t."""
    fine_n, fine_s, fine_ss = (_fold(a, hours) for a in (n, sum_t, sum_tt))
    coarse = _coarser(hours)
    coarse_n, coarse_s, coarse_ss = (_fold(a, coarse) for a in (n, sum_t, sum_tt))
    parent = _parents(hours)
    used = fine_n >= 3
    if used.sum() < 2:
        return 0.0, 0.0
    mean = fine_s[used] / fine_n[used]
    var = (
        np.maximum(fine_ss[used] / fine_n[used] - mean**2, 0.0) * fine_n[used] / (fine_n[used] - 1)
    )
    parent_n = coarse_n[parent[used]]
    parent_mean = coarse_s[parent[used]] / parent_n
    parent_var = np.maximum(coarse_ss[parent[used]] / parent_n - parent_mean**2, MIN_SCALE)
    within = np.maximum(var, MIN_SCALE)
    location = float(np.sum(fine_n[used] * (mean - parent_mean) ** 2 / parent_var))
    spread = float(
        np.sum((fine_n[used] - 1) / max(kurtosis - 1.0, 2.0) * np.log(within / parent_var) ** 2)
    )
    groups = len(np.unique(parent[used]))
    df = float(used.sum() - groups)
    return location + spread, 2.0 * df


def _independence_chi2(counts: np.ndarray, hours: int) -> tuple[float, float]:
    """Pearson's chi-square of the category mix of buckets of `hours` against their coarser
    bucket's mix, with its degrees of freedom."""
    fine = _fold(counts, hours)
    coarse = _coarser(hours)
    parent = _fold(counts, coarse)[_parents(hours)]
    fine_n = fine.sum(axis=1, keepdims=True)
    parent_n = parent.sum(axis=1, keepdims=True)
    used_rows = fine_n[:, 0] > 0
    expected = fine_n * parent / np.maximum(parent_n, 1)
    present = (parent.sum(axis=0) > 0)[None, :] & used_rows[:, None] & (expected > 0)
    chi2 = float(np.sum((fine[present] - expected[present]) ** 2 / expected[present]))
    categories = int(np.count_nonzero(counts.sum(axis=0)))
    groups = len(np.unique(_parents(hours)[used_rows]))
    df = float((int(used_rows.sum()) - groups) * max(categories - 1, 0))
    return chi2, df


def _levels_to(hours: int) -> tuple[int, ...]:
    """The groupings from the day's hours to `hours`, finer in turn."""
    levels = (DAY_HOURS, KIND_HOURS, WEEK_HOURS)
    return levels[: levels.index(hours) + 1]


def _shrunk_moments(
    n: np.ndarray, sum_t: np.ndarray, sum_tt: np.ndarray, hours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket mean and sd of t over `hours` buckets, each mean and variance shrunk towards
    those of its coarser bucket (all values, hour of day, hour of a kind of day) with
    PRIOR_EVENTS of weight."""
    mean = np.array([sum_t.sum() / n.sum()])
    variance = np.maximum(np.array([sum_tt.sum() / n.sum()]) - mean**2, 0.0)
    for level in _levels_to(hours):
        count, prior = _fold(n, level), PRIOR_EVENTS[level]
        parent = _parents(level)
        own_mean = _fold(sum_t, level) / np.maximum(count, 1.0)
        own_variance = np.maximum(_fold(sum_tt, level) / np.maximum(count, 1.0) - own_mean**2, 0.0)
        weight = count + prior
        mean, variance = (
            (count * own_mean + prior * mean[parent]) / weight,
            (count * own_variance + prior * variance[parent]) / weight,
        )
    sd = np.sqrt(variance)
    return mean, np.maximum(sd, max(float(np.median(sd)) * 1e-3, MIN_SCALE))


def _steps(
    location: np.ndarray, scale: np.ndarray, count: np.ndarray, kurtosis: float
) -> np.ndarray:
    """Per bucket: do its location or scale step at its end rather than move smoothly on?

    The fifth difference of the six buckets' estimates around an hour's end, e[h−2] − 5e[h−1]
    + 10e[h] − 10e[h+1] + 5e[h+2] − e[h+3], is 0 for any quartic course through them (a smooth
    cycle: the third difference was not, for a daily cycle of 3 sd known to 0.3% of its sd) and
    −6S for a step S between h and h+1 (4S at the ends beside it, so only the largest of three
    in a row counts). A step is one whose fifth difference lies STEP_SIGMAS standard errors
    from 0, for the location (in t) or the log scale. Interpolated across such a step, the half
    hour on each side was standardised with up to half the step wrong: at hundreds of events a
    second, a weekend that starts at midnight alarmed there."""
    n = np.maximum(count, 1.0)
    estimates = (location, np.log(scale))
    noise = (scale**2 / n, max(kurtosis - 1.0, 2.0) / (4.0 * n))  # of a mean; of a log sd
    weights = {-2: 1.0, -1: -5.0, 0: 10.0, 1: -10.0, 2: 5.0, 3: -1.0}
    steps = np.zeros(len(location), dtype=bool)
    for estimate, variance in zip(estimates, noise, strict=True):
        fifth = sum(w * np.roll(estimate, -k) for k, w in weights.items())
        error = np.sqrt(sum(w * w * np.roll(variance, -k) for k, w in weights.items()))
        largest = (np.abs(fifth) >= np.abs(np.roll(fifth, 1))) & (
            np.abs(fifth) >= np.abs(np.roll(fifth, -1))
        )
        steps |= largest & (np.abs(fifth) > STEP_SIGMAS * error)
    return steps


def _shrunk_shares(counts: np.ndarray, hours: int) -> np.ndarray:
    """Per-bucket category shares over `hours` buckets, shrunk like `_shrunk_moments`."""
    shares = counts.sum(axis=0, keepdims=True) / counts.sum()
    for level in _levels_to(hours):
        folded, prior = _fold(counts, level), PRIOR_EVENTS[level]
        parent = _parents(level)
        shares = (folded + prior * shares[parent]) / (folded.sum(axis=1, keepdims=True) + prior)
    return shares
