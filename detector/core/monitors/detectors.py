"""The two detectors that watch one statistic stream (PIT values in [0, 1]).

* Page-Hinkley sees every value (vectorised, identical to river's), for fast reaction to
  abrupt shifts.
* river's ADWIN sees the mean of each block of `block_events` values, scaled back to the
  variance of a single value: (mean - 1/2)·√b + 1/2. It then checks every ADWIN_CLOCK blocks,
  at a fraction of the per-event cost, with the same decision on the variance term as a
  per-event ADWIN (river's ADWIN only checks every `clock` = 32 values by default anyway). Its
  adaptive window catches slow drifts and tells how long ago the change began.

A model's signals are updated together (`run_together`, `update_streams`): the statistics that
line up run their Page-Hinkley steps and block sums as rows of one array, so that the fixed cost
of each numpy call is paid once per model and call, not once per statistic, which is what a
model's call costs beyond its events when many models share a topic.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from itertools import takewhile
from operator import attrgetter, not_
from typing import Any, NamedTuple, TypeVar

import numpy as np
from river.drift import ADWIN

from detector.core.monitors.batch_detector import DetectorResult, Hit
from detector.core.monitors.page_hinkley import PageHinkley, update_ragged

# ADWIN's cut check is most of its cost (0.32 µs a block, against 0.18 every second block).
# Checking every second block delays a detection by at most one block; false alarms per block
# stayed the same (3 million uniform blocks at delta 0.5 and 0.1: excursions last longer than
# a block), so the calibration holds.
ADWIN_CLOCK = 2

ADWIN_NAME = "adwin"  # the detector's name in hits and alerts

T = TypeVar("T")
# Values updated together at most (rows × values): the fewer, the less of the caches the
# arrays take from the rest of the pipeline. 26 streams alone (least CPU time of 9): 1,000 values
# each, 4.2 ms one by one, 1.9 ms at most 16 Ki values together; 250 values each, 3.2 ms against
# 0.85 ms; 5,000 values each, 8.5 ms, 7.7 ms, and 10.7 ms at 64 Ki. Through the pipeline
# (`bench ab`, 20 models, 300,000 events): 0.94-0.96× of main at 32 Ki, 1.01-1.03× at 8-16 Ki.
_ROWS_VALUES = 1 << 14


def complete_blocks(
    values: np.ndarray, carry: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks of `size` that `values` complete after the values of the unfinished block
    `carry`, as a (blocks, size) array; the index in `values` of each block's last value; and
    the new unfinished block. Rows of values (k × n, with k × c of carry) are cut alike: k ×
    blocks × size.

    Each block is summed on its own by the caller, so its sum is the same bits whatever the
    batching: block edges and sums depend only on how many values came before."""
    carried, length = carry.shape[-1], values.shape[-1]
    joined = np.concatenate((carry, values), axis=-1) if carried else values
    count = joined.shape[-1] // size
    ends = np.arange(size - carried - 1, length, size)[:count]
    blocks = joined[..., : count * size].reshape(*joined.shape[:-1], count, size)
    return blocks, ends, joined[..., count * size :].copy()


class StreamUpdates(NamedTuple):
    """Statistic streams to update, with the values of each."""

    streams: list[StatisticStream]
    values: list[np.ndarray]


# A signal's update as steps (SignalMonitor.updating): it yields the stream updates it needs,
# is sent their results, and returns its own.
Updating = Generator[StreamUpdates, list[DetectorResult], T]


def run_together(updates: Sequence[Updating[T]]) -> list[T]:
    """Run updates (of distinct signals) to their ends, in rounds: each round, every stream
    update they wait for is done in one `update_streams` call. Their results are those of
    running each on its own, to the bit (signals share no state)."""
    results: list[T | None] = [None] * len(updates)
    waiting: dict[int, StreamUpdates] = {}

    def advance(index: int, sent: list[DetectorResult] | None) -> None:
        try:
            waiting[index] = updates[index].send(sent)  # type: ignore[arg-type]
        except StopIteration as stop:
            results[index] = stop.value

    for index in range(len(updates)):
        advance(index, None)
    while waiting:
        round_, waiting = waiting, {}
        answers = update_streams(
            [stream for wanted in round_.values() for stream in wanted.streams],
            [values for wanted in round_.values() for values in wanted.values],
        )
        taken = 0
        for index, wanted in round_.items():
            advance(index, answers[taken : taken + len(wanted.streams)])
            taken += len(wanted.streams)
    return results  # type: ignore[return-value]


