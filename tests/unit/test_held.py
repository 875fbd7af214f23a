"""Each model's events held across batches (detector/core/held.py): the same alerts as without,
within bounds, dropped with a revoked partition, dead-lettered after a failure, and flushed by
the service before every commit."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import TopicPartition

from detector.core.pipeline import BatchResult, Pipeline
from detector.service.service import Service
from detector.settings import Settings, load_settings
from tests.fakes import FakeMessage, failing_observe
from tests.unit.service_fakes import FakeConsumer, FakeOutputs

MODELS = ("alpha", "beta", "gamma")


def interleaved(per_model: int = 6000, partition: int = 0) -> list[FakeMessage]:
    """Predictions (with ids, a numeric and a categorical feature) of three models interleaved
    one by one, and labels for 60% of them 2 s later, merged by time. `beta`'s feature `x` shifts
    by 1.5 sd and its error rate rises from 10% to 40% half way through."""
    rng = np.random.default_rng(7)
    timeline: list[tuple[int, str, dict[str, Any]]] = []
    for i in range(per_model):
        for m, model in enumerate(MODELS):
            ts = 1_764_064_800_000 + (i * len(MODELS) + m) * 3
            late = model == "beta" and i >= per_model // 2
            prediction = int(rng.random() < 0.4)
            timeline.append(
                (
                    ts,
                    "predictions",
                    {
                        "model": model,
                        "id": f"{model}-{i}",
                        "ts": ts,
                        "features": {
                            "x": float(rng.normal(1.5 if late else 0.0)),
                            "c": str(rng.choice(["a", "b", "c"])),
                        },
                        "prediction": prediction,
                        "score": float(rng.uniform(0.6, 0.95)),
                    },
                )
            )
            if rng.random() < 0.6:
                wrong = rng.random() < (0.4 if late else 0.1)
                label = 1 - prediction if wrong else prediction
                timeline.append(
                    (
                        ts + 2_000,
                        "labels",
                        {"model": model, "id": f"{model}-{i}", "ts": ts + 2_000, "label": label},
                    )
                )
    timeline.sort(key=lambda item: item[0])
    offsets: Counter[str] = Counter()
    out: list[FakeMessage] = []
    for ts, topic, event in timeline:
        payload, key = orjson.dumps(event), event["model"].encode()
        out.append(FakeMessage(topic, partition, offsets[topic], payload, key, timestamp_ms=ts))
        offsets[topic] += 1
    return out


def run(
    pipeline: Pipeline, stream: list[FakeMessage], size: int, hold: bool
) -> tuple[BatchResult, list[int]]:
    """Every batch's results together (the final flush's too); and the events held after each."""
    total, holding, results = BatchResult(), [], []
    for start in range(0, len(stream), size):
        results.append(pipeline.process(stream[start : start + size], hold=hold))
        holding.append(pipeline.holding)
    results.append(pipeline.flush())
    for result in results:
        total.alerts += result.alerts
        total.model_events += result.model_events
        total.dead_letters += result.dead_letters
        total.events.update(result.events)
        total.invalid.update(result.invalid)
    return total, holding


def by_model(result: BatchResult) -> dict[str, list[bytes]]:
    """Each model's alerts and model events, encoded, in the order they were published."""
    out: dict[str, list[bytes]] = defaultdict(list)
    for alert in result.alerts:
        out[alert.model].append(alert.encode("g"))
    for event in result.model_events:
        out[event.model].append(event.encode("g"))
    return dict(out)


@pytest.fixture(scope="module")
def stream() -> list[FakeMessage]:
    return interleaved()


@pytest.fixture(scope="module")
def unheld(stream: list[FakeMessage]) -> BatchResult:
    return run(Pipeline(load_settings(None)), stream, 1000, hold=False)[0]


def test_the_stream_has_labels_joined_and_a_drift(unheld: BatchResult) -> None:
    detected = {(a.model, a.monitor) for a in unheld.alerts if a.kind == "detected"}
    assert ("beta", "feature.x") in detected
    assert ("beta", "performance.error") in detected  # labels joined to their predictions
    # the other models' only alerts are their label rate's (quality.labels), decided by the join too
    assert {monitor for model, monitor in detected if model != "beta"} == {"quality.labels"}
    assert unheld.events["labels", "alpha"] > 1000


@pytest.mark.parametrize(("model_batch_events", "size"), [(5000, 1000), (700, 333), (1, 2500)])
def test_held_events_raise_the_same_alerts_as_each_batch_at_once(
    stream: list[FakeMessage], unheld: BatchResult, model_batch_events: int, size: int
) -> None:
    settings = load_settings(None, model_batch_events=model_batch_events)
    held, holding = run(Pipeline(settings), stream, size, hold=True)
    assert by_model(held) == by_model(unheld)
    assert held.events == unheld.events and held.invalid == unheld.invalid
    if model_batch_events > 1:
        assert max(holding) > 0  # events were held across batches
    else:
        assert max(holding) == 0


