"""One batch of input messages → alerts, dead letters and counts (pure; no I/O).

State is kept per input partition: all events of a model carry the model name as key, so they
share one partition number in every (co-partitioned) input topic, and a model's monitors move
with that partition when the consumer group rebalances.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from detector.alerts import Alert
from detector.events import SOURCE_OF, TS_OF, Decoder, Event, Invalid, Source
from detector.monitors.labels import PendingBudget
from detector.monitors.model import ModelMonitor
from detector.settings import Settings


class Message(Protocol):
    """The part of confluent_kafka.Message the pipeline reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class DeadLetter:
    """An input message that cannot be used, with the reason; copied verbatim when it fits."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    reason: str
    detail: str

    @property
    def place(self) -> tuple[str, int, int]:
        """Where the message is: source topic, partition and offset."""
        return self.topic, self.partition, self.offset

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("streamdrift.reason", self.reason.encode()),
            ("streamdrift.detail", self.detail.encode()[:1000]),
            ("streamdrift.source.topic", self.topic.encode()),
            ("streamdrift.source.partition", str(self.partition).encode()),
            ("streamdrift.source.offset", str(self.offset).encode()),
            ("streamdrift.source.timestamp", str(self.timestamp_ms).encode()),
        ]

    def record(self, max_bytes: int) -> DeadLetterRecord:
        """The dead-letter record: key and value verbatim when together they fit in `max_bytes`,
        else cut to it (the value first; the key keeps at least half) with headers giving the
        original sizes and SHA-256 digests. `max_bytes` 0 leaves out key and value."""
        key, value = self.key or b"", self.value or b""
        if len(key) + len(value) <= max_bytes:
            return DeadLetterRecord(self.key, self.value, self.headers(), truncated=False)
        key_room = min(len(key), max(max_bytes - len(value), max_bytes // 2))
        original = [
            ("streamdrift.truncated", b"true"),
            ("streamdrift.original.key.bytes", str(len(key)).encode()),
            ("streamdrift.original.key.sha256", hashlib.sha256(key).hexdigest().encode()),
            ("streamdrift.original.value.bytes", str(len(value)).encode()),
            ("streamdrift.original.value.sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
        return DeadLetterRecord(key[:key_room] or None, value[: max_bytes - key_room] or None, self.headers() + original, truncated=True)

    @classmethod
    def of(cls, message: Message, why: Invalid) -> DeadLetter:
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        return cls(topic, partition, offset, message.key(), message.value(), message.timestamp()[1], *why)


class DeadLetterRecord(NamedTuple):
    """What is written to the dead-letter topic for one `DeadLetter`."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    truncated: bool


@dataclass
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, model) -> valid events
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, reason) -> messages
    last_event_ms: dict[str, int] = field(default_factory=dict)  # model -> newest event time


@dataclass
class PartitionState:
    """The monitors of the models whose events live on one input partition."""

    partition: int
    models: dict[str, ModelMonitor] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # models with events since the last checkpoint

    def take_dirty(self) -> list[ModelMonitor]:
        """Models changed since the last call, in name order."""
        changed = [self.models[name] for name in sorted(self.dirty) if name in self.models]
        self.dirty.clear()
        return changed


