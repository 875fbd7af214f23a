"""Many models on one topic (issue 18.4): the detector core's events/s when the same events are
spread over 1, 20, 200 and 1,000 models interleaved, with and without request ids, and the
ratio to one model, in one run.

* workload: each model has 4 numeric features (iid, no change), a score, a predicted class and
  a latency (`bench.workload.Workload`, a seed per model). The models' events are interleaved
  one by one, the i-th event of every model before the (i+1)-th, and every model's i-th event is
  at START_MS + i ms: each model sees 1,000 events a second of event time whatever their number,
  so that its monitors do the same work per event (a slower model would learn its daily cycle
  instead of watching) and the curve shows what the number of models costs.
* core: `Pipeline.process(batch, hold=True)` over batches of 5,000 messages (the service's
  default), each model's events held across batches as the service holds them
  (`model_batch_events`, at most `commit_interval_events` held in all), and `flush()` at the
  end. Every model's warm-up (its first `warmup_events`, rounded up to whole batches) is fed
  and flushed first, untimed; then `events`
  messages are timed: wall and CPU time (user + system of this process) around `process` and
  `flush` only, as the messages are generated between batches.
* the numbers of models are fed batch by batch in turn (with ids or not, each bound on the
  events held, one after the other), so that whatever else the machine does falls on all of
  them alike; the ratios to one model are of events per CPU-second.
* `commit_interval_events`: the bound on the events held in all (the service commits, so
  flushes, at least that often): each configuration at every value given.
* `unheld`: each configuration also without holding (`process(batch)`: every model's monitors
  run on its share of each batch, as before `model_batch_events`).
* `backtest` (the issue's own measurement): the whole `streamdrift backtest --file` command over
  the same interleaved events, with ids, written as JSON lines, once per number of models; its
  wall and CPU time (its reader process included) and events per CPU-second against the first.
"""

from __future__ import annotations

import gc
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from bench.backtest import backtest_command
from bench.report import progress, table
from bench.throughput import BATCH, clocks
from bench.workload import Workload, features
from detector.core.pipeline import GC_THRESHOLDS, Pipeline
from detector.settings import Settings, load_settings

MODELS = (1, 20, 200, 1000)
FEATURES = 4
CHUNK = 10_000  # events generated at a time (over all the models)


