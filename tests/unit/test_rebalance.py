"""The rebalance callbacks of a Service (Kafka faked): they return without reading any state,
and the work on a revoke runs under a deadline derived from max.poll.interval.ms."""

from __future__ import annotations

import time

import pytest

from detector.kafka.delivery import DeliveryError
from detector.service.service import Service
from detector.settings import load_settings
from tests.fakes import messages
from tests.unit.service_fakes import FakeConsumer, FakeOutputs, FakeStore, tps

INPUTS = ["predictions", "features", "labels"]


def service(calls: list[str], group_protocol: str = "classic", **outputs: object) -> Service:
    detector = Service(
        load_settings(
            kafka={
                "bootstrap_servers": "127.0.0.1:1",
                "group_protocol": group_protocol,
                "max_poll_interval_ms": 60_000,
            }
        )
    )
    detector.restorer.store = FakeStore(calls)  # type: ignore[assignment]
    detector.consumer = FakeConsumer(calls)  # type: ignore[assignment]
    detector.outputs = FakeOutputs(calls, **outputs)  # type: ignore[assignment, arg-type]
    return detector


@pytest.mark.parametrize(
    ("group_protocol", "assign"), [("classic", "assign"), ("consumer", "incremental_assign")]
)
def test_an_assignment_is_taken_and_paused_its_state_read_later_in_the_loop(
    group_protocol: str, assign: str
) -> None:
    calls: list[str] = []
    detector = service(calls, group_protocol)
    consumer = detector.consumer
    detector._on_assign(consumer, tps(INPUTS, [0, 2]))  # type: ignore[arg-type]
    assert calls == [assign, "pause"]
    assert detector.owned == {0, 2} and detector.readiness()[1]["restoring"] is True
    detector._restore_step()
    assert calls[2:] == ["reader", "read", "committed", "resume"]
    assert detector.readiness()[1]["restoring"] is False


def test_a_revoke_commits_the_work_in_hand_within_half_the_poll_interval() -> None:
    calls: list[str] = []
    detector = service(calls)
    consumer = detector.consumer
    detector._on_assign(consumer, tps(INPUTS, [0, 1]))  # type: ignore[arg-type]
    detector._restore_step()
    batch = messages([b"{}"] * 5, partition=1)
    detector.checkpoint.advance(batch)
    before = time.monotonic()
    detector._on_revoke(consumer, tps(INPUTS, [1]))  # type: ignore[arg-type]
    after = time.monotonic()
    [deadline] = set(detector.outputs.deadlines)  # type: ignore[union-attr]
    assert deadline is not None and before + 30 <= deadline <= after + 30
    assert calls[-1] == "commit" and detector.owned == {0}


def test_a_revoke_past_its_deadline_hands_over_at_the_last_checkpoint() -> None:
    calls: list[str] = []
    detector = service(calls, raises=DeliveryError("1 output message(s) still unacknowledged"))
    consumer = detector.consumer
    detector._on_assign(consumer, tps(INPUTS, [0, 1]))  # type: ignore[arg-type]
    detector._restore_step()
    detector.checkpoint.advance(messages([b"{}"] * 5, partition=0))
    detector.revoke_budget_s = 0.0  # the commit outlasts its budget
    detector._on_revoke(consumer, tps(INPUTS, [1]))  # type: ignore[arg-type]
    assert calls[-3:] == [
        "commit",
        "abort",
        "pause",
    ]  # the kept partition goes back to its checkpoint
    assert detector.owned == {0} and detector.restorer.pending() == {0}
    assert not detector.checkpoint.progressed


def test_a_revoke_that_fails_within_its_deadline_raises() -> None:
    calls: list[str] = []
    detector = service(calls, raises=DeliveryError("a record was refused"))
    consumer = detector.consumer
    detector._on_assign(consumer, tps(INPUTS, [0]))  # type: ignore[arg-type]
    detector._restore_step()
    detector.checkpoint.advance(messages([b"{}"] * 5, partition=0))
    with pytest.raises(DeliveryError):
        detector._on_revoke(consumer, tps(INPUTS, [0]))  # type: ignore[arg-type]
