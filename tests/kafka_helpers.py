"""Helpers for tests that talk to a real broker: settings, producing events, reading topics,
running the detector in a thread or as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from detector.core.pipeline import BatchResult, Pipeline
from detector.service.service import Service
from detector.settings import Settings, load_settings

SESSION_TIMEOUT_MS = 6000  # a group join on the embedded broker waits about half of this
AUTO_CREATED_PARTITIONS = 4  # the embedded broker's partition count for a topic created on produce


@dataclass(frozen=True)
class KafkaNames:
    bootstrap: str
    suffix: str
    # The broker aborts a transaction left open by a killed producer (Apache Kafka does;
    # the embedded Tansu exposes or keeps it, see design.md), so exactly-once holds across kill -9.
    aborts_dead_transactions: bool = False

    @property
    def predictions(self) -> str:
        return f"predictions-{self.suffix}"

    @property
    def features(self) -> str:
        return f"features-{self.suffix}"

    @property
    def labels(self) -> str:
        return f"labels-{self.suffix}"

    @property
    def alerts(self) -> str:
        return f"alerts-{self.suffix}"

    @property
    def dlq(self) -> str:
        return f"dlq-{self.suffix}"

    @property
    def state(self) -> str:
        return f"state-{self.suffix}"

    @property
    def group(self) -> str:
        return f"group-{self.suffix}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a `streamdrift run` subprocess using these topics."""
        return {
            **os.environ,
            "STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMDRIFT_KAFKA__GROUP_ID": self.group,
            "STREAMDRIFT_KAFKA__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "STREAMDRIFT_TOPICS__PREDICTIONS": self.predictions,
            "STREAMDRIFT_TOPICS__FEATURES": self.features,
            "STREAMDRIFT_TOPICS__LABELS": self.labels,
            "STREAMDRIFT_TOPICS__ALERTS": self.alerts,
            "STREAMDRIFT_TOPICS__DLQ": self.dlq,
            "STREAMDRIFT_TOPICS__STATE": self.state,
            "STREAMDRIFT_METRICS__PORT": "0",
            **extra,
        }

    def settings(self, **overrides: Any) -> Settings:
        kafka = {
            "bootstrap_servers": self.bootstrap,
            "group_id": self.group,
            "session_timeout_ms": SESSION_TIMEOUT_MS,
        }
        kafka.update(overrides.pop("kafka", {}))
        names = {
            "predictions": self.predictions,
            "features": self.features,
            "labels": self.labels,
            "alerts": self.alerts,
            "dlq": self.dlq,
            "state": self.state,
        }
        names.update(overrides.pop("topics", {}))
        metrics = {"port": 0, **overrides.pop("metrics", {})}
        return load_settings(
            None, kafka=kafka, topics=names, metrics=metrics, commit_interval_ms=300, **overrides
        )


