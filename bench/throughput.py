"""Throughput in one run: the detector core in-process, end to end through the embedded broker
(exactly_once and at_least_once), and a baseline that only consumes and parses the same
messages with the same consumer settings.

* core: `Pipeline.process` over pre-serialized messages in batches of 5,000 (the service's
  default batch); the first batch (all of warm-up) is not timed.
* end to end: N events are produced to the input topic first; then `Service.run` is timed from
  the end of its first batch to the batch that completes the N-th event, and the events of the
  batches after the first are divided by that time. The baseline is timed the same way.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from bench.report import progress, table
from bench.workload import Workload, messages, standard_features
from detector.core.alerts import Alert
from detector.core.pipeline import GC_THRESHOLDS, Pipeline
from detector.kafka.embedded import EmbeddedBroker
from detector.kafka.topics import ensure_topics
from detector.service.service import Service
from detector.settings import ProcessingGuarantee, Settings, load_settings
from producers.sinks import KafkaSink
from producers.stream import Batch

BATCH = 5000
SESSION_TIMEOUT_MS = 6000  # a group join on the embedded broker waits about half of this
GENERATE_CHUNK = 50_000


@dataclass(frozen=True)
class Rate:
    """Events per second over a timed stretch."""

    what: str
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


# One model, 20 numeric and 3 categorical features, as the issue specifies: no ids, so no label join.
WORKLOAD = Workload(standard_features(), ids=False)


def generate(workload: Workload, events: int) -> list[tuple[bytes, bytes]]:
    """The workload's first `events` records (key, value)."""
    records: list[tuple[bytes, bytes]] = []
    for start in range(0, events, GENERATE_CHUNK):
        records += workload.records(start, min(GENERATE_CHUNK, events - start))
        progress(f"generated {len(records):,} of {events:,} events")
    return records


def core(records: list[tuple[bytes, bytes]], settings: Settings) -> tuple[Rate, list[Alert]]:
    """Pipeline.process over pre-serialized messages in batches of BATCH (the first untimed),
    with the service's collector settings; the rate and every alert raised."""
    batches = [
        messages(records[i : i + BATCH], settings.topics.predictions, i)
        for i in range(0, len(records), BATCH)
    ]
    gc.set_threshold(*GC_THRESHOLDS)
    pipeline = Pipeline(settings)
    alerts = pipeline.process(batches[0]).alerts
    started = time.perf_counter()
    for done, batch in enumerate(batches[1:], start=1):
        alerts += pipeline.process(batch).alerts
        if done % 20 == 0:
            progress(f"core: {done * BATCH:,} of {len(records):,} events")
    return Rate(
        "detector core, in-process", sum(len(b) for b in batches[1:]), time.perf_counter() - started
    ), alerts


