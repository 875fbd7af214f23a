"""Page-Hinkley over a whole batch at once, with the semantics of `river.drift.PageHinkley`.

river updates one value per call; doing that for dozens of signals per event costs more
than the rest of the pipeline together. The recurrences are linear, so a batch is one
cumulative sum (or a scaled one when alpha < 1) plus running minima and maxima. After a
detection river resets on the next update; here the batch is cut at the detection and the
rest is processed from the reset state. Equality with river is checked in the unit tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from typing import Any

import numpy as np

from detector.core.monitors.batch_detector import DetectorResult, Hit

PAGE_HINKLEY = "page_hinkley"  # the detector's name in hits and alerts
# Longest run processed with one scaled cumulative sum when alpha < 1: alpha**-n must not overflow.
_MAX_SCALED_EXPONENT = 300.0
# Values computed ahead in one step; bounds the work thrown away after a detection.
_MAX_CHUNK = 16384
_STEPS = np.arange(1, _MAX_CHUNK + 1, dtype=np.float64)  # 1, 2, ...: a chunk's value counts
_STATE_FIELDS = attrgetter(
    "count",
    "total",
    "sum_increase",
    "sum_decrease",
    "min_increase",
    "max_decrease",
    "count_at_min_increase",
    "count_at_max_decrease",
)


@cache
def _powers(alpha: float) -> np.ndarray:
    """alpha ** 0, alpha ** 1, ... for the longest chunk (the same numbers as for any shorter)."""
    return alpha ** np.arange(_MAX_CHUNK, dtype=np.float64)


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
        return DetectorResult(update_rows([self], np.asarray(values, dtype=np.float64)[None])[0])

    def to_state(self) -> dict[str, Any]:
        return self.state.to_state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = PageHinkleyState.from_state(state)

    def _chunk(self) -> int:
        """Longest run of values computed in one step."""
        if self.alpha == 1:
            return _MAX_CHUNK
        return max(1, min(_MAX_CHUNK, int(_MAX_SCALED_EXPONENT / -math.log(self.alpha))))

    def parameters(self) -> tuple[float, float, float, int]:
        """What must be the same for detectors updated together (`update_rows`)."""
        return self.threshold, self.delta, self.alpha, self.min_instances


def update_rows(
    detectors: Sequence[PageHinkley], values: np.ndarray, lengths: np.ndarray | None = None
) -> list[list[Hit]]:
    """Feed row i of `values` (one row per detector; its first `lengths[i]` values, every row
    if `lengths` is None) to `detectors[i]`; return each one's hits, in order. The same hits
    and states, to the bit, as each detector's own `update` on its row: every step runs along
    the rows at once (numpy's cumulative sums and running extrema along a row are the row's
    own, and a value's depend only on those before it), which costs about as much for a
    signal's or a model's statistics as for one. The detectors must have the same parameters."""
    if len({detector.parameters() for detector in detectors}) > 1:
        raise ValueError("detectors updated together must have the same parameters")
    hits: list[list[Hit]] = [[] for _ in detectors]
    if not values.shape[1]:
        return hits
    ends = [values.shape[1]] * len(detectors) if lengths is None else lengths.tolist()
    first = _run_rows(detectors, values, lengths)
    for row, hit in enumerate(first):
        # After a hit the detector starts afresh on the rest of its row (rare: row by row).
        start, detector, end = 0, detectors[row], ends[row]
        while hit is not None:
            hits[row].append(Hit(start + hit.index, PAGE_HINKLEY, hit.change_age))
            detector.state = PageHinkleyState()
            start += hit.index + 1
            if start == end:
                break
            hit = _run_rows([detector], values[row : row + 1, start:end])[0]
    return hits


def update_ragged(detectors: Sequence[PageHinkley], rows: Sequence[np.ndarray]) -> list[list[Hit]]:
    """`update_rows` of rows of any (non-zero) lengths: the shorter padded, their padding never
    seen (a model's statistics of features with missing values, of signals that started
    later)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max())
    if int(lengths.min()) == width:
        return update_rows(detectors, np.stack(rows))
    values = np.zeros((len(rows), width))
    for row, part in enumerate(rows):
        values[row, : len(part)] = part
    return update_rows(detectors, values, lengths)


def _run_rows(
    detectors: Sequence[PageHinkley], values: np.ndarray, lengths: np.ndarray | None = None
) -> list[Hit | None]:
    """Advance each detector over its row (its first `lengths` values); stop each at (and
    report) its first detection."""
    chunk = detectors[0]._chunk()
    length = values.shape[1]
    if length <= chunk:  # the usual case: one chunk, no slice to take
        return _run_chunk(detectors, values, lengths)
    found: list[Hit | None] = [None] * len(detectors)
    ends = np.full(len(detectors), length) if lengths is None else lengths
    rows = list(range(len(detectors)))  # those that have not fired yet, nor ended
    for offset in range(0, length, chunk):
        rows = [row for row in rows if ends[row] > offset]
        if not rows:
            break
        part = values[rows, offset : offset + chunk]
        left = np.minimum(ends[rows] - offset, part.shape[1])
        hits = _run_chunk(
            [detectors[row] for row in rows], part, None if (left == part.shape[1]).all() else left
        )
        for row, hit in zip(rows, hits):
            if hit is not None:
                found[row] = Hit(offset + hit.index, PAGE_HINKLEY, hit.change_age)
        rows = [row for row, hit in zip(rows, hits) if hit is None]
    return found


