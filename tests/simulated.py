"""Simulated traffic of one model through a Pipeline, without Kafka: predictions and their labels
as fake messages, run in batches, and run with a checkpoint and restore part way."""

from __future__ import annotations

from detector.core.pipeline import BatchResult, Pipeline
from detector.core.state import StateCodec, restore_model
from detector.settings import Settings
from producers.scenarios import Deployment, Injection
from producers.simulate import Simulator
from tests.fakes import FakeMessage, messages


def traffic(
    events: int,
    deployments: tuple[Deployment, ...] = (),
    injections: tuple[Injection, ...] = (),
    seed: int = 5,
    named: str | None = None,
) -> list[FakeMessage]:
    """Predictions and their labels (500 predictions later), offsets counted per topic; `named`:
    every prediction names that version, whichever serves it."""
    simulator = Simulator(
        seed=seed, injections=injections, deployments=deployments, label_delay_ms=5000
    )
    out: list[FakeMessage] = []
    offsets = {"predictions": 0, "labels": 0}
    for _ in range(events // 1000):
        batch = simulator.batch(1000)
        predictions = [
            prediction if named is None else {**prediction, "version": named}
            for prediction in batch.predictions
        ]
        for topic, values in (("predictions", predictions), ("labels", batch.labels)):
            out += messages(values, topic=topic, first_offset=offsets[topic])
            offsets[topic] += len(values)
    return out


def run(pipeline: Pipeline, batch: list[FakeMessage], size: int = 1000) -> BatchResult:
    """`batch` through `pipeline` in batches of `size` messages, the results added up."""
    total = BatchResult()
    for start in range(0, len(batch), size):
        total.add(pipeline.process(batch[start : start + size]))
    return total


def restored_run(settings: Settings, batch: list[FakeMessage], cut: int) -> BatchResult:
    """`batch` run up to `cut`, its model checkpointed, and the rest run by a second pipeline
    restored from that checkpoint."""
    first = Pipeline(settings)
    before = run(first, batch[:cut])
    monitor = next(iter(first.models()))
    codec = StateCodec("g")
    ((_, value),) = codec.model_records(0, {"predictions": cut}, monitor.name, monitor.to_state())
    state = codec.decode(value).state
    second = Pipeline(settings)
    restored = second.new_monitor(monitor.name)
    assert state is not None and restore_model(restored, state) is None
    second.install(0, {monitor.name: restored})
    after = run(second, batch[cut:])
    return BatchResult(
        alerts=before.alerts + after.alerts, model_events=before.model_events + after.model_events
    )


def published(result: BatchResult) -> list[bytes]:
    """Alerts and events about models exactly as published (ids, evidence and all)."""
    return [a.encode("g") for a in result.alerts] + [e.encode("g") for e in result.model_events]
