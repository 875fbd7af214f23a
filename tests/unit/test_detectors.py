"""The statistic streams: a deferred flat run decides exactly as feeding every value."""

from __future__ import annotations

import numpy as np
import pytest

from detector.monitors.detectors import StatisticStream
from detector.monitors.page_hinkley import PageHinkley


def stream(deferring: bool) -> StatisticStream:
    s = StatisticStream(PageHinkley(threshold=8.0, delta=0.05, alpha=1.0), adwin_delta=0.002, block_events=16)
    if not deferring:
        s.flat = None
    return s


@pytest.mark.parametrize("flat_value", [0.5, 0.45, 1 / 3])
@pytest.mark.parametrize("batch", [1, 37, 1000])
def test_a_flat_run_then_a_change_decides_as_if_every_value_was_fed(flat_value: float, batch: int) -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([np.full(5003, flat_value), np.where(rng.random(4000) < 0.3, 1.0, flat_value)])
    results = []
    for deferring in (True, False):
        s = stream(deferring)
        hits = []
        for start in range(0, len(values), batch):
            found, _, _ = s.update(values[start : start + batch])
            hits += [(start + h.index, h.detector) for h in found]
        results.append((hits, s.page_hinkley.state, s.adwin.adwin.width, s.adwin.adwin.estimation, s.adwin.carry.tolist()))
    assert results[0] == results[1]
    assert results[0][0], "the change after the flat run must be detected"


def test_a_flat_run_survives_a_checkpoint() -> None:
    deferring = stream(True)
    deferring.update(np.full(100, 0.5))
    restored = stream(True)
    restored.load_state(deferring.to_state())
    assert restored.flat == deferring.flat and restored.flat is not None and restored.flat.values == 100
