"""`streamdrift backtest` over topics of a real broker: the same alerts as the live service, the
live group untouched, offset and time bounds, and partitions merged by timestamp."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from detector.backtest.topics import Range, TopicSource
from detector.kafka.topics import ensure_topics
from producers.scenarios import Deployment
from producers.simulate import Injection, Simulator
from tests.backtest.conftest import Backtest
from tests.backtest.support import alert_ids, detections
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    committed_offsets,
    create_topics,
    interleaved,
    produce,
    read_topic,
)

pytestmark = pytest.mark.broker

START_MS = 1_764_064_800_000


@pytest.fixture
def environment(topics: KafkaNames, monkeypatch: pytest.MonkeyPatch) -> KafkaNames:
    """The backtest command configured like the live service of this test (same group, same topics)."""
    for name, value in topics.env().items():
        if name.startswith("STREAMDRIFT_"):
            monkeypatch.setenv(name, value)
    return topics


def test_the_live_service_and_the_backtest_raise_the_same_alerts(
    environment: KafkaNames, backtest: Backtest, tmp_path: Path
) -> None:
    topics = environment
    settings = topics.settings()
    create_topics(settings)
    streams = [
        Simulator(model="a", seed=1, injections=(Injection("mean_shift", "amount", start=4000),)),
        Simulator(
            model="b", seed=2, injections=(Injection("category_mix", "country", start=5000),)
        ),
    ]
    produced = produce(
        topics.bootstrap,
        topics.predictions,
        interleaved([stream.events(8000) for stream in streams]),
    )
    truth = tmp_path / "truth.json"
    truth.write_bytes(
        orjson.dumps([{"model": s.model, "injections": s.ground_truth()} for s in streams])
    )
    with ServiceThread(settings) as live:
        live.wait_processed(produced)
    committed = committed_offsets(topics.bootstrap, topics.group, topics.predictions)

    code, out, err = backtest("--truth", truth, "--json")

    assert code == 0, err
    result = orjson.loads(out)
    replayed = [alert["cloudevent"] for alert in result["runs"][0]["alerts"]]
    published = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))
    assert replayed and comparable(replayed) == comparable(published)
    assert sorted(alert_ids(result)) == sorted(e["id"] for e in published)
    found = detections(result)
    assert 4000 <= found["a/feature.amount"][0] < 4300
    assert 5000 <= found["b/feature.country"][0] < 5300
    assert (result["runs"][0]["score"]["detected"], result["runs"][0]["score"]["missed"]) == (2, 0)
    # the live group is untouched
    assert committed_offsets(topics.bootstrap, topics.group, topics.predictions) == committed


def test_the_backtest_publishes_the_same_deployments_and_comparisons_as_the_live_service(
    environment: KafkaNames, backtest: Backtest
) -> None:
    topics = environment
    settings = topics.settings()
    create_topics(settings)
    # Event times of the last minutes: the broker's retention (7 days by message time) would
    # delete a simulated history of 2025 at its next check, mid-test.
    simulator = Simulator(
        model="a",
        start_ms=int(time.time() * 1000) - 600_000,
        seed=1,
        label_delay_ms=5000,
        deployments=(Deployment("2", 3000, share=0.3, quality="worse"), Deployment("3", 9000)),
    )
    batch = simulator.batch(14_000)
    labels = batch.labels + simulator.drain()
    produce(topics.bootstrap, topics.predictions, batch.predictions, event_time=True)
    produce(topics.bootstrap, topics.labels, labels, event_time=True)
    with ServiceThread(settings) as live:
        live.wait_processed(len(batch.predictions) + len(labels))

    code, out, err = backtest("--json")

    assert code == 0, err
    run = orjson.loads(out)["runs"][0]
    replayed = [e["cloudevent"] for e in run["alerts"] + run["model_events"]]
    published = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))
    types = {e["type"] for e in published}
    assert {"io.streamdrift.model.deployed", "io.streamdrift.version.compared"} <= types
    assert comparable(replayed) == comparable(published)  # field for field, evidence included


def comparable(events: list[dict[str, Any]]) -> list[Any]:
    """Alert events by id: they must be identical, evidence included, wherever batches end."""
    return sorted(events, key=lambda e: e["id"])


def _produce_timed(topics: KafkaNames, count: int) -> None:
    """`count` predictions and their labels, 10 ms apart, each label 5 ms after its prediction."""
    producer = Producer({"bootstrap.servers": topics.bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(
            topics.predictions,
            orjson.dumps({"model": "m", "id": str(i), "score": 0.5}),
            b"m",
            timestamp=START_MS + 10 * i,
        )
    for i in range(count):
        producer.produce(
            topics.labels,
            orjson.dumps({"model": "m", "id": str(i), "label": 1}),
            b"m",
            timestamp=START_MS + 10 * i + 5,
        )
    assert producer.flush(30) == 0


def test_partitions_are_merged_by_timestamp_and_bounded_by_offsets_and_times(
    environment: KafkaNames, backtest: Backtest
) -> None:
    topics = environment
    settings = topics.settings()
    ensure_topics(
        AdminClient(settings.kafka.client_config()),
        settings,
        [topics.predictions, topics.features, topics.labels],
        [],
    )
    _produce_timed(topics, 300)

    merged = [m for batch in TopicSource(settings, Range()).batches(64) for m in batch.messages]

    assert len(merged) == 600
    assert [m.topic() for m in merged[:4]] == [topics.predictions, topics.labels] * 2
    assert [m.timestamp()[1] for m in merged] == sorted(m.timestamp()[1] for m in merged)

    def replayed(*bounds: str) -> dict[str, int]:
        code, out, err = backtest(*bounds, "--json")
        assert code == 0, err
        return orjson.loads(out)["events_by_topic"]

    everything = {topics.predictions: 300, topics.labels: 300}
    assert replayed() == everything
    assert replayed("--from-offset", "50", "--to-offset", "80") == {
        topics.predictions: 30,
        topics.labels: 30,
    }
    assert replayed("--from-time", str(START_MS + 1000), "--to-time", "2025-11-25T10:00:02Z") == {
        topics.predictions: 100,
        topics.labels: 100,
    }


def test_a_missing_topic_set_is_a_clear_failure(
    environment: KafkaNames, backtest: Backtest
) -> None:
    code, out, err = backtest("--json")

    assert code == 1
    assert out == ""
    assert f"none of the topics {environment.predictions}" in err and environment.bootstrap in err
