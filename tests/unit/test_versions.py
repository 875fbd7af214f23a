"""Model versions: deployments, per-version output monitors, comparison of live versions, the cap,
and decisions that do not depend on batching or restarts (without Kafka)."""

from __future__ import annotations

from typing import Any

import pytest

from detector.core.alerts import COMPARED, DEPLOYED
from detector.core.pipeline import BatchResult, Pipeline
from detector.core.statistics import holm, means_p, rates_p
from detector.settings import Settings, load_settings
from producers.scenarios import Deployment, Injection
from tests.fakes import messages
from tests.simulated import published, restored_run, run, traffic

OUTPUTS = ("prediction.score", "prediction.value", "performance.")


def settings(**detection: Any) -> Settings:
    return load_settings(
        None,
        detection={
            "version_idle_events": 3000,
            "version_compare_events": 2000,
            **detection,
        },
    )


def output_alerts(result: BatchResult) -> list[str]:
    return [
        f"{a.monitor}@{a.offset}"
        for a in result.alerts
        if a.kind == "detected" and a.monitor.startswith(OUTPUTS)
    ]


def test_a_new_version_is_one_deployment_event_with_a_deterministic_id() -> None:
    batch = traffic(16_000, (Deployment("2", 8000),))
    result = run(Pipeline(settings()), batch)

    (deployed,) = result.model_events
    event = deployed.cloudevent("g")
    assert event["type"] == DEPLOYED == deployed.type
    assert event["data"]["previous_version"] == "1" and event["data"]["version"] == "2"
    assert event["data"]["source"] == {"topic": "predictions", "partition": 0, "offset": 8000}
    assert event["data"]["rollback"] is False and event["subject"] == "fraud/model.version"
    assert result.deployments == [deployed]
    again = run(Pipeline(settings()), batch, size=777).model_events
    assert [e.encode("g") for e in again] == [deployed.encode("g")]


def test_the_first_version_a_model_shows_is_not_a_deployment() -> None:
    assert run(Pipeline(settings()), traffic(4000)).model_events == []


def test_a_new_version_learns_its_own_output_reference_while_inputs_keep_theirs() -> None:
    # Version 2 turns half its predictions: scores, predicted classes and errors all move at
    # the switch. Judged against version 1's reference, the output monitors would alert.
    switch = (Deployment("2", 8000, quality="worse", magnitude=0.5),)
    control = run(Pipeline(settings()), traffic(24_000, switch, named="1"))
    assert output_alerts(control), "the switch moves the outputs"

    pipeline = Pipeline(settings())
    result = run(pipeline, traffic(24_000, switch))

    assert output_alerts(result) == []
    assert [e.version for e in result.deployments] == ["2"]
    # Labels of version 1's last predictions still arrive after the switch: compared with
    # version 2's over the same stretch, version 2 is the worse.
    assert {e.data["worse"] for e in result.model_events if e.type == COMPARED} <= {"2"}
    monitor = next(iter(pipeline.models()))
    assert monitor.signals["feature.amount"].seen == 24_000  # one reference, across the switch
    new = monitor.versions.live["2"].signals["prediction.score"]
    assert new.seen == 16_000 and not new.learning
    assert "prediction.score" not in monitor.signals  # outputs live under their version


def test_an_input_drift_after_a_deployment_is_still_detected() -> None:
    batch = traffic(
        20_000,
        (Deployment("2", 6000),),
        (Injection("mean_shift", "amount", start=12_000),),
    )
    result = run(Pipeline(settings()), batch)
    detected = [(a.monitor, a.offset) for a in result.alerts if a.kind == "detected"]
    assert detected and detected[0][0] == "feature.amount" and 12_000 <= detected[0][1] < 12_300


def test_a_significantly_worse_canary_is_reported_once_per_episode() -> None:
    canary = (Deployment("2", 4000, share=0.3, quality="worse", magnitude=0.3),)
    result = run(Pipeline(settings()), traffic(20_000, canary))

    compared = [e.cloudevent("g") for e in result.model_events if e.type == COMPARED]
    accuracy = [e["data"] for e in compared if e["data"]["statistic"] == "accuracy"]
    assert len(accuracy) == 1  # not again in every later window
    data = accuracy[0]
    assert data["versions"] == ["1", "2"] and data["worse"] == "2"
    assert data["values"][0] > data["values"][1] + 0.1
    assert data["significance"]["adjusted_p"] < data["significance"]["alpha"] == 0.001
    assert min(data["counts"]) >= 30
    assert not output_alerts(result)


