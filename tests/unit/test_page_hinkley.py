"""The vectorised Page-Hinkley makes exactly river's decisions, whatever the batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import PageHinkley as RiverPageHinkley

from detector.core.monitors.page_hinkley import PageHinkley


def river_detections(values: np.ndarray, **params: float) -> list[int]:
    detector = RiverPageHinkley(**params)
    found = []
    for index, value in enumerate(values.tolist()):
        detector.update(value)
        if detector.drift_detected:
            found.append(index)
    return found


def batched_detections(values: np.ndarray, splits: list[int], **params: float) -> list[int]:
    detector = PageHinkley(**params)
    found, start = [], 0
    for chunk in np.split(values, sorted({s for s in splits if 0 < s < len(values)})):
        found += [start + hit.index for hit in detector.update(chunk).hits]
        start += len(chunk)
    return found


@pytest.mark.parametrize("alpha", [1.0, 1 - 1e-4, 0.99])
def test_same_detections_as_river_on_shifting_streams(alpha: float) -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [rng.random(4000), 0.3 + 0.7 * rng.random(4000), 0.6 * rng.random(4000)]
    )
    params = {"threshold": 4.0, "delta": 0.01, "alpha": alpha, "min_instances": 30}
    expected = river_detections(values, **params)
    assert len(expected) >= 3  # the stream must actually exercise detections and resets
    assert batched_detections(values, [777, 5000, 5001, 9000], **params) == expected


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0, 1), min_size=1, max_size=600),
    splits=st.lists(st.integers(0, 600), max_size=5),
    threshold=st.floats(0.5, 5),
    delta=st.floats(0, 0.1),
)
def test_same_detections_as_river_for_any_input_and_batching(
    values: list[float], splits: list[int], threshold: float, delta: float
) -> None:
    array = np.asarray(values)
    params = {"threshold": threshold, "delta": delta, "alpha": 1.0, "min_instances": 5}
    assert batched_detections(array, splits, **params) == river_detections(array, **params)


def test_state_after_a_batch_matches_river() -> None:
    values = np.random.default_rng(2).random(2500)
    river = RiverPageHinkley(threshold=1e9, delta=0.005)
    for value in values:
        river.update(value)
    ours = PageHinkley(threshold=1e9, delta=0.005)
    ours.update(values)
    assert ours.state.total / ours.state.count == pytest.approx(river._x_mean.get(), rel=1e-9)
    assert ours.state.sum_increase == pytest.approx(river._sum_increase, rel=1e-9, abs=1e-9)
    assert ours.state.min_increase == pytest.approx(river._min_increase, rel=1e-9, abs=1e-9)


def test_change_age_points_near_the_change() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.random(3000), 0.4 + 0.6 * rng.random(1000)])
    hits = PageHinkley(threshold=15, delta=0.05, alpha=1.0).update(values).hits
    assert hits, "a jump of the mean from 0.5 to 0.7 must be detected"
    first = hits[0]
    estimated_start = first.index - first.change_age
    assert abs(estimated_start - 3000) < 60


def test_rejects_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        PageHinkley(alpha=0)
    with pytest.raises(ValueError):
        PageHinkley(threshold=-1)
