"""Time series of every signal during a replay, for the pictures (pure; no I/O).

A live monitor keeps only its last blocks (`SignalMonitor.history`), so the replay's pipeline
logs every completed block (`Pipeline(log_blocks=True)`), and after each batch the trace drains
those logs and turns the blocks into what the resolve decision watches: each statistic's mean
over the last `resolve_window_events`, beside its reference band (the reference level ±
BAND_SIGMAS standard errors, as in the monitor), and for numbers and rates the same window's raw
mean with the reference's band. A point is kept every eighth of a window and placed by the
timeline (the model's prediction position).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from detector.backtest.timeline import UNKNOWN, Timeline
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.model import ModelMonitor
from detector.core.monitors.reference import NumericReference
from detector.core.monitors.signal import BAND_SIGMAS, SignalMonitor
from detector.core.monitors.signal_type import SignalType
from detector.core.pipeline import Pipeline

POINTS_PER_WINDOW = 8


def band_half_width(variance: float, config: SignalConfig) -> float:
    """Half-width of the reference band of a window mean (the monitor's resolve band)."""
    return BAND_SIGMAS * float(
        np.sqrt(variance / config.resolve_window_events + variance / config.warmup_events)
    )


@dataclass
class Series:
    """One monitor's points: position, then value/level/half per statistic, then the raw mean's."""

    model: str
    monitor: str
    signal_type: SignalType
    statistics: tuple[str, ...]
    chunks: list[np.ndarray] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        parts = [*self.statistics, "raw"]
        return [
            "position",
            *(f"{name}{suffix}" for name in parts for suffix in ("", ".level", ".half")),
        ]

    def columns(self) -> dict[str, np.ndarray]:
        rows = np.concatenate(self.chunks) if self.chunks else np.empty((0, len(self.names)))
        return {name: rows[:, i] for i, name in enumerate(self.names)}


@dataclass
class _Taken:
    """How far the trace has read one signal's blocks."""

    blocks: int = 0  # blocks taken so far
    tail: np.ndarray | None = None  # the last blocks taken, which the next windows reach back to

    def take(self, signal: SignalMonitor) -> tuple[np.ndarray, np.ndarray]:
        """The blocks completed since the last call (drained from the signal's log) after the
        tail their windows need, and the indices of those to plot: new blocks with a whole
        window of consecutive blocks behind them (a re-baseline starts windows again), one every
        eighth of a window."""
        config, log = signal.config, signal.block_log
        assert log is not None, "the replay's pipeline logs blocks"
        if not log:
            return np.empty((0, len(signal.history.columns))), np.empty(0, dtype=np.int64)
        tail = self.tail if self.tail is not None else np.empty((0, len(signal.history.columns)))
        blocks = np.concatenate((tail, *log))
        log.clear()
        window = config.window_blocks
        self.tail = blocks[len(blocks) - window + 1 :] if window > 1 else blocks[:0]

        ends = np.arange(len(tail), len(blocks))
        breaks = np.flatnonzero(np.diff(blocks[:, 0]) != config.block_events) + 1
        run_starts = np.concatenate(([0], breaks))[np.searchsorted(breaks, ends, side="right")]
        every = max(1, window // POINTS_PER_WINDOW)
        picked = ends[
            (ends - run_starts + 1 >= window) & ((self.blocks + ends - len(tail)) % every == 0)
        ]
        self.blocks += len(ends)
        return blocks, picked


class Trace:
    """Series of every signal of every model of one pipeline."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.taken: dict[tuple[str, str, str], _Taken] = {}
        self.unplaced: list[_Unplaced] = []

    def capture(self, pipeline: Pipeline, models: Collection[str]) -> None:
        """Take the blocks completed since the last call by these models (the batch's)."""
        for partition, state in pipeline.partitions.items():
            for model in (state.models[name] for name in models if name in state.models):
                for scope, name, signal in model.every_signal():
                    self._take(model, scope, name, signal, partition)

    def place(self, timeline: Timeline) -> None:
        """Give the points taken so far their positions (points of messages never replayed are
        dropped), once the timeline has every message."""
        for point in self.unplaced:
            positions = np.full(len(point.rows), UNKNOWN, dtype=np.int64)
            for code in np.unique(point.topic_codes):
                mine = point.topic_codes == code
                positions[mine] = timeline.locate(
                    (point.series.model, point.topics[int(code)], point.partition),
                    point.offsets[mine],
                )
            known = positions != UNKNOWN
            point.rows[:, 0] = positions
            if known.any():
                point.series.chunks.append(point.rows[known])
        self.unplaced = []
        self.series = {key: series for key, series in self.series.items() if series.chunks}

    def of(self, model: str, monitor: str) -> Series | None:
        return self.series.get((model, monitor))

    def _take(
        self, model: ModelMonitor, scope: str, name: str, signal: SignalMonitor, partition: int
    ) -> None:
        """A monitor's series takes the points of its signal in every scope (the output monitors
        of each live version: one picture, the versions' points side by side)."""
        blocks, ends = self.taken.setdefault((model.name, scope, name), _Taken()).take(signal)
        if not len(ends):
            return
        series = self.series.get((model.name, name))
        if series is None:
            series = self.series[(model.name, name)] = Series(
                model.name, name, signal.signal_type, signal.statistics
            )
        sources = blocks[ends]
        self.unplaced.append(
            _Unplaced(
                series,
                model.topics,
                partition,
                signal.history.column("topic", sources).astype(np.int64),
                signal.history.column("offset", sources).astype(np.int64),
                _points(signal, blocks, ends),
            )
        )


@dataclass
class _Unplaced:
    """Points whose positions wait for the timeline: that of the source message (topic code and
    offset) of the first value of each window's last block."""

    series: Series
    topics: tuple[str, ...]
    partition: int
    topic_codes: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray  # Series.names, the position still unknown


def _points(signal: SignalMonitor, blocks: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Rows of Series.names: the window means ending at `ends`, with their bands (the position
    column is left for `Trace.place`)."""
    config = signal.config

    def window_means(column: str) -> np.ndarray:
        return _window_means(signal.history.column(column, blocks), config.window_blocks)[
            ends - config.window_blocks + 1
        ]

    def constant(value: float) -> np.ndarray:
        return np.full(len(ends), value)

    columns = [np.full(len(ends), np.nan)]
    for statistic in signal.statistics:
        level, variance = signal.levels[statistic]
        columns += [
            window_means(statistic),
            constant(level),
            constant(band_half_width(variance, config)),
        ]
    raw = _raw_band(signal)
    if raw is None:
        columns += [constant(np.nan)] * 3
    else:
        columns += [
            window_means("raw_sum") / config.block_events,
            constant(raw[0]),
            constant(raw[1]),
        ]
    return np.column_stack(columns)


def _raw_band(signal: SignalMonitor) -> tuple[float, float] | None:
    """(level, half-width) of the raw window mean's reference band; None for categories."""
    reference = signal.reference
    if not isinstance(reference, NumericReference):
        return None
    return reference.summary["mean"], band_half_width(reference.summary["std"] ** 2, signal.config)


def _window_means(values: np.ndarray, window: int) -> np.ndarray:
    """Means of every run of `window` consecutive values (len(values) - window + 1 of them)."""
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    return (cumulative[window:] - cumulative[:-window]) / window
