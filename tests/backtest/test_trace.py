"""The signal traces behind the pictures: complete, placed by prediction position, independent of
batch sizes, and showing the injected shift against the reference band."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from detector.backtest.files import FileSource
from detector.backtest.replay import Run, replay
from detector.backtest.sources import Batch
from detector.backtest.trace import Series
from detector.settings import load_settings
from tests.backtest.support import History


class Rebatched:
    """A source that cuts another's messages into batches of its own size."""

    def __init__(self, source: FileSource, size: int) -> None:
        self.source, self.size, self.description = source, size, "rebatched"

    def batches(self, size: int) -> Iterator[Batch]:
        messages = [
            pair
            for batch in self.source.batches(size)
            for pair in zip(batch.messages, batch.models)
        ]
        for start in range(0, len(messages), self.size):
            batch = Batch()
            for message, model in messages[start : start + self.size]:
                batch.append(message, model)
            yield batch

    def fraction_done(self) -> None:
        return None


def amount_series(history: History, batch: int | None = None) -> Series:
    settings = load_settings(None)
    source = FileSource(settings, history.events)
    run = Run("A", None, settings)
    replay(source if batch is None else Rebatched(source, batch), [run])
    series = run.trace.of("fraud", "feature.amount")
    assert series is not None
    return series


def test_the_trace_covers_the_stream_and_shows_the_shift_against_the_band(history: History) -> None:
    columns = amount_series(history).columns()
    position, raw, level, half = (
        columns["position"],
        columns["raw"],
        columns["raw.level"],
        columns["raw.half"],
    )

    steps = np.diff(position)
    assert (steps > 0).all() and steps.max() <= 200  # a point every 7 blocks of 16 events, no gap
    # from the end of warm-up and first window
    assert 1000 < position[0] <= 2200 and position[-1] >= 23_700
    shift = history.changes[0]
    before, during = (
        position < shift["start"],
        (position > shift["start"] + 1000) & (position < shift["end"]),
    )
    assert (np.abs(raw[before] - level[before]) <= half[before]).mean() > 0.95
    assert (raw[during] > level[during] + half[during]).all()
    location = columns["location"]
    assert (
        location[during] > columns["location.level"][during] + columns["location.half"][during]
    ).all()


def test_the_trace_does_not_depend_on_batch_sizes(history: History) -> None:
    default = amount_series(history).columns()

    for size in (700, 12_345):  # smaller and larger than the history a monitor keeps (2,016 events)
        other = amount_series(history, size).columns()
        assert other.keys() == default.keys()
        for name, values in default.items():
            np.testing.assert_allclose(
                other[name], values, rtol=1e-9, err_msg=f"{name} with batches of {size}"
            )
