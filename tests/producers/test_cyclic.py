"""The cyclic shop stream: reproducible however it is chunked, its traffic rate and signals follow
the hour of the day and the day of the week (the iid feature does not), and injections land
where the ground truth says, in units of the within-hour spread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from producers.cycles import (
    DAY_MS,
    HOUR_MS,
    MONDAY_MS,
    WEEK_MS,
    cyclic_times,
    daily,
    traffic_factor,
    weekend_of,
)
from producers.cyclic import DEVICES, Cyclic
from producers.scenarios import Injection

START_MS = 1_763_942_400_000  # Monday 2025-11-24T00:00Z
INTERVAL_MS = 30_000  # 2 events a minute on average: two weeks in 40,320 events
TWO_WEEKS = 2 * WEEK_MS // INTERVAL_MS


@pytest.fixture(scope="module")
def two_weeks() -> dict[str, np.ndarray]:
    """Two weeks of undrifted events as columns, with each one's UTC hour and weekend flag."""
    events = Cyclic(seed=5, start_ms=START_MS, interval_ms=INTERVAL_MS).events(TWO_WEEKS)
    ts = np.array([e["ts"] for e in events])
    columns: dict[str, Any] = {
        name: np.array([e["features"][name] for e in events])
        for name in ("amount", "sessions", "temperature", "device", "noise")
    }
    columns |= {
        "ts": ts,
        "hour": (ts % DAY_MS) // HOUR_MS,
        "weekend": weekend_of(ts) == 1.0,
        "score": np.array([e["score"] for e in events]),
        "latency_ms": np.array([e["latency_ms"] for e in events]),
    }
    return columns


def hours(columns: dict[str, np.ndarray], first: int, last: int) -> np.ndarray:
    return (columns["hour"] >= first) & (columns["hour"] <= last)


def test_the_same_seed_gives_the_same_events_however_they_are_requested() -> None:
    injections = (
        Injection("mean_shift", "amount", 700),
        Injection("category_mix", "device", 1200, magnitude=0.3),
        Injection("prior_shift", "", 1500, magnitude=0.6),
    )
    whole = Cyclic(seed=3, injections=injections).batch(3000)
    chunked = Cyclic(seed=3, injections=injections)
    pieces = [chunked.batch(size) for size in (1, 998, 1234, 767)]
    assert [e for piece in pieces for e in piece.predictions] == whole.predictions
    assert [e for piece in pieces for e in piece.labels] == whole.labels
    assert Cyclic(seed=4, injections=injections).events(3000) != whole.predictions


def test_the_cycles_shapes() -> None:
    monday_17h = MONDAY_MS + 17 * HOUR_MS
    assert daily(np.array([monday_17h]), peak_hour=17.0)[0] == pytest.approx(1.0)
    assert daily(np.array([monday_17h - 12 * HOUR_MS]), peak_hour=17.0)[0] == pytest.approx(-1.0)
    # 2025-11-29 was a Saturday, 2025-12-01 a Monday
    saturday, monday = START_MS + 5 * DAY_MS, START_MS + 7 * DAY_MS
    assert weekend_of(np.array([saturday, saturday - 1, monday - 1, monday])).tolist() == [
        1.0,
        0.0,
        1.0,
        0.0,
    ]
    week = START_MS + np.arange(0, WEEK_MS, 60_000)
    assert traffic_factor(week).mean() == pytest.approx(1.0, abs=1e-9)


