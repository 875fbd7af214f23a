"""The restore on its own (Kafka and the state topic faked): assigned partitions wait paused,
their state is read a slice per step, then models are installed and the input resumes where
the state ends."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from detector.core.pipeline import Pipeline
from detector.core.state import RestoredPartition
from detector.http.metrics import Metrics
from detector.service.restore import Restorer
from detector.settings import load_settings
from producers.simulate import Simulator
from tests.fakes import messages
from tests.unit.service_fakes import FakeConsumer, FakeStore, tps

INPUTS = ["predictions", "features", "labels"]


def restorer(store: FakeStore | None) -> tuple[Restorer, Pipeline]:
    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:1"})
    pipeline = Pipeline(settings)
    return Restorer(INPUTS, store, pipeline, Metrics(CollectorRegistry()), 5.0), pipeline  # type: ignore[arg-type]


def model_state(name: str, events: int) -> dict:
    """A checkpointed model: what a monitor that saw `events` events writes."""
    pipeline = Pipeline(load_settings(kafka={"bootstrap_servers": "127.0.0.1:1"}))
    pipeline.process(messages(Simulator(model=name, seed=3).events(events)))
    return pipeline.partitions[0].models[name].to_state()


def soon() -> float:
    return time.monotonic() + 1


def test_assigned_partitions_wait_paused_until_their_state_is_read() -> None:
    calls: list[str] = []
    store = FakeStore(
        calls,
        {1: RestoredPartition({"predictions": 40, "features": 7}, {"m": model_state("m", 40)})},
        slices=3,
    )
    part, pipeline = restorer(store)
    consumer = FakeConsumer(calls, committed={("predictions", 1): 30, ("labels", 1): 5})
    part.schedule(consumer, tps(INPUTS, [1]))  # type: ignore[arg-type]
    assert consumer.paused == {(topic, 1) for topic in INPUTS}
    assert part.restoring and part.pending() == {1}
    assert calls == ["pause"]  # the state is read in the loop, not when scheduled
    assert part.step(consumer, soon()) == []  # type: ignore[arg-type]
    assert part.step(consumer, soon()) == []  # type: ignore[arg-type]
    assert consumer.paused and 1 not in pipeline.partitions
    [resumed] = part.step(consumer, soon())  # type: ignore[arg-type]
    assert (resumed.partition, resumed.offsets, resumed.moved) == (
        1,
        {"predictions": 40, "features": 7, "labels": 5},
        True,
    )
    assert pipeline.partitions[1].models["m"].events_seen == 40
    assert sorted(consumer.seeks) == [("features", 1, 7), ("labels", 1, 5), ("predictions", 1, 40)]
    assert not consumer.paused and not part.restoring
    assert calls.count("read") == 3 and store.readers[0].closed


def test_a_state_that_matches_the_committed_offsets_did_not_move() -> None:
    calls: list[str] = []
    store = FakeStore(calls, {0: RestoredPartition({"predictions": 12}, {})})
    part, _ = restorer(store)
    consumer = FakeConsumer(calls, committed={("predictions", 0): 12})
    part.schedule(consumer, tps(INPUTS, [0]))  # type: ignore[arg-type]
    [resumed] = part.step(consumer, soon())  # type: ignore[arg-type]
    assert (resumed.offsets, resumed.moved) == ({"predictions": 12}, False)
    # topics with neither a checkpoint nor a committed offset start per auto.offset.reset
    assert consumer.seeks == [("predictions", 0, 12)]


def test_partitions_revoked_while_restoring_are_not_resumed() -> None:
    calls: list[str] = []
    store = FakeStore(calls, slices=2)
    part, pipeline = restorer(store)
    consumer = FakeConsumer(calls)
    part.schedule(consumer, tps(INPUTS, [0, 1]))  # type: ignore[arg-type]
    part.step(consumer, soon())  # type: ignore[arg-type]
    part.cancel({0})
    assert part.pending() == {1}
    [resumed] = part.step(consumer, soon())  # type: ignore[arg-type]
    assert resumed.partition == 1 and set(pipeline.partitions) == {1}
    assert consumer.paused == {(topic, 0) for topic in INPUTS}  # unassigned by the revoke
    part.schedule(consumer, tps(INPUTS, [2]))  # type: ignore[arg-type]
    part.step(consumer, soon())  # type: ignore[arg-type]
    part.cancel({2})
    assert not part.restoring and store.readers[-1].closed


def test_restores_run_in_the_order_of_their_assignments() -> None:
    calls: list[str] = []
    part, _ = restorer(FakeStore(calls))
    consumer = FakeConsumer(calls)
    part.schedule(consumer, tps(INPUTS, [3]))  # type: ignore[arg-type]
    part.schedule(consumer, tps(INPUTS, [0]))  # type: ignore[arg-type]
    assert [r.partition for r in part.step(consumer, soon())] == [3]  # type: ignore[arg-type]
    assert [r.partition for r in part.step(consumer, soon())] == [0]  # type: ignore[arg-type]


def test_without_state_partitions_resume_at_their_committed_offsets() -> None:
    calls: list[str] = []
    part, pipeline = restorer(None)
    consumer = FakeConsumer(calls, committed={("predictions", 2): 99})
    part.schedule(consumer, tps(INPUTS, [2]))  # type: ignore[arg-type]
    [resumed] = part.step(consumer, soon())  # type: ignore[arg-type]
    assert (resumed.offsets, resumed.moved) == ({"predictions": 99}, False)
    assert pipeline.partitions[2].models == {} and not consumer.paused


def test_partitions_stay_paused_until_librdkafka_can_move_them() -> None:
    """Right after an assignment librdkafka refuses a seek (`_STATE`) until it has looked up
    the partition's committed offset: the seek is tried again at the next step."""
    calls: list[str] = []
    part, _ = restorer(FakeStore(calls, {0: RestoredPartition({"predictions": 12}, {})}))
    consumer = FakeConsumer(calls)
    consumer.unseekable = 2
    part.schedule(consumer, tps(INPUTS, [0]))  # type: ignore[arg-type]
    assert part.step(consumer, soon()) == []  # type: ignore[arg-type]
    assert not part.reading and part.restoring and consumer.paused
    assert part.step(consumer, soon()) == []  # type: ignore[arg-type]
    [resumed] = part.step(consumer, soon())  # type: ignore[arg-type]
    assert resumed.offsets == {"predictions": 12} and consumer.seeks == [("predictions", 0, 12)]
    assert not consumer.paused and calls.count("read") == 1
