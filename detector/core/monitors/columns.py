"""A batch of events seen as the columns a signal is fed: its values, the rows that carry them,
and where each value came from (for the evidence of an alert)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

NUMBER_TYPES = frozenset((int, float))  # bool is neither: True is not a number here


@dataclass
class Columns:
    """The rows of a batch that carry a signal, and their values (floats or category text)."""

    rows: np.ndarray
    values: np.ndarray | list[str]


@dataclass
class NumberColumns(Columns):
    """Columns whose values are numbers (a float array)."""

    values: np.ndarray


def number_columns(values: list[Any]) -> NumberColumns:
    """The numbers among `values` and their positions (None, text and booleans are skipped);
    without a Python loop when every value is a number, the usual case."""
    if set(map(type, values)) <= NUMBER_TYPES:
        return NumberColumns(np.arange(len(values)), np.asarray(values, dtype=np.float64))
    rows = [i for i, v in enumerate(values) if v.__class__ in NUMBER_TYPES]
    return NumberColumns(
        np.asarray(rows, dtype=np.int64), np.asarray([values[i] for i in rows], dtype=np.float64)
    )


@dataclass(frozen=True)
class SourceRefs:
    """Where each value of an update came from: topic code, offset and event time (epoch ms, None:
    unknown) per value."""

    topics: tuple[str, ...]
    partition: int
    topic_codes: np.ndarray
    offsets: np.ndarray
    times: np.ndarray | None = None

    def ref(self, index: int) -> dict[str, Any]:
        return {
            "topic": self.topics[int(self.topic_codes[index])],
            "offset": int(self.offsets[index]),
        }

    def time(self, index: int) -> float:
        """The event time of value `index` (epoch ms; NaN when not known)."""
        return float(self.times[index]) if self.times is not None else float("nan")
