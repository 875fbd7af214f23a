"""Seasonal adjustment: a signal that follows the hour of the day and of the week learns its
cycle over one cycle of event time, is quiet about the cycle afterwards and catches what moves
away from the usual value for the hour; decisions do not depend on batches or restores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pytest

from detector.core.monitors.columns import SourceRefs
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.reference import CategoricalReference, NumericReference
from detector.core.monitors.seasonal import (
    DAY_HOURS,
    HOUR_MS,
    WEEK_HOURS,
    BinarySeason,
    CategoricalSeason,
    MixStatistic,
    NumericSeason,
    Plan,
    Recentring,
    Scaler,
    SeasonLearner,
    hour_of_week,
    plan,
)
from detector.core.monitors.signal import SignalMonitor
from detector.core.monitors.signal_type import SignalType
from tests.unit.test_signal import default_config

START_MS = 1_767_571_200_000  # Monday 2026-01-05 00:00 UTC
DAY_MS = 24 * HOUR_MS
STEP_MS = 6_000  # 10 events a minute


def times(days: float, step_ms: int = STEP_MS) -> np.ndarray:
    return START_MS + step_ms * np.arange(int(days * DAY_MS // step_ms), dtype=np.int64)


def hours_of_day(ts: np.ndarray) -> np.ndarray:
    return (ts % DAY_MS) / HOUR_MS


def weekend(ts: np.ndarray) -> np.ndarray:
    return (((ts - START_MS) // DAY_MS) % 7 >= 5).astype(np.float64)


def cyclic(ts: np.ndarray, seed: int, weekly: float = 1.0) -> np.ndarray:
    """A value in the hundreds whose mean follows the day (±3 sd) and the weekend (+weekly sd)."""
    rng = np.random.default_rng(seed)
    daily = np.cos(2 * np.pi * (hours_of_day(ts) - 18.0) / 24.0)
    return 200.0 + 10.0 * (3.0 * daily + weekly * weekend(ts) + rng.normal(0.0, 1.0, len(ts)))


def device_mix(ts: np.ndarray, seed: int, moved: float = 0.0) -> list[str]:
    """Mobile in the evening, web in working hours; `moved` of every hour's mix goes to web."""
    rng = np.random.default_rng(seed)
    evening = np.cos(2 * np.pi * (hours_of_day(ts) - 20.0) / 24.0)
    mobile = (0.65 + 0.25 * evening) * (1.0 - moved)
    return np.where(rng.random(len(ts)) < mobile, "mobile", "web").tolist()


def error_bits(ts: np.ndarray, seed: int, shift: float = 0.0) -> np.ndarray:
    """A classifier's errors (1: wrong) whose rate follows the day (3% at 06:00, 17% at 18:00)
    and is 3 points higher at weekends; `shift` added to every hour's rate."""
    rng = np.random.default_rng(seed)
    daily = np.cos(2 * np.pi * (hours_of_day(ts) - 18.0) / 24.0)
    rate = 0.10 + 0.07 * daily + 0.03 * weekend(ts) + shift
    return (rng.random(len(ts)) < rate).astype(np.float64)


def learned(learner: SeasonLearner, values: np.ndarray, ts: np.ndarray, chunk: int) -> int:
    """Feed the learner in chunks until its cycle ends; return the values it took."""
    taken = 0
    for start in range(0, len(ts), chunk):
        step = learner.take(values[start : start + chunk], ts[start : start + chunk])
        taken += step
        if step < len(ts[start : start + chunk]):
            break
    return taken


# -- the plan -------------------------------------------------------------------------------


def test_slow_traffic_learns_a_week_blind_faster_a_day_and_fast_a_week_while_watching() -> None:
    week = plan(times(0.07), 1_000_000)  # 10 a minute: a week is 100,800 events
    assert week is not None and week.hours == WEEK_HOURS and not week.watching
    assert week.end_ms == START_MS + WEEK_HOURS * HOUR_MS and week.every == 1
    day = plan(times(0.07), 20_000)  # a day (14,400 events) fits, a week does not
    assert day is not None and day.hours == DAY_HOURS and not day.watching
    fast = plan(times(0.01, step_ms=1), 1_000_000)  # 1000 a second: a day is 86 million
    assert fast is not None and fast.hours == WEEK_HOURS and fast.watching
    assert fast.every == 151  # 604.8 million events a week, thinned to about 4 million
    assert fast.day_ms == fast.end_ms - 6 * DAY_MS  # its first day's season from then on
    assert fast.stride % fast.every == 0 and fast.stride // fast.every == 488  # ~8,192 sampled
    assert plan(np.full(1000, START_MS), 1_000_000) is None  # times that do not move
    assert plan(times(0.07), 0) is None  # switched off


# -- deciding whether a cycle is significant ------------------------------------------------


def numeric_learner(values: np.ndarray, ts: np.ndarray, chunk: int = 5000) -> SeasonLearner:
    season_plan = plan(ts[:1000], 1_000_000)
    assert season_plan is not None
    learner = SeasonLearner(season_plan, Scaler.fit(values[:1000]))
    learned(learner, values, ts, chunk)
    return learner