def test_event_times_follow_the_traffic_cycle_and_keep_the_mean_interval() -> None:
    positions = np.arange(100_000)
    ts = cyclic_times(START_MS + 7 * HOUR_MS, positions, 9_000.0)
    assert (np.diff(ts) >= 0).all()
    assert ts[0] == START_MS + 7 * HOUR_MS
    # whole weeks of traffic take whole weeks of event time
    week = WEEK_MS // 9_000
    assert ts[week] - ts[0] == pytest.approx(WEEK_MS, abs=9_000)
    hour_of_week = ((ts[:week] - START_MS) // HOUR_MS) % (7 * 24)
    per_hour = np.bincount(hour_of_week, minlength=7 * 24).reshape(7, 24)
    weekday, weekend = per_hour[:5].mean(axis=0), per_hour[5:].mean(axis=0)
    # 400 events an hour on average: 0.3 and 1.7 times it (over 1.043) at 05:00 and 17:00
    assert weekday[5] == pytest.approx(400 * 0.3 / 1.043, rel=0.05)
    assert weekday[17] == pytest.approx(400 * 1.7 / 1.043, rel=0.05)
    assert weekend[17] / weekday[17] == pytest.approx(1.15, rel=0.02)
    # the same times from any position on
    assert (cyclic_times(START_MS + 7 * HOUR_MS, positions[5000:], 9_000.0) == ts[5000:]).all()


def test_the_features_score_and_latency_follow_the_hour_and_the_weekday(
    two_weeks: dict[str, np.ndarray],
) -> None:
    c = two_weeks
    evening, night = hours(c, 18, 22), hours(c, 2, 6)
    weekday = ~c["weekend"]
    for name in ("amount", "sessions", "score"):
        assert c[name][evening].mean() > 1.3 * c[name][night].mean(), name
        assert c[name][evening & c["weekend"]].mean() > c[name][evening & weekday].mean(), name
    afternoon, dawn = hours(c, 13, 17), hours(c, 1, 5)
    assert c["temperature"][afternoon].mean() - c["temperature"][dawn].mean() > 8.0
    mobile = np.isin(c["device"], DEVICES[:2])
    office = hours(c, 7, 11)
    assert mobile[evening].mean() > mobile[office].mean() + 0.2
    rush, trough = hours(c, 15, 19), hours(c, 3, 7)
    assert np.median(c["latency_ms"][rush]) > 1.2 * np.median(c["latency_ms"][trough])


def test_the_iid_feature_does_not_cycle(two_weeks: dict[str, np.ndarray]) -> None:
    noise = two_weeks["noise"]
    by_hour = [noise[two_weeks["hour"] == hour] for hour in range(24)]
    # each hour holds about 1,700 values: its mean is within 4 standard errors of 0
    assert all(abs(values.mean()) < 4 / np.sqrt(len(values)) for values in by_hour)
    assert noise.std() == pytest.approx(1.0, abs=0.02)


def test_the_labels_follow_the_calibrated_score_so_the_error_rate_follows_the_hour() -> None:
    batch = Cyclic(seed=6, start_ms=START_MS, interval_ms=INTERVAL_MS).batch(TWO_WEEKS)
    predicted = {e["id"]: (e["ts"], e["prediction"], e["score"]) for e in batch.predictions}
    ts, prediction, score = map(np.array, zip(*(predicted[e["id"]] for e in batch.labels)))
    label = np.array([e["label"] for e in batch.labels])
    assert len(label) > 0.99 * TWO_WEEKS  # (the last minute's labels are not due yet)
    for low, high in ((0.0, 0.2), (0.2, 0.4), (0.4, 1.0)):  # calibrated: as many 1s as scored
        scored = (score >= low) & (score < high)
        assert label[scored].mean() == pytest.approx(score[scored].mean(), abs=0.03)
    wrong = prediction != label
    hour = (ts % DAY_MS) // HOUR_MS
    evening, morning = (hour >= 18) & (hour <= 21), (hour >= 6) & (hour <= 9)
    assert wrong[evening].mean() > 1.5 * wrong[morning].mean()
    positive = label == 1
    assert (prediction == 1)[evening & positive].mean() > 3 * (prediction == 1)[
        morning & positive
    ].mean()


def test_a_shift_moves_every_hour_by_its_within_hour_spread_from_its_start() -> None:
    shift = Injection("mean_shift", "amount", 20_000, magnitude=0.5)
    options: dict[str, Any] = {"seed": 2, "start_ms": START_MS, "interval_ms": INTERVAL_MS}
    shifted = Cyclic(injections=(shift,), **options)
    clean = Cyclic(**options).events(TWO_WEEKS)
    events = shifted.events(TWO_WEEKS)
    assert events[:20_000] == clean[:20_000]
    moved = np.array([e["features"]["amount"] for e in events[20_000:]]) - np.array(
        [e["features"]["amount"] for e in clean[20_000:]]
    )
    within_hour = shifted.reference["amount"].std
    assert moved == pytest.approx(0.5 * within_hour, abs=0.011)
    # the unit is the spread within an hour, well below the spread of the whole cycle
    amounts = np.array([e["features"]["amount"] for e in clean])
    assert 20 < within_hour < 0.95 * amounts.std()
    [truth] = shifted.ground_truth()
    assert truth["model"] == "shop" and truth["monitor"] == "feature.amount"
    assert truth["start"] == 20_000 and truth["end"] is None
    assert "prediction.score" in truth["side_effects"]


def test_a_category_mix_change_reverses_the_hours_device_mix_from_its_start() -> None:
    mix = Injection("category_mix", "device", 10_000, magnitude=1.0, length=5_000)
    options: dict[str, Any] = {"seed": 2, "start_ms": START_MS, "interval_ms": INTERVAL_MS}
    clean = Cyclic(**options).events(20_000)
    changed = Cyclic(injections=(mix,), **options).events(20_000)
    flipped = {"ios": "web", "android": "android", "web": "ios"}
    for position in (0, 9_999, 10_000, 14_999, 15_000, 19_999):
        device = clean[position]["features"]["device"]
        during = 10_000 <= position < 15_000
        assert changed[position]["features"]["device"] == (flipped[device] if during else device)
    [truth] = Cyclic(injections=(mix,), **options).ground_truth()
    assert (truth["monitor"], truth["start"], truth["end"]) == ("feature.device", 10_000, 15_000)


def test_a_rate_drop_thins_the_hours_it_covers_and_keeps_the_cycle_after_it() -> None:
    options: dict[str, Any] = {"seed": 2, "start_ms": START_MS, "interval_ms": INTERVAL_MS}
    # from event 1,000 (Monday about 08:00): the next 50 events at 10% of the usual rate
    drop = Injection("rate_drop", "", 1_000, magnitude=0.1, length=50)
    clean = np.array([e["ts"] for e in Cyclic(**options).events(4_000)])
    dropped = np.array([e["ts"] for e in Cyclic(injections=(drop,), **options).events(3_000)])
    assert (dropped[:1_001] == clean[:1_001]).all()
    assert dropped[1_050] - dropped[1_000] > 8 * (clean[1_050] - clean[1_000])
    # after the drop the traffic follows its cycle again: the same hours, the same rate
    hour, clean_hour = (dropped - START_MS) // HOUR_MS, (clean - START_MS) // HOUR_MS
    after, last = hour[1_100] + 1, hour[-1]  # whole hours after the drop
    assert clean_hour[-1] > last > after + 10
    counts = np.bincount(hour, minlength=last + 1)[after:last]
    usual = np.bincount(clean_hour, minlength=last + 1)[after:last]
    assert np.abs(counts - usual).max() <= 1