def test_a_replaced_version_is_not_compared_after_it_stopped_serving() -> None:
    # Version 2, retrained on the drifted concept, replaces version 1 outright at 9,000. Version
    # 1's late labels (of its drifted predictions) keep arriving in the window after the switch;
    # compared there with version 2's they would contrast two periods, not two versions.
    switch = (Deployment("2", 9000, quality="fixed"),)
    drift = (Injection("concept_drift", "", start=4000, magnitude=0.4),)
    result = run(Pipeline(settings()), traffic(20_000, switch, drift))

    ends = [e.data["window"]["end_prediction"] for e in result.model_events if e.type == COMPARED]
    assert all(end <= 10_000 for end in ends), ends  # the switch's window [8,000, 10,000) at most


def test_equal_versions_side_by_side_are_not_reported() -> None:
    split = (Deployment("b", 2000, share=0.5),)
    for seed in (1, 2, 3):
        result = run(Pipeline(settings()), traffic(30_000, split, seed=seed))
        assert [e.type for e in result.model_events] == [DEPLOYED]
        assert not output_alerts(result)


def test_a_retired_version_comes_back_as_a_rollback_and_its_open_drift_is_resolved() -> None:
    # Version 1 degrades (a concept drift: its error monitor alerts), version 2 takes over, then
    # version 1 is rolled back once version 2 has served more than version_idle_events.
    batch = traffic(
        26_000,
        (Deployment("2", 12_000, quality="fixed"), Deployment("1", 20_000)),
        (Injection("concept_drift", "", start=4000, magnitude=0.4),),
    )
    result = run(Pipeline(settings()), batch)

    deployed = [e.cloudevent("g")["data"] for e in result.model_events if e.type == DEPLOYED]
    assert [(d["previous_version"], d["version"], d["rollback"]) for d in deployed] == [
        ("1", "2", False),
        ("2", "1", True),
    ]
    retired = [a for a in result.alerts if a.reason == "version_retired"]
    assert retired and all(a.version == "1" and a.kind == "resolved" for a in retired)
    assert retired[0].offset == 12_000 + 3000  # version_idle_events after its last prediction
    opened = {a.monitor for a in result.alerts if a.kind == "detected" and a.version == "1"}
    assert "performance.error" in opened and {a.monitor for a in retired} <= opened


def test_a_flood_of_version_names_stays_within_the_cap() -> None:
    values = [{"model": "m", "version": f"v{i % 97}", "score": (i % 10) / 10} for i in range(5000)]
    pipeline = Pipeline(load_settings(None, limits={"max_versions_per_model": 3}))
    result = run(pipeline, messages(values), size=500)
    versions = next(iter(pipeline.models())).versions
    assert len(versions.live) == 3
    assert versions.overflow == 5000 - sum(v.predictions for v in versions.live.values())
    assert len(result.deployments) == 2  # the two after the first, then the cap is full
    assert len(versions.retired) <= 4 * 3


@pytest.mark.parametrize("size", [1000, 4321])
def test_versions_decide_the_same_whatever_the_batching(size: int) -> None:
    batch = traffic(
        16_000,
        (Deployment("2", 3000, share=0.3, quality="worse"), Deployment("3", 9000)),
    )
    whole = published(run(Pipeline(settings()), batch, size=len(batch)))
    assert len(whole) >= 3
    assert published(run(Pipeline(settings()), batch, size=size)) == whole


@pytest.mark.parametrize("cut", [5000, 13_000, 20_000])
def test_a_restored_model_keeps_its_versions(cut: int) -> None:
    batch = traffic(
        16_000,
        (Deployment("2", 3000, share=0.3, quality="worse"), Deployment("3", 9000)),
    )
    expected = published(run(Pipeline(settings()), batch))
    assert published(restored_run(settings(), batch, cut)) == expected


def test_the_shared_tests() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert rates_p(0.5, 100, 0.5, 100) == 1.0 and rates_p(0.0, 50, 0.0, 50) == 1.0
    assert rates_p(0.9, 1000, 0.8, 1000) < 1e-6 < rates_p(0.9, 10, 0.8, 10)
    assert means_p(1.0, 1.0, 100, 1.0, 1.0, 100) == 1.0
    assert means_p(0.0, 1.0, 400, 0.5, 1.0, 400) < 1e-8
