"""The minimum effect (`min_effect_sd`): a lasting offset too small to matter, such as the few
thousandths of a PIT statistic by which an hour's reference misses fast traffic's hour, is not
alerted however many values show it; a larger one still is, and the decisions do not depend on
batching or restores."""

from __future__ import annotations

import numpy as np

from detector.core.monitors.columns import SourceRefs
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.signal import SignalMonitor
from detector.core.monitors.signal_type import SignalType
from tests.unit.test_signal import default_config, restored

HOUR = 360_000  # values an hour at 100 events a second
# A long warm-up, so that the reference itself is off by far less than the offsets tested.
WARMUP = 50_000


def hourly_offsets(sds: float, hours: int, seed: int = 3) -> np.ndarray:
    """Normal values whose mean is +sds in odd hours and -sds in even ones, after a warm-up
    drawn from their mixture."""
    rng = np.random.default_rng(seed)
    signs = np.repeat(np.where(np.arange(hours) % 2, 1.0, -1.0), HOUR)
    warmup = rng.normal(0.0, 1.0, WARMUP) + sds * np.where(rng.random(WARMUP) < 0.5, 1.0, -1.0)
    return np.concatenate((warmup, rng.normal(0.0, 1.0, hours * HOUR) + sds * signs))


def detections(
    values: np.ndarray, config: SignalConfig, batch: int = 100_003, restore_at: int | None = None
) -> list[tuple[int, str, str]]:
    """(position, statistic, detector) of each detection, fed in batches (and, at `restore_at`,
    through a checkpoint)."""
    monitor = SignalMonitor("feature.x", SignalType.numeric, config)
    found = []
    cuts = sorted({*range(0, len(values), batch), *([restore_at] if restore_at else [])})
    for start, end in zip(cuts, [*cuts[1:], len(values)]):
        if start == restore_at:
            monitor = restored(monitor, config)
        chunk = values[start:end]
        refs = SourceRefs(
            ("predictions",),
            0,
            np.zeros(len(chunk), dtype=np.int64),
            np.arange(start, end),
        )
        found += [
            (start + t.index, t.statistic, t.detector)
            for t in monitor.update(chunk, refs)
            if t.kind == "detected"
        ]
    return found


def test_hourly_offsets_below_the_floor_are_not_alerted_over_millions_of_values() -> None:
    values = hourly_offsets(0.02, hours=10)  # 3.6 million values; PIT means 0.016 apart
    assert detections(values, default_config(warmup_events=WARMUP, min_effect_sd=0.0)), (
        "without a floor the detectors find the offsets"
    )
    assert detections(values, default_config(warmup_events=WARMUP)) == []


def test_offsets_above_the_floor_are_alerted() -> None:
    values = hourly_offsets(0.2, hours=3)  # PIT means 0.16 apart
    found = detections(values, default_config(warmup_events=WARMUP))
    assert len(found) >= 2
    assert found == detections(values, default_config(warmup_events=WARMUP, min_effect_sd=0.0))


def test_a_shift_after_absorbed_offsets_is_found_and_decisions_do_not_depend_on_batching() -> None:
    values = hourly_offsets(0.03, hours=3, seed=5)
    change = WARMUP + 2 * HOUR + 1_000
    values[change:] += 0.5
    config = default_config(warmup_events=WARMUP)
    found = detections(values, config)
    assert found and change <= found[0][0] < change + 500
    assert len(found) < len(
        detections(values, default_config(warmup_events=WARMUP, min_effect_sd=0.0))
    )
    assert detections(values, config, batch=7_919) == found
    assert detections(values, config, restore_at=WARMUP + HOUR + 12_345) == found


def test_a_hit_below_the_floor_is_watched_and_alerts_once_its_change_is_seen_to_be_large() -> None:
    """A detector finds a 0.5-sd shift before its blocks show it beyond a floor of 0.25 sd:
    the hit is watched, not dropped, and alerts a few blocks later."""
    config = default_config(min_effect_sd=0.25)
    watched_first = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        values = rng.normal(0.0, 1.0, 6000)
        values[3000:] += 0.5
        monitor = SignalMonitor("feature.x", SignalType.numeric, config)
        detected, watched = None, False
        for start in range(0, len(values), 16):
            chunk = values[start : start + 16]
            refs = SourceRefs(
                ("predictions",),
                0,
                np.zeros(len(chunk), dtype=np.int64),
                np.arange(start, start + len(chunk)),
            )
            found = [t for t in monitor.update(chunk, refs) if t.kind == "detected"]
            if found:
                detected = start + found[0].index
                break
            watched |= monitor.below_floor is not None
        assert detected is not None and 3000 <= detected < 3000 + 2 * 1008, seed
        watched_first += watched
    assert watched_first, "some shift must have been watched below the floor first"
