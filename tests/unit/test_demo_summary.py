"""The demo's summary: its exit code says whether the retraining loop closed as expected."""

from __future__ import annotations

import io
from typing import Any

from detector.commands.demo import Board, _summary
from detector.core.alerts import OUTCOME, RECOMMENDED
from producers.scenarios import Deployment


def recommended(at: int) -> tuple[dict[str, Any], int]:
    """retrain.recommended at the credit model's event `at` (the fields the summary reads)."""
    data = {
        "model": "credit",
        "version": "1",
        "reason": "performance_drop",
        "evidence": {"statistic": "error", "reference": 0.15, "current": 0.45},
        "retrain_data": {
            "topic": "labels",
            "partitions": [{"partition": 0, "from_offset": 0, "to_offset": at}],
        },
    }
    return {"type": RECOMMENDED, "subject": "credit", "data": data}, at


def outcome(at: int, verdict: str) -> tuple[dict[str, Any], int]:
    """retrain.outcome at the credit model's event `at`."""
    data = {
        "model": "credit",
        "version": "2",
        "outcome": verdict,
        "statistic": "error",
        "after": 0.16,
        "reference": 0.15,
        "labelled_events": {"after": 500},
    }
    return {"type": OUTCOME, "subject": "credit", "data": data}, at


def summary(*events: tuple[dict[str, Any], int]) -> tuple[int, str]:
    out = io.StringIO()
    board = Board([], total=0, out=out)
    board.deployments = [("credit", Deployment("2", start=1000, quality="fixed"))]
    board.model_events = list(events)
    return _summary(board, 0, 1.0, out), out.getvalue()


def test_a_loop_closed_as_expected_exits_zero() -> None:
    code, out = summary(
        recommended(600),
        outcome(1500, "recovered"),
    )
    assert code == 0, out
    assert "recommended @600, outcome recovered @1500" in out


def test_a_loop_without_its_recommendation_fails_the_demo() -> None:
    code, out = summary(outcome(1500, "recovered"))
    assert code == 1
    assert "NOT CLOSED: no retrain.recommended before the deployment" in out


def test_a_fixed_version_judged_not_recovered_fails_the_demo() -> None:
    code, out = summary(
        recommended(600),
        outcome(1500, "not_recovered"),
    )
    assert code == 1
    assert "NOT CLOSED: outcome not_recovered, expected recovered" in out
