"""Model versions on the real broker: a stream that switches versions publishes one
io.streamdrift.model.deployed, with the id the pure pipeline gives it, and no output drift alert
comes from the switch itself."""

from __future__ import annotations

import time

import pytest

from producers.scenarios import Deployment
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

OUTPUTS = ("prediction.score", "prediction.value", "performance.")


def test_a_version_switch_is_a_deployment_not_an_output_drift(topics: KafkaNames) -> None:
    # Version 2 turns half its predictions: against version 1's reference, every output monitor
    # would alert at the switch.
    # Event times of the last minutes: the broker's retention (7 days by message time) would
    # delete a simulated history of 2025 at its next check, mid-test.
    simulator = Simulator(
        model="fraud",
        start_ms=int(time.time() * 1000) - 600_000,
        seed=5,
        label_delay_ms=5000,
        deployments=(Deployment("2", 8000, quality="worse", magnitude=0.5),),
    )
    batch = simulator.batch(16_000)
    labels = batch.labels + simulator.drain()
    settings = topics.settings()
    create_topics(settings)
    produce(topics.bootstrap, topics.predictions, batch.predictions, event_time=True)
    produce(topics.bootstrap, topics.labels, labels, event_time=True)
    with ServiceThread(settings) as detector:
        detector.wait_processed(len(batch.predictions) + len(labels))
        registry = detector.service.registry
        wait_until(
            lambda: (
                registry.get_sample_value(
                    "streamdrift_version_live", {"model": "fraud", "version": "2"}
                )
                == 1
            ),
            30,
            "a checkpoint exporting the live versions",
        )
        assert registry.get_sample_value("streamdrift_deployments_total", {"model": "fraud"}) == 1
    events = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))

    deployed = [e for e in events if e["type"] == "io.streamdrift.model.deployed"]
    assert len(deployed) == 1
    data = deployed[0]["data"]
    assert (data["model"], data["previous_version"], data["version"]) == ("fraud", "1", "2")
    assert data["source"]["topic"] == topics.predictions and data["source"]["offset"] == 8000
    drifts = [e for e in events if e["type"].startswith("io.streamdrift.drift.")]
    assert not [
        e["data"]["monitor"]
        for e in drifts
        if e["type"].endswith("detected") and e["data"]["monitor"].startswith(OUTPUTS)
    ]
    # The same events, ids and all, as the pure pipeline makes of the topics' contents.
    group = settings.kafka.group_id
    expected = aligned_run(topics, settings)
    assert [e.id(group) for e in expected.deployments] == [deployed[0]["id"]]
    assert sorted(e["id"] for e in events) == sorted(
        [a.id(group) for a in expected.alerts] + [e.id(group) for e in expected.model_events]
    )
