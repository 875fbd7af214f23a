"""History through one or more candidate configurations: each a `detector.core.pipeline.Pipeline`,
the live service's own code, fed the same batches in the same order.

Decisions depend only on each model's order of events, never on batch boundaries, so the
batch size is free: the replay takes the live service's (`batch_max_events` of the first
configuration), the size the core is measured at, and holds each model's events across batches
as the service does (`model_batch_events`), flushing them after the last.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from detector.backtest.readahead import Decoded, ReadAhead
from detector.backtest.score import Detection
from detector.backtest.sources import Source
from detector.backtest.timeline import Timeline
from detector.backtest.trace import Trace
from detector.core.alerts import Alert, ModelEvent
from detector.core.pipeline import GC_THRESHOLDS, BatchResult, Pipeline
from detector.settings import Settings

ProgressHook = Callable[[int, "float | None"], None]  # (messages replayed, fraction done or None)


@dataclass(frozen=True)
class Fired:
    """An alert the configuration would have raised, placed in its model's predictions."""

    alert: Alert
    position: int | None
    start_position: int | None = None  # of a detected alert's estimated start


@dataclass(frozen=True)
class Placed:
    """An event about a model (a deployment, a comparison of versions), placed like `Fired`."""

    event: ModelEvent
    position: int | None


@dataclass
class Run:
    """One candidate configuration being replayed."""

    name: str
    config: str | None  # the TOML file it came from
    settings: Settings
    pipeline: Pipeline = field(init=False)
    trace: Trace = field(default_factory=Trace)
    alerts: list[Alert] = field(default_factory=list)  # as they fired
    fired: list[Fired] = field(default_factory=list)  # the same, placed once the replay is over
    model_events: list[ModelEvent] = field(default_factory=list)  # as they were published
    placed: list[Placed] = field(default_factory=list)  # the same, placed
    # (topic, model) -> valid events
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (topic, reason) -> messages
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(self.settings, log_blocks=True)

    @property
    def group(self) -> str:
        return self.settings.kafka.group_id

    def feed(self, decoded: Decoded) -> None:
        """One batch, each model's events held as the live service holds them."""
        self.invalid.update(decoded.invalid)
        self._take(self.pipeline.process_events(decoded.events, hold=True))

    def finish(self) -> None:
        """After the last batch: the events still held."""
        self._take(self.pipeline.flush())

    def _take(self, result: BatchResult) -> None:
        self.alerts += result.alerts
        self.model_events += result.model_events
        self.events.update(result.events)
        self.invalid.update(result.invalid)
        self.trace.capture(self.pipeline, {model for _, model in result.events})

    def place(self, timeline: Timeline) -> None:
        """Place alerts and trace points in their models' predictions."""
        self.fired = [
            Fired(
                alert,
                timeline.position(alert.model, alert.topic, alert.partition, alert.offset),
                _start_position(alert, timeline),
            )
            for alert in self.alerts
        ]
        self.placed = [
            Placed(
                event, timeline.position(event.model, event.topic, event.partition, event.offset)
            )
            for event in self.model_events
        ]
        self.trace.place(timeline)

    def detections(self) -> list[Detection]:
        return [
            Detection(
                f.alert.model,
                f.alert.monitor,
                f.position,
                f.alert.id(self.group),
                f.alert.statistic,
                f.alert.detector,
                f.start_position,
            )
            for f in self.fired
            if f.alert.kind == "detected"
        ]


def _start_position(alert: Alert, timeline: Timeline) -> int | None:
    start = alert.estimated_start
    if start is None or not start["estimated"]:
        return None
    return timeline.position(alert.model, start["topic"], start["partition"], start["offset"])


@dataclass
class Replayed:
    runs: list[Run]
    timeline: Timeline
    messages: int
    seconds: float
    batch_events: int

    @property
    def events_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def replay(source: Source, runs: list[Run], on_progress: ProgressHook | None = None) -> Replayed:
    """Feed every batch of `source` (read ahead by a second process) to every run's pipeline;
    collect alerts and traces."""
    reader = ReadAhead(source, [run.pipeline for run in runs])
    size = runs[0].settings.batch_max_events
    messages = 0
    started = time.perf_counter()
    with _fewer_collections():
        for batch in reader.batches(size):
            # each message is one or the other
            messages += len(batch[0].events) + sum(batch[0].invalid.values())
            for run, decoded in zip(runs, batch):
                run.feed(decoded)
            if on_progress is not None:
                on_progress(messages, reader.fraction_done())
        for run in runs:
            run.finish()
    for run in runs:
        run.place(reader.timeline)
    return Replayed(runs, reader.timeline, messages, time.perf_counter() - started, size)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """The live service's collector thresholds (`detector.core.pipeline.GC_THRESHOLDS`) for the replay,
    restored afterwards: with Python's defaults the collector walks all long-lived state every
    few batches, and the replay allocates a line, a parsed line and a message per event on top
    (measured on 200,000 simulated events: a fifth of the CPU time)."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