def interleaved(models: int, ids: bool, events: int, topic: str) -> Iterator[list[Message]]:
    """Batches of BATCH messages: `events` events of `models` models interleaved one by one, on
    partition 0 of `topic` at consecutive offsets, each timestamped with its event time."""
    workloads = [
        Workload(features(FEATURES, 0), model=f"model-{m:04d}", seed=m + 1, ids=ids)
        for m in range(models)
    ]
    per_chunk = max(1, CHUNK // models)
    batch: list[Message] = []
    offset = 0
    for start in range(0, -(-events // models), per_chunk):
        columns = [list(w.events(start, per_chunk)) for w in workloads]
        for row in zip(*columns):
            for event in row:
                batch.append(
                    Message(
                        topic=topic,
                        partition=0,
                        offset=offset,
                        key=event["model"].encode(),
                        value=orjson.dumps(event),
                        timestamp=(TIMESTAMP_CREATE_TIME, event["ts"]),
                    )
                )
                offset += 1
                if offset == events:
                    yield batch
                    return
                if len(batch) == BATCH:
                    yield batch
                    batch = []


@dataclass
class Configuration:
    """One number of models, with or without ids, held or not: its pipeline and stream."""

    models: int
    ids: bool
    hold: bool
    warmup: int  # messages fed untimed
    events: int  # messages timed
    settings: Settings
    batches: Iterator[list[Message]] = field(init=False)
    pipeline: Pipeline = field(init=False)
    fed: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    alerts: int = 0

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(self.settings)
        self.batches = interleaved(
            self.models, self.ids, self.warmup + self.events, self.settings.topics.predictions
        )

    @property
    def name(self) -> str:
        held = f"held ≤ {self.settings.commit_interval_events:,}" if self.hold else "unheld"
        return f"{self.models:,} model{'s' if self.models > 1 else ''}{', ids' if self.ids else ''}, {held}"

    def step(self) -> bool:
        """Feed the next batch (the flush after the last, and after the warm-up, untimed);
        False once done."""
        batch = next(self.batches, None)
        timed = self.fed >= self.warmup
        started = clocks()
        if batch is None:
            self.alerts += len(self.pipeline.flush().alerts)
        else:
            self.alerts += len(self.pipeline.process(batch, hold=self.hold).alerts)
        ended = clocks()
        if timed:
            self.wall += ended[0] - started[0]
            self.cpu += ended[1] - started[1]
        if batch is None:
            return False
        self.fed += len(batch)
        if self.fed == self.warmup:
            self.alerts += len(self.pipeline.flush().alerts)
        return True

    @property
    def per_cpu_second(self) -> float:
        return self.events / self.cpu if self.cpu > 0 else float("nan")


def run(
    events: int,
    models: tuple[int, ...] = MODELS,
    commit_intervals: tuple[int, ...] = (),
    unheld: bool = False,
) -> str:
    """`commit_intervals`: values of commit_interval_events (none: the configured one)."""
    base = load_settings(None)
    warmup = base.detection.warmup_events
    variants = [
        (True, base.model_copy(update={"commit_interval_events": n})) for n in commit_intervals
    ]
    variants = (variants or [(True, base)]) + ([(False, base)] if unheld else [])
    gc.set_threshold(*GC_THRESHOLDS)
    configurations: list[Configuration] = []
    for ids in (False, True):
        for hold, settings in variants:
            # one number of models after another would put the machine's changing load on some
            # and not others; all at once would not fit in memory
            group = [
                Configuration(m, ids, hold, -(-m * warmup // BATCH) * BATCH, events, settings)
                for m in models
            ]
            running, steps = list(group), 0
            while running:
                running = [c for c in running if c.step()]
                steps += 1
                if steps % 50 == 0:
                    progress("; ".join(f"{c.name}: {c.fed:,}" for c in running))
            for c in group:
                c.pipeline = c.batches = None  # type: ignore[assignment]  # measured: free them
            configurations += group
    return _report(events, warmup, configurations)


def _report(events: int, warmup: int, configurations: list[Configuration]) -> str:
    base = configurations[0].models
    single = {
        c.name.split(", ", 1)[1]: c.per_cpu_second for c in configurations if c.models == base
    }
    rows = [
        (
            c.models,
            "yes" if c.ids else "no",
            f"≤ {c.settings.commit_interval_events:,} in all" if c.hold else "no",
            c.events,
            c.events / c.wall if c.wall > 0 else float("nan"),
            c.per_cpu_second,
            1e6 / c.per_cpu_second,
            f"{c.per_cpu_second / single[c.name.split(', ', 1)[1]]:.2f}×",
            c.alerts,
        )
        for c in configurations
    ]
    headers = [
        "models",
        "ids",
        "events held",
        "events timed",
        "events/s",
        "events/CPU-s",
        "CPU µs/event",
        f"÷ {base:,} model{'s' if base > 1 else ''} (CPU)",
        "alerts",
    ]
    intro = (
        f"{events:,} events timed per row, after every model's warm-up ({warmup:,} events each, "
        f"fed and flushed untimed, rounded up to whole batches); {FEATURES} iid numeric features, score, prediction and latency per event; "
        "the models' events interleaved one by one; the numbers of models fed batch by batch in turn.\n"
    )
    return intro + "\n" + table(headers, rows) + "\n"


def run_backtest(events: int, models: tuple[int, ...] = MODELS) -> str:
    """The whole `streamdrift backtest --file` command over `events` interleaved events with
    ids of each number of models, one after the other (warm-ups included, as a user runs it)."""
    measured: list[tuple[int, float, float]] = []  # models, wall s, CPU s
    with tempfile.TemporaryDirectory(prefix="streamdrift-bench-") as folder:
        for count in models:
            path = Path(folder) / f"models-{count}.jsonl"
            progress(f"writing {events:,} events of {count:,} interleaved models to {path.name}")
            with path.open("wb") as out:
                for batch in interleaved(count, True, events, "predictions"):
                    out.writelines((message.value() or b"") + b"\n" for message in batch)
            command = [sys.executable, "-m", "detector", "backtest", "--file", str(path), "--json"]
            timed, _ = backtest_command(command)
            path.unlink()
            measured.append((count, timed.wall_s, timed.cpu_s or float("nan")))
    base = events / measured[0][2]
    rows = [
        (count, events, wall, events / wall, events / cpu, f"{events / cpu / base:.2f}×")
        for count, wall, cpu in measured
    ]
    headers = [
        "models (backtest)",
        "events",
        "wall s",
        "events/s",
        "events/CPU-s",
        f"÷ {models[0]:,} (CPU)",
    ]
    intro = (
        f"`streamdrift backtest --file` over {events:,} events with ids, the models interleaved "
        "one by one, each run alone; CPU time includes the command's reader process and every "
        "model's warm-up.\n"
    )
    return intro + "\n" + table(headers, rows) + "\n"