class Pipeline:
    """Decodes, validates and routes batches to per-partition model monitors."""

    def __init__(self, settings: Settings, log_blocks: bool = False) -> None:
        """`log_blocks`: every signal logs its completed blocks for a reader (the backtest's trace)."""
        self.settings = settings
        self.log_blocks = log_blocks
        topics = settings.topics
        self.topics = (topics.predictions, topics.features, topics.labels)
        self.sources = {name: Source(code) for code, name in enumerate(self.topics)}
        self.decoder = Decoder(
            settings.fields, settings.limits.max_message_bytes, settings.limits.max_model_name_length, settings.fields_for,
            custom_models=[name for name, model in settings.models.items() if model.fields],
        )
        self.partitions: dict[int, PartitionState] = {}
        self.pending_budget = PendingBudget(settings.limits.max_pending_labels_total)

    @property
    def model_count(self) -> int:
        return sum(len(state.models) for state in self.partitions.values())

    def assign(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.partitions.setdefault(partition, PartitionState(partition))

    def install(self, partition: int, models: dict[str, ModelMonitor]) -> None:
        """Own `partition` with these (restored) model monitors, replacing any it had."""
        self.revoke([partition])
        self.partitions[partition] = PartitionState(partition, dict(models))

    def new_monitor(self, model: str) -> ModelMonitor:
        settings = self.settings
        return ModelMonitor(
            model, settings.model_settings(model), settings.detection_for(model), settings.limits, self.topics, self.pending_budget, self.log_blocks
        )

    def revoke(self, partitions: Iterable[int]) -> list[str]:
        """Drop the state of partitions this process no longer owns; return their models."""
        dropped: list[str] = []
        for partition in partitions:
            state = self.partitions.pop(partition, None)
            if state is not None:
                dropped += list(state.models)
                for monitor in state.models.values():
                    monitor.performance.join.release()
        return dropped

    def models(self) -> Iterable[ModelMonitor]:
        for state in self.partitions.values():
            yield from state.models.values()

    def process(self, messages: Sequence[Message]) -> BatchResult:
        """Run one batch: every message ends as an event of some model, or as a dead letter."""
        result = BatchResult()
        rejected = self._route(self.decode(messages, result), result)
        if rejected:
            by_place = {(message.topic() or "", message.partition() or 0, message.offset() or 0): message for message in messages}
            for event, why in rejected:
                result.dead_letters.append(DeadLetter.of(by_place[self.topics[event.source], event.partition, event.offset], why))
        return result

    def decode(self, messages: Sequence[Message], result: BatchResult) -> list[Event]:
        """The valid events of a batch; the other messages become dead letters in `result`."""
        decode, sources = self.decoder.decode, self.sources  # looked up once: this loop runs per message
        events: list[Event] = []
        for message in messages:
            topic = message.topic() or ""
            decoded = decode(message.value(), sources[topic], message.partition() or 0, message.offset() or 0, message.timestamp()[1])
            if decoded.__class__ is Invalid:
                result.dead_letters.append(DeadLetter.of(message, decoded))
                result.invalid[topic, decoded.reason] += 1
            else:
                events.append(decoded)
        return events

    def decodes_like(self, other: Pipeline) -> bool:
        """Does `other` turn every message into the same event, or dead letter, as this one?"""
        return _decoding(self.settings) == _decoding(other.settings)

    def process_events(self, events: Sequence[Event]) -> BatchResult:
        """Run a batch of events decoded elsewhere by an equal `Decoder` (the backtest's reader
        process); events the pipeline rejects are only counted, as there are no messages to
        dead-letter."""
        result = BatchResult()
        self._route(events, result)
        return result

    def _route(self, events: Sequence[Event], result: BatchResult) -> list[tuple[Event, Invalid]]:
        """Hand each model's events to its monitor, in order; return the events no monitor
        takes (unknown model, or the model cap) with the reason, counted as invalid."""
        per_model: dict[ModelMonitor, list[Event]] = {}
        rejected: list[tuple[Event, Invalid]] = []
        previous: tuple[int, str, list[Event]] = (-1, "", [])  # partition, model and events of the last routed event
        for event in events:
            if event.partition == previous[0] and event.model == previous[1]:
                previous[2].append(event)  # the model of the event before: runs of one model are common
                continue
            monitor = self._monitor_for(event)
            if monitor.__class__ is Invalid:
                rejected.append((event, monitor))
                result.invalid[self.topics[event.source], monitor.reason] += 1
                continue
            routed = per_model.get(monitor)
            if routed is None:
                routed = per_model[monitor] = [event]
            else:
                routed.append(event)
            previous = (event.partition, event.model, routed)
        for monitor, routed in per_model.items():
            for source, count in Counter(map(SOURCE_OF, routed)).items():
                result.events[self.topics[source], monitor.name] += count
            self.partitions[routed[0].partition].dirty.add(monitor.name)
            result.alerts += monitor.observe(routed)
            result.last_event_ms[monitor.name] = max(map(TS_OF, routed))
        return rejected

    def _monitor_for(self, event: Event) -> ModelMonitor | Invalid:
        state = self.partitions.get(event.partition)
        if state is None:
            state = self.partitions[event.partition] = PartitionState(event.partition)
        monitor = state.models.get(event.model)
        if monitor is not None:
            return monitor
        settings = self.settings
        if event.model not in settings.models and not settings.auto_discover_models:
            return Invalid("unknown_model", f"model '{event.model[:100]}' is not configured and auto-discovery is off")
        if self.model_count >= settings.limits.max_models:
            return Invalid("model_cap", f"already monitoring limits.max_models={settings.limits.max_models} models")
        monitor = state.models[event.model] = self.new_monitor(event.model)
        return monitor


def _decoding(settings: Settings) -> tuple[object, ...]:
    """What the decoder depends on (`Pipeline.__init__`)."""
    limits, custom = settings.limits, {name: model.fields for name, model in settings.models.items() if model.fields}
    return settings.topics, settings.fields, limits.max_message_bytes, limits.max_model_name_length, custom
