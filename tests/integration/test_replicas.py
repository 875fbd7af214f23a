"""Scale-out: two detector processes in one group share the partitions; each model is watched by
exactly one of them at a time; when one dies its partitions and state move to the other, and
the alerts are those one uninterrupted process would publish."""

from __future__ import annotations

import logging
import re
import signal
import urllib.request
from collections import Counter

import orjson
import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient, ConsumerGroupDescription

from detector.kafka.embedded import free_loopback_port
from producers.simulate import Injection, Simulator
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    committed_offsets,
    committed_total,
    create_topics,
    expected_alert_ids,
    interleaved,
    produce,
    read_topic,
    start_cli,
    wait_until,
)

pytestmark = pytest.mark.broker

PARTITIONS = 4
MODELS = 16
EVENTS_PER_MODEL = 6000
# A model's gauges are on the replica that owns it: restored ones too, from the assignment on.
MODEL_LINE = re.compile(r'^streamdrift_drift_active\{model="([^"]+)"', re.MULTILINE)


def scrape(port: int, path: str) -> bytes:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.read()
    except OSError as error:
        return getattr(error, "read", lambda: b"")()


def models_on(port: int) -> set[str]:
    return set(MODEL_LINE.findall(scrape(port, "/metrics").decode()))


def partitions_of(port: int) -> set[int]:
    body = scrape(port, "/readyz")
    return set(orjson.loads(body)["partitions"]) if body else set()


def traffic(
    models: int, events_per_model: int, first_drift: int, stagger: int, length: int
) -> list[dict]:
    """Models with a drift of `length` events, the first `first_drift` events in, each next
    one `stagger` later; interleaved as they arrive."""
    return interleaved(
        [
            Simulator(
                model=f"m{i:02d}",
                seed=i,
                injections=(
                    Injection(
                        "mean_shift", "amount", start=first_drift + stagger * i, length=length
                    ),
                ),
            ).events(events_per_model)
            for i in range(models)
        ]
    )


# The consumer group protocol (KIP-848) needs the broker's ConsumerGroupHeartbeat (Apache Kafka
# 4.0+): Tansu has none, and a member never joins there.
GROUP_PROTOCOLS = ["classic", pytest.param("consumer", marks=pytest.mark.apache_kafka)]


@pytest.mark.parametrize("group_protocol", GROUP_PROTOCOLS)
def test_two_replicas_share_partitions_and_take_over_state(
    topics: KafkaNames, group_protocol: str
) -> None:
    settings = topics.settings(topics={"partitions": PARTITIONS})
    assert create_topics(settings) == PARTITIONS
    events = traffic(MODELS, EVENTS_PER_MODEL, first_drift=1500, stagger=150, length=2500)
    half = len(events) // 2
    produce(topics.bootstrap, topics.predictions, events[:half])

    ports = {"a": free_loopback_port(), "b": free_loopback_port()}
    replicas = {
        name: start_cli(
            ["run"],
            topics.env(
                STREAMDRIFT_TOPICS__PARTITIONS=str(PARTITIONS),
                STREAMDRIFT_METRICS__PORT=str(port),
                STREAMDRIFT_KAFKA__TRANSACTIONAL_ID=f"tx-{topics.suffix}-{name}",
                STREAMDRIFT_COMMIT_INTERVAL_MS="300",
                STREAMDRIFT_KAFKA__GROUP_PROTOCOL=group_protocol,
            ),
        )
        for name, port in ports.items()
    }
    try:
        overlaps: list[set[str]] = []

        def settled() -> bool:
            overlaps.append(models_on(ports["a"]) & models_on(ports["b"]))
            return committed_total(topics.bootstrap, topics.group, topics.predictions) >= half

        wait_until(settled, 120, "both replicas to process the first half")

        def shared() -> bool:
            """Both replicas hold partitions between them, and both have restored their models
            (one may take the whole first half before the other has joined, and a replica
            restores its partitions' state in its loop after the assignment)."""
            on_a, on_b = partitions_of(ports["a"]), partitions_of(ports["b"])
            split = bool(on_a and on_b) and on_a | on_b == set(range(PARTITIONS))
            return split and bool(models_on(ports["a"])) and bool(models_on(ports["b"]))

        wait_until(shared, 60, "both replicas to share the partitions")
        on_a, on_b = partitions_of(ports["a"]), partitions_of(ports["b"])
        assert on_a and on_b and not on_a & on_b, f"partitions a={on_a} b={on_b}"
        description = group_description(topics.bootstrap, topics.group)
        assert (description.type, description.partition_assignor) == (
            {"classic": ConsumerGroupType.CLASSIC, "consumer": ConsumerGroupType.CONSUMER}[
                group_protocol
            ],
            "range",
        )
        models_a, models_b = models_on(ports["a"]), models_on(ports["b"])
        assert models_a and models_b and not models_a & models_b
        assert not any(overlaps), (
            f"a model was monitored by both replicas at once: {[o for o in overlaps if o][:3]}"
        )

        handover = committed_offsets(topics.bootstrap, topics.group, topics.predictions)
        replicas["a"].send_signal(signal.SIGKILL)  # idle: its last transaction is committed
        replicas["a"].wait()
        produce(topics.bootstrap, topics.predictions, events[half:])
        wait_until(
            lambda: partitions_of(ports["b"]) == set(range(PARTITIONS)),
            60,
            "the survivor to own every partition",
        )
        wait_until(
            lambda: (
                committed_total(topics.bootstrap, topics.group, topics.predictions) >= len(events)
            ),
            120,
            "the survivor to finish",
        )
        assert models_a <= models_on(ports["b"]), (
            "the survivor does not monitor the dead replica's models"
        )
        replicas["b"].send_signal(signal.SIGTERM)
        assert replicas["b"].wait(timeout=30) == 0
    finally:
        for process in replicas.values():
            if process.poll() is None:
                process.kill()

    expected = expected_alert_ids(
        settings, read_topic(topics.bootstrap, topics.predictions, expect=len(events))
    )
    seen = Counter(
        a["id"] for a in alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=3))
    )
    assert set(seen) == set(expected), (
        f"missing {len(set(expected) - set(seen))}, unexpected {len(set(seen) - set(expected))}"
    )
    assert max(seen.values()) == 1
    # State moved with the partitions: the dead replica's models raised alerts after the handover
    # at the same events as one process would (with lost state, warm-up would restart and shift them).
    late = [
        a
        for a in alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=1))
        if a["data"]["model"] in models_a
        and a["data"]["source"]["offset"] >= handover[a["data"]["source"]["partition"]]
    ]
    assert late, "no alert of the dead replica's models after the handover"


