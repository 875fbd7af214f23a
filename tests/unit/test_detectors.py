"""The statistic streams: a deferred flat run decides exactly as feeding every value; block
ADWIN signals exactly where river's ADWIN does."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from river.drift import ADWIN

from detector.core.events import Event, InputTopic
from detector.core.monitors import detectors
from detector.core.monitors.columns import Columns
from detector.core.monitors.detectors import (
    ADWIN_CLOCK,
    BlockAdwin,
    StatisticStream,
    update_streams,
)
from detector.core.monitors.model import BatchFeed
from detector.core.monitors.page_hinkley import PageHinkley
from detector.core.monitors.signal_type import SignalType
from detector.core.pipeline import Pipeline
from detector.settings import load_settings


def stream(deferring: bool) -> StatisticStream:
    s = StatisticStream(
        PageHinkley(threshold=8.0, delta=0.05, alpha=1.0), adwin_delta=0.002, block_events=16
    )
    if not deferring:
        s.flat = None
    return s


@pytest.mark.parametrize("flat_value", [0.5, 0.45, 1 / 3])
@pytest.mark.parametrize("batch", [1, 37, 1000])
def test_a_flat_run_then_a_change_decides_as_if_every_value_was_fed(
    flat_value: float, batch: int
) -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [np.full(5003, flat_value), np.where(rng.random(4000) < 0.3, 1.0, flat_value)]
    )
    results = []
    for deferring in (True, False):
        s = stream(deferring)
        hits = []
        for start in range(0, len(values), batch):
            found = s.update(values[start : start + batch])
            hits += [(start + h.index, h.detector) for h in found.hits]
        results.append(
            (
                hits,
                s.page_hinkley.state,
                s.adwin.adwin.width,
                s.adwin.adwin.estimation,
                s.adwin.carry.tolist(),
            )
        )
    assert results[0] == results[1]
    assert results[0][0], "the change after the flat run must be detected"


def test_a_flat_run_survives_a_checkpoint() -> None:
    deferring = stream(True)
    deferring.update(np.full(100, 0.5))
    restored = stream(True)
    restored.load_state(deferring.to_state())
    assert (
        restored.flat == deferring.flat
        and restored.flat is not None
        and restored.flat.values == 100
    )


def test_block_adwin_signals_where_river_s_adwin_does_on_the_same_block_means() -> None:
    """BlockAdwin feeds river's ADWIN core directly; river's own ADWIN, fed the same scaled
    means value by value, must signal at the same blocks with the same window widths."""
    rng = np.random.default_rng(7)
    # means 0.5, 0.6, 1/3
    values = np.concatenate(
        [rng.random(20_000), 0.2 + 0.8 * rng.random(20_000), rng.random(20_000) ** 2]
    )
    block = BlockAdwin(delta=0.002, block_events=16)
    river = ADWIN(delta=0.002, clock=ADWIN_CLOCK, max_buckets=5)
    ours, theirs = [], []
    for start in range(0, len(values), 999):
        found = block.update(values[start : start + 999])
        ours += [(start + h.index, h.change_age) for h in found.hits]
        for end, mean in zip(found.block_ends.tolist(), found.block_means.tolist()):
            river.update((mean - 0.5) * 4 + 0.5)
            if river.drift_detected:
                theirs.append((start + end, int(river.width) * 16))
    assert len(ours) >= 2, "the two changes must be detected"
    assert ours == theirs


def test_block_adwin_restored_after_a_hit_continues_as_the_uninterrupted_one() -> None:
    rng = np.random.default_rng(8)
    values = np.concatenate([rng.random(8000), 0.3 + 0.7 * rng.random(8000)])
    first = BlockAdwin(delta=0.002, block_events=16)
    hits = first.update(values).hits
    assert hits
    cut = int(hits[0].index) + 1  # a checkpoint right after the block that signalled
    uninterrupted, before = (
        BlockAdwin(delta=0.002, block_events=16),
        BlockAdwin(delta=0.002, block_events=16),
    )
    before.update(values[:cut])
    restored = BlockAdwin(delta=0.002, block_events=16)
    restored.load_state(before.to_state())
    uninterrupted.update(values[:cut])
    more = rng.random(8000) ** 3
    assert [h.index for h in restored.update(more).hits] == [
        h.index for h in uninterrupted.update(more).hits
    ]
    assert restored.adwin.width == uninterrupted.adwin.width


@pytest.mark.parametrize("rows_values", [1 << 15, 400])
def test_streams_updated_together_find_and_keep_what_each_finds_alone(
    rows_values: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update_streams (a model's statistics, rows of one array where they line up) against
    each stream's own update: the same hits, blocks and states, over batches where some streams
    are flat, carry different unfinished blocks or get fewer values, and some fire; with the
    rows cut into parts (400 values at most together) or not."""
    monkeypatch.setattr(detectors, "_ROWS_VALUES", rows_values)
    rng = np.random.default_rng(5)
    together = [stream(True) for _ in range(6)]
    alone = [stream(True) for _ in range(6)]
    hits = 0
    for batch in range(40):
        n = int(rng.integers(1, 300))
        shifted = 0.3 if batch >= 20 else 0.0
        values = [
            rng.random(n),
            np.clip(rng.random(n) + shifted, 0, 1),
            rng.random(n),
            np.full(n, 0.5) if batch < 30 else rng.random(n),  # flat, then not
            rng.random(max(1, n - 5)),  # fewer values: its blocks end elsewhere
            rng.random(n) * (0.5 if batch >= 10 else 1.0),
        ]
        got = update_streams(together, values)
        for result, s, v in zip(got, alone, values):
            expected = s.update(v)
            assert result.hits == expected.hits
            assert np.array_equal(result.block_means, expected.block_means)
            assert np.array_equal(result.block_ends, expected.block_ends)
            hits += len(result.hits)
    assert hits >= 2  # the shifted streams must fire
    for a, b in zip(together, alone):
        assert a.page_hinkley.state == b.page_hinkley.state
        assert a.to_state()["adwin"] == b.to_state()["adwin"]
        assert np.array_equal(a.adwin.carry, b.adwin.carry) and a.flat == b.flat


def test_a_signal_fed_twice_in_a_batch_sees_its_values_in_order() -> None:
    """BatchFeed holds each signal's update until `run`, to run a model's signals together; a
    signal fed again before that has its first values observed first, as if fed once."""
    monitors = [Pipeline(load_settings(None)).new_monitor("m") for _ in range(2)]
    events = [
        Event(InputTopic.prediction, "m", 0, i, 1_700_000_000_000 + i, score=0.5)
        for i in range(3000)
    ]
    values = np.random.default_rng(7).normal(size=len(events))
    rows = np.arange(len(events))
    twice, once = (BatchFeed(monitor, events) for monitor in monitors)
    for part in np.array_split(rows, [1200, 2100]):
        twice.feed("feature.x", SignalType.numeric, Columns(part, values[part]))
    once.feed("feature.x", SignalType.numeric, Columns(rows, values))
    twice.run()
    once.run()
    fed, whole = (monitor.signals["feature.x"] for monitor in monitors)
    assert fed.seen == whole.seen == len(events) and not fed.learning
    assert orjson.dumps(fed.to_state(), option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(
        whole.to_state(), option=orjson.OPT_SERIALIZE_NUMPY
    )
