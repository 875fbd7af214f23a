"""Where each replayed message falls in its model's stream of predictions (pure; no I/O).

Ground truth counts change points in a model's prediction events, and so does the backtest:
the *position* of a message is the number of its model's prediction events replayed before
it (so the first prediction is at 0, and a label is placed among the predictions it arrived
with). Alerts and the points of each signal's trace are placed by the position of their
source message, looked up here by (model, topic, partition, offset).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import islice

import numpy as np

from detector.backtest.sources import Batch

UNKNOWN = -1

Stream = tuple[str, str, int]  # (model, topic, partition): offsets only grow within one


class GrowingArray:
    """An int64 array that grows by whole chunks (capacity doubles)."""

    def __init__(self) -> None:
        self.data = np.empty(1024, dtype=np.int64)
        self.size = 0

    def extend(self, values: Sequence[int] | np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=np.int64)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    @property
    def values(self) -> np.ndarray:
        return self.data[: self.size]


class Timeline:
    """Offsets and positions of every replayed message, per stream."""

    def __init__(self, predictions_topic: str) -> None:
        self.predictions_topic = predictions_topic
        self.predictions: Counter[str] = Counter()  # model -> prediction events so far
        self.offsets: dict[Stream, GrowingArray] = {}
        self.positions: dict[Stream, GrowingArray] = {}

    def add(self, batch: Batch) -> None:
        """Record a batch, in replay order."""
        if not len(batch):
            return
        # the records' first fields
        topics, partitions, offset_numbers = islice(zip(*batch.messages), 3)
        models = list(dict.fromkeys(batch.models))
        model_codes = _codes(batch.models, models)
        is_prediction = np.fromiter(
            map(self.predictions_topic.__eq__, topics), dtype=bool, count=len(batch)
        )
        so_far = np.array([self.predictions[model] for model in models], dtype=np.int64)
        positions = so_far[model_codes] + _earlier_in_group(model_codes, is_prediction)
        for model, count in zip(
            models, np.bincount(model_codes, weights=is_prediction, minlength=len(models))
        ):
            self.predictions[model] += int(count)

        keys = list(zip(batch.models, topics, partitions))
        streams = list(dict.fromkeys(keys))
        offsets = np.asarray(offset_numbers, dtype=np.int64)
        stream_codes = _codes(keys, streams)
        order = np.argsort(stream_codes, kind="stable")
        bounds = np.searchsorted(stream_codes[order], np.arange(len(streams) + 1))
        for code, stream in enumerate(streams):
            rows = order[bounds[code] : bounds[code + 1]]
            if stream not in self.offsets:
                self.offsets[stream], self.positions[stream] = GrowingArray(), GrowingArray()
            self.offsets[stream].extend(offsets[rows])
            self.positions[stream].extend(positions[rows])

    def locate(self, stream: Stream, offsets: np.ndarray) -> np.ndarray:
        """Positions of these offsets of one stream (UNKNOWN for offsets never replayed)."""
        known = self.offsets.get(stream)
        if known is None or not known.size:
            return np.full(len(offsets), UNKNOWN, dtype=np.int64)
        at = np.minimum(np.searchsorted(known.values, offsets), known.size - 1)
        found = known.values[at] == offsets
        return np.where(found, self.positions[stream].values[at], UNKNOWN)

    def position(self, model: str, topic: str, partition: int, offset: int) -> int | None:
        located = int(self.locate((model, topic, partition), np.array([offset], dtype=np.int64))[0])
        return None if located == UNKNOWN else located


def _codes(items: Sequence[Hashable], distinct: Sequence[Hashable]) -> np.ndarray:
    """Index of each item in `distinct` (which holds each item once)."""
    if len(distinct) == 1:
        return np.zeros(len(items), dtype=np.int64)
    index = {item: code for code, item in enumerate(distinct)}
    return np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items))


def _earlier_in_group(groups: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements of its group are flagged."""
    order = np.argsort(groups, kind="stable")
    flagged = flags[order].astype(np.int64)
    earlier = np.cumsum(flagged) - flagged  # over all groups, in group order
    sorted_groups = groups[order]
    first = np.flatnonzero(np.concatenate(([True], sorted_groups[1:] != sorted_groups[:-1])))
    earlier -= np.repeat(earlier[first], np.diff(np.append(first, len(groups))))
    result = np.empty_like(earlier)
    result[order] = earlier
    return result