def group_description(bootstrap: str, group: str) -> ConsumerGroupDescription:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result()


class ServiceLog(logging.Handler):
    """The messages the detector's service logs while in use."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> ServiceLog:
        logging.getLogger("detector.service").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("detector.service").removeHandler(self)


@pytest.mark.parametrize("group_protocol", GROUP_PROTOCOLS)
def test_a_restore_slower_than_the_poll_interval_keeps_the_member_in_its_group(
    topics: KafkaNames, group_protocol: str
) -> None:
    """A replica restores for several times kafka.max_poll_interval_ms (each state record read
    is slowed by the fault hook) while a second replica joins. The restore runs in the loop, not
    in the rebalance callback: the group's rebalance goes through, the slow member is never
    dropped from the group (its partitions are revoked, never lost), and the alerts are those of
    one uninterrupted process."""
    settings = topics.settings(topics={"partitions": PARTITIONS})
    assert create_topics(settings) == PARTITIONS
    events = traffic(8, 4000, first_drift=2000, stagger=100, length=2000)
    half = len(events) // 2
    produce(topics.bootstrap, topics.predictions, events[:half])
    with ServiceThread(settings) as first:  # leaves checkpoints of every partition
        first.wait_processed(half)
    records = len(read_topic(topics.bootstrap, topics.state, idle_s=2))
    produce(topics.bootstrap, topics.predictions, events[half:])

    poll_interval_ms = 10_000
    kafka = {"max_poll_interval_ms": poll_interval_ms, "group_protocol": group_protocol}
    slow = ServiceThread(
        topics.settings(
            topics={"partitions": PARTITIONS},
            kafka={**kafka, "transactional_id": f"tx-{topics.suffix}-slow"},
            # the whole state read takes three poll intervals
            fault_injection={"restore_delay_ms": 3 * poll_interval_ms // records + 1},
        )
    )
    other = ServiceThread(
        topics.settings(
            topics={"partitions": PARTITIONS},
            kafka={**kafka, "transactional_id": f"tx-{topics.suffix}-other"},
        )
    )
    with ServiceLog() as service_log:
        slow.start()
        try:
            wait_until(lambda: slow.service.restorer.restoring, 60, "the slow replica to restore")
            other.start()
            try:
                wait_until(
                    lambda: bool(other.service.owned) and slow.service.restorer.restoring,
                    60,
                    "the other replica to get partitions while the slow one restores",
                )
                wait_until(
                    lambda: (
                        committed_total(topics.bootstrap, topics.group, topics.predictions)
                        >= len(events)
                    ),
                    180,
                    "both replicas to finish",
                )
                assert slow.service.owned and other.service.owned
                description = group_description(topics.bootstrap, topics.group)
                assert len(description.members) == 2
            finally:
                other.stop()
        finally:
            slow.stop()
    lost = [line for line in service_log.lines if line.startswith("lost input partitions")]
    assert not lost, f"a replica was dropped from its group: {lost}"
    expected = expected_alert_ids(
        settings, read_topic(topics.bootstrap, topics.predictions, expect=len(events))
    )
    seen = Counter(
        a["id"] for a in alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=3))
    )
    assert set(seen) == set(expected) and max(seen.values()) == 1
