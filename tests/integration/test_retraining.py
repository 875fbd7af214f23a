"""Retraining on the real broker: a concept drift, a recommendation, a retrained version and its
outcome, published by the live service with the ids the pure pipeline gives them, and counted."""

from __future__ import annotations

import time

import pytest

from detector.core.alerts import DEPLOYED, OUTCOME, RECOMMENDED
from producers.scenarios import Deployment, Injection
from producers.simulate import Simulator
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    aligned_run,
    create_topics,
    produce,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.broker


def test_the_live_service_recommends_retraining_and_judges_the_next_version(
    topics: KafkaNames,
) -> None:
    # Event times of the last minutes: the broker's retention would delete an older history.
    simulator = Simulator(
        model="fraud",
        start_ms=int(time.time() * 1000) - 600_000,
        seed=5,
        label_delay_ms=5000,
        injections=(Injection("concept_drift", "", start=4000, magnitude=0.4),),
        deployments=(Deployment("2", 12_000, quality="fixed"),),
    )
    batch = simulator.batch(18_000)
    labels = batch.labels + simulator.drain()
    settings = topics.settings()
    create_topics(settings)
    produce(topics.bootstrap, topics.predictions, batch.predictions, event_time=True)
    produce(topics.bootstrap, topics.labels, labels, event_time=True)
    with ServiceThread(settings) as detector:
        detector.wait_processed(len(batch.predictions) + len(labels))
        registry = detector.service.registry

        def counted(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"model": "fraud", **labels})

        wait_until(
            lambda: counted("streamdrift_retrain_recovered_total") == 1,
            30,
            "the outcome counted",
        )
        assert counted("streamdrift_retrain_recommendations_total", reason="performance_drop") == 1
    events = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))

    retraining = [e for e in events if e["type"] in (RECOMMENDED, DEPLOYED, OUTCOME)]
    assert [e["type"] for e in retraining] == [RECOMMENDED, DEPLOYED, OUTCOME]
    recommended, _, outcome = (e["data"] for e in retraining)
    assert recommended["reason"] == "performance_drop" and recommended["version"] == "1"
    assert recommended["retrain_data"]["topic"] == topics.labels
    assert (outcome["version"], outcome["outcome"]) == ("2", "recovered")
    # The same events, ids and all, as the pure pipeline makes of the topics' contents.
    expected = aligned_run(topics, settings)
    group = settings.kafka.group_id
    assert sorted(e["id"] for e in events) == sorted(
        [a.id(group) for a in expected.alerts] + [e.id(group) for e in expected.model_events]
    )