def ensure_topic(bootstrap: str, topic: str) -> None:
    """Create `topic` as the embedded broker does on a first produce (AUTO_CREATED_PARTITIONS),
    so that tests producing before the detector starts see the same topic on brokers that do
    not create topics on produce (Apache Kafka here and in docker-compose.yml)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=10).topics:
        return
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=AUTO_CREATED_PARTITIONS)], operation_timeout=10
    )[topic]
    try:
        future.result()
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | dict[str, Any]],
    key: bytes | str | None = None,
    event_time: bool = False,
) -> int:
    """Produce values (dicts are JSON-encoded; their 'model' is the key unless `key` is given).
    `event_time`: each dict's 'ts' is its message's timestamp (else the time of producing), as an
    inference service would stamp them; the detector orders the input topics by it."""
    ensure_topic(bootstrap, topic)
    # Idempotence keeps the topic in the list's order: a plain producer's retries (the topic was
    # created a moment ago, its leader may not be known yet) can reorder batches, and the tests
    # locate injected changes by offset.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    count = 0
    for value in values:
        payload = orjson.dumps(value) if isinstance(value, dict) else value
        message_key = (
            key if key is not None else (value.get("model") if isinstance(value, dict) else None)
        )
        # 0: librdkafka stamps the time of producing
        timestamp = value["ts"] if event_time and isinstance(value, dict) else 0
        while True:
            try:
                producer.produce(topic, value=payload, key=message_key, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered to {topic}"
    return count


def read_topic(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    idle_s: float = 3.0,
    timeout_s: float = 60.0,
    committed_only: bool = True,
) -> list[Message]:
    """All messages of a topic from the beginning: until `expect` are read, or nothing new came
    for `idle_s` (the embedded broker's high watermarks are not exact, so they are not used)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if expect is not None and len(messages) >= expect:
                break
            if expect is None and time.monotonic() - last_new > idle_s:
                break
            batch = consumer.consume(1000, 0.2)
            fresh = [m for m in batch if not m.error()]
            if fresh:
                messages += fresh
                last_new = time.monotonic()
        return messages
    finally:
        consumer.close()


def alerts_of(messages: Iterable[Message]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in messages]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class ServiceThread:
    """The detector in a background thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.service = Service(settings)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> ServiceThread:
        self.thread.start()
        return self

    def wait_processed(self, count: int, timeout_s: float = 60.0) -> None:
        wait_until(
            lambda: self.service.processed_events >= count or self.error is not None,
            timeout_s,
            f"{count} events processed",
        )
        if self.error:
            raise self.error

    def stop(self) -> None:
        self.service.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the detector did not stop within 30s"
        if self.error:
            raise self.error

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cli(
    args: list[str], env: dict[str, str], stderr: int | IO[bytes] = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """`streamdrift ARGS` as a subprocess (this interpreter), stderr captured (or written to a
    file, for a long run whose log would fill the pipe)."""
    return subprocess.Popen(
        [sys.executable, "-m", "detector.commands.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def create_topics(settings: Settings) -> int:
    """Create the detector's topics as it would at start; return the input partition count."""
    from confluent_kafka.admin import AdminClient

    from detector.kafka.topics import ensure_topics

    t = settings.topics
    admin = AdminClient(settings.kafka.client_config())
    return ensure_topics(admin, settings, t.inputs(), [t.alerts, t.dlq, settings.state_topic()])


COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """A group's committed offset per partition of a topic (0 where none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None:
            return {}
        wanted = [TopicPartition(topic, p) for p in metadata.partitions]
        deadline = time.monotonic() + 10
        while True:
            try:
                offsets = consumer.committed(wanted, timeout=10)
                return {tp.partition: max(tp.offset, 0) for tp in offsets}
            except (
                KafkaException
            ) as exc:  # a fresh Apache Kafka broker answers so while it loads a group's coordinator
                if exc.args[0].code() not in COORDINATOR_NOT_READY or time.monotonic() > deadline:
                    raise
                time.sleep(0.25)
    finally:
        consumer.close()


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    return sum(committed_offsets(bootstrap, group, topic).values())


def uninterrupted_run(settings: Settings, inputs: list[Message]) -> BatchResult:
    """What an uninterrupted run makes of these input messages (the pure pipeline, in
    partition order: decisions depend only on each partition's order)."""
    ordered = sorted(inputs, key=lambda m: (m.partition(), m.offset()))
    return Pipeline(settings).process(ordered)


def aligned_run(topics: KafkaNames, settings: Settings) -> BatchResult:
    """What the pure pipeline makes of the predictions and labels topics' contents, in the
    event-time order the live detector aligns them in (their messages stamped with event times;
    a prediction before a label of the same time)."""
    inputs = sorted(
        read_topic(topics.bootstrap, topics.predictions, idle_s=1)
        + read_topic(topics.bootstrap, topics.labels, idle_s=1),
        key=lambda m: (m.timestamp()[1], m.topic() != topics.predictions, m.offset()),
    )
    return Pipeline(settings).process(inputs)


def expected_alert_ids(settings: Settings, inputs: list[Message]) -> list[str]:
    """Ids of what an uninterrupted run over these input messages publishes to the alerts
    topic: alerts, and events about models (deployments, retraining recommendations)."""
    result = uninterrupted_run(settings, inputs)
    group = settings.kafka.group_id
    return [alert.id(group) for alert in result.alerts] + [
        event.id(group) for event in result.model_events
    ]


def expected_dead_letter_sources(
    settings: Settings, inputs: list[Message]
) -> list[tuple[str, int, int]]:
    """(topic, partition, offset) of each input an uninterrupted run dead-letters."""
    return [
        (letter.topic, letter.partition, letter.offset)
        for letter in uninterrupted_run(settings, inputs).dead_letters
    ]


def dead_letter_sources(messages: Iterable[Message]) -> list[tuple[str, int, int]]:
    """(topic, partition, offset) of the input each dead letter copies, from its headers."""
    sources = []
    for message in messages:
        headers = {
            name: value.decode() for name, value in message.headers() or [] if value is not None
        }
        sources.append(
            (
                headers["streamdrift.source.topic"],
                int(headers["streamdrift.source.partition"]),
                int(headers["streamdrift.source.offset"]),
            )
        )
    return sources


def interleaved(streams: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Round-robin merge of several models' event lists (as traffic of many models arrives)."""
    merged: list[dict[str, Any]] = []
    for group in zip(*streams):
        merged.extend(group)
    return merged


class PacedProducer:
    """Produces events at `rate` per second from a background thread (traffic that keeps
    arriving while the detector is killed and restarted)."""

    def __init__(
        self, bootstrap: str, topic: str, events: list[dict[str, Any]], rate: float
    ) -> None:
        self.bootstrap, self.topic, self.events, self.rate = bootstrap, topic, events, rate
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ensure_topic(self.bootstrap, self.topic)
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        started = time.monotonic()
        step = max(1, int(self.rate / 20))
        for start in range(0, len(self.events), step):
            for event in self.events[start : start + step]:
                producer.produce(self.topic, value=orjson.dumps(event), key=event["model"])
            producer.poll(0)
            self.sent = min(len(self.events), start + step)
            ahead = self.sent / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        assert producer.flush(30) == 0
        producer.close()

    def start(self) -> PacedProducer:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the producer did not finish"


def stop_gracefully(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> str:
    """SIGTERM a `streamdrift run` subprocess, require exit code 0, return its stderr."""
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=timeout_s) == 0, f"exit code {process.returncode}"
    finally:
        process.kill()
    return process.stderr.read().decode() if process.stderr else ""
