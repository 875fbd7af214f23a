"""Models that flood, fail or leave, on a real broker: none of them can blind the monitoring of
the others, and none survives a restart it should not."""

from __future__ import annotations

from collections import Counter

import pytest

from producers.simulate import Injection, Simulator
from tests.fakes import failing_observe
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    produce,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.broker


def sample(registry: object, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)  # type: ignore[attr-defined]


def test_a_flood_of_model_names_locks_out_no_real_model_and_is_not_restored(
    topics: KafkaNames,
) -> None:
    """The user's report: 5,000 junk names filled the model cap for good, a real new model was
    dead-lettered as model_cap, and a restart restored the junk. Here, 600 junk names against a
    cap of 20 (one key, so that every name competes for the cap on one partition)."""
    settings = topics.settings(limits={"max_models": 20}, detection={"warmup_events": 50})
    real = [
        {"model": f"real{j}", "score": 0.5, "features": {"x": float(i % 7)}}
        for i in range(100)
        for j in range(2)
    ]
    flood = [{"model": f"junk-{i}", "score": 0.5} for i in range(600)]
    fresh = [{"model": "fresh", "score": 0.5, "features": {"x": 1.0}} for _ in range(60)]
    produced = produce(
        topics.bootstrap, topics.predictions, real + flood + fresh, key=b"same-partition"
    )
    with ServiceThread(settings) as detector:
        detector.wait_processed(produced)
        registry = detector.service.registry
        # Held events are observed before a checkpoint, which may come after the last event
        # processed: wait for the last model's last event, not for a checkpoint.
        wait_until(
            lambda: (
                sample(
                    registry, "streamdrift_events_total", topic=topics.predictions, model="fresh"
                )
                == 59
            ),  # from its second event
            30,
            "the fresh model's 59 events observed",
        )
        assert (
            sample(
                registry,
                "streamdrift_events_invalid_total",
                topic=topics.predictions,
                reason="model_cap",
            )
            == 600 - 18 + 1
        )
        assert sample(registry, "streamdrift_models_evicted_total", reason="cap") == 1
        assert (
            sample(registry, "streamdrift_events_total", topic=topics.predictions, model="junk-0")
            is None
        )  # series gone
        before = {m.name: m.events_seen for m in detector.service.pipeline.models()}
    assert {"real0", "real1", "fresh"} <= before.keys() and len(before) == 20

    with ServiceThread(settings) as restarted:
        wait_until(
            restarted.service.is_ready,
            60,
            "the restarted detector to restore and be ready",
        )
        after = {m.name: m.events_seen for m in restarted.service.pipeline.models()}
    assert after == before  # the evicted names stay gone; the real models keep what they learned
    assert (after["real0"], after["fresh"]) == (100, 59) and "junk-0" not in after


def test_a_model_whose_monitors_fail_is_contained_and_the_others_go_on(
    topics: KafkaNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_observe(monkeypatch, "fragile", ValueError("state from a bad restore"))
    drifty = Simulator(
        model="drifty", seed=1, injections=(Injection("mean_shift", "amount", start=5000),)
    ).events(8000)
    fragile = [{"model": "fragile", "score": 0.5} for _ in range(300)]
    produced = produce(topics.bootstrap, topics.predictions, drifty + fragile)
    with ServiceThread(topics.settings()) as detector:
        detector.wait_processed(produced)
        letters = read_topic(topics.bootstrap, topics.dlq, expect=300, timeout_s=30)
        alerts = alerts_of(read_topic(topics.bootstrap, topics.alerts, expect=1, timeout_s=30))
        errors = sample(
            detector.service.registry,
            "streamdrift_model_errors_total",
            model="fragile",
            stage="process",
        )
        invalid = sample(
            detector.service.registry,
            "streamdrift_events_invalid_total",
            topic=topics.predictions,
            reason="processing_error",
        )
    assert Counter(dict(m.headers())["streamdrift.reason"] for m in letters) == {
        b"processing_error": 300
    }
    assert (
        b"ValueError: state from a bad restore" in dict(letters[0].headers())["streamdrift.detail"]
    )
    assert invalid == 300 and errors is not None and errors >= 1
    assert any(
        a["data"]["model"] == "drifty" and a["data"]["monitor"] == "feature.amount" for a in alerts
    )