class Stopwatch:
    """Times a consumer from the end of its first batch to the batch that reaches `target` events."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.first: tuple[float, int] | None = None  # (time, events) at the end of the first batch
        self.last: tuple[float, int] | None = None

    def seen(self, events: int) -> bool:
        """Record progress; True once the target is reached."""
        if events and self.first is None:
            self.first = (time.perf_counter(), events)
        if events >= self.target and self.last is None:
            self.last = (time.perf_counter(), events)
        return self.last is not None

    def rate(self, what: str) -> Rate:
        assert self.first is not None and self.last is not None, (
            "the consumer stopped before the target"
        )
        return Rate(what, self.last[1] - self.first[1], self.last[0] - self.first[0])


def broker_settings(bootstrap: str, run: str, guarantee: ProcessingGuarantee) -> Settings:
    """Settings of one end-to-end run: its own group (so it reads from the beginning), shared input."""
    return load_settings(
        None,
        kafka={
            "bootstrap_servers": bootstrap,
            "group_id": f"bench-{run}",
            "session_timeout_ms": SESSION_TIMEOUT_MS,
        },
        topics={
            "predictions": "bench-predictions",
            "features": "bench-features",
            "alerts": "bench-alerts",
            "dlq": "bench-dlq",
            "partitions": 1,
        },
        metrics={"host": "127.0.0.1", "port": 0},
        processing_guarantee=guarantee,
    )


def produce(bootstrap: str, topic: str, workload: Workload, events: int) -> None:
    """The workload's events to `topic` through the simulator's Kafka sink, chunked as `generate`
    chunks them (so the messages are the same bytes)."""
    sink = KafkaSink({"bootstrap.servers": bootstrap}, topic, None)
    for start in range(0, events, GENERATE_CHUNK):
        sink.write(Batch(list(workload.events(start, min(GENERATE_CHUNK, events - start))), []))
        progress(f"produced {min(events, start + GENERATE_CHUNK):,} of {events:,}")
    sink.close(60.0)


def service(settings: Settings, events: int) -> Rate:
    """Service.run until `events` are processed, timed by a Stopwatch."""
    watch = Stopwatch(events)
    Service(settings).run(until=lambda s: watch.seen(s.processed_events))
    return watch.rate(f"end to end, {settings.processing_guarantee.value}")


def consume_and_parse(settings: Settings, events: int) -> Rate:
    """The baseline: the service's consumer settings and batch size, orjson.loads of each value."""
    consumer = Consumer(Service(settings)._consumer_config())
    consumer.subscribe([settings.topics.predictions])
    watch, seen = Stopwatch(events), 0
    try:
        while not watch.seen(seen):
            batch = consumer.consume(settings.batch_max_events, settings.batch_timeout_ms / 1000)
            for message in batch:
                if not message.error():
                    orjson.loads(message.value())
                    seen += 1
    finally:
        consumer.close()
    return watch.rate("baseline: consume + orjson.loads")


def end_to_end(records: list[tuple[bytes, bytes]]) -> list[Rate]:
    """Produce the records once, then the baseline and both guarantees over them."""
    with EmbeddedBroker() as broker:
        suffix = uuid.uuid4().hex[:6]
        first = broker_settings(
            broker.bootstrap_servers, f"setup-{suffix}", ProcessingGuarantee.exactly_once
        )
        ensure_topics(
            AdminClient(first.kafka.client_config()),
            first,
            first.topics.inputs(),
            [first.topics.alerts, first.topics.dlq],
        )
        produce(broker.bootstrap_servers, first.topics.predictions, WORKLOAD, len(records))
        rates = []
        for guarantee in (
            None,
            ProcessingGuarantee.exactly_once,
            ProcessingGuarantee.at_least_once,
        ):
            run = f"{guarantee.value if guarantee else 'baseline'}-{suffix}"
            settings = broker_settings(
                broker.bootstrap_servers, run, guarantee or ProcessingGuarantee.at_least_once
            )
            progress(f"end to end: {run}")
            rates.append(
                consume_and_parse(settings, len(records))
                if guarantee is None
                else service(settings, len(records))
            )
            progress(f"  {rates[-1].what}: {rates[-1].per_second:,.0f} events/s")
        return rates


def run(events: int, core_only: bool) -> str:
    """The benchmark: Markdown with one row per measurement and the ratios to the targets."""
    logging.getLogger("detector").setLevel(logging.WARNING)
    records = generate(WORKLOAD, events)
    rates = [core(records, load_settings(None))[0]]
    progress(f"core: {rates[0].per_second:,.0f} events/s")
    if not core_only:
        rates += end_to_end(records)
    baseline = next((r.per_second for r in rates if r.what.startswith("baseline")), None)
    rows = [
        [r.what, r.events, round(r.seconds, 2), round(r.per_second), _versus(r, baseline)]
        for r in rates
    ]
    note = (
        f"Workload: one model, 20 numeric features (five families), 3 categorical, score, prediction, "
        f"latency; every default monitor on; {events:,} events, batches of {BATCH:,}."
    )
    return (
        note
        + "\n\n"
        + table(["measurement", "events timed", "seconds", "events/s", "against target"], rows)
    )


def _versus(rate: Rate, baseline: float | None) -> str:
    if rate.what.startswith("detector core"):
        return f"{rate.per_second / 100_000:.2f}× of the 100,000/s target"
    if rate.what.startswith("end to end") and baseline:
        return f"{rate.per_second / baseline:.2f}× of the baseline (target ≥ 0.5×)"
    return ""
