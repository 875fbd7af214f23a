"""Alerts are CloudEvents 1.0 with the contract's fields and deterministic ids."""

from __future__ import annotations

import orjson

from detector.core.alerts import DETECTED, RESOLVED, Alert, alert_id


def sample(**overrides: object) -> Alert:
    fields = {
        "kind": "detected",
        "model": "fraud",
        "version": "3",
        "monitor": "feature.amount",
        "statistic": "location",
        "detector": "adwin",
        "severity": "warning",
        "observations": 50312,
        "evidence": {"before": {"mean": 1.0}},
        "topic": "predictions",
        "partition": 0,
        "offset": 123456,
        "event_time_ms": 1764064800123,
        "owner": "team-risk",
        "runbook_url": "https://runbooks/fraud",
    }
    fields.update(overrides)
    return Alert(**fields)  # type: ignore[arg-type]


def test_cloudevent_has_the_contract_fields() -> None:
    event = orjson.loads(sample().encode("grp"))
    assert event["specversion"] == "1.0"
    assert event["type"] == DETECTED
    assert event["source"] == "streamdrift/grp"
    assert event["subject"] == "fraud/feature.amount"
    assert event["datacontenttype"] == "application/json"
    assert event["time"] == "2025-11-25T10:00:00.123Z"
    data = event["data"]
    assert data["signal"] == "feature"
    assert data["source"] == {"topic": "predictions", "partition": 0, "offset": 123456}
    assert {
        k: data[k]
        for k in (
            "model",
            "version",
            "monitor",
            "statistic",
            "detector",
            "severity",
            "observations",
            "owner",
            "runbook_url",
        )
    } == {
        "model": "fraud",
        "version": "3",
        "monitor": "feature.amount",
        "statistic": "location",
        "detector": "adwin",
        "severity": "warning",
        "observations": 50312,
        "owner": "team-risk",
        "runbook_url": "https://runbooks/fraud",
    }
    assert sample().key == b"fraud"


def test_ids_are_deterministic_and_distinguish_what_matters() -> None:
    first = sample().id("grp")
    assert first == sample(evidence={"other": 1}, observations=1).id("grp")  # same decision point
    assert first == alert_id("grp", "fraud", "feature.amount", "adwin", 0, 123456, DETECTED)
    different = {
        sample(offset=123457).id("grp"),
        sample(partition=1).id("grp"),
        sample(detector="page_hinkley").id("grp"),
        sample(monitor="feature.age").id("grp"),
        sample(model="churn").id("grp"),
        sample(kind="resolved").id("grp"),
        sample().id("other-group"),
    }
    assert first not in different and len(different) == 7


def test_resolved_alerts_carry_their_reason() -> None:
    event = orjson.loads(sample(kind="resolved", reason="rebaselined").encode("g"))
    assert event["type"] == RESOLVED and event["data"]["reason"] == "rebaselined"