def test_held_events_are_bounded_per_model_and_in_all(stream: list[FakeMessage]) -> None:
    settings = load_settings(None, model_batch_events=1500, commit_interval_events=3000)
    pipeline = Pipeline(settings)
    for start in range(0, len(stream), 700):
        pipeline.process(stream[start : start + 700], hold=True)
        assert pipeline.holding < 3000
        assert all(len(events) < 1500 for events in pipeline.held.queued.values())
    assert pipeline.holding > 0
    pipeline.flush()
    assert pipeline.holding == 0 and not pipeline.held_messages


def test_the_batches_kept_for_their_messages_stay_bounded_behind_a_slow_model() -> None:
    settings = load_settings(None, model_batch_events=500, commit_interval_events=3000)
    pipeline = Pipeline(settings)
    busy = interleaved(3000)
    slow = [m for m in interleaved(40) if m.key() == b"alpha" and m.topic() == "predictions"]
    stream = [m for m in busy if m.key() != b"alpha"]
    for start in range(0, len(stream), 600):  # each batch: one event of alpha, the rest busy
        batch = [slow[start // 600], *stream[start : start + 600]]
        pipeline.process(batch, hold=True)
        assert sum(map(len, pipeline.held_messages)) < 3000
    assert pipeline.holding > 0


def test_a_revoked_partition_drops_its_held_events() -> None:
    pipeline = Pipeline(load_settings(None))
    pipeline.process(interleaved(300, partition=0) + interleaved(300, partition=1), hold=True)
    held = pipeline.holding
    pipeline.revoke([1])
    kept = pipeline.holding
    assert kept == held // 2 > 0  # the two partitions had the same events
    result = pipeline.flush()
    assert {model for _, model in result.events} == set(MODELS)
    assert sum(result.events.values()) == kept and pipeline.holding == 0


def test_a_model_failing_on_held_events_dead_letters_their_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing_observe(monkeypatch, "beta", KeyError("corrupt state"))
    stream = interleaved(200)
    pipeline = Pipeline(load_settings(None))
    letters = [
        letter
        for start in range(0, len(stream), 100)
        for letter in pipeline.process(stream[start : start + 100], hold=True).dead_letters
    ]
    assert not letters  # beta's events are all still held
    letters = pipeline.flush().dead_letters
    beta = [(m.topic(), m.offset()) for m in stream if m.key() == b"beta"]
    assert sorted((d.topic, d.offset) for d in letters) == sorted(beta)
    assert all(d.reason == "processing_error" and "corrupt state" in d.detail for d in letters)


class SteppingConsumer(FakeConsumer):
    """Hands out the stream in batches, as `consume` does."""

    def __init__(self, calls: list[str], stream: list[FakeMessage], size: int) -> None:
        super().__init__(calls)
        self.batches = [stream[i : i + size] for i in range(0, len(stream), size)]

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []


class CheckedOutputs(FakeOutputs):
    """At every commit: the offsets committed, and the events the models have observed."""

    def __init__(self, calls: list[str], service: Service) -> None:
        super().__init__(calls)
        self.service = service
        self.commits: list[tuple[int, int, int]] = []

    def poll(self) -> None:
        pass

    def commit(
        self, consumer: Any, offsets: list[TopicPartition], deadline: float | None = None
    ) -> None:
        super().commit(consumer, offsets, deadline)
        observed = sum(model.events_seen for model in self.service.pipeline.models())
        self.commits.append(
            (sum(tp.offset for tp in offsets), observed, self.service.pipeline.holding)
        )


def test_the_service_commits_no_offset_past_the_events_its_models_observed() -> None:
    settings: Settings = load_settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},
        alignment_idle_ms=0,
        commit_interval_events=2500,
        commit_interval_ms=3_600_000,
    )
    stream = interleaved(1500)
    service = Service(settings)
    calls: list[str] = []
    service.consumer = SteppingConsumer(calls, stream, 1000)  # type: ignore[assignment]
    service.outputs = outputs = CheckedOutputs(calls, service)  # type: ignore[assignment]
    service.cluster.connected = True
    service.owned = {0}
    while service.consumer.batches:  # type: ignore[attr-defined]
        service._step()
    service._commit()  # as on a stop or a revoke
    assert len(outputs.commits) >= 3
    for committed, observed, holding in outputs.commits:
        assert committed == observed and holding == 0
    assert outputs.commits[-1][0] == len(stream)
