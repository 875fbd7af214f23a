"""Throughput in one run, per workload: the detector core in-process, and on each broker (the
embedded Tansu, Apache Kafka) end to end (exactly_once and at_least_once) beside a baseline that
only consumes and parses the same messages with the same consumer settings.

* workloads: `plain` (no ids, so no label join), `ids` (every prediction has an id, no label
  ever comes) and `labels` (ids, and LABELLED of the predictions get a label on the labels topic
  1-10 s of event time later). Events/s count every message: predictions and labels.
* core: `Pipeline.process` over pre-serialized messages (both topics merged in event-time
  order) in batches of 5,000 (the service's default batch); the first batch is not timed.
* end to end: the messages are produced first, with Kafka timestamps in their event-time order
  (the service aligns its input topics by them); then `Service.run` is timed from the end of its
  first batch to the batch that completes the last message, and the messages of the batches
  after the first are divided by that time. The baseline is timed the same way.
"""

from __future__ import annotations

import gc
import heapq
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from bench.report import progress, table
from bench.workload import START_MS, Workload, standard_features
from detector.core.alerts import Alert
from detector.core.pipeline import GC_THRESHOLDS, Pipeline
from detector.kafka.embedded import EmbeddedBroker
from detector.kafka.topics import ensure_topics
from detector.service.service import Service
from detector.settings import ProcessingGuarantee, Settings, TopicSettings, load_settings
from tests.apache_kafka.broker import ApacheKafka, kafka_version

BATCH = 5000
SESSION_TIMEOUT_MS = 6000  # a group join on the embedded broker waits about half of this
GENERATE_CHUNK = 50_000
LABELLED = 0.3
BASELINE = "baseline: consume + orjson.loads"
GUARANTEES = (ProcessingGuarantee.exactly_once, ProcessingGuarantee.at_least_once)

# One model, 20 numeric and 3 categorical features, as issue 15 specifies; with and without ids
# and labels as issue 18 asks.
WORKLOADS = {
    "plain": Workload(standard_features(), ids=False),
    "ids": Workload(standard_features(), ids=True),
    "labels": Workload(standard_features(), ids=True, labelled=LABELLED),
}


