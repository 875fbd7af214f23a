"""The checkpoint on its own (Kafka faked): what progressed, when a commit is due, and the
commit's fixed order (outputs settled → state records → input offsets)."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from detector.core.pipeline import Pipeline
from detector.core.state import StateCodec
from detector.http.metrics import Metrics
from detector.kafka.checkpoint import StateStore
from detector.kafka.delivery import CheckpointAborted, CommitSuperseded, ProducerWedged
from detector.kafka.faults import FaultInjector
from detector.service.checkpointing import Checkpoint, Outcome
from detector.settings import Settings, load_settings
from producers.simulate import Simulator
from tests.fakes import messages
from tests.unit.service_fakes import FakeConsumer, FakeOutputs, named


def checkpoint(**overrides: object) -> tuple[Checkpoint, Pipeline]:
    settings: Settings = load_settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"}, topics={"state": "state"}, **overrides
    )
    metrics = Metrics(CollectorRegistry())
    faults = FaultInjector(settings.fault_injection)
    store = StateStore("state", StateCodec("g", None), {}, metrics.state_rejected, faults)
    pipeline = Pipeline(settings)
    return Checkpoint(settings, pipeline, store, faults, metrics), pipeline


def traffic(partition: int, events: int) -> list:
    return messages(
        Simulator(model=f"m{partition}", seed=partition).events(events), partition=partition
    )


def processed(point: Checkpoint, pipeline: Pipeline, *batches: list) -> None:
    for batch in batches:
        pipeline.process(batch)
        point.advance(batch)


def test_a_commit_settles_the_outputs_then_writes_the_state_then_commits_the_offsets() -> None:
    point, pipeline = checkpoint()
    processed(point, pipeline, traffic(0, 50), traffic(1, 30))
    calls: list[str] = []
    outputs = FakeOutputs(calls)
    assert point.commit(outputs, FakeConsumer(calls), {0, 1}) is Outcome.committed  # type: ignore[arg-type]
    assert calls[0] == "settle" and calls[-1] == "commit"
    state = calls[1:-1]
    assert state == sorted(state) and {"send state[0]", "send state[1]"} == set(state)
    assert named(outputs.committed) == [("predictions", 0, 50), ("predictions", 1, 30)]
    assert not point.progressed and point.uncommitted_events == 0


def test_only_owned_partitions_are_checkpointed() -> None:
    point, pipeline = checkpoint()
    processed(point, pipeline, traffic(0, 20), traffic(1, 20))
    calls: list[str] = []
    outputs = FakeOutputs(calls)
    point.commit(outputs, FakeConsumer(calls), {1})  # type: ignore[arg-type]
    assert "send state[0]" not in calls and "send state[1]" in calls
    assert named(outputs.committed) == [("predictions", 1, 20)]


def test_a_forgotten_partition_is_not_committed() -> None:
    point, pipeline = checkpoint()
    processed(point, pipeline, traffic(0, 20), traffic(1, 20))
    point.forget([0])
    calls: list[str] = []
    outputs = FakeOutputs(calls)
    point.commit(outputs, FakeConsumer(calls), {0, 1})  # type: ignore[arg-type]
    assert named(outputs.committed) == [("predictions", 1, 20)]


def test_a_commit_is_due_after_the_event_count_or_the_interval() -> None:
    point, pipeline = checkpoint(commit_interval_events=30, commit_interval_ms=60_000)
    assert not point.due()
    processed(point, pipeline, traffic(0, 20))
    assert not point.due()
    processed(point, pipeline, traffic(1, 10))
    assert point.due()
    point.rewound()
    assert not point.due()
    processed(point, pipeline, traffic(0, 1))
    point.last_commit = time.monotonic() - 61
    assert point.due()


def test_a_moved_resume_point_is_committed_without_new_events() -> None:
    point, pipeline = checkpoint(commit_interval_ms=10)
    for p in (2, 3):
        pipeline.install(p, {})  # restored, without models
    point.start(2, {"predictions": 7}, moved=False)
    assert not point.progressed
    point.start(3, {"predictions": 9}, moved=True)
    point.last_commit = time.monotonic() - 1
    assert point.due()
    calls: list[str] = []
    outputs = FakeOutputs(calls)
    point.commit(outputs, FakeConsumer(calls), {2, 3})  # type: ignore[arg-type]
    assert named(outputs.committed) == [("predictions", 3, 9)]


def test_the_deadline_bounds_every_blocking_step() -> None:
    point, pipeline = checkpoint()
    processed(point, pipeline, traffic(0, 10))
    calls: list[str] = []
    outputs = FakeOutputs(calls)
    point.commit(outputs, FakeConsumer(calls), {0}, deadline=123.5)  # type: ignore[arg-type]
    assert outputs.deadlines == [123.5, 123.5]


def test_an_aborted_transaction_asks_for_a_rewind_and_a_superseded_commit_drops_the_progress() -> (
    None
):
    point, pipeline = checkpoint()
    processed(point, pipeline, traffic(0, 10))
    calls: list[str] = []
    aborted = FakeOutputs(calls, raises=CheckpointAborted("fenced"))
    assert point.commit(aborted, FakeConsumer(calls), {0}) is Outcome.aborted  # type: ignore[arg-type]
    assert point.progressed == {0}  # the caller rewinds
    superseded = FakeOutputs(
        calls, raises=CommitSuperseded(KafkaError(KafkaError.UNKNOWN_MEMBER_ID).str())
    )
    assert point.commit(superseded, FakeConsumer(calls), {0}) is Outcome.superseded  # type: ignore[arg-type]
    assert not point.progressed
    assert point.metrics.registry.get_sample_value("streamdrift_commit_failures_total") == 2


def test_a_wedged_producer_asks_for_a_new_producer_and_a_rewind() -> None:
    point, pipeline = checkpoint()
    processed(point, pipeline, traffic(0, 10))
    calls: list[str] = []
    wedged = FakeOutputs(calls, raises=ProducerWedged("send_offsets_to_transaction did not return"))
    assert point.commit(wedged, FakeConsumer(calls), {0}) is Outcome.wedged  # type: ignore[arg-type]
    assert point.progressed == {0}  # the caller replaces the producer, then rewinds


def test_pending_work_ages_from_its_oldest_progress_until_committed_or_rewound() -> None:
    """What /readyz and streamdrift_commit_pending_seconds read: the age of the oldest progress
    not yet committed; later progress does not make it younger; a commit or a rewind ends it."""
    point, pipeline = checkpoint()
    value = point.metrics.registry.get_sample_value
    assert point.pending_s() == 0 and value("streamdrift_last_commit_timestamp_seconds") == 0
    processed(point, pipeline, traffic(0, 10))
    point.pending_since = time.monotonic() - 20  # that batch was processed 20 s ago
    processed(point, pipeline, traffic(1, 10))
    assert point.pending_s() >= 20
    calls: list[str] = []
    assert point.commit(FakeOutputs(calls), FakeConsumer(calls), {0, 1}) is Outcome.committed  # type: ignore[arg-type]
    assert point.pending_s() == 0
    assert value("streamdrift_last_commit_timestamp_seconds") >= time.time() - 60
    processed(point, pipeline, traffic(0, 5))
    point.pending_since = time.monotonic() - 20
    point.rewound()
    assert point.pending_s() == 0
    point.touch([1])  # an eviction to checkpoint is pending work too
    assert point.pending_s() >= 0 and point.pending_since is not None
    point.forget([1])
    assert point.pending_s() == 0
