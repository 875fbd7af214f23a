"""One batch of input messages → alerts, dead letters and counts (pure; no I/O).

State is kept per input partition: all events of a model carry the model name as key, so they
share one partition number in every (co-partitioned) input topic, and a model's monitors move
with that partition when the consumer group rebalances.

Models come and go. Each partition keeps a clock, the newest Kafka message timestamp routed to
any of its models, and each model the clock's value at its last event (`ModelMonitor.last_seen_ms`).
The clock is the messages' own timestamps, not the events' `ts`: those are the producers' word
(one event stamped in microseconds would jump the clock a millennium and evict every model), while
Kafka 4 brokers refuse message timestamps more than an hour ahead (log.message.timestamp.after.max.ms).
* idle: a model whose partition clock moved `limits.model_idle_seconds` past its last event is
  evicted; if it comes back it starts afresh. The decision is the same whenever it is taken
  (a sweep after a batch, or the model's next event), so it does not depend on batching.
* cap: when `limits.max_models` is reached, a new model's first message is refused
  (`model_cap`) and its name remembered; its second is admitted in place of the least recently
  routed model still in its warm-up (fewer than `warmup_events` events). A flood of one-off names
  thus costs no monitor, and cannot hold the cap: what it filled before the cap was reached is in
  its warm-up, and gives way. A newcomer is refused for good only while every monitored model is
  past its warm-up. (The remembered names are TinyLFU's "doorkeeper", bounded by the cap.)
* failure: a model whose monitors raise is restarted from scratch; its events of that batch are
  dead-lettered as `processing_error`, and every other model goes on.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter, itemgetter, methodcaller
from typing import NamedTuple, Protocol, TypeVar

from detector.core.alerts import DEPLOYED, Alert, ModelEvent
from detector.core.events import RECORD_MS_OF, SOURCE_OF, TS_OF, Decoder, Event, InputTopic, Invalid
from detector.core.held import Held
from detector.core.monitors.labels import PendingBudget
from detector.core.monitors.model import ModelMonitor, is_model_failure
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
        return DeadLetterRecord(
            key[:key_room] or None,
            value[: max_bytes - key_room] or None,
            self.headers() + original,
            truncated=True,
        )

    @classmethod
    def of(cls, message: Message, why: Invalid) -> DeadLetter:
        topic, partition, offset = (
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
        )
        return cls(
            topic, partition, offset, message.key(), message.value(), message.timestamp()[1], *why
        )


class Eviction(NamedTuple):
    """A model whose monitors and state were dropped: reason `idle` or `cap`."""

    model: str
    partition: int
    reason: str


class ModelError(NamedTuple):
    """A model whose monitors raised while processing its events; they restart from scratch."""

    model: str
    partition: int
    error: str  # exception type and message


class DeadLetterRecord(NamedTuple):
    """What is written to the dead-letter topic for one `DeadLetter`."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    truncated: bool