def test_a_daily_and_weekly_cycle_is_found_and_removed() -> None:
    ts = times(14)
    values = cyclic(ts, seed=1)
    learner = numeric_learner(values, ts)
    season = learner.numeric_season()
    assert season is not None and season.buckets == WEEK_HOURS
    z = season.standardise(values[learner.seen :], ts[learner.seen :])  # the second week
    by_hour = (ts[learner.seen :] // HOUR_MS) % DAY_HOURS
    hourly = np.array([z[by_hour == h].mean() for h in range(DAY_HOURS)])
    assert np.abs(hourly).max() < 0.1  # the raw value moves ±3 sd over the day
    assert 0.9 < z.std() < 1.1


def test_a_weekend_that_starts_at_midnight_steps_there_and_a_smooth_cycle_nowhere() -> None:
    """The weekend adds 1 sd at midnight: the estimates step at the ends of Friday's and
    Sunday's last hours and nowhere else, so that the half hours either side of those
    midnights are standardised as well as any (interpolated across the step, each was off by
    a quarter of it on average: 0.5 sd between them). A daily cycle of ±3 sd alone: no step."""
    ts = times(15)
    values = cyclic(ts, seed=4)
    learner = numeric_learner(values, ts)
    season = learner.numeric_season()
    assert season is not None and season.buckets == WEEK_HOURS
    last_hours = hour_of_week(np.array([START_MS + 5 * DAY_MS, START_MS + 7 * DAY_MS]) - 1)
    assert np.flatnonzero(season.steps).tolist() == sorted(last_hours.tolist())
    smooth = numeric_learner(cyclic(ts, seed=4, weekly=0.0), ts).numeric_season()
    assert smooth is not None and not smooth.steps.any()

    week = slice(learner.seen, None)  # the second week, from Monday 00:00
    since_midnight = (ts[week] - START_MS) % DAY_MS
    days = (ts[week] - START_MS) // DAY_MS
    first, last = since_midnight < HOUR_MS // 2, since_midnight >= DAY_MS - HOUR_MS // 2

    def gap(steps: np.ndarray) -> float:
        """How far the half hours after the weekend's midnights lie from those before, in z
        (up at Saturday's, down at Monday's)."""
        z = NumericSeason(season.scaler, season.location, season.scale, steps).standardise(
            values[week], ts[week]
        )
        saturday = z[(days == 12) & first].mean() - z[(days == 11) & last].mean()
        monday = z[(days == 14) & first].mean() - z[(days == 13) & last].mean()
        return float(max(abs(saturday), abs(monday)))

    assert gap(season.steps) < 0.25  # (noise: about 0.08)
    assert gap(np.zeros(WEEK_HOURS, dtype=bool)) > 0.3


def test_weekdays_share_their_hours_unless_a_weekday_differs() -> None:
    """A weekly cycle that is only the weekend's: an hour of a weekday is estimated from all
    five weekdays, of a weekend day from both (a Monday's hours learned from one Monday left
    fast traffic's statistics 0.05 sd off there); a Monday that differs keeps its own hours."""
    ts = times(14)
    days = (ts - START_MS) // DAY_MS
    hours = hour_of_week(START_MS + np.arange(7 * DAY_HOURS) * HOUR_MS).reshape(7, DAY_HOURS)
    weekdays, weekend_days = hours[:5], hours[5:]
    season = numeric_learner(cyclic(ts, seed=1), ts).numeric_season()
    assert season is not None and season.buckets == WEEK_HOURS
    for estimate in (season.location, season.scale):
        assert (estimate[weekdays] == estimate[weekdays[0]]).all()
        assert (estimate[weekend_days] == estimate[weekend_days[0]]).all()
    assert (season.location[weekend_days[0]] - season.location[weekdays[0]]).min() > 0.0
    mondays = cyclic(ts, seed=1) + 10.0 * (days % 7 == 0)  # Mondays 1 sd higher
    own = numeric_learner(mondays, ts).numeric_season()
    assert own is not None
    assert (own.location[weekdays[0]] - own.location[weekdays[1]]).min() > 0.0


def expected_statistics(
    season: NumericSeason, reference: NumericReference, mean: np.ndarray, ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The exact expected location and spread, at each time ts, of a Poisson count of `mean`."""
    location, spread = np.zeros(len(ts)), np.zeros(len(ts))
    for k in range(40):
        pmf = np.exp(k * np.log(mean) - mean - math.lgamma(k + 1.0))
        at_k = season.statistics(reference, np.full(len(ts), float(k)), ts)
        location += pmf * at_k[0]
        spread += pmf * at_k[1]
    return location, spread


def test_a_count_is_judged_over_its_unit_so_each_hour_keeps_the_days_statistics() -> None:
    """A count of mean 1 to 3 over the day: standardised for its hour, its values lie on a
    lattice whose phase moves with the hour. Judged at single points of the pooled reference,
    the expected spread of a half hour sat 0.2 sd of a uniform PIT from the day's, in cycles of
    a few hours that ADWIN finds at hundreds of events a second; judged over their unit, its
    location and spread stay within 0.035 (the shape a count keeps: smooth, recentring's)."""
    ts = times(1, step_ms=500)
    rng = np.random.default_rng(21)

    def mean_at(at: np.ndarray) -> np.ndarray:
        return 2.0 + np.cos(2 * np.pi * (hours_of_day(at) - 18.0) / 24.0)

    values = rng.poisson(mean_at(ts)).astype(np.float64)
    season = numeric_learner(values, ts).numeric_season()
    assert season is not None and season.scaler.grid == 1.0  # whole numbers: a count
    sample_ts = np.sort(rng.integers(START_MS, START_MS + DAY_MS, 200_000))
    sample = season.scaler.transform(rng.poisson(mean_at(sample_ts)).astype(np.float64))
    continuous = NumericSeason(
        Scaler(season.scaler.median, season.scaler.scale),
        season.location,
        season.scale,
        season.steps,
    )
    minutes = START_MS + DAY_MS + np.arange(0, DAY_MS, 60_000)  # the next day, every minute
    furthest = {}
    for judged in (season, continuous):
        reference = NumericReference.fit(judged.reference_sample(sample, sample_ts), 128)
        for name, statistic in zip(
            ("location", "spread"),
            expected_statistics(judged, reference, mean_at(minutes), minutes),
        ):
            half_hours = statistic.reshape(48, 30).mean(axis=1)
            furthest[judged.scaler.grid, name] = np.abs(half_hours - half_hours.mean()).max()
    sd = 1.0 / np.sqrt(12.0)  # a uniform PIT's
    assert furthest[1.0, "location"] < 0.045 * sd and furthest[1.0, "spread"] < 0.045 * sd
    assert furthest[0.0, "spread"] > 0.15 * sd


def test_a_daily_cycle_without_a_weekly_one_uses_hours_of_the_day() -> None:
    ts = times(8)
    season = numeric_learner(cyclic(ts, seed=2, weekly=0.0), ts).numeric_season()
    assert season is not None and season.buckets == DAY_HOURS


def test_a_signal_without_cycles_keeps_its_reference() -> None:
    ts = times(8)
    values = np.random.default_rng(3).lognormal(3.0, 0.8, len(ts))
    assert numeric_learner(values, ts).numeric_season() is None


def test_a_category_mix_that_follows_the_hour_gets_shares_per_hour() -> None:
    ts = times(8)
    mix = device_mix(ts, seed=4)
    season_plan = plan(ts[:1000], 1_000_000)
    assert season_plan is not None
    reference = CategoricalReference(
        ("mobile", "web"), np.array([0.0, 0.6, 1.0]), np.array([0.6, 1.0, 1.0]), 0.0
    )
    learner = SeasonLearner(season_plan, reference=reference)
    learned(learner, np.asarray(mix), ts, 5000)
    season = learner.categorical_season()
    assert season is not None and season.buckets == DAY_HOURS
    evening, morning = START_MS + 20 * HOUR_MS, START_MS + 8 * HOUR_MS
    assert season.shares[20, 0] > 0.85 and season.shares[8, 0] < 0.45  # mobile share by hour
    # mid-PIT of 'mobile' (code 0) is half its share at the centre of that hour
    centres = np.array([evening, morning]) + HOUR_MS // 2
    u = season.transform(np.array([0, 0]), centres)
    assert u == pytest.approx(season.shares[[20, 8], 0] / 2)
    # between the centres of two hours, the shares are interpolated (no saw-tooth at 21:00)
    u = season.transform(np.array([0]), np.array([evening + HOUR_MS]))
    assert u == pytest.approx(season.shares[[20, 21], 0].mean() / 2)

    flat = np.asarray(["mobile", "web"])[np.random.default_rng(5).integers(0, 2, len(ts))]
    flat_learner = SeasonLearner(season_plan, reference=reference)
    learned(flat_learner, flat, ts, 5000)
    assert flat_learner.categorical_season() is None


def test_a_rate_that_follows_the_hour_gets_its_rate_per_hour() -> None:
    ts = times(8)
    season_plan = plan(ts[:1000], 1_000_000)
    assert season_plan is not None
    learner = SeasonLearner(season_plan)  # neither scaler nor reference: 0/1 values
    learned(learner, error_bits(ts, seed=21), ts, 5000)
    season = learner.binary_season()
    assert season is not None and season.buckets == WEEK_HOURS
    monday = np.arange(DAY_HOURS)  # the week's first hours: Monday's (UTC)
    expected = 0.10 + 0.07 * np.cos(2 * np.pi * (monday + 0.5 - 18.0) / 24.0)
    # hour-of-week buckets are Thursday-based: Monday's hours are 96..119
    assert np.abs(season.shares[96:120, 1] - expected).max() < 0.05
    assert (season.shares[96:120] == season.shares[120:144]).all()  # weekdays share their hours
    assert season.rate == pytest.approx(error_bits(ts, seed=21)[: learner.seen].mean())

    flat = (np.random.default_rng(22).random(len(ts)) < 0.1).astype(np.float64)
    flat_learner = SeasonLearner(season_plan)
    learned(flat_learner, flat, ts, 5000)
    assert flat_learner.binary_season() is None


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.5, 0.9])
def test_adjusted_bits_keep_the_rate_and_a_binomial_spread_at_every_hour(rate: float) -> None:
    """At any hour's rate p, the adjusted values of a 0 and a 1 lie in [0, 1], at most 1
    apart (HDDM_A's Hoeffding bound), average `rate` and vary no more than bits of that rate
    (DDM's binomial spread); at p = rate they are the bits themselves."""
    hourly = np.concatenate(([rate], np.linspace(0.001, 0.999, DAY_HOURS - 1)))
    season = BinarySeason(np.column_stack((1.0 - hourly, hourly)), rate)
    hour_ts = START_MS + HOUR_MS * np.arange(DAY_HOURS)
    zero = season.adjust(np.zeros(DAY_HOURS), hour_ts)
    one = season.adjust(np.ones(DAY_HOURS), hour_ts)
    p = hourly[(hour_ts // HOUR_MS) % DAY_HOURS]
    assert (zero >= 0).all() and (one <= 1).all() and (one - zero <= 1 + 1e-12).all()
    mean = (1 - p) * zero + p * one
    assert mean == pytest.approx(np.full(DAY_HOURS, rate))
    assert (p * (1 - p) * (one - zero) ** 2 <= rate * (1 - rate) + 1e-12).all()
    at_rate = p == rate
    assert at_rate.any()
    assert zero[at_rate] == pytest.approx(0.0) and one[at_rate] == pytest.approx(1.0)


# -- batching and state ---------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 977, 50_000])
def test_learning_does_not_depend_on_batches_and_survives_a_restore(chunk: int) -> None:
    ts = times(8)
    values = cyclic(ts, seed=6)
    whole = numeric_learner(values, ts, chunk=len(ts))
    season_plan = plan(ts[:1000], 1_000_000)
    assert season_plan is not None
    learner = SeasonLearner(season_plan, Scaler.fit(values[:1000]))
    half = len(ts) // 3
    first = learned(learner, values[:half], ts[:half], chunk)
    state = orjson.loads(orjson.dumps(learner.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    learner = SeasonLearner.from_state(state)
    learned(learner, values[first:], ts[first:], chunk)
    learner.flush()
    whole.flush()
    assert learner.seen == whole.seen
    assert np.array_equal(learner.sums, whole.sums)
    assert np.array_equal(learner.sample, whole.sample)
    mine, theirs = learner.numeric_season(), whole.numeric_season()
    assert mine is not None and theirs is not None
    assert np.array_equal(mine.location, theirs.location)
    assert np.array_equal(mine.scale, theirs.scale)


def test_seasons_survive_their_state() -> None:
    numeric = NumericSeason(
        Scaler(3.0, 2.0, 1.0), np.linspace(-1, 1, 24), np.full(24, 1.5), np.arange(24) % 5 == 0
    )
    state = orjson.loads(orjson.dumps(numeric.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    ts, x = times(1)[:500], np.linspace(0, 10, 500)
    assert np.array_equal(
        NumericSeason.from_state(state).standardise(x, ts), numeric.standardise(x, ts)
    )
    assert NumericSeason.from_state(state).scaler == numeric.scaler
    del state["steps"]  # a season checkpointed before steps: interpolated everywhere, as it was
    del state["grid"]  # ...and before grids: continuous
    assert NumericSeason.from_state(state).scaler == Scaler(3.0, 2.0, 0.0)
    assert Scaler.from_state([3.0, 2.0]) == Scaler(3.0, 2.0, 0.0)  # a learner's, likewise
    smooth = NumericSeason(numeric.scaler, numeric.location, numeric.scale, np.zeros(24, bool))
    assert np.array_equal(
        NumericSeason.from_state(state).standardise(x, ts), smooth.standardise(x, ts)
    )
    assert not np.array_equal(smooth.standardise(x, ts), numeric.standardise(x, ts))
    categorical = CategoricalSeason(np.tile([0.2, 0.5, 0.3], (168, 1)))
    state = orjson.loads(orjson.dumps(categorical.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    assert np.array_equal(CategoricalSeason.from_state(state).shares, categorical.shares)
    binary = BinarySeason(np.tile([0.9, 0.1], (24, 1)), 0.1234)
    state = orjson.loads(orjson.dumps(binary.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    restored = BinarySeason.from_state(state)
    assert np.array_equal(restored.shares, binary.shares) and restored.rate == binary.rate
    fast = Plan(168, 1, 10, 5, True, 7)
    assert Plan.from_state(orjson.loads(orjson.dumps(fast.to_state()))) == fast
    # a plan saved before first days watched from the start, against its warm-up's reference
    assert Plan.from_state([168, 1, 10, 5, True]) == Plan(168, 1, 10, 5, True, 0)


# -- a seasonal signal ---------------------------------------------------------------------


def run(
    kind: SignalType,
    values: np.ndarray | Sequence[str],
    ts: np.ndarray,
    batch: int,
    config: SignalConfig,
    restore_at: int | None = None,
) -> list[tuple[int, str, str, str, str, Any]]:
    """Feed a signal with its event times in batches (through its checkpoint at `restore_at`);
    return its transitions as (position, kind, statistic, detector, reason, evidence). A rate
    is watched as a classifier's errors are: by river's binary detectors too."""
    monitor = SignalMonitor("feature.x", kind, config, binary_detectors=True)
    found = []
    for start in range(0, len(ts), batch):
        if restore_at is not None and start <= restore_at < start + batch:
            state = orjson.loads(
                orjson.dumps(monitor.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            )
            monitor = SignalMonitor.from_state(monitor.monitor, config, state)
        chunk = slice(start, start + batch)
        refs = SourceRefs(
            ("predictions",),
            0,
            np.zeros(len(ts[chunk]), dtype=np.int64),
            np.arange(start, start + len(ts[chunk])),
        )
        found += [
            (start + t.index, t.kind, t.statistic, t.detector, t.reason, t.evidence)
            for t in monitor.update(values[chunk], refs, ts[chunk])
        ]
    return found


SHIFT_DAY = 10
OFF = {"season_max_warmup_events": 0}  # no seasonal adjustment
RATE_SHIFT = 0.1  # added to every hour's error rate (3–20%) from SHIFT_DAY on


def seasonal_streams(
    shift_day: float = SHIFT_DAY,
) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """12 days at 10 events a minute of a cyclic number and a cyclic mix, both moved from day
    `shift_day` on: the number by +0.5 within-hour sd, 15% of the mix towards web."""
    ts = times(12)
    change = int(np.searchsorted(ts, START_MS + shift_day * DAY_MS))
    numbers = cyclic(ts, seed=7)
    numbers[change:] += 5.0  # 0.5 of the within-hour sd of 10
    mix = device_mix(ts[:change], seed=8) + device_mix(ts[change:], seed=9, moved=0.15)
    return ts, numbers, mix, change


def seasonal_kinds(
    shift_day: float = SHIFT_DAY,
) -> tuple[np.ndarray, list[tuple[SignalType, Any]], int]:
    """The streams of `seasonal_streams`, and a cyclic error rate RATE_SHIFT higher from
    `shift_day` on, by signal type."""
    ts, numbers, mix, change = seasonal_streams(shift_day)
    errors = np.concatenate(
        (error_bits(ts[:change], seed=23), error_bits(ts[change:], seed=24, shift=RATE_SHIFT))
    )
    kinds = [
        (SignalType.numeric, numbers),
        (SignalType.categorical, mix),
        (SignalType.rate, errors),
    ]
    return ts, kinds, change


def test_a_cyclic_signal_is_quiet_about_its_cycle_and_catches_a_shift_within_it() -> None:
    ts, kinds, change = seasonal_kinds()
    config = default_config()
    for kind, values in kinds:
        detections = [f for f in run(kind, values, ts, 5000, config) if f[1] == "detected"]
        assert detections, kind
        assert detections[0][0] >= change, f"{kind}: a false alarm at {detections[0][0]}"
        assert detections[0][0] - change < 3000, kind


def test_a_cyclic_error_rate_alarms_without_seasonal_adjustment() -> None:
    """What the adjustment removes: judged against one pooled rate, the cycle of the error rate
    alone raises alerts (the stream of the test above, before its shift)."""
    ts, kinds, change = seasonal_kinds()
    errors = kinds[-1][1]
    found = run(SignalType.rate, errors[:change], ts[:change], 5000, default_config(**OFF))
    assert any(f[1] == "detected" for f in found)


def test_a_rate_that_did_not_move_in_its_warm_up_is_watched_at_once() -> None:
    """A feature never missing in its warm-up: no cycle to learn, and a burst of missing values
    in its first (otherwise blind) week is found as before."""
    ts = times(2)
    missing = np.zeros(len(ts))
    burst = 5000
    missing[burst : burst + 500] = 1.0
    found = run(SignalType.rate, missing, ts, 977, default_config())
    detected = [f[0] for f in found if f[1] == "detected"]
    assert detected and burst <= detected[0] < burst + 50


def test_without_event_times_a_signal_behaves_as_before() -> None:
    """No times (e.g. a caller that has none): no season, so the cycle raises alerts."""
    _, numbers, _, change = seasonal_streams()
    monitor = SignalMonitor("feature.x", SignalType.numeric, default_config())
    refs = SourceRefs(("p",), 0, np.zeros(change, dtype=np.int64), np.arange(change))
    assert any(t.kind == "detected" for t in monitor.update(numbers[:change], refs))
    assert monitor.season is None and monitor.season_learner is None


@pytest.mark.parametrize("batch,restore_at", [(997, None), (7777, 40_000), (5000, 110_000)])
def test_seasonal_decisions_do_not_depend_on_batches_or_restores(
    batch: int, restore_at: int | None
) -> None:
    ts, kinds, _ = seasonal_kinds()
    config = default_config()
    for kind, values in kinds:
        whole = run(kind, values, ts, len(ts), config)
        assert whole
        assert run(kind, values, ts, batch, config, restore_at) == whole


# -- traffic too fast to stay blind: watching while learning ---------------------------------

# 10 events a minute against a budget of 5,000: not even a day (14,400) fits, so the signal
# takes the path of fast traffic (a week learned from every value while watching).
FAST = {"season_max_warmup_events": 5_000}


def test_fast_traffic_watches_its_first_day_then_with_that_days_season_then_the_weeks() -> None:
    """Traffic too fast to stay blind (here: a week is more than season_max_warmup_events) is
    watched against its warm-up's reference over its first day (a Monday: the cycle alarms),
    then against that day's hours on the other weekdays while it learns the week (its first
    weekend learned blind), then against the week's. From its first day's end it is quiet
    (against its warm-up's reference the cycle alarmed all week; judged against a Monday, the
    first weekend alarmed), and a shift within the cycle is found in the first week as after
    it."""
    config = default_config(**FAST)
    day = int(np.searchsorted(times(12), START_MS + DAY_MS))  # the first day's end
    ts, kinds, change = seasonal_kinds()
    for kind, values in kinds:
        detected = [f[0] for f in run(kind, values, ts, 5000, config) if f[1] == "detected"]
        assert any(d < day for d in detected), kind  # the warm-up's reference: the cycle alarms
        after = [d for d in detected if d >= day + 1000]  # (one window to resolve the last)
        assert after, kind
        assert after[0] >= change, f"{kind}: a false alarm at {after[0]} after the first day"
        assert after[0] - change < 3000, kind
    ts, kinds, change = seasonal_kinds(shift_day=3.0)  # a Thursday of the first week
    for kind, values in kinds:
        detected = [f[0] for f in run(kind, values, ts, 5000, config) if f[1] == "detected"]
        after = [d for d in detected if d >= day + 1000]
        assert after, kind
        assert after[0] >= change, f"{kind}: a false alarm at {after[0]} in the first week"
        assert after[0] - change < 3000, kind


def test_after_its_first_day_fast_traffic_watches_only_the_kind_of_day_it_has_seen() -> None:
    """A watching plan that started on a Monday: its first day is watched to its end; after
    it, weekdays are watched and Saturdays and Sundays learned blind, until the week's end."""
    fast = plan(times(0.01, step_ms=1), 1_000_000)
    assert fast is not None and fast.day_ms == START_MS + DAY_MS
    learner = SeasonLearner(fast, Scaler(0.0, 1.0))
    two_days = times(2, step_ms=HOUR_MS)
    assert learner.blind_run(two_days) == 0 and learner.watched_run(two_days) == DAY_HOURS
    learner.first_day = False  # (the signal's, at the first day's end)
    friday = START_MS + 4 * DAY_MS + np.arange(0, 3 * DAY_MS, HOUR_MS)  # Friday to Sunday
    assert learner.blind_run(friday) == 0
    assert learner.watched_run(friday) == DAY_HOURS  # up to Saturday's midnight
    weekend_and_monday = friday[DAY_HOURS:] + np.array([0] * 47 + [DAY_MS])
    assert learner.blind_run(weekend_and_monday) == 2 * DAY_HOURS - 1
    assert learner.watched_run(friday[:2] + 7 * DAY_MS) == 0  # past the week: the switch


# a re-baseline due well inside the first day (14,400 values at 10 a minute)
HELD = FAST | {"rebaseline_after_events": 2_000}


def test_over_its_first_day_a_lasting_drift_is_held_open_until_the_days_hours_are_known() -> None:
    """Against its warm-up's reference a cyclic signal drifts for hours: over a fast model's
    first day a drift that lasts until its re-baseline is due stays open (re-baselined, each
    new reference of a few minutes alarmed again as the hours moved on), and is closed as
    re-baselined at the first value past the day, judged against the day's hours from there."""
    ts, kinds, change = seasonal_kinds()
    day = int(np.searchsorted(ts, START_MS + DAY_MS))
    unseasonal = default_config(**HELD | {"season_max_warmup_events": 0})
    not_held = 0  # first-day alerts of the same signals without seasonal adjustment
    for kind, values in kinds:
        held = run(kind, values[:change], ts[:change], 5000, default_config(**HELD))
        first_day = [f for f in held if f[0] < day]
        assert [f[1] for f in first_day] == ["detected"], kind  # one alert, held all day
        closed = [f for f in held if f[0] == day]
        assert [(f[1], f[4]) for f in closed] == [("resolved", "rebaselined")], kind
        assert not [f for f in held if f[0] > day and f[1] == "detected"], kind
        found = run(kind, values[:day], ts[:day], 5000, unseasonal)
        not_held += sum(f[1] == "detected" for f in found)
    assert not_held > len(kinds)


@pytest.mark.parametrize(
    "batch,restore_at", [(997, None), (7777, 60_000), (5000, 100_000), (3000, 10_000)]
)
def test_fast_traffic_decisions_do_not_depend_on_batches_or_restores(
    batch: int, restore_at: int | None
) -> None:
    ts, kinds, _ = seasonal_kinds()
    for config in (default_config(**FAST), default_config(**HELD)):
        for kind, values in kinds:
            whole = run(kind, values, ts, len(ts), config)
            assert whole
            assert run(kind, values, ts, batch, config, restore_at) == whole


@pytest.mark.parametrize("chunk", [1, 977, 50_000])
def test_thinned_learning_does_not_depend_on_batches_and_survives_a_restore(chunk: int) -> None:
    ts = times(8)
    values = cyclic(ts, seed=6)
    thinned = Plan(WEEK_HOURS, ts[0] + WEEK_HOURS * HOUR_MS, 7 * 64, every=7, watching=True)
    scaler = Scaler.fit(values[:1000])
    whole = SeasonLearner(thinned, scaler)
    learned(whole, values, ts, len(ts))
    whole.flush()
    assert whole.counts.sum() == -(-whole.seen // 7)  # every 7th value, from the first
    learner = SeasonLearner(thinned, scaler)
    first = learned(learner, values[:30_001], ts[:30_001], chunk)
    state = orjson.loads(orjson.dumps(learner.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    learner = SeasonLearner.from_state(state)
    learned(learner, values[first:], ts[first:], chunk)
    learner.flush()
    assert np.array_equal(learner.sums, whole.sums)
    assert np.array_equal(learner.sample_ts, whole.sample_ts)
    season = whole.numeric_season()
    assert season is not None and season.buckets == WEEK_HOURS


def recentred(
    recentring: Recentring, statistic: np.ndarray, ts: np.ndarray, chunk: int, restore_at: int = -1
) -> tuple[Recentring, np.ndarray]:
    out = []
    for start in range(0, len(ts), chunk):
        if start <= restore_at < start + chunk:
            state = orjson.loads(
                orjson.dumps(recentring.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            )
            recentring = Recentring.from_state(state)
        part = slice(start, start + chunk)
        out.append(recentring.apply([statistic[part]], ts[part])[0])
    return recentring, np.concatenate(out)


@pytest.mark.parametrize("chunk,restore_at", [(977, -1), (20_000, 50_000)])
def test_recentring_learns_weekdays_and_weekends_apart_whatever_the_batches(
    chunk: int, restore_at: int
) -> None:
    """A statistic whose daily residual (±0.03) has another phase at weekends: after the first
    day its daily harmonics are removed, after the week those of each kind of day."""
    ts = times(16)
    rng = np.random.default_rng(11)
    phase = np.where(weekend(ts) > 0, 6.0, 18.0)
    residual = 0.03 * np.cos(2 * np.pi * (hours_of_day(ts) - phase) / 24.0)
    statistic = np.clip(0.5 + residual + rng.normal(0.0, 0.29, len(ts)), 0.0, 1.0)
    fresh = Recentring(1, START_MS + DAY_MS, START_MS + 7 * DAY_MS)
    whole, out = recentred(fresh, statistic, ts, len(ts))
    assert not whole.learning and whole.offsets is not None
    weekdays, weekends = whole.offsets[0, :DAY_HOURS], whole.offsets[0, DAY_HOURS:]
    # each its own phase (peaks at 18:00 and 06:00; weekends are two days of seven: noisier)
    assert 16 <= np.argmax(weekdays) <= 19 and 4 <= np.argmax(weekends) <= 8
    after = ts >= START_MS + 7 * DAY_MS
    left = out[after] - 0.5
    assert np.abs(left).max() < 1  # (values stay statistics)
    by_hour = [(left[(hours_of_day(ts[after]) // 1 == h)]).mean() for h in range(DAY_HOURS)]
    assert np.abs(by_hour).max() < 0.015  # the cycle of both kinds of day is gone
    again = Recentring(1, START_MS + DAY_MS, START_MS + 7 * DAY_MS)
    restored, chunked = recentred(again, statistic, ts, chunk, restore_at)
    assert np.array_equal(chunked, out)
    assert restored.offsets is not None and np.array_equal(restored.offsets, whole.offsets)


def test_recentring_keeps_the_level_of_traffic_that_crowds_into_busy_hours() -> None:
    """Three times as many values at 18:00 as at 06:00, whose statistic peaks at 18:00: the
    offsets of the first day, then of the week, average 0 over the values (harmonics alone
    average 0 over the hours, and moved such a stream's level by 0.0075 for the week)."""
    rng = np.random.default_rng(12)
    ts = times(8)
    ts = ts[rng.random(len(ts)) < 0.5 + 0.25 * np.cos(2 * np.pi * (hours_of_day(ts) - 18) / 24)]
    residual = 0.03 * np.cos(2 * np.pi * (hours_of_day(ts) - 18.0) / 24.0)
    statistic = np.clip(0.5 + residual + rng.normal(0.0, 0.29, len(ts)), 0.0, 1.0)
    fresh = Recentring(1, START_MS + DAY_MS, START_MS + 7 * DAY_MS)
    _, out = recentred(fresh, statistic, ts, len(ts))
    for first, last in ((1, 7), (7, 8)):  # after the first day, after the week
        period = (ts >= START_MS + first * DAY_MS) & (ts < START_MS + last * DAY_MS)
        assert abs((statistic[period] - out[period]).mean()) < 0.002, first


def test_recentring_of_fast_traffic_also_removes_an_hour_its_harmonics_miss() -> None:
    """At 18,000 values an hour, an hour whose statistic sits 0.04 off its daily harmonics is
    known to 0.002 after one day: it is recentred too (the harmonics alone leave it whole)."""
    ts = times(2, step_ms=200)
    rng = np.random.default_rng(12)
    hour = hours_of_day(ts) // 1
    residual = 0.03 * np.cos(2 * np.pi * (hours_of_day(ts) - 18.0) / 24.0) + 0.04 * (hour == 3)
    statistic = np.clip(0.5 + residual + rng.normal(0.0, 0.29, len(ts)), 0.0, 1.0)
    _, out = recentred(
        Recentring(1, START_MS + DAY_MS, START_MS + 7 * DAY_MS), statistic, ts, 99_991
    )
    second = ts >= START_MS + DAY_MS
    left = out[second] - 0.5
    by_hour = np.array([left[hour[second] == h].mean() for h in range(DAY_HOURS)])
    assert abs(by_hour[3]) < 0.01  # (0.04 off with the harmonics alone)
    assert np.abs(by_hour).max() < 0.012  # (the noise of two days' hourly means: 0.003)


# -- the mix of a seasonal category: the statistic of the category that strays -------------

DEVICES = ("ios", "android", "web")


def device_shares(ts: np.ndarray) -> np.ndarray:
    """The shares of ios, android and web at times ts (as `bench seasonal`'s device: mobile in
    the evening, web in working hours, web 10–60%)."""
    evening = np.cos(2 * np.pi * (hours_of_day(ts) - 20.0) / 24.0)
    ios, android = 0.35 + 0.15 * evening, 0.3 + 0.1 * evening
    return np.column_stack((ios, android, 1.0 - ios - android))


def device_season() -> CategoricalSeason:
    """The device's shares of each hour (those of its middle), 'other' (never seen) last."""
    middles = START_MS + HOUR_MS * np.arange(DAY_HOURS) + HOUR_MS // 2
    return CategoricalSeason(np.column_stack((device_shares(middles), np.zeros(DAY_HOURS))))


def season_shares(season: CategoricalSeason, ts: np.ndarray) -> np.ndarray:
    """The season's shares of every code at times ts: its hours' (whose centres are half past),
    interpolated linearly between them."""
    hours = (ts - HOUR_MS // 2) / HOUR_MS
    before = np.floor(hours).astype(np.int64)
    weight = (hours - before)[:, None]
    buckets = season.buckets
    low, high = season.shares[before % buckets], season.shares[(before + 1) % buckets]
    return low + weight * (high - low)


def drawn(shares: np.ndarray, seed: int, moved: float = 0.0) -> np.ndarray:
    """A category code per row of shares, `moved` of each row's mix moved to the third."""
    shares = shares * (1.0 - moved) + np.eye(1, shares.shape[1], 2)[0] * moved
    u = np.random.default_rng(seed).random(len(shares))
    return np.minimum((u[:, None] > np.cumsum(shares, axis=1)).sum(axis=1), shares.shape[1] - 1)


def mix_statistic(
    codes: np.ndarray, ts: np.ndarray, chunk: int, restore_at: int | None = None
) -> np.ndarray:
    """MixStatistic over codes at times ts under `device_season`, fed in chunks (through its
    state at `restore_at`)."""
    season = device_season()
    mix = MixStatistic(season.shares.shape[1], 16)
    out = []
    for start in range(0, len(codes), chunk):
        if restore_at is not None and start <= restore_at < start + chunk:
            state = orjson.loads(orjson.dumps(mix.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
            mix = MixStatistic.from_state(season.shares.shape[1], 16, state)
        out.append(mix.transform(codes[start : start + chunk], ts[start : start + chunk], season))
    return np.concatenate(out)


def test_the_mix_statistic_is_a_pit_under_the_hours_shares_and_finds_the_category_that_moved() -> (
    None
):
    """Under its hours' shares the statistic has a uniform PIT's mean and variance; with 10% of
    every hour's mix moved to web it moves by more of its sd than the mid-PIT in the
    reference's order (CategoricalSeason.transform, the statistic before) does."""
    ts = times(14)
    season = device_season()
    shares = season_shares(season, ts)
    unchanged, moved = drawn(shares, seed=3), drawn(shares, seed=4, moved=0.1)
    u = mix_statistic(unchanged, ts, len(ts))
    assert abs(u.mean() - 0.5) < 3 * np.sqrt(1 / 12 / len(u))
    assert abs(u.var() - 1 / 12) < 0.002
    new = (mix_statistic(moved, ts, len(ts)).mean() - 0.5) / np.sqrt(1 / 12)
    before = season.transform(unchanged, ts)
    old = (season.transform(moved, ts).mean() - before.mean()) / before.std()
    assert new > 1.2 * old > 0.12, (old, new)


@pytest.mark.parametrize("chunk,restore_at", [(1, None), (977, 50_000), (15, 1_000)])
def test_the_mix_statistic_does_not_depend_on_batches_or_restores(
    chunk: int, restore_at: int | None
) -> None:
    ts = times(8)
    codes = drawn(season_shares(device_season(), ts), seed=5, moved=0.1)
    whole = mix_statistic(codes, ts, len(ts))
    assert np.array_equal(mix_statistic(codes, ts, chunk, restore_at), whole)


def test_a_device_mix_is_quiet_about_its_cycle_and_catches_a_tenth_of_it_moved_to_web() -> None:
    """`bench seasonal`'s device mix at 10 events a minute: nothing alerts on the unchanged
    cycle; 10% of every hour's mix moved to web at 18:00 of day 10 is found by the mix's
    location within 3,000 events (317; the mid-PIT in the reference's order took 3,087)."""
    ts = times(12)
    change = int(np.searchsorted(ts, START_MS + SHIFT_DAY * DAY_MS + 18 * HOUR_MS))
    clean = np.asarray(DEVICES)[drawn(device_shares(ts), seed=11)].tolist()
    assert not run(SignalType.categorical, clean, ts, 5000, default_config())
    moved = drawn(device_shares(ts[change:]), seed=12, moved=0.1)
    mix = clean[:change] + np.asarray(DEVICES)[moved].tolist()
    found = run(SignalType.categorical, mix, ts, 5000, default_config())
    detected = [f for f in found if f[1] == "detected"]
    assert detected and detected[0][2] == "location"
    assert change <= detected[0][0] < change + 3000