def _run_chunk(
    detectors: Sequence[PageHinkley], x: np.ndarray, lengths: np.ndarray | None = None
) -> list[Hit | None]:
    """One step over the rows of x (k detectors × n values), each row up to its first detection
    (or its first `lengths` values: what lies beyond is never read into a state or a hit)."""
    threshold, delta, alpha, min_instances = detectors[0].parameters()
    k, n = x.shape
    # The carried states as columns (counts as floats: exact below 2**53).
    count, total, increase, decrease, low, high, at_low, at_high = np.array(
        [_STATE_FIELDS(detector.state) for detector in detectors]
    ).T
    # Steps write into arrays made earlier in the chunk where they can (fewer allocations
    # and fresh pages); every number is computed as before, to the bit.
    steps = _STEPS[:n]
    counts = np.add(count[:, None], steps)
    # Cumulative sums start from the carried value, so each partial sum is computed in the
    # same order however the stream was cut into batches: decisions are batch-invariant.
    totals = _carried_cumsum(total, x.copy())
    deviation = np.subtract(x, np.divide(totals, counts, out=counts), out=counts)
    sum_increase = _faded_cumsum(alpha, increase, deviation - delta)
    sum_decrease = _faded_cumsum(alpha, decrease, np.add(deviation, delta, out=deviation))
    min_increase = np.minimum.accumulate(sum_increase, axis=1)
    np.minimum(min_increase, low[:, None], out=min_increase)
    max_decrease = np.maximum.accumulate(sum_decrease, axis=1)
    np.maximum(max_decrease, high[:, None], out=max_decrease)

    up = sum_increase - min_increase > threshold
    down = max_decrease - sum_decrease > threshold
    if count.min() + 1 < min_instances:  # the first values cannot signal
        armed = count[:, None] + steps >= min_instances
        up &= armed
        down &= armed
    either = up | down
    if lengths is not None:  # padded rows: nothing beyond a row's end
        either &= steps <= lengths[:, None]
    if lengths is not None or either.any():
        # each row up to its first detection (argmax: the first True), if any, else its end
        fired = either.any(axis=1)
        last = np.where(fired, either.argmax(axis=1), (n if lengths is None else lengths) - 1)
        beyond = steps > last[:, None] + 1
        lowest = np.where(beyond, np.inf, sum_increase).argmin(axis=1)
        highest = np.where(beyond, -np.inf, sum_decrease).argmax(axis=1)
        at = (np.arange(k), last)
    else:  # the usual case: every row to its end
        fired = either[:, 0]  # (all False)
        last = np.full(k, n - 1)
        lowest, highest = sum_increase.argmin(axis=1), sum_decrease.argmax(axis=1)
        at = (slice(None), -1)  # type: ignore[assignment]
    new_low, new_high = min_increase[at], max_decrease[at]
    # Where the last new extreme was set: the first occurrence of the row's extreme, if it beat
    # the one carried in (else the carried count stays).
    states = np.array(
        (
            count + last + 1,
            totals[at],
            sum_increase[at],
            sum_decrease[at],
            new_low,
            new_high,
            np.where(new_low < low, count + lowest + 1, at_low),
            np.where(new_high > high, count + highest + 1, at_high),
        )
    ).T.tolist()  # the elements as Python numbers, in one call
    found: list[Hit | None] = [None] * k
    for row, (detector, fields) in enumerate(zip(detectors, states)):
        new_total, new_increase, new_decrease, new_min, new_max = fields[1:6]
        state = PageHinkleyState(
            int(fields[0]),
            new_total,
            new_increase,
            new_decrease,
            new_min,
            new_max,
            int(fields[6]),
            int(fields[7]),
        )
        detector.state = state
        if fired[row]:
            at_extreme = (
                state.count_at_min_increase if up[row, last[row]] else state.count_at_max_decrease
            )
            found[row] = Hit(int(last[row]), PAGE_HINKLEY, state.count - at_extreme)
    return found


def _faded_cumsum(alpha: float, start: np.ndarray, increments: np.ndarray) -> np.ndarray:
    """Along each row: s[t] = alpha * s[t-1] + increments[t], with s[-1] = start (one per
    row; batch-invariant to the bit for alpha = 1, the default; the faded form rounds
    differently at batch edges). May overwrite `increments`."""
    if alpha == 1:
        return _carried_cumsum(start, increments)
    powers = _powers(alpha)[: increments.shape[1]]
    return powers * ((alpha * start)[:, None] + np.cumsum(increments / powers, axis=1))


def _carried_cumsum(start: np.ndarray, increments: np.ndarray) -> np.ndarray:
    """Along each row: start + increments[0], then + increments[1], ...: summed in that order,
    in place of `increments` (the first sum, increments[0] + start, is the same number as
    start + increments[0])."""
    if increments.shape[1]:
        increments[:, 0] += start
    # the method: numpy's wrapper costs a call per sum
    return increments.cumsum(axis=1, out=increments)
