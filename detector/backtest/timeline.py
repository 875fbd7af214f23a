"""Where each replayed message falls in its model's stream of predictions (pure; no I/O).

Ground truth counts change points in a model's prediction events, and so does the backtest:
the *position* of a message is the number of its model's prediction events replayed before
it (so the first prediction is at 0, and a label is placed among the predictions it arrived
with). Alerts and the points of each signal's trace are placed by the position of their
source message, looked up here by (model, topic, partition, offset).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from detector.pipeline import Message

UNKNOWN = -1

Stream = tuple[str, str, int]  # (model, topic, partition): offsets only grow within one


class GrowingArray:
    """An int64 array that grows by whole chunks (capacity doubles)."""

    def __init__(self) -> None:
        self.data = np.empty(1024, dtype=np.int64)
        self.size = 0

    def extend(self, values: Sequence[int]) -> None:
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

    def add(self, messages: Sequence[Message], models: Sequence[str]) -> None:
        """Record a batch, in replay order; `models` names each message's model."""
        grouped: dict[Stream, tuple[list[int], list[int]]] = {}
        counts, predictions = self.predictions, self.predictions_topic
        for message, model in zip(messages, models):
            topic = message.topic() or ""
            stream = (model, topic, message.partition() or 0)
            entry = grouped.get(stream)
            if entry is None:
                entry = grouped[stream] = ([], [])
            entry[0].append(message.offset() or 0)
            entry[1].append(counts[model])
            if topic == predictions:
                counts[model] += 1
        for stream, (offsets, positions) in grouped.items():
            if stream not in self.offsets:
                self.offsets[stream], self.positions[stream] = GrowingArray(), GrowingArray()
            self.offsets[stream].extend(offsets)
            self.positions[stream].extend(positions)

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
