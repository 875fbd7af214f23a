"""On the real broker: a labels topic that the consumer reads far behind the predictions topic
(both already on the broker) does not make predictions mature "without label": the inputs of
a partition are processed in event-time order, so the service decides as the pure pipeline
fed the same messages merged by timestamp (the backtest's order)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from detector.core.pipeline import Pipeline
from tests.fakes import FakeMessage
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    create_topics,
    produce,
    read_topic,
)

pytestmark = pytest.mark.broker

EVENTS = 8000
LABEL_DELAY_EVENTS = 500
START_MS = 1_764_000_000_000
STEP_MS = 1000
SLOW_FROM = 3000  # labels of later predictions are padded: each fetch carries only a few of them
PADDING = "x" * 4000
# Per fetch, a partition returns at most this much: about 80 predictions but only 2 padded labels,
# so once the padded labels begin, the predictions are read thousands of events ahead of them.
FETCH_BYTES = 8192


def traffic() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions and their labels, 500 events later; the model's accuracy falls from 90% to
    65% halfway (a drift the error monitor must catch)."""
    rng = np.random.default_rng(11)
    predictions, labels = [], []
    for i in range(EVENTS):
        ts = START_MS + i * STEP_MS
        prediction = int(rng.random() < 0.3)
        predictions.append(
            {
                "model": "m",
                "id": f"r{i}",
                "ts": ts,
                "prediction": prediction,
                "score": 0.8 if prediction else 0.2,
            }
        )
        right = rng.random() < (0.9 if i < EVENTS // 2 else 0.65)
        label = {
            "model": "m",
            "id": f"r{i}",
            "ts": ts + LABEL_DELAY_EVENTS * STEP_MS,
            "label": prediction if right else 1 - prediction,
        }
        if i >= SLOW_FROM:
            label["note"] = PADDING
        labels.append(label)
    return predictions, labels


def merged_by_timestamp(
    topics: KafkaNames,
    partition: int,
    predictions: list[dict[str, Any]],
    labels: list[dict[str, Any]],
) -> list[FakeMessage]:
    """The messages as the backtest reads them: by timestamp, ties by topic (predictions first)."""
    keyed = [
        (event["ts"], 0, offset, topics.predictions, event)
        for offset, event in enumerate(predictions)
    ]
    keyed += [(event["ts"], 2, offset, topics.labels, event) for offset, event in enumerate(labels)]
    keyed.sort(key=lambda k: k[:3])
    return [
        FakeMessage(topic, partition, offset, orjson.dumps(event), b"m", timestamp_ms=ts)
        for ts, _, offset, topic, event in keyed
    ]


def test_labels_read_behind_their_predictions_are_joined_as_in_timestamp_order(
    topics: KafkaNames,
) -> None:
    predictions, labels = traffic()
    # Events a second apart: a week of them fits in season_max_warmup_events, so the error rate
    # would learn its cycle unwatched for a week; this test is about the join's order.
    settings = topics.settings(
        kafka={"properties": {"max.partition.fetch.bytes": FETCH_BYTES}},
        detection={"season_max_warmup_events": 0},
    )
    create_topics(settings)
    produce(topics.bootstrap, topics.predictions, predictions, event_time=True)
    produce(topics.bootstrap, topics.labels, labels, event_time=True)

    pipeline = Pipeline(settings)
    expected, about_models = [], []
    partition = read_topic(topics.bootstrap, topics.predictions, expect=1)[
        0
    ].partition()  # the model's, by its key
    merged = merged_by_timestamp(topics, partition, predictions, labels)
    for start in range(0, len(merged), settings.batch_max_events):
        result = pipeline.process(merged[start : start + settings.batch_max_events])
        expected += result.alerts
        about_models += result.model_events  # the accuracy's fall recommends retraining
    group = settings.kafka.group_id
    expected_ids = sorted([a.id(group) for a in expected] + [e.id(group) for e in about_models])
    assert any(
        alert.monitor == "performance.error" for alert in expected
    )  # the drift is there to be caught
    assert not any(alert.monitor == "quality.labels" for alert in expected)

    with ServiceThread(settings) as detector:
        detector.wait_processed(2 * EVENTS, timeout_s=120)
        read_topic(topics.bootstrap, topics.alerts, expect=len(expected_ids), timeout_s=60)
        alerts = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))  # and any more
    assert not [a for a in alerts if a["data"].get("monitor") == "quality.labels"], [
        (a["type"], a["data"].get("monitor")) for a in alerts
    ]
    assert sorted(a["id"] for a in alerts) == expected_ids
