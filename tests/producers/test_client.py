"""The inference client never raises into the caller, counts every loss, and delivers again after
the broker comes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from detector.kafka.embedded import EmbeddedBroker, free_loopback_port
from producers.client import DriftClient
from tests.kafka_helpers import read_topic, wait_until

UNREACHABLE = "127.0.0.1:1"


def create_topic(bootstrap: str, topic: str) -> None:
    """Create the topic with 2 partitions, as an operator would (also after the broker lost it;
    the client's own metadata requests may have auto-created it first)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics([NewTopic(topic, 2)])[topic].result(timeout=10)
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exc


@pytest.fixture
def offline() -> Iterator[DriftClient]:
    client = DriftClient(UNREACHABLE, model="fraud", max_buffered=10, message_timeout_ms=500)
    yield client
    client.close(timeout_s=0)


def test_a_full_buffer_drops_and_counts_instead_of_raising(offline: DriftClient) -> None:
    accepted = [offline.prediction({"amount": float(i)}, 0, 0.1, id=f"r-{i}") for i in range(25)]
    assert accepted == [True] * 10 + [False] * 15
    assert offline.stats.sent == 10 and offline.stats.dropped == 15


def test_events_the_broker_never_takes_are_counted_as_failed(offline: DriftClient) -> None:
    for i in range(5):
        offline.label(f"r-{i}", 1)
    wait_until(lambda: offline.stats.failed == 5, 10, "5 timed-out events")
    assert offline.stats.pending == 0


def test_unencodable_events_and_a_closed_client_are_counted(offline: DriftClient) -> None:
    assert offline.features({"blob": object()}) is False
    assert offline.stats.invalid == 1
    offline.close(timeout_s=0)
    assert offline.prediction({"amount": 1.0}) is False
    assert offline.stats.dropped == 1


@pytest.mark.broker
def test_the_client_survives_a_broker_that_goes_away_and_comes_back(tmp_path: Path) -> None:
    port = free_loopback_port()
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log").start()
    topic = "client-predictions"
    create_topic(broker.bootstrap_servers, topic)
    client = DriftClient(
        broker.bootstrap_servers,
        model="fraud",
        version="3",
        predictions_topic=topic,
        max_buffered=300,
        message_timeout_ms=60_000,
        config={"reconnect.backoff.max.ms": 200, "linger.ms": 5},
    )
    try:
        for i in range(50):
            assert client.prediction(
                {"amount": 1.5 * i, "country": "DE"}, 1, 0.9, id=f"up-{i}", latency_ms=3.0
            )
        assert client.flush(20) == 0 and client.stats.delivered == 50

        broker.kill()
        accepted = sum(
            client.prediction({"amount": 2.0}, 0, 0.2, id=f"down-{i}") for i in range(1000)
        )
        assert 0 < accepted <= 300
        assert client.stats.dropped == 1000 - accepted

        broker = EmbeddedBroker(
            port=port, log_path=tmp_path / "broker.log"
        ).start()  # empty: topics are gone
        create_topic(broker.bootstrap_servers, topic)
        wait_until(
            lambda: client.stats.delivered == 50 + accepted,
            30,
            "the events buffered during the outage",
        )
        for i in range(50):
            assert client.prediction({"amount": 3.0}, 0, 0.3, id=f"back-{i}")
        assert client.flush(30) == 0
        assert client.stats.delivered == 50 + accepted + 50 and client.stats.failed == 0

        ids = [
            orjson.loads(m.value())["id"]
            for m in read_topic(broker.bootstrap_servers, topic, expect=accepted + 50)
        ]
        assert sorted(ids) == sorted(
            [f"down-{i}" for i in range(accepted)] + [f"back-{i}" for i in range(50)]
        )
        first = read_topic(broker.bootstrap_servers, topic, expect=1)[0]
        assert first.key() == b"fraud" and orjson.loads(first.value())["version"] == "3"
    finally:
        assert client.close(timeout_s=5) == 0
        broker.stop()
