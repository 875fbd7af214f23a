"""The readiness rule: ready only when every condition holds; each unmet one is a reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from detector.http.readiness import Health, details, judge
from detector.settings import load_settings

HEALTHY = Health(
    connected=True,
    assigned=True,
    restoring=False,
    partitions=(0, 2),
    stalled_s=0.0,
    commit_pending_s=1.5,
    commit_overdue_s=17.0,
)


def test_healthy_is_ready_without_reasons() -> None:
    assert judge(HEALTHY) == (True, [])
    ready, body = details(HEALTHY)
    assert ready is True and body["reasons"] == [] and body["partitions"] == [0, 2]
    assert body["commit_pending_s"] == 1.5


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"connected": False}, "not connected to Kafka"),
        ({"assigned": False}, "no partitions assigned"),
        ({"restoring": True}, "restoring the state"),
        ({"stalled_s": 130.0}, "has not completed a step for 130s"),
        ({"commit_pending_s": 17.5}, "stalled on Kafka: processed work not committed for 18s"),
    ],
)
def test_each_unmet_condition_is_a_reason(change: dict[str, object], reason: str) -> None:
    ready, reasons = judge(replace(HEALTHY, **change))  # type: ignore[arg-type]
    assert ready is False and len(reasons) == 1 and reason in reasons[0]


def test_work_pending_up_to_the_threshold_is_still_ready() -> None:
    assert judge(replace(HEALTHY, commit_pending_s=17.0))[0] is True


def test_a_killed_broker_gives_both_reasons_while_commits_wait() -> None:
    ready, reasons = judge(replace(HEALTHY, connected=False, commit_pending_s=30.0))
    assert ready is False and len(reasons) == 2


def test_the_overdue_threshold_is_a_commit_interval_plus_half_the_request_timeout() -> None:
    """librdkafka's defaults: request.timeout.ms 30 s (produce), socket.timeout.ms 60 s (the
    rest); the shorter one counts."""
    assert load_settings(None).commit_overdue_s() == 2 + 15
    short = load_settings(
        None,
        commit_interval_ms=300,
        kafka={"properties": {"socket.timeout.ms": 10_000, "request.timeout.ms": "12000"}},
    )
    assert short.commit_overdue_s() == pytest.approx(0.3 + 5)
    only_socket = load_settings(None, kafka={"properties": {"socket.timeout.ms": 8000}})
    assert only_socket.commit_overdue_s() == 2 + 4
