"""Page-Hinkley over a whole batch at once, with the semantics of `river.drift.PageHinkley`.

river updates one value per call; doing that for dozens of signals per event costs more
than the rest of the pipeline together. The recurrences are linear, so a batch is one
cumulative sum (or a scaled one when alpha < 1) plus running minima and maxima. After a
detection river resets on the next update; here the batch is cut at the detection and the
rest is processed from the reset state. Equality with river is checked in the unit tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.monitors.batch_detector import DetectorResult, Hit

PAGE_HINKLEY = "page_hinkley"  # the detector's name in hits and alerts
# Longest run processed with one scaled cumulative sum when alpha < 1: alpha**-n must not overflow.
_MAX_SCALED_EXPONENT = 300.0
# Values computed ahead in one step; bounds the work thrown away after a detection.
_MAX_CHUNK = 16384


@dataclass
class PageHinkleyState:
    """Everything river's PageHinkley keeps between updates (after its last reset); the running
    mean is kept as a total, so that sums run sequentially across batches (see `_run_chunk`)."""

    count: int = 0
    total: float = 0.0
    sum_increase: float = 0.0
    sum_decrease: float = 0.0
    min_increase: float = math.inf
    max_decrease: float = -1.0  # river starts this at -1, not -inf; kept for identical decisions
    count_at_min_increase: int = 0
    count_at_max_decrease: int = 0

    def to_state(self) -> dict[str, Any]:
        """Plain data (infinity as None, since JSON has no infinity)."""
        return {
            **vars(self),
            "min_increase": None if math.isinf(self.min_increase) else self.min_increase,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PageHinkleyState:
        return cls(
            **{
                **state,
                "min_increase": math.inf
                if state["min_increase"] is None
                else state["min_increase"],
            }
        )


@dataclass
class PageHinkley:
    """Two-sided Page-Hinkley test (river's parameters and defaults)."""

    threshold: float = 50.0
    delta: float = 0.005
    alpha: float = 1 - 0.0001
    min_instances: int = 30
    state: PageHinkleyState = field(default_factory=PageHinkleyState)

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")

    def update(self, values: np.ndarray) -> DetectorResult:
        """Feed values in order; return the hits, in order (usually none). A hit's change age
        counts the values since the estimated change point (the extremum of the cumulative sum)."""
        values = np.asarray(values, dtype=np.float64)
        hits: list[Hit] = []
        start = 0
        while start < len(values):
            hit = self._run(values[start:])
            if hit is None:
                break
            hits.append(Hit(start + hit.index, PAGE_HINKLEY, hit.change_age))
            self.state = PageHinkleyState()
            start += hit.index + 1
        return DetectorResult(hits)

    def to_state(self) -> dict[str, Any]:
        return self.state.to_state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = PageHinkleyState.from_state(state)

    def _run(self, x: np.ndarray) -> Hit | None:
        """Advance the state over x; stop at (and report) the first detection."""
        chunk = (
            _MAX_CHUNK
            if self.alpha == 1
            else max(1, min(_MAX_CHUNK, int(_MAX_SCALED_EXPONENT / -math.log(self.alpha))))
        )
        if len(x) <= chunk:  # the usual case: one chunk, no slice to take
            return self._run_chunk(x)
        for offset in range(0, len(x), chunk):
            hit = self._run_chunk(x[offset : offset + chunk])
            if hit is not None:
                return Hit(offset + hit.index, PAGE_HINKLEY, hit.change_age)
        return None

    def _run_chunk(self, x: np.ndarray) -> Hit | None:
        s = self.state
        n = len(x)
        # Steps write into arrays made earlier in the chunk where they can (fewer allocations
        # and fresh pages); every number is computed as before, to the bit.
        counts = np.arange(s.count + 1, s.count + n + 1, dtype=np.float64)
        # Cumulative sums start from the carried value, so each partial sum is computed in the
        # same order however the stream was cut into batches: decisions are batch-invariant.
        totals = _carried_cumsum(s.total, x.copy())
        deviation = np.subtract(x, np.divide(totals, counts, out=counts), out=counts)
        increments = deviation - self.delta
        sum_increase = self._faded_cumsum(s.sum_increase, increments)
        sum_decrease = self._faded_cumsum(
            s.sum_decrease, np.add(deviation, self.delta, out=deviation)
        )
        min_increase = np.minimum.accumulate(sum_increase)
        np.minimum(min_increase, s.min_increase, out=min_increase)
        max_decrease = np.maximum.accumulate(sum_decrease)
        np.maximum(max_decrease, s.max_decrease, out=max_decrease)

        up = sum_increase - min_increase > self.threshold
        down = max_decrease - sum_decrease > self.threshold
        if s.count + 1 < self.min_instances:  # the first values cannot signal
            armed = np.arange(s.count + 1, s.count + n + 1) >= self.min_instances
            up &= armed
            down &= armed
        fired = (up | down).nonzero()[0]
        last = int(fired[0]) if len(fired) else n - 1

        # Where the last new extreme was set: the first occurrence of the chunk's extreme, if it
        # beat the one carried in (-1: it did not).
        at_min = (
            int(sum_increase[: last + 1].argmin()) if min_increase[last] < s.min_increase else -1
        )
        at_max = (
            int(sum_decrease[: last + 1].argmax()) if max_decrease[last] > s.max_decrease else -1
        )
        count_at_min = s.count_at_min_increase if at_min < 0 else s.count + at_min + 1
        count_at_max = s.count_at_max_decrease if at_max < 0 else s.count + at_max + 1
        self.state = PageHinkleyState(  # `item`: the element as a Python float, in one call
            count=s.count + last + 1,
            total=totals.item(last),
            sum_increase=sum_increase.item(last),
            sum_decrease=sum_decrease.item(last),
            min_increase=min_increase.item(last),
            max_decrease=max_decrease.item(last),
            count_at_min_increase=count_at_min,
            count_at_max_decrease=count_at_max,
        )
        if not len(fired):
            return None
        at_extreme = count_at_min if up[last] else count_at_max
        return Hit(last, PAGE_HINKLEY, self.state.count - at_extreme)

    def _faded_cumsum(self, start: float, increments: np.ndarray) -> np.ndarray:
        """s[t] = alpha * s[t-1] + increments[t], with s[-1] = start (batch-invariant to the bit
        for alpha = 1, the default; the faded form rounds differently at batch edges). May
        overwrite `increments`."""
        if self.alpha == 1:
            return _carried_cumsum(start, increments)
        powers = self.alpha ** np.arange(len(increments), dtype=np.float64)
        return powers * (self.alpha * start + np.cumsum(increments / powers))


def _carried_cumsum(start: float, increments: np.ndarray) -> np.ndarray:
    """start + increments[0], then + increments[1], ...: summed in that order, in place of
    `increments` (the first sum, increments[0] + start, is the same number as start +
    increments[0])."""
    if len(increments):
        increments[0] += start
    return increments.cumsum(out=increments)  # the method: numpy's wrapper costs a call per sum
