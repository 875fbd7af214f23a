"""traffic.rate: an outage (the prediction rate at a fraction of its usual rate for the hour)
alerts; the night-time dip does not; decisions do not depend on batches or restores."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.monitors.seasonal import HOUR_MS
from detector.core.monitors.traffic import TrafficMonitor

START_MS = 1_767_571_200_000  # Monday 2026-01-05 00:00 UTC
MINUTE_MS, DAY_MS = 60_000, 24 * HOUR_MS
OUTAGE = (START_MS + 8 * DAY_MS + 12 * HOUR_MS, START_MS + 8 * DAY_MS + 13 * HOUR_MS)


def traffic(days: float, outage: tuple[int, int] | None, seed: int = 1) -> np.ndarray:
    """Event times at about 10 a minute, 2 a minute at night and 18 in the evening; during
    `outage`, 10% of that."""
    rng = np.random.default_rng(seed)
    minutes = START_MS + MINUTE_MS * np.arange(int(days * 1440))
    hours = (minutes % DAY_MS) / HOUR_MS
    rate = 10.0 * (1.0 + 0.8 * np.cos(2 * np.pi * (hours - 18.0) / 24.0))
    if outage is not None:
        rate = np.where((minutes >= outage[0]) & (minutes < outage[1]), 0.1 * rate, rate)
    counts = rng.poisson(rate)
    return np.sort(np.repeat(minutes, counts) + rng.integers(0, MINUTE_MS, counts.sum()))


def run(ts: np.ndarray, batch: int, restore_at: int | None = None) -> list[tuple]:
    """(position, kind, evidence) of every transition, fed in batches (restored once)."""
    monitor = TrafficMonitor(warmup_events=1000, max_events=1_000_000)
    found = []
    for start in range(0, len(ts), batch):
        if restore_at is not None and start <= restore_at < start + batch:
            state = orjson.loads(
                orjson.dumps(monitor.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            )
            monitor = TrafficMonitor(warmup_events=1000, max_events=1_000_000)
            monitor.load_state(state)
        found += [
            (start + t.index, t.kind, t.reason, t.observations, t.evidence)
            for t in monitor.observe(ts[start : start + batch])
        ]
    return found


def test_the_daily_dip_is_quiet_and_an_outage_alerts_once_then_resolves() -> None:
    quiet = traffic(10, None)
    assert run(quiet, 5000) == []
    ts = traffic(10, OUTAGE)
    found = run(ts, 5000)
    assert [kind for _, kind, *_ in found] == ["detected", "resolved"]
    detected_at = ts[found[0][0]]
    assert OUTAGE[0] < detected_at <= OUTAGE[0] + 15 * MINUTE_MS
    evidence = found[0][4]
    assert evidence["after"]["rate"] < 0.3 and evidence["before"]["rate"] == 1.0
    assert OUTAGE[1] <= ts[found[1][0]] <= OUTAGE[1] + 30 * MINUTE_MS


def test_a_total_outage_alerts_with_the_first_event_after_it() -> None:
    ts = traffic(10, None)
    ts = ts[(ts < OUTAGE[0]) | (ts >= OUTAGE[1])]
    found = run(ts, 5000)
    assert [kind for _, kind, *_ in found][:1] == ["detected"]
    assert ts[found[0][0]] >= OUTAGE[1]
    assert ts[found[0][0] - 1] < OUTAGE[0]


@pytest.mark.parametrize("batch,restore_at", [(1, None), (997, 60_000), (30_000, 120_000)])
def test_decisions_do_not_depend_on_batches_or_restores(batch: int, restore_at: int | None) -> None:
    ts = traffic(10, OUTAGE)
    whole = run(ts, len(ts))
    assert whole
    assert run(ts, batch, restore_at) == whole
