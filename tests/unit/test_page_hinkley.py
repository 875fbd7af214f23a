"""The vectorised Page-Hinkley makes exactly river's decisions, whatever the batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import PageHinkley as RiverPageHinkley

from detector.core.monitors.page_hinkley import PageHinkley, _powers, update_ragged, update_rows


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


@pytest.mark.parametrize("alpha", [1.0, 1 - 1e-4, 0.9])
def test_rows_updated_together_decide_and_end_as_each_detector_on_its_own(alpha: float) -> None:
    """update_rows (a model's statistics in one array) against river, one detector per row: rows
    that start from different states (some not yet armed), some firing, some twice, and (alpha
    0.9: 2,847 values a step) rows longer than a step."""
    rng = np.random.default_rng(4)
    params = {"threshold": 4.0, "delta": 0.01, "alpha": alpha, "min_instances": 30}
    length = 6000
    fed_before = [0, 10, 29, 500, 3000]
    prefixes = [rng.random(n) for n in fed_before]
    rows = np.stack(
        [
            rng.random(length),
            np.concatenate([rng.random(1000), 0.4 + 0.6 * rng.random(length - 1000)]),
            np.concatenate([0.6 * rng.random(3000), 0.4 + 0.6 * rng.random(length - 3000)]),
            rng.random(length),
            np.concatenate([rng.random(5990), np.ones(10)]),
        ]
    )
    together = [PageHinkley(**params) for _ in rows]
    alone = [PageHinkley(**params) for _ in rows]
    for prefix, a, b in zip(prefixes, together, alone):
        a.update(prefix)
        b.update(prefix)
    found = update_rows(together, rows)
    assert sum(map(len, found)) >= 3  # rows must actually fire
    for prefix, row, hits, a, b in zip(prefixes, rows, found, together, alone):
        expected = river_detections(np.concatenate([prefix, row]), **params)
        assert [len(prefix) + hit.index for hit in hits] == [
            i for i in expected if i >= len(prefix)
        ]
        assert hits == b.update(row).hits
        assert a.state == b.state  # to the bit


@pytest.mark.parametrize("alpha", [1.0, 0.9])
def test_rows_of_other_lengths_decide_and_end_as_each_detector_on_its_own(alpha: float) -> None:
    """update_ragged (a model's statistics of features with missing values: rows of other
    lengths, padded) against each detector's own update: the same hits and states to the bit;
    rows that fire before, at and never before their end, shorter and longer than a step (alpha
    0.9: 2,847 values a step), and padding that would fire if it were read."""
    rng = np.random.default_rng(8)
    params = {"threshold": 4.0, "delta": 0.01, "alpha": alpha, "min_instances": 30}
    rows = [
        rng.random(6000),
        np.concatenate([rng.random(1000), 0.4 + 0.6 * rng.random(2000)]),  # fires, ends early
        rng.random(17),  # not armed yet
        np.concatenate([rng.random(2990), np.ones(10)]),  # fires near its end
        0.5 * rng.random(250),  # would fire on the padding's zeros if it read them
        rng.random(2847),
    ]
    together = [PageHinkley(**params) for _ in rows]
    alone = [PageHinkley(**params) for _ in rows]
    for a, b in zip(together[1:], alone[1:]):  # some carry states in
        prefix = rng.random(40)
        a.update(prefix)
        b.update(prefix)
    found = update_ragged(together, rows)
    assert sum(map(len, found)) >= 2  # rows must actually fire
    for row, hits, a, b in zip(rows, found, together, alone):
        assert hits == b.update(row).hits
        assert a.state == b.state  # to the bit


def test_rows_with_other_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        update_rows([PageHinkley(threshold=4), PageHinkley(threshold=5)], np.zeros((2, 3)))


def test_the_powers_of_a_long_step_are_those_of_any_shorter() -> None:
    """Page-Hinkley's faded sums take alpha's powers from one table (`_powers`): the same bits as
    computing them for each length, as before."""
    for alpha in (1 - 1e-4, 0.99, 0.9):
        table = _powers(alpha)
        for n in (1, 7, 8, 9, 250, 1023, 4097, len(table)):
            assert np.array_equal(table[:n], alpha ** np.arange(n, dtype=np.float64))
