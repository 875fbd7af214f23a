"""Ground truth on the real broker: delayed labels join, concept drift is caught by the error
monitor alone, and the join buffer stays within its cap."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest

from producers.scenarios import Injection
from producers.simulate import Simulator
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    create_topics,
    produce,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.broker


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric(text: str, name: str, model: str = "m") -> float:
    match = re.search(rf'^{name}\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {model} not exported"
    return float(match.group(1))


def test_concept_drift_is_caught_by_the_error_monitor_and_not_by_feature_monitors(
    topics: KafkaNames,
) -> None:
    simulator = Simulator(
        model="fraud",
        seed=5,
        label_delay_ms=30_000,
        injections=(Injection("concept_drift", "", start=7000, magnitude=0.3),),
    )
    batch = simulator.batch(14_000)
    labels = batch.labels + simulator.drain()
    create_topics(topics.settings())
    # Stamped with their event times: labels 30 s after their predictions, not all after all of them.
    produce(topics.bootstrap, topics.predictions, batch.predictions, event_time=True)
    produce(topics.bootstrap, topics.labels, labels, event_time=True)
    with ServiceThread(topics.settings()) as detector:
        detector.wait_processed(len(batch.predictions) + len(labels))
        read_topic(topics.bootstrap, topics.alerts, expect=1, timeout_s=30)
        alerts = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))
    detected = {a["data"]["monitor"] for a in alerts if a["type"].endswith("detected")}
    assert "performance.error" in detected
    assert not {m for m in detected if m.startswith(("feature.", "quality.missing"))}, detected
    error = next(a for a in alerts if a["data"]["monitor"] == "performance.error")
    # The event that completed the join: the label, or the prediction if its label was read first.
    assert error["data"]["source"]["topic"] in (topics.labels, topics.predictions)
    assert (
        error["data"]["evidence"]["accuracy"]["after"]
        < error["data"]["evidence"]["accuracy"]["before"]
    )


def test_labels_with_random_delays_of_minutes_join(topics: KafkaNames) -> None:
    rng = np.random.default_rng(3)
    n = 6000
    predictions, labels = [], []
    for i in range(n):
        ts = 1_764_000_000_000 + i * 1000
        pred = int(rng.random() < 0.5)
        predictions.append(
            {
                "model": "m",
                "id": f"r{i}",
                "ts": ts,
                "prediction": pred,
                "score": 0.8 if pred else 0.2,
            }
        )
        delay = int(rng.uniform(60_000, 600_000))  # one to ten minutes of event time
        labels.append(
            {
                "model": "m",
                "id": f"r{i}",
                "ts": ts + delay,
                "label": pred if rng.random() < 0.85 else 1 - pred,
            }
        )
    labels.sort(key=lambda e: e["ts"])
    create_topics(topics.settings())
    produce(topics.bootstrap, topics.predictions, predictions)
    produce(topics.bootstrap, topics.labels, labels)
    # The whole backlog of predictions may be read before the model's first label: keep it all.
    with ServiceThread(topics.settings(limits={"pending_labels_before_first": n})) as detector:
        detector.wait_processed(2 * n)
        port = detector.service.metrics_port
        assert port
        # Per-model metrics refresh at checkpoints, and a fast broker delivers everything in a few
        # batches: wait for the checkpoint that records the last joins, not the first one.
        joined = f'streamdrift_label_delay_seconds_count{{model="m"}} {float(n)}'
        wait_until(lambda: joined in scrape(port), 20, "every label to join its prediction")
        text = scrape(port)
    assert 60 <= metric(text, "streamdrift_label_delay_seconds_sum") / n <= 600
    assert metric(text, "streamdrift_label_join_pending") == 0
    assert 'streamdrift_label_join_unmatched_total{model="m"' not in text
    assert 0.8 < metric(text, "streamdrift_model_accuracy") < 0.9
    # The scores claim 80%, the labels say 85%: from the version's 1,000th label on, each
    # labelled prediction is estimated (before its label is learned) at about 85%.
    assert metric(text, "streamdrift_mean_confidence") == pytest.approx(0.8)
    assert metric(text, "streamdrift_estimate_calibration_labels") == n
    assert abs(metric(text, "streamdrift_estimation_error")) < 0.03


def test_the_join_holds_its_cap_under_a_flood_and_a_model_without_labels_only_its_small_budget(
    topics: KafkaNames,
) -> None:
    """Model n has had a label, so its predictions wait up to the cap, the oldest evicted; model m
    has ids but no label ever: it keeps its first few predictions and counts no eviction."""
    produce(topics.bootstrap, topics.labels, [{"model": "n", "id": "n-first", "ts": 0, "label": 1}])
    floods = {
        name: [
            {"model": name, "id": f"{name}{i}", "ts": i, "prediction": 1, "score": 0.7}
            for i in range(20_000)
        ]
        for name in "mn"
    }
    with ServiceThread(
        topics.settings(limits={"max_pending_labels": 1000, "pending_labels_before_first": 100})
    ) as detector:
        detector.wait_processed(1)
        produce(topics.bootstrap, topics.predictions, floods["m"] + floods["n"])
        detector.wait_processed(1 + 40_000)
        port = detector.service.metrics_port
        assert port
        evicted = r'streamdrift_label_join_expired_total\{model="n",reason="cap"\} 19000\.0'
        wait_until(
            lambda: re.search(evicted, scrape(port)) is not None, 20, "19,000 evictions counted"
        )
        wait_until(
            lambda: 'streamdrift_label_join_pending{model="m"}' in scrape(port),
            20,
            "the pending gauge of m",
        )
        text = scrape(port)
    assert metric(text, "streamdrift_label_join_pending", "n") == 1000
    assert metric(text, "streamdrift_label_join_pending", "m") == 100
    assert 'streamdrift_label_join_expired_total{model="m"' not in text
    assert metric(text, "streamdrift_label_join_awaiting_first_label", "m") == 1
    assert metric(text, "streamdrift_label_join_awaiting_first_label", "n") == 0


def test_a_long_label_join_buffer_is_checkpointed_in_parts_and_restored(topics: KafkaNames) -> None:
    """Tens of thousands of predictions waiting for labels make a state record far beyond the
    broker's message limit: it is written in parts, and a restart finds every one again."""
    waiting = [
        {"model": "m", "id": f"request-{i:08d}", "ts": i, "prediction": i % 2, "score": 0.7}
        for i in range(60_000)
    ]
    produce(topics.bootstrap, topics.predictions, waiting)
    settings = topics.settings(
        limits={"max_pending_labels": 100_000, "pending_labels_before_first": 100_000}
    )
    with ServiceThread(settings) as first:
        first.wait_processed(len(waiting))
    assert first.error is None
    with ServiceThread(settings) as second:
        wait_until(
            lambda: bool(second.service.pipeline.model_count), 60, "the model's state restored"
        )
        restored = next(iter(second.service.pipeline.models()))
        assert restored.performance.pending == 60_000
        assert second.service.processed_events == 0