def update_streams(
    streams: Sequence[StatisticStream], values: Sequence[np.ndarray]
) -> list[DetectorResult]:
    """`stream.update(values)` for each stream and its values, the same results and states to
    the bit. Streams whose detectors have the same parameters (a model's, usually) run their
    Page-Hinkley steps as rows of one array, however many values each has (`update_ragged`),
    and those fed as many values whose blocks end at the same places their block sums: the
    fixed cost of numpy's calls paid once per call rather than once per statistic
    (BENCHMARKS.md, "Many models on one topic")."""
    results: list[DetectorResult | None] = [None] * len(streams)
    hits: list[list[Hit]] = [[] for _ in streams]
    steps: dict[tuple[Any, ...], list[int]] = {}  # Page-Hinkley's parameters -> streams
    for index, (stream, part) in enumerate(zip(streams, values)):
        flat = stream.update_flat(part)  # a flat run: nothing to compute
        if flat is not None:
            results[index] = flat
        elif len(part):
            steps.setdefault(stream.page_hinkley.parameters(), []).append(index)
    for indices in steps.values():
        at_once = max(1, _ROWS_VALUES // max(len(values[i]) for i in indices))
        for start in range(0, len(indices), at_once):
            chosen = indices[start : start + at_once]
            found = update_ragged(
                [streams[i].page_hinkley for i in chosen], [values[i] for i in chosen]
            )
            for index, row in zip(chosen, found):
                hits[index] = row
    alike: dict[tuple[int, int, int], list[int]] = {}  # streams whose blocks end alike
    for index, stream in enumerate(streams):
        if results[index] is None:
            key = (len(values[index]), len(stream.adwin.carry), stream.adwin.block_events)
            alike.setdefault(key, []).append(index)
    for (length, *_), indices in alike.items():
        at_once = max(1, _ROWS_VALUES // max(1, length))
        for start in range(0, len(indices), at_once):
            chosen = indices[start : start + at_once]
            fed = _blocks_alike(
                [streams[i] for i in chosen], [values[i] for i in chosen], [hits[i] for i in chosen]
            )
            for index, result in zip(chosen, fed):
                results[index] = result
    return results  # type: ignore[return-value]


def _blocks_alike(
    streams: list[StatisticStream], values: list[np.ndarray], hits: list[list[Hit]]
) -> list[DetectorResult]:
    """update_streams' blocks, given Page-Hinkley's `hits`: streams with as many values, and
    blocks ending alike, cut and summed as rows of one array, then fed to ADWIN."""
    if len(streams) == 1:
        means, ends = streams[0].adwin.blocks(values[0])
        return [streams[0].feed(hits[0], means, ends)]
    size = streams[0].adwin.block_events
    blocks, ends, carry = complete_blocks(
        np.stack(values), np.stack([stream.adwin.carry for stream in streams]), size
    )
    means = np.add.reduce(blocks, axis=-1) / size  # = .sum(axis=-1), no wrapper
    scaled = streams[0].adwin.scaled(means).tolist()  # every row's in one step
    results = []
    for row, stream in enumerate(streams):
        stream.adwin.carry = carry[row]
        results.append(stream.feed(hits[row], means[row], ends, scaled[row]))
    return results


class BlockAdwin:
    """river's ADWIN over scaled block means (see the module docstring)."""

    def __init__(self, delta: float, block_events: int, max_buckets: int = 5) -> None:
        self.block_events = block_events
        self.adwin = ADWIN(delta=delta, clock=ADWIN_CLOCK, max_buckets=max_buckets)
        self.carry = np.empty(0)  # the values of the unfinished block
        self._scale = math.sqrt(block_events)

    def update(self, values: np.ndarray) -> DetectorResult:
        """Feed values; return the hits and the blocks completed."""
        means, ends = self.blocks(values)
        return DetectorResult(self.feed(means, ends), means, ends)

    def blocks(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cut values into blocks (advancing the carry): block means and the index of each end."""
        blocks, ends, self.carry = complete_blocks(values, self.carry, self.block_events)
        means = np.add.reduce(blocks, axis=-1) / self.block_events  # = .sum(axis=-1), no wrapper
        return means, ends

    def scaled(self, means: np.ndarray) -> np.ndarray:
        """Block means scaled back to the variance of a single value (what ADWIN is fed)."""
        return (means - 0.5) * self._scale + 0.5

    def feed(
        self, means: np.ndarray, ends: np.ndarray, scaled: list[float] | None = None
    ) -> list[Hit]:
        """Give ADWIN block means (ending at `ends`; `scaled`: their `scaled` values, if
        already known); return its hits.

        After a hit the window starts afresh (a clone: same parameters, empty window), as
        `ADWIN.update` would do at the next value, but at once, so that a checkpoint taken in
        between holds the fresh window."""
        hits: list[Hit] = []
        # Private API, kept for speed: each mean goes straight to river's Rust core
        # (`ADWIN._helper.update` returns the drift decision); the public `ADWIN.update` plus
        # `drift_detected` costs 0.47 µs a block against 0.28: at 3.2 blocks an event in the
        # benchmark workload, 0.6 µs of the core's 10 µs an event (BENCHMARKS.md: +5%).
        # Pinned by river's upper bound in pyproject.toml and by tests/unit/test_dependencies.py
        # (same decisions and widths as the public ADWIN).
        # The blocks run through the core in C (`map`), up to and including the first that
        # signals (`takewhile`), instead of a Python loop over them.
        values, start = self.scaled(means).tolist() if scaled is None else scaled, 0
        while start < len(values):
            start += len(list(takewhile(not_, map(self.adwin._helper.update, values[start:]))))
            if start == len(values):
                break
            hits.append(
                Hit(int(ends[start]), ADWIN_NAME, int(self.adwin.width) * self.block_events)
            )
            self.adwin = self.adwin.clone()
            start += 1
        return hits

    def to_state(self) -> dict[str, Any]:
        # Private API, for want of a public one: river serialises an ADWIN only by pickling, which
        # runs code on load; its Rust core's own `__getstate__` gives the buckets as bytes of
        # plain numbers, decoded without running code. Pinned like `feed` above (the round trip
        # decides as the public ADWIN fed without a break); a river change re-learns instead of
        # loading (monitors/model.py STATE_LIBRARIES).
        window = base64.b64encode(self.adwin._helper.__getstate__()).decode()
        return {"adwin": window, "carry": self.carry}

    def load_state(self, state: dict[str, Any]) -> None:
        self.adwin._helper.__setstate__(base64.b64decode(state["adwin"], validate=True))
        self.carry = np.asarray(state["carry"], dtype=np.float64)


@dataclass
class FlatRun:
    """A stream that has only ever seen one value (e.g. the missing rate of a feature that is
    never missing): how many values and block means of it are still to be fed."""

    value: float | None = None
    values: int = 0
    block_mean: float | None = None
    blocks: int = 0


class StatisticStream:
    """Page-Hinkley and block ADWIN over one statistic of one signal.

    While every value so far is the same, both detectors' futures are fixed (Page-Hinkley's
    mean is that value, ADWIN's window has no variance: neither can signal), so feeding them is
    deferred: the run is counted, and replayed into them if another value ever comes. The
    decisions are exactly those of feeding every value, at a fraction of the cost."""

    def __init__(
        self, page_hinkley: PageHinkley, adwin_delta: float, block_events: int, max_buckets: int = 5
    ) -> None:
        self.page_hinkley = page_hinkley
        self.adwin = BlockAdwin(adwin_delta, block_events, max_buckets)
        self.flat: FlatRun | None = FlatRun()

    def update(self, values: np.ndarray) -> DetectorResult:
        """Feed values in order; return both detectors' hits (Page-Hinkley's first at the same
        index) and the blocks completed."""
        flat = self.update_flat(values)
        if flat is not None:
            return flat
        hits = self.page_hinkley.update(values).hits
        means, ends = self.adwin.blocks(values)
        return self.feed(hits, means, ends)

    def feed(
        self,
        hits: list[Hit],
        means: np.ndarray,
        ends: np.ndarray,
        scaled: list[float] | None = None,
    ) -> DetectorResult:
        """Page-Hinkley's `hits` on values that completed blocks of `means` (ending at `ends`;
        `scaled`: as ADWIN is fed them, if known): feed the blocks to ADWIN; return both
        detectors' hits and the blocks."""
        adwin_hits = self.adwin.feed(means, ends, scaled)
        if adwin_hits:  # each detector's hits come in order: only both together need sorting
            hits = sorted([*hits, *adwin_hits], key=attrgetter("index")) if hits else adwin_hits
        return DetectorResult(hits, means, ends)

    def update_flat(self, values: np.ndarray) -> DetectorResult | None:
        """While every value so far is the same: the result of values that continue the run
        (counted, not fed), or None once they break it (the run replayed: feed them then)."""
        if self.flat is not None and len(values):
            kept = self._extend_flat_run(values)
            if kept is not None:
                return DetectorResult([], *kept)
            self._replay_flat_run()
        return None

    def _extend_flat_run(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Count values that continue the flat run; None (nothing changed) if they do not."""
        flat = self.flat
        assert flat is not None
        value = values[0] if flat.value is None else flat.value
        if not (values == value).all():
            return None
        carry = self.adwin.carry
        means, ends = self.adwin.blocks(values)
        block_mean = means[0] if flat.block_mean is None and len(means) else flat.block_mean
        if len(means) and not (means == block_mean).all():  # rounding made block means differ
            self.adwin.carry = carry
            return None
        flat.value, flat.block_mean = (
            float(value),
            None if block_mean is None else float(block_mean),
        )
        flat.values += len(values)
        flat.blocks += len(means)
        return means, ends

    def _replay_flat_run(self) -> None:
        """Feed the deferred run to both detectors (they cannot signal on it), then stop deferring."""
        flat, self.flat = self.flat, None
        assert flat is not None
        if flat.values:
            self.page_hinkley.update(np.full(flat.values, flat.value))
        if flat.blocks:
            self.adwin.feed(
                np.full(flat.blocks, flat.block_mean), np.zeros(flat.blocks, dtype=np.int64)
            )

    def to_state(self) -> dict[str, Any]:
        flat = self.flat
        run = None if flat is None else [flat.value, flat.values, flat.block_mean, flat.blocks]
        return {
            "page_hinkley": self.page_hinkley.to_state(),
            "flat": run,
            **self.adwin.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.page_hinkley.load_state(state["page_hinkley"])
        self.adwin.load_state(state)
        run = state["flat"]
        self.flat = None if run is None else FlatRun(run[0], int(run[1]), run[2], int(run[3]))