@dataclass
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    # Events about models (deployments, version comparisons), published with the alerts.
    model_events: list[ModelEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # (topic, model) -> valid events
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (topic, reason) -> messages
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_event_ms: dict[str, int] = field(default_factory=dict)  # model -> newest event time
    evictions: list[Eviction] = field(default_factory=list)
    model_errors: list[ModelError] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        """Take in a later batch's result (its newest event times win)."""
        self.alerts += other.alerts
        self.model_events += other.model_events
        self.dead_letters += other.dead_letters
        self.events.update(other.events)
        self.invalid.update(other.invalid)
        self.last_event_ms.update(other.last_event_ms)
        self.evictions += other.evictions
        self.model_errors += other.model_errors

    @property
    def deployments(self) -> list[ModelEvent]:
        """The model versions deployed in this batch (`io.streamdrift.model.deployed`)."""
        return [event for event in self.model_events if event.type == DEPLOYED]


@dataclass
class PartitionState:
    """The monitors of the models whose events live on one input partition."""

    partition: int
    models: dict[str, ModelMonitor] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # models with events since the last checkpoint
    evicted: set[str] = field(default_factory=set)  # models evicted since the last checkpoint
    # models with state in the state topic (restored or taken dirty)
    stored: set[str] = field(default_factory=set)
    clock_ms: int = 0  # newest Kafka message timestamp routed to a model of this partition
    swept_ms: int = 0  # the clock at the last sweep for idle models

    def take_dirty(self) -> list[ModelMonitor]:
        """Models changed since the last call, in name order."""
        changed = [self.models[name] for name in sorted(self.dirty) if name in self.models]
        self.dirty.clear()
        self.stored.update(monitor.name for monitor in changed)
        return changed

    def take_evicted(self) -> list[str]:
        """Models evicted since the last call, not back since, whose stored state must be retired; in name order."""
        gone = sorted((self.evicted & self.stored) - self.models.keys())
        self.evicted.clear()
        self.stored.difference_update(gone)
        return gone


# Events, their columns and detector state are freed by reference counting and form almost no
# cycles, but CPython's default thresholds make the collector walk all long-lived state (label
# join buffers, references) every few batches: about 15% of the time on a 23-feature model.
# The service, the backtest and the benchmarks set them (gc.set_threshold) before processing.
GC_THRESHOLDS = (100_000, 50, 100)
PARTITION_AND_MODEL = attrgetter("partition", "model")
KEY_OF, VALUE_OF = methodcaller("key"), methodcaller("value")
PARTITION_OF, OFFSET_OF = methodcaller("partition"), methodcaller("offset")
TIMESTAMP_OF, SECOND = methodcaller("timestamp"), itemgetter(1)
INVALID = Invalid("", "")  # a place not decoded yet
# Messages decoded together at most (`Pipeline._decode_group`): few enough that they and their
# structs are still in the CPU's cache when their events are made from them (`Pipeline.decode`
# of a batch of 5,000 in one: 3.8 µs a message; in runs of 256: 2.8; one by one before: 3.1).
DECODED_TOGETHER = 256
DECODED_TOGETHER_LEAST = 64
L = TypeVar("L")  # what groups places (`_grouped`)


def _grouped(indexes: Sequence[int], labels: Sequence[L]) -> Iterable[tuple[L, Sequence[int]]]:
    """`indexes` grouped by their `labels` (one each), in order of first appearance."""
    if len(set(labels)) <= 1:
        return [(labels[0], indexes)] if len(labels) else []
    groups: dict[L, list[int]] = {}
    for index, label in zip(indexes, labels):
        same = groups.get(label)
        if same is None:
            groups[label] = [index]
        else:
            same.append(index)
    return groups.items()


@dataclass
class Routing:
    """One batch on its way to the monitors: the events no monitor takes, and the result."""

    result: BatchResult
    rejected: list[tuple[Event, Invalid]] = field(default_factory=list)


class Pipeline:
    """Decodes, validates and routes batches to per-partition model monitors."""

    def __init__(self, settings: Settings, log_blocks: bool = False) -> None:
        """`log_blocks`: every signal logs its completed blocks for a reader (the backtest's trace)."""
        self.settings = settings
        self.log_blocks = log_blocks
        topics = settings.topics
        self.topics = (topics.predictions, topics.features, topics.labels)
        self.sources = {name: InputTopic(code) for code, name in enumerate(self.topics)}
        self.decoder = Decoder(
            settings.fields,
            settings.limits.max_message_bytes,
            settings.limits.max_model_name_length,
            settings.fields_for,
            custom_models=[name for name, model in settings.models.items() if model.fields],
        )
        self.partitions: dict[int, PartitionState] = {}
        self.pending_budget = PendingBudget(settings.limits.max_pending_labels_total)
        self.idle_ms = int(settings.limits.model_idle_seconds * 1000)
        # Models still in their warm-up, least recently routed first: the ones a newcomer may evict at the cap.
        self.probation: OrderedDict[tuple[int, str], None] = OrderedDict()
        self.refused: OrderedDict[str, None] = (
            OrderedDict()
        )  # names refused once at the cap, oldest first
        # Each model's events routed but not observed yet; never more in all than a commit covers.
        self.held = Held(settings.model_batch_events, settings.commit_interval_events)
        # The input batches while events of theirs are held: a monitor failing on those dead-letters their messages.
        self.held_messages: list[Sequence[Message]] = []
        self.held_message_count = 0  # messages in held_messages

    @property
    def model_count(self) -> int:
        return sum(len(state.models) for state in self.partitions.values())

    def assign(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.partitions.setdefault(partition, PartitionState(partition))

    def install(self, partition: int, models: dict[str, ModelMonitor]) -> None:
        """Own `partition` with these (restored) model monitors, replacing any it had. The
        partition's clock resumes at the newest last sighting among them."""
        self.revoke([partition])
        clock = max((monitor.last_seen_ms for monitor in models.values()), default=0)
        state = self.partitions[partition] = PartitionState(
            partition, dict(models), stored=set(models), clock_ms=clock, swept_ms=clock
        )
        for monitor in sorted(models.values(), key=lambda monitor: monitor.last_seen_ms):
            self._note_warmup(state, monitor)

    def new_monitor(self, model: str) -> ModelMonitor:
        settings = self.settings
        return ModelMonitor(
            model,
            settings.model_settings(model),
            settings.detection_for(model),
            settings.limits,
            settings.retrain_for(model),
            self.topics,
            self.pending_budget,
            self.log_blocks,
        )

    def revoke(self, partitions: Iterable[int]) -> list[str]:
        """Drop the state of partitions this process no longer owns; return their models."""
        dropped: list[str] = []
        for partition in partitions:
            state = self.partitions.pop(partition, None)
            if state is not None:
                dropped += list(state.models)
                self.held.drop(state.models.values())  # not processed: the next owner reads them
                for name, monitor in state.models.items():
                    monitor.performance.join.release()
                    self.probation.pop((partition, name), None)
                    self.decoder.forget(name)
        return dropped

    def models(self) -> Iterable[ModelMonitor]:
        for state in self.partitions.values():
            yield from state.models.values()

    def process(self, messages: Sequence[Message], hold: bool = False) -> BatchResult:
        """Run one batch: every message ends as an event of some model, or as a dead letter.
        `hold`: each model's events wait for its next ones (detector.core.held) until it has
        settings.model_batch_events of them, or until `flush`; without, every model's events
        held so far are observed now."""
        result = BatchResult()
        self.held_messages.append(messages)
        self.held_message_count += len(messages)
        # The batches kept for their messages stay within the bound on events held, too (one
        # slow model's few events would keep them all): past it, every model runs.
        hold = hold and self.held_message_count < self.held.total_events
        rejected = self._route(self.decode(messages, result), result, hold)
        self._dead_letter(rejected, result)
        return result

    def flush(self) -> BatchResult:
        """Observe every model's held events: what the batches processed with `hold` left to do."""
        batch = Routing(BatchResult())
        self._observe_due(batch, hold=False)
        self._dead_letter(batch.rejected, batch.result)
        return batch.result

    @property
    def holding(self) -> int:
        """Events routed to their models but not observed yet (`flush` observes them)."""
        return len(self.held)

    def _dead_letter(self, rejected: list[tuple[Event, Invalid]], result: BatchResult) -> None:
        """Dead-letter the messages of events no monitor took (events decoded elsewhere, with no
        message, are only counted); forget the input batches once no event of theirs is held."""
        if rejected:
            by_place = {
                (message.topic() or "", message.partition() or 0, message.offset() or 0): message
                for messages in self.held_messages
                for message in messages
            }
            for event, why in rejected:
                message = by_place.get((self.topics[event.source], event.partition, event.offset))
                if message is not None:
                    result.dead_letters.append(DeadLetter.of(message, why))
        if not self.held:
            self.held_messages.clear()
            self.held_message_count = 0

    def decode(self, messages: Sequence[Message], result: BatchResult) -> list[Event]:
        """The valid events of a batch, in its order; the other messages become dead letters in
        `result`, in that order too.

        The messages are decoded one key (model) and topic after another (`Decoder.decode_all`):
        a model's events then lie together in memory, which its monitors read many times over,
        long after the decoding when its events are held (200,000 events of 20 models
        interleaved, held: 0.58-0.64 of one model's events per CPU-second decoded in arrival
        order, 0.81 a key at a time)."""
        decoded: list[Event | Invalid] = [INVALID] * len(messages)
        decode, sources = self.decoder.decode, self.sources
        for key, indexes in _grouped(range(len(messages)), list(map(KEY_OF, messages))):
            if len(indexes) < DECODED_TOGETHER_LEAST:  # a few: one by one costs less
                for index in indexes:
                    message = messages[index]
                    decoded[index] = decode(
                        message.value(),
                        sources[message.topic() or ""],
                        message.partition() or 0,
                        message.offset() or 0,
                        message.timestamp()[1],
                        key,
                    )
                continue
            topics = [messages[i].topic() for i in indexes]
            for topic, part in _grouped(indexes, topics):
                for index, event in zip(part, self._decode_together(messages, part, key, topic)):
                    decoded[index] = event
        if set(map(type, decoded)) == {Event}:
            return decoded  # type: ignore[return-value]  # every one an Event
        for index in [i for i, event in enumerate(decoded) if type(event) is Invalid]:
            message, why = messages[index], decoded[index]
            assert type(why) is Invalid
            result.dead_letters.append(DeadLetter.of(message, why))
            result.invalid[message.topic() or "", why.reason] += 1
        return [event for event in decoded if type(event) is not Invalid]

    def _decode_together(
        self,
        messages: Sequence[Message],
        indexes: Sequence[int],
        key: bytes | None,
        topic: str | None,
    ) -> list[Event | Invalid]:
        """`Decoder.decode_all` of the messages at `indexes`, of one key and topic,
        DECODED_TOGETHER at a time."""
        source, decode_all = self.sources[topic or ""], self.decoder.decode_all
        decoded: list[Event | Invalid] = []
        for start in range(0, len(indexes), DECODED_TOGETHER):
            part = [messages[i] for i in indexes[start : start + DECODED_TOGETHER]]
            partitions, offsets = list(map(PARTITION_OF, part)), list(map(OFFSET_OF, part))
            decoded += decode_all(
                list(map(VALUE_OF, part)),
                source,
                partitions if None not in partitions else [p or 0 for p in partitions],
                offsets if None not in offsets else [o or 0 for o in offsets],
                list(map(SECOND, map(TIMESTAMP_OF, part))),
                key,
            )
        return decoded

    def decodes_like(self, other: Pipeline) -> bool:
        """Does `other` turn every message into the same event, or dead letter, as this one?"""
        return _decoding(self.settings) == _decoding(other.settings)

    def process_events(self, events: Sequence[Event], hold: bool = False) -> BatchResult:
        """Run a batch of events decoded elsewhere by an equal `Decoder` (the backtest's reader
        process), holding them as `process` does; events the pipeline rejects are only counted,
        as there are no messages to dead-letter."""
        result = BatchResult()
        self._route(events, result, hold)
        return result

    def _route(
        self, events: Sequence[Event], result: BatchResult, hold: bool
    ) -> list[tuple[Event, Invalid]]:
        """Hand each model's events to its monitor, in order (held, with `hold`, until the model
        has enough); return the events no monitor takes (unknown model, the model cap, or a
        monitor that failed) with the reason, counted as invalid."""
        batch = Routing(result)
        partitions, held, idle_ms = self.partitions, self.held, self.idle_ms
        queued = held.queued
        touched: set[int] = set()
        # Runs of one model: long with few models, a single event each with many interleaved,
        # so the usual run (a known model, not idle, past its warm-up) takes no call.
        for (partition, model), group in groupby(events, PARTITION_AND_MODEL):
            run = list(group)
            state = partitions.get(partition) or self._partition(partition)
            monitor = state.models.get(model)
            if monitor is None or (
                idle_ms and monitor.last_seen_ms and state.clock_ms - monitor.last_seen_ms > idle_ms
            ):
                admitted = self._admit(state, model, run, batch)
                if admitted is None:
                    continue
                monitor, run = admitted
            newest = run[0].record_ms if len(run) == 1 else max(map(RECORD_MS_OF, run))
            if newest > state.clock_ms:
                state.clock_ms = newest
            monitor.last_seen_ms = state.clock_ms
            touched.add(partition)
            queue = queued.get(monitor)
            if queue is None:
                queue = queued[monitor] = run
            else:
                queue += run
            held.count += len(run)
            # out of its warm-up before this run: not on probation, nothing to note
            if monitor.events_seen + len(queue) - len(run) < monitor.config.warmup_events:
                self._note_warmup(state, monitor, len(queue))
        self._observe_due(batch, hold)
        for partition in touched:
            self._sweep_idle(partitions[partition], batch)
        return batch.rejected

    def _admit(
        self, state: PartitionState, model: str, run: list[Event], batch: Routing
    ) -> tuple[ModelMonitor, list[Event]] | None:
        """The monitor of a run of a model that has none (or an idle one), and the events of
        the run it takes; None if it takes none (they are rejected)."""
        monitor = self._monitor_for(state, model, batch)
        if type(monitor) is Invalid and monitor.reason == "model_cap" and len(run) > 1:
            # a newcomer's first message at the cap: its second may be admitted
            self._reject(run[:1], monitor, batch)
            run = run[1:]
            monitor = self._monitor_for(state, model, batch)
        if type(monitor) is Invalid:
            self._reject(run, monitor, batch)
            return None
        return monitor, run

    def _observe_due(self, batch: Routing, hold: bool) -> None:
        """Observe the held events of the models that are due (all of them unless `hold`)."""
        for monitor, events in self.held.due(hold):
            self._observe(monitor, events, batch)

    def _reject(self, events: list[Event], why: Invalid, batch: Routing) -> None:
        batch.rejected += [(event, why) for event in events]
        for source, count in Counter(map(SOURCE_OF, events)).items():
            batch.result.invalid[self.topics[source], why.reason] += count

    def _partition(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is None:
            state = self.partitions[partition] = PartitionState(partition)
        return state

    def _monitor_for(
        self, state: PartitionState, model: str, batch: Routing
    ) -> ModelMonitor | Invalid:
        """The monitor of a run of `model`'s events: its own, or a new one (the model is new, or
        was idle for longer than limits.model_idle_seconds and starts afresh)."""
        monitor = state.models.get(model)
        if monitor is not None:
            if not self._idle(state, monitor):
                return monitor
            self._evict(state, model, "idle", batch)
        settings = self.settings
        if model not in settings.models and not settings.auto_discover_models:
            return Invalid(
                "unknown_model",
                f"model '{model[:100]}' is not configured and auto-discovery is off",
            )
        if self.model_count >= settings.limits.max_models and not self._admit_at_cap(model, batch):
            return Invalid(
                "model_cap",
                f"already monitoring limits.max_models={settings.limits.max_models} models",
            )
        monitor = state.models[model] = self.new_monitor(model)
        return monitor

    def _idle(self, state: PartitionState, monitor: ModelMonitor) -> bool:
        return bool(
            self.idle_ms
            and monitor.last_seen_ms
            and state.clock_ms - monitor.last_seen_ms > self.idle_ms
        )

    def _note_warmup(self, state: PartitionState, monitor: ModelMonitor, queued: int = 0) -> None:
        """Keep the probation order: models in their warm-up (counting `queued` events routed to
        them but not yet observed), least recently routed first."""
        key = (state.partition, monitor.name)
        if monitor.events_seen + queued < monitor.config.warmup_events:
            self.probation[key] = None
            self.probation.move_to_end(key)
        else:
            self.probation.pop(key, None)

    def _admit_at_cap(self, model: str, batch: Routing) -> bool:
        """At the model cap: admit a name at its second message, in place of the least recently
        routed model still in its warm-up (if there is one)."""
        if model not in self.refused:
            self.refused[model] = None
            if len(self.refused) > self.settings.limits.max_models:
                self.refused.popitem(last=False)
            return False
        if not self.probation:
            return False
        del self.refused[model]
        partition, victim = next(iter(self.probation))
        self._evict(self.partitions[partition], victim, "cap", batch)
        return True

    def _sweep_idle(self, state: PartitionState, batch: Routing) -> None:
        """Evict the partition's idle models, so that models that left free their memory and
        metric series (checked each time the clock moves an eighth of the idle time)."""
        if not self.idle_ms or state.clock_ms - state.swept_ms < self.idle_ms // 8:
            return
        state.swept_ms = state.clock_ms
        for name in [name for name, monitor in state.models.items() if self._idle(state, monitor)]:
            self._evict(state, name, "idle", batch)

    def _evict(self, state: PartitionState, model: str, reason: str, batch: Routing) -> None:
        """Drop a model's monitors; events already routed to them (held) are observed first."""
        routed = self.held.take(state.models[model])
        if routed:
            self._observe(state.models[model], routed, batch)
        monitor = state.models.pop(model)
        monitor.performance.join.release()
        self.decoder.forget(model)
        self.probation.pop((state.partition, model), None)
        state.dirty.discard(model)
        state.evicted.add(model)
        batch.result.evictions.append(Eviction(model, state.partition, reason))

    def _observe(self, monitor: ModelMonitor, events: list[Event], batch: Routing) -> None:
        """Feed one model's events of the batch. A monitor that raises is replaced by a fresh one
        and its events are rejected as `processing_error`: one model cannot stop the others."""
        state, result = self.partitions[events[0].partition], batch.result
        try:
            observed = monitor.observe(events)
        except BaseException as exc:
            if not is_model_failure(exc):
                raise
            error = f"{type(exc).__name__}: {exc}"
            self._reject(
                events,
                Invalid("processing_error", f"model '{monitor.name[:100]}': {error}"[:1000]),
                batch,
            )
            result.model_errors.append(ModelError(monitor.name, state.partition, error))
            monitor.performance.join.release()
            fresh = state.models[monitor.name] = self.new_monitor(monitor.name)
            fresh.last_seen_ms = monitor.last_seen_ms
            self._note_warmup(state, fresh)
            state.dirty.add(monitor.name)  # the fresh state replaces the failed one's checkpoint
            return
        monitor.feature_struct = self.decoder.expect(monitor.name, *monitor.feature_names())
        for source, count in Counter(map(SOURCE_OF, events)).items():
            result.events[self.topics[source], monitor.name] += count
        state.dirty.add(monitor.name)
        result.alerts += observed.alerts
        result.model_events += observed.model_events
        result.last_event_ms[monitor.name] = max(map(TS_OF, events))


def _decoding(settings: Settings) -> tuple[object, ...]:
    """What the decoder depends on (`Pipeline.__init__`)."""
    limits, custom = (
        settings.limits,
        {name: model.fields for name, model in settings.models.items() if model.fields},
    )
    return (
        settings.topics,
        settings.fields,
        limits.max_message_bytes,
        limits.max_model_name_length,
        custom,
    )
