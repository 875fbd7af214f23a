"""The two detectors that watch one statistic stream (PIT values in [0, 1]).

* Page-Hinkley sees every value (vectorised, identical to river's), for fast reaction to
  abrupt shifts.
* river's ADWIN sees the mean of each block of `block_events` values, scaled back to the
  variance of a single value: (mean - 1/2)·√b + 1/2. It then checks once per block, at 1/b of
  the per-event cost, with the same decision on the variance term as a per-event ADWIN
  (river's ADWIN only checks every `clock` = 32 values by default anyway). Its adaptive window
  catches slow drifts and tells how long ago the change began.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from river.drift import ADWIN

from detector.monitors.page_hinkley import PageHinkley, PageHinkleyState

PAGE_HINKLEY = "page_hinkley"
ADWIN_NAME = "adwin"


@dataclass(frozen=True)
class Hit:
    """A detector signal at `index` of the values passed to `update`."""

    index: int
    detector: str
    change_age: int  # events since the estimated start of the change


@dataclass
class BlockCarry:
    """The unfinished block: sum and count of values not yet in a complete block."""

    total: float = 0.0
    count: int = 0


def complete_blocks(values: np.ndarray, carry: BlockCarry, size: int) -> tuple[np.ndarray, np.ndarray, BlockCarry]:
    """Sums of the blocks of `size` that `values` complete, the index of each block's last
    value, and the new carry. Block edges depend only on how many values came before."""
    first_end = size - carry.count - 1
    ends = np.arange(first_end, len(values), size)
    if not len(ends):
        return np.empty(0), ends, BlockCarry(carry.total + float(values.sum()), carry.count + len(values))
    cumulative = np.cumsum(values)
    at_ends = cumulative[ends]
    sums = np.diff(at_ends, prepend=0.0)
    sums[0] += carry.total
    tail = float(cumulative[-1] - at_ends[-1])
    return sums, ends, BlockCarry(tail, len(values) - int(ends[-1]) - 1)


class BlockAdwin:
    """river's ADWIN over scaled block means (see the module docstring)."""

    def __init__(self, delta: float, block_events: int, max_buckets: int = 5) -> None:
        self.block_events = block_events
        self.adwin = ADWIN(delta=delta, clock=1, max_buckets=max_buckets)
        self.carry = BlockCarry()
        self._scale = math.sqrt(block_events)

    def update(self, values: np.ndarray) -> tuple[list[Hit], np.ndarray, np.ndarray]:
        """Feed values; return hits, the block means completed and the index of each block end."""
        sums, ends, self.carry = complete_blocks(values, self.carry, self.block_events)
        means = sums / self.block_events
        hits: list[Hit] = []
        scaled = (means - 0.5) * self._scale + 0.5
        for end, value in zip(ends.tolist(), scaled.tolist()):
            self.adwin.update(value)
            if self.adwin.drift_detected:
                hits.append(Hit(end, ADWIN_NAME, int(self.adwin.width) * self.block_events))
        return hits, means, ends

    @property
    def window_events(self) -> int:
        return int(self.adwin.width) * self.block_events

    def to_state(self) -> dict[str, Any]:
        # river's Rust core serialises its buckets to bytes: plain numbers, decoded without running code.
        window = base64.b64encode(self.adwin._helper.__getstate__()).decode()
        return {"adwin": window, "carry": [self.carry.total, self.carry.count]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.adwin._helper.__setstate__(base64.b64decode(state["adwin"], validate=True))
        total, count = state["carry"]
        self.carry = BlockCarry(float(total), int(count))


class StatisticStream:
    """Page-Hinkley and block ADWIN over one statistic of one signal."""

    def __init__(
        self, page_hinkley: PageHinkley, adwin_delta: float, block_events: int, max_buckets: int = 5
    ) -> None:
        self.page_hinkley = page_hinkley
        self.adwin = BlockAdwin(adwin_delta, block_events, max_buckets)

    def update(self, values: np.ndarray) -> tuple[list[Hit], np.ndarray, np.ndarray]:
        """Feed values in order; return all hits (by index) and the completed block means/ends."""
        hits = [Hit(d.index, PAGE_HINKLEY, d.change_age) for d in self.page_hinkley.update_many(values)]
        adwin_hits, means, ends = self.adwin.update(values)
        return sorted(hits + adwin_hits, key=lambda hit: hit.index), means, ends

    def to_state(self) -> dict[str, Any]:
        return {"page_hinkley": self.page_hinkley.state.to_state(), **self.adwin.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.page_hinkley.state = PageHinkleyState.from_state(state["page_hinkley"])
        self.adwin.load_state(state)