class Broker(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...


BROKERS: dict[str, tuple[str, Callable[[], AbstractContextManager[Broker]]]] = {
    "tansu": ("Tansu", EmbeddedBroker),
    "kafka": (f"Apache Kafka {kafka_version()}", ApacheKafka),
}


@dataclass(frozen=True)
class Rate:
    """Messages per second over a timed stretch, and per second of this process's CPU time (its
    client library's threads included; the brokers run in their own processes): on a machine
    shared with other work, CPU time says more about cost than wall time. `broker` is None
    in-process."""

    workload: str
    broker: str | None
    what: str
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def per_cpu_second(self) -> float:
        return self.events / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")


def clocks() -> tuple[float, float]:
    """Wall and process CPU time, in seconds."""
    return time.perf_counter(), time.process_time()


@dataclass(frozen=True)
class Stream:
    """A workload's messages: predictions (key, value) in event-time order, one per ms from
    START_MS, and labels (event time, key, value) in event-time order."""

    predictions: list[tuple[bytes, bytes]]
    labels: list[tuple[int, bytes, bytes]]

    def __len__(self) -> int:
        return len(self.predictions) + len(self.labels)

    def timeline(self) -> Iterator[tuple[bool, int, bytes, bytes]]:
        """(is a label, event time, key, value) of every message in event-time order (on a tie,
        the prediction first, as the service's alignment orders them)."""
        predictions = ((False, START_MS + i, k, v) for i, (k, v) in enumerate(self.predictions))
        labels = ((True, ts, k, v) for ts, k, v in self.labels)
        return heapq.merge(predictions, labels, key=itemgetter(1))


def generate(workload: Workload, events: int) -> Stream:
    """The workload's first `events` predictions and their labels, serialized."""
    stream = Stream([], [])
    for start in range(0, events, GENERATE_CHUNK):
        predictions = list(workload.events(start, min(GENERATE_CHUNK, events - start)))
        stream.predictions.extend((e["model"].encode(), orjson.dumps(e)) for e in predictions)
        stream.labels.extend(
            (e["ts"], e["model"].encode(), orjson.dumps(e))
            for e in workload.labels(start, predictions)
        )
        progress(f"generated {len(stream.predictions):,} of {events:,} events")
    stream.labels.sort(key=itemgetter(0))  # stable: labels of one time stay in prediction order
    return stream


def as_messages(stream: Stream, topics: TopicSettings) -> list[Message]:
    """The stream as confluent-kafka messages on partition 0, in event-time order, at
    consecutive offsets per topic, timestamped with their event time."""
    names, offsets, out = (topics.predictions, topics.labels), [0, 0], []
    for is_label, ts, key, value in stream.timeline():
        out.append(
            Message(
                topic=names[is_label],
                partition=0,
                offset=offsets[is_label],
                key=key,
                value=value,
                timestamp=(TIMESTAMP_CREATE_TIME, ts),
            )
        )
        offsets[is_label] += 1
    return out


def core(stream: Stream, settings: Settings, workload: str = "plain") -> tuple[Rate, list[Alert]]:
    """Pipeline.process over pre-serialized messages in batches of BATCH (the first untimed),
    with the service's collector settings; the rate and every alert raised."""
    merged = as_messages(stream, settings.topics)
    batches = [merged[i : i + BATCH] for i in range(0, len(merged), BATCH)]
    gc.set_threshold(*GC_THRESHOLDS)
    pipeline = Pipeline(settings)
    alerts = pipeline.process(batches[0]).alerts
    started = clocks()
    for done, batch in enumerate(batches[1:], start=1):
        alerts += pipeline.process(batch).alerts
        if done % 20 == 0:
            progress(f"core: {done * BATCH:,} of {len(merged):,} messages")
    ended, timed = clocks(), sum(len(b) for b in batches[1:])
    wall, cpu = ended[0] - started[0], ended[1] - started[1]
    return Rate(workload, None, "detector core, in-process", timed, wall, cpu), alerts


class Stopwatch:
    """Times a consumer from the end of its first batch to the batch that reaches `target` events."""

    def __init__(self, target: int) -> None:
        self.target = target
        # (wall time, CPU time, events) at the end of the first batch, and at the target
        self.first: tuple[float, float, int] | None = None
        self.last: tuple[float, float, int] | None = None

    def seen(self, events: int) -> bool:
        """Record progress; True once the target is reached."""
        if events and self.first is None:
            self.first = (*clocks(), events)
        if events >= self.target and self.last is None:
            self.last = (*clocks(), events)
        return self.last is not None

    def seconds(self) -> tuple[int, float, float]:
        """Events, wall seconds and CPU seconds from the end of the first batch to the target."""
        assert self.first is not None and self.last is not None, (
            "the consumer stopped before the target"
        )
        first, last = self.first, self.last
        return last[2] - first[2], last[0] - first[0], last[1] - first[1]


def broker_settings(
    bootstrap: str, workload: str, run: str, guarantee: ProcessingGuarantee
) -> Settings:
    """Settings of one end-to-end run: its own group (so it reads from the beginning), the
    workload's input topics."""
    return load_settings(
        None,
        kafka={
            "bootstrap_servers": bootstrap,
            "group_id": f"bench-{run}",
            "session_timeout_ms": SESSION_TIMEOUT_MS,
        },
        topics={
            "predictions": f"bench-{workload}-predictions",
            "features": f"bench-{workload}-features",
            "labels": f"bench-{workload}-labels",
            "alerts": f"bench-{workload}-alerts",
            "dlq": f"bench-{workload}-dlq",
            "partitions": 1,
        },
        metrics={"host": "127.0.0.1", "port": 0},
        processing_guarantee=guarantee,
    )


def produce(
    bootstrap: str,
    topics: TopicSettings,
    stream: Stream,
    partition_of: Callable[[bytes], int] = lambda key: -1,
) -> None:
    """The stream's messages (the bytes the core reads) to their topics in event-time order,
    with Kafka timestamps that keep that order and end now; each on `partition_of(key)` (-1: the
    producer's partitioner)."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 2, "on_delivery": delivered}
    )
    last_ts = max([START_MS + len(stream.predictions), *(ts for ts, _, _ in stream.labels[-1:])])
    shift = int(time.time() * 1000) - last_ts
    names = (topics.predictions, topics.labels)
    for sent, (is_label, ts, key, value) in enumerate(stream.timeline(), start=1):
        while True:
            try:
                producer.produce(
                    names[is_label], value, key, partition=partition_of(key), timestamp=ts + shift
                )
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.1)
        if sent % GENERATE_CHUNK == 0:
            progress(f"produced {sent:,} of {len(stream):,}")
    left = producer.flush(60)
    if left or failures:
        raise RuntimeError(f"producing the workload failed: {left} undelivered, {failures[:1]}")


def service(settings: Settings, workload: str, broker: str, events: int) -> Rate:
    """Service.run until `events` are processed, timed by a Stopwatch."""
    watch = Stopwatch(events)
    Service(settings).run(until=lambda s: watch.seen(s.processed_events))
    what = f"end to end, {settings.processing_guarantee.value}"
    return Rate(workload, broker, what, *watch.seconds())


def consume_and_parse(settings: Settings, workload: str, broker: str, events: int) -> Rate:
    """The baseline: the service's consumer settings, topics and batch size, orjson.loads of
    each value."""
    consumer = Consumer(Service(settings)._consumer_config())
    consumer.subscribe(settings.topics.inputs())
    watch, seen = Stopwatch(events), 0
    try:
        while not watch.seen(seen):
            batch = consumer.consume(settings.batch_max_events, settings.batch_timeout_ms / 1000)
            for message in batch:
                value = message.value()
                if not message.error() and value is not None:  # the workload has no empty values
                    orjson.loads(value)
                    seen += 1
    finally:
        consumer.close()
    return Rate(workload, broker, BASELINE, *watch.seconds())


def end_to_end(broker: str, streams: dict[str, Stream]) -> list[Rate]:
    """Start the broker; per workload, produce its stream once, then the baseline and both
    guarantees over it."""
    name, start = BROKERS[broker]
    progress(f"starting {name}")
    rates = []
    with start() as running:
        bootstrap, suffix = running.bootstrap_servers, uuid.uuid4().hex[:6]
        for workload, stream in streams.items():
            first = broker_settings(
                bootstrap, workload, f"setup-{suffix}", ProcessingGuarantee.exactly_once
            )
            ensure_topics(
                AdminClient(first.kafka.client_config()),
                first,
                first.topics.inputs(),
                [first.topics.alerts, first.topics.dlq],
            )
            produce(bootstrap, first.topics, stream)
            for guarantee in (None, *GUARANTEES):
                run = f"{workload}-{guarantee.value if guarantee else 'baseline'}-{suffix}"
                settings = broker_settings(
                    bootstrap, workload, run, guarantee or ProcessingGuarantee.at_least_once
                )
                progress(f"{name}: {run}")
                rates.append(
                    consume_and_parse(settings, workload, name, len(stream))
                    if guarantee is None
                    else service(settings, workload, name, len(stream))
                )
                progress(f"  {rates[-1].what}: {rates[-1].per_second:,.0f} messages/s")
    return rates


def run(
    events: int,
    core_only: bool,
    workloads: Sequence[str] = tuple(WORKLOADS),
    brokers: Sequence[str] = tuple(BROKERS),
) -> str:
    """The benchmark: Markdown with one row per measurement, the ratios to the targets, and
    each workload's rates against the plain workload's."""
    logging.getLogger("detector").setLevel(logging.WARNING)
    streams = {w: generate(WORKLOADS[w], events) for w in workloads}
    rates = []
    for workload, stream in streams.items():
        rates.append(core(stream, load_settings(None), workload)[0])
        progress(f"core, {workload}: {rates[-1].per_second:,.0f} messages/s")
    for broker in () if core_only else brokers:
        rates += end_to_end(broker, streams)
    note = (
        f"Workload: one model, 20 numeric features (five families), 3 categorical, score, prediction, "
        f"latency; every default monitor on; {events:,} predictions, batches of {BATCH:,}. "
        f"{'; '.join(_describe(w, s) for w, s in streams.items())}. Events/s count every message (predictions "
        "and labels); events per CPU-s divide them by this process's CPU time."
    )
    return "\n\n".join([note, _measurements(rates), *_against_plain(rates)]) + "\n"


def _describe(workload: str, stream: Stream) -> str:
    if workload == "plain":
        return "plain: no ids"
    if workload == "ids":
        return "ids: every prediction has an id, no label comes"
    return (
        f"labels: ids, and {LABELLED:.0%} of the predictions get a label 1-10 s of event time "
        f"later on the labels topic ({len(stream.labels):,} labels)"
    )


def _measurements(rates: list[Rate]) -> str:
    baselines = {(r.workload, r.broker): r.per_second for r in rates if r.what == BASELINE}
    rows = [
        [
            r.workload,
            r.broker or "in-process",
            r.what,
            r.events,
            round(r.seconds, 2),
            round(r.per_second),
            round(r.per_cpu_second),
            _versus(r, baselines.get((r.workload, r.broker))),
        ]
        for r in rates
    ]
    headers = ["workload", "broker", "measurement", "events timed", "seconds", "events/s"]
    return table([*headers, "events per CPU-s", "against target"], rows)


def _versus(rate: Rate, baseline: float | None) -> str:
    if rate.broker is None:
        return f"{rate.per_second / 100_000:.2f}× of the 100,000/s target"
    if rate.what != BASELINE and baseline:
        return f"{rate.per_second / baseline:.2f}× of the baseline (target ≥ 0.5×)"
    return ""


def _against_plain(rates: list[Rate]) -> list[str]:
    """A table of each other workload's rates against the plain one's, if plain ran."""
    plain = {(r.broker, r.what): r for r in rates if r.workload == "plain"}
    rows = [
        [
            r.workload,
            r.broker or "in-process",
            r.what,
            f"{r.per_second / plain[r.broker, r.what].per_second:.2f}×",
            f"{r.per_cpu_second / plain[r.broker, r.what].per_cpu_second:.2f}×",
        ]
        for r in rates
        if r.workload != "plain" and (r.broker, r.what) in plain
    ]
    if not rows:
        return []
    headers = ["workload", "broker", "measurement", "events/s ÷ plain's"]
    return [table([*headers, "events per CPU-s ÷ plain's"], rows)]
