"""The one interface of every change detector here: fed a batch of values at a time, in order,
it reports its hits by index in that batch.

river's detectors take one value per `update` and expose `drift_detected`; ours take a whole
batch (one value per call would cost more than the rest of the pipeline), so `update` returns
the hits instead. A detector that watches block means (ADWIN) also returns the blocks the batch
completed, which its signal records; a detector that sees every value returns none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Hit:
    """A detector's signal at `index` of the values passed to `update`."""

    index: int
    detector: str
    change_age: int  # events since the estimated start of the change (1: not estimated)


def _no_means() -> np.ndarray:
    return np.empty(0)


def _no_ends() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class DetectorResult:
    """What one `update` found: hits in index order, and the blocks it completed (none for a
    detector that sees every value): the mean of each block and the index of its last value."""

    hits: list[Hit] = field(default_factory=list)
    block_means: np.ndarray = field(default_factory=_no_means)
    block_ends: np.ndarray = field(default_factory=_no_ends)


class BatchDetector(Protocol):
    """A change detector over one stream of values, fed in batches; its state is plain data."""

    def update(self, values: np.ndarray) -> DetectorResult:
        """Feed values in order; return what they made the detector find."""
        ...

    def to_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...
