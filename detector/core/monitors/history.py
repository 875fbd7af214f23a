"""The last complete blocks of a signal, as rows of numbers."""

from __future__ import annotations

import numpy as np


class BlockHistory:
    """The last `capacity` complete blocks of a signal: per block, its end position, the source
    and event time (epoch ms, NaN: unknown) of its first value, raw sum and sum of squares, and
    the mean of each statistic."""

    def __init__(self, statistics: tuple[str, ...], capacity: int) -> None:
        self.columns = ("end", "topic", "offset", "ts", "raw_sum", "raw_sumsq", *statistics)
        self.capacity = capacity
        self.rows = np.empty((0, len(self.columns)))

    def append(self, rows: np.ndarray) -> None:
        """Add rows; the history may exceed its capacity until `trim`."""
        if len(rows):
            self.rows = np.concatenate((self.rows, rows))

    def trim(self) -> None:
        self.rows = self.rows[-self.capacity :]

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        return (self.rows if rows is None else rows)[:, self.columns.index(name)]

    def between(self, after: int, upto: int) -> np.ndarray:
        """Rows of blocks that end in (after, upto]."""
        ends = self.column("end")
        return self.rows[(ends > after) & (ends <= upto)]

    def restore(self, rows: np.ndarray, columns: list[str]) -> None:
        """Rows saved with `columns` (a checkpoint of an older release may lack some: NaN)."""
        saved = rows.reshape(-1, len(columns))
        self.rows = np.full((len(saved), len(self.columns)), np.nan)
        for i, name in enumerate(self.columns):
            if name in columns:
                self.rows[:, i] = saved[:, columns.index(name)]
