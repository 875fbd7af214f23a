"""`python -m producers` writes to the detector's topics on a real broker."""

from __future__ import annotations

import orjson
import pytest

from producers.__main__ import main
from tests.kafka_helpers import KafkaNames, read_topic

pytestmark = pytest.mark.broker


def test_simulate_writes_predictions_and_delayed_labels_keyed_by_model(
    topics: KafkaNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMDRIFT_TOPICS__PREDICTIONS", topics.predictions)
    monkeypatch.setenv("STREAMDRIFT_TOPICS__LABELS", topics.labels)
    code = main(
        [
            "simulate",
            "--model",
            "sim",
            "--events",
            "3000",
            "--rate",
            "0",
            "--label-delay-ms",
            "2000",
            "--bootstrap-servers",
            topics.bootstrap,
            "--truth",
            "/dev/null",
        ]
    )
    assert code == 0
    predictions = read_topic(topics.bootstrap, topics.predictions, expect=3000)
    labels = read_topic(topics.bootstrap, topics.labels, expect=3000)
    assert len(predictions) == len(labels) == 3000
    assert {m.key() for m in predictions + labels} == {b"sim"}
    # the same key lands on the same partition number in both (co-partitioned) topics
    assert len({m.partition() for m in predictions}) == 1 and {m.partition() for m in labels} == {
        predictions[0].partition()
    }
    ids = [orjson.loads(m.value())["id"] for m in sorted(predictions, key=lambda m: m.offset())]
    assert ids == [f"sim-{i}" for i in range(3000)]
    label_ts = [orjson.loads(m.value())["ts"] for m in sorted(labels, key=lambda m: m.offset())]
    assert label_ts == sorted(label_ts)
