"""Each period of history through the live pipeline, collecting every monitor's values.

A period is read like a backtest's history (a file filtered by event time, or the topics
between two message times, by the throwaway reader of detector.backtest.topics) and run
through a `Pipeline` of the configuration: the live decoding, routing, feature discovery,
label join and monitor names (`feature.<name>`, `quality.missing.<name>`, `prediction.score`,
`prediction.value`, `prediction.latency`, `performance.error`, ...). That pipeline's warm-up
never ends (`warmup_events` beyond any period), so every signal keeps the values it is fed as
its reference sample; after each batch they are moved from there into compact arrays and
counts (8 bytes a number), which keeps the signals' own lists short.

`quality.labels` and `quality.schema` are not compared: the first learns its maturity age
from the warm-up, which never ends here, and the second has no values, only events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from detector.backtest.compare import Periods, Values
from detector.backtest.readahead import ReadAhead
from detector.backtest.sources import Batch, Source
from detector.core.pipeline import BatchResult, Pipeline
from detector.settings import DEFAULT_MODEL_SETTINGS, Settings

NEVER_WARM = 2**62  # a warm-up no period reaches: signals keep collecting their values

ProgressHook = Callable[[int, "float | None"], None]  # (messages read, fraction done or None)


@dataclass(frozen=True)
class Period:
    """Times from `from_ms` (included) to `to_ms` (excluded), epoch milliseconds."""

    name: str
    from_ms: int
    to_ms: int

    def describe(self) -> str:
        return f"{rfc3339(self.from_ms)} .. {rfc3339(self.to_ms)}"

    def overlaps(self, other: Period) -> bool:
        return self.from_ms < other.to_ms and other.from_ms < self.to_ms


@dataclass
class Collected:
    """One period's values per (model, monitor), and what was read."""

    values: Periods = field(default_factory=dict)
    messages: int = 0
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, model) -> events
    # (topic, reason) -> messages
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)

    def predictions(self, topic: str) -> dict[str, int]:
        """Prediction events per model."""
        return {
            model: count for (where, model), count in sorted(self.events.items()) if where == topic
        }

    def add(self, pipeline: Pipeline, result: BatchResult) -> None:
        """What the pipeline made of a batch (each model's events held as the service holds
        them), or of the events it held after the last."""
        self.events.update(result.events)
        self.invalid.update(result.invalid)
        self.take(pipeline, {model for _, model in result.events})

    def take(self, pipeline: Pipeline, models: set[str]) -> None:
        """Move the values these models' signals collected in the last batch."""
        for state in pipeline.partitions.values():
            for model in (state.models[name] for name in models if name in state.models):
                for _, monitor, signal in model.every_signal():  # all versions' values together
                    if not signal.sample:
                        continue
                    key = (model.name, monitor)
                    if key not in self.values:
                        self.values[key] = Values(signal.signal_type.value)
                    self.values[key].add(signal.sample)
                    signal.sample.clear()


@dataclass
class Within:
    """The records of `source` whose timestamp (a file's event time, a topic's message time)
    lies in `period`, and those of the labels topic up to `label_grace_ms` later: the labels of
    the period's last predictions come after it (then they are also the next period's, where
    they find no prediction and join nothing)."""

    source: Source
    period: Period
    labels_topic: str
    label_grace_ms: int
    description: str = field(init=False)

    def __post_init__(self) -> None:
        self.description = self.source.description

    def batches(self, size: int) -> Iterator[Batch]:
        start, end, labels, until = (
            self.period.from_ms,
            self.period.to_ms,
            self.labels_topic,
            self.period.to_ms + self.label_grace_ms,
        )
        for batch in self.source.batches(size):
            kept = Batch()
            for message, model in zip(batch.messages, batch.models):
                stamp = message.timestamp_ms
                if start <= stamp < end or (end <= stamp < until and message.topic_name == labels):
                    kept.append(message, model)
            if kept:
                yield kept

    def fraction_done(self) -> float | None:
        return self.source.fraction_done()


def label_grace_ms(settings: Settings) -> int:
    """How long after a period its predictions' labels are read: the longest a prediction waits
    for its label (`label_ttl_seconds`, over the default and the configured models)."""
    models = [DEFAULT_MODEL_SETTINGS, *settings.models.values()]
    return int(max(model.label_ttl_seconds for model in models) * 1000)


def collecting(settings: Settings) -> Settings:
    """The configuration with a warm-up that never ends, for every model (overrides included),
    and predictions kept for their labels as by a service that has seen labels before: a period
    starts in the middle of the traffic, not at a model's first prediction."""
    never = {"warmup_events": NEVER_WARM}
    limits = settings.limits
    return settings.model_copy(
        update={
            "limits": limits.model_copy(
                update={"pending_labels_before_first": limits.max_pending_labels}
            ),
            "detection": settings.detection.model_copy(update=never),
            "models": {
                name: model.model_copy(update={"detection": {**model.detection, **never}})
                for name, model in settings.models.items()
            },
        }
    )


def collect(
    source: Source, settings: Settings, on_progress: ProgressHook | None = None
) -> Collected:
    """Run one period's history through a collecting pipeline of `settings`."""
    pipeline = Pipeline(collecting(settings))
    reader = ReadAhead(source, [pipeline])
    collected = Collected()
    for (decoded,) in reader.batches(settings.batch_max_events):
        collected.messages += len(decoded.events) + sum(decoded.invalid.values())
        collected.invalid.update(decoded.invalid)
        collected.add(pipeline, pipeline.process_events(decoded.events, hold=True))
        if on_progress is not None:
            on_progress(collected.messages, reader.fraction_done())
    collected.add(pipeline, pipeline.flush())
    return collected


def rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
