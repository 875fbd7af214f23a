"""The retraining policy: a recommendation once per episode (a drop of real performance, or
critical input drift left open), the data to retrain on, the outcome after the next deployment,
and events that do not depend on batching or restores (without Kafka)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson
import pytest

from detector.core.alerts import DEPLOYED, OUTCOME, RECOMMENDED
from detector.core.monitors.retraining import Level
from detector.core.pipeline import BatchResult, Pipeline
from detector.settings import ConfigError, Settings, load_settings
from producers.scenarios import Deployment, Injection
from tests.fakes import FakeMessage
from tests.simulated import published, restored_run, run, traffic

CONCEPT = Injection("concept_drift", "", start=6000, magnitude=0.4)
# `age` is not an input of the simulated model: its drift leaves performance as it was.
AGE_SHIFT = Injection("mean_shift", "age", start=4000, magnitude=2.0)


def settings(**retrain: Any) -> Settings:
    return load_settings(None, detection={"version_idle_events": 3000}, retrain=retrain)


def events_of(result: BatchResult, event_type: str) -> list[dict[str, Any]]:
    return [e.cloudevent("g") for e in result.model_events if e.type == event_type]


def position(batch: list[FakeMessage], source: dict[str, Any]) -> int:
    """The model's event count at the message `source` names (1 for its first)."""
    return 1 + next(
        i
        for i, m in enumerate(batch)
        if m.topic() == source["topic"] and m.offset() == source["offset"]
    )


def test_a_drop_of_accuracy_recommends_retraining_once_with_the_data_since_the_change() -> None:
    batch = traffic(30_000, injections=(CONCEPT,))
    result = run(Pipeline(settings()), batch)

    (event,) = events_of(result, RECOMMENDED)  # performance stays down: one episode
    data = event["data"]
    assert event["subject"] == "fraud/retrain" and data["version"] == "1"
    assert data["reason"] == "performance_drop"
    evidence = data["evidence"]
    assert evidence["statistic"] == "accuracy" and evidence["labelled_events"] == 500
    assert evidence["drop"] == pytest.approx(evidence["reference"] - evidence["current"])
    assert evidence["drop"] > 0.2 and evidence["p"] < evidence["alpha"] == 0.001
    # Labels carry their prediction's offset here: the change began at label 6000, and the
    # recommendation comes with the 500th label after it at the latest.
    source = data["source"]
    assert source["topic"] == "labels" and 6000 <= source["offset"] < 6500
    retrain = data["retrain_data"]
    (partition,) = retrain["partitions"]
    assert retrain["topic"] == "labels" and partition["partition"] == 0
    assert 5500 <= partition["from_offset"] <= 6000 and partition["to_offset"] == source["offset"]
    assert retrain["time_range"]["from"] < retrain["time_range"]["to"] == event["time"]
    assert retrain["end_offsets"] == {"labels": source["offset"], "predictions": 6999}
    assert events_of(result, OUTCOME) == []  # nothing deployed


def test_an_episode_ends_when_performance_recovers_and_a_later_drop_opens_another() -> None:
    passing = Injection("concept_drift", "", start=6000, magnitude=0.4, length=6000)
    again = Injection("concept_drift", "", start=22_000, magnitude=0.4)
    result = run(Pipeline(settings()), traffic(30_000, injections=(passing, again)))

    offsets = [e["data"]["source"]["offset"] for e in events_of(result, RECOMMENDED)]
    assert len(offsets) == 2
    assert 6000 <= offsets[0] < 6500 and 22_000 <= offsets[1] < 22_500


def test_critical_input_drift_open_for_open_drift_events_recommends_retraining() -> None:
    batch = traffic(20_000, injections=(AGE_SHIFT,))
    result = run(Pipeline(settings()), batch)

    (drift,) = [a for a in result.alerts if a.kind == "detected"]
    assert drift.monitor == "feature.age" and drift.severity == "critical"
    (event,) = events_of(result, RECOMMENDED)
    data = event["data"]
    assert data["reason"] == "input_drift" and data["version"] == "1"
    opened = position(batch, {"topic": drift.topic, "offset": drift.offset})
    assert position(batch, data["source"]) == opened + 5000  # events of every input topic
    (open_drift,) = data["evidence"]["drifts"]
    assert open_drift["monitor"] == "feature.age" and open_drift["open_events"] == 5000
    assert data["evidence"]["performance"]["reference"] == pytest.approx(0.85, abs=0.03)
    retrain = data["retrain_data"]
    assert retrain["start"] == "estimated_change"
    assert retrain["topic"] == "predictions" and drift.estimated_start is not None
    assert retrain["partitions"][0]["from_offset"] == drift.estimated_start["offset"]
    assert retrain["time_range"]["from"] == drift.estimated_start["time"]


def test_input_drift_of_a_severity_not_listed_or_left_open_too_briefly_recommends_nothing() -> None:
    batch = traffic(20_000, injections=(AGE_SHIFT,))
    for retrain in ({"input_severities": []}, {"open_drift_events": 50_000}, {"enabled": False}):
        assert events_of(run(Pipeline(settings(**retrain)), batch), RECOMMENDED) == []


def test_a_model_can_have_its_own_policy() -> None:
    own = load_settings(
        None, models={"fraud": {"retrain": {"open_drift_events": "2000"}}}, retrain={}
    )
    batch = traffic(20_000, injections=(AGE_SHIFT,))
    (drift,) = [a for a in run(Pipeline(own), batch).alerts if a.kind == "detected"]
    (event,) = events_of(run(Pipeline(own), batch), RECOMMENDED)
    opened = position(batch, {"topic": drift.topic, "offset": drift.offset})
    assert position(batch, event["data"]["source"]) == opened + 2000
    with pytest.raises(ConfigError, match="recovered_within"):
        load_settings(None, models={"fraud": {"retrain": {"performance_drop": 0.01}}})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_traffic_recommends_nothing(seed: int) -> None:
    result = run(Pipeline(settings()), traffic(60_000, seed=seed), size=5000)
    assert events_of(result, RECOMMENDED) == events_of(result, OUTCOME) == []


@pytest.mark.parametrize(
    ("quality", "outcome"), [("fixed", "recovered"), ("worse", "not_recovered")]
)
def test_the_deployment_after_a_recommendation_is_judged_on_its_first_labels(
    quality: str, outcome: str
) -> None:
    deployment = Deployment("2", 16_000, quality=quality)
    batch = traffic(24_000, (deployment,), (CONCEPT,))
    result = run(Pipeline(settings()), batch)

    types = [e.type for e in result.model_events if e.type in (RECOMMENDED, DEPLOYED, OUTCOME)]
    assert types == [RECOMMENDED, DEPLOYED, OUTCOME]  # the replaced version recommends no more
    (recommended,) = events_of(result, RECOMMENDED)
    (deployed,) = events_of(result, DEPLOYED)
    (event,) = events_of(result, OUTCOME)
    data = event["data"]
    assert event["subject"] == "fraud/retrain.outcome"
    assert (data["version"], data["previous_version"], data["outcome"]) == ("2", "1", outcome)
    assert data["reason"] == "performance_drop" and data["statistic"] == "accuracy"
    assert data["recommended"] == {**recommended["data"]["source"], "time": recommended["time"]}
    assert data["deployed"] == {**deployed["data"]["source"], "time": deployed["time"]}
    labelled = data["labelled_events"]
    assert labelled["reference"] == 1000 and labelled["before"] == 500
    assert data["before"] < data["reference"] - 0.2
    recovered = data["after"] >= data["reference"] - data["recovered_within"]
    assert recovered is (outcome == "recovered")
    # Decided at the end of a block of the new version's labels (the old version's last
    # predictions are labelled first), once clear of the line by 1.96 standard errors.
    blocks = labelled["after"] // 500
    assert labelled["after"] == 500 * blocks and 1 <= blocks <= 2
    error = (data["after"] * (1 - data["after"]) / labelled["after"]) ** 0.5
    assert abs(data["reference"] - data["after"] - data["recovered_within"]) >= 1.96 * error
    # label n is that of prediction n: version 2's labels are 16,000 on
    assert data["source"] == {"topic": "labels", "partition": 0, "offset": 15_999 + 500 * blocks}


def test_a_deployment_ends_an_input_drift_episode_and_that_drift_does_not_recommend_again() -> None:
    batch = traffic(36_000, (Deployment("2", 14_000),), (AGE_SHIFT,))
    result = run(Pipeline(settings()), batch)

    types = [e.type for e in result.model_events if e.type in (RECOMMENDED, DEPLOYED, OUTCOME)]
    assert types == [RECOMMENDED, DEPLOYED, OUTCOME]
    (event,) = events_of(result, OUTCOME)
    data = event["data"]
    assert data["outcome"] == "recovered" and data["reason"] == "input_drift"
    # as good as the reference: more than one block before the estimate is clear of the line
    assert data["labelled_events"]["after"] > 500


SCENARIO = traffic(30_000, (Deployment("2", 16_000, quality="fixed"),), (CONCEPT, AGE_SHIFT))


def test_the_scenario_publishes_every_kind_of_retraining_event() -> None:
    result = run(Pipeline(settings()), SCENARIO)
    reasons = [e["data"]["reason"] for e in events_of(result, RECOMMENDED)]
    assert reasons and set(reasons) <= {"performance_drop", "input_drift"}
    assert [e["data"]["outcome"] for e in events_of(result, OUTCOME)] == ["recovered"]


@pytest.mark.parametrize("size", [777, 5000, len(SCENARIO)])
def test_retraining_events_are_the_same_bits_whatever_the_batching(size: int) -> None:
    expected = published(run(Pipeline(settings()), SCENARIO))
    assert published(run(Pipeline(settings()), SCENARIO, size=size)) == expected


def test_a_rollback_starts_the_version_afresh_whatever_the_batching() -> None:
    # Version 1 degrades, version 2 replaces it, version 1 retires (at prediction 15,000,
    # message 29,500) and comes back (prediction 20,000, message 39,500). One batch holding both,
    # and no label of version 1 after its return: its next labels start a new reference there too.
    batch = traffic(
        26_000,
        (Deployment("2", 12_000, quality="fixed"), Deployment("1", 20_000)),
        (CONCEPT,),
    )
    small = Pipeline(settings())
    expected = published(run(small, batch, size=1000))
    pipeline = Pipeline(settings())
    cuts = [0, 29_000, 39_501, len(batch)]
    results = [pipeline.process(batch[a:b]) for a, b in pairwise(cuts)]
    split = BatchResult(
        alerts=[a for r in results for a in r.alerts],
        model_events=[e for r in results for e in r.model_events],
    )
    assert published(split) == expected
    assert [e["data"]["version"] for e in events_of(split, OUTCOME)] == ["2"]
    policies = [next(iter(p.models())).retrain for p in (small, pipeline)]
    assert policies[0] is not None and policies[1] is not None
    assert policies[0].to_state() == policies[1].to_state()  # version 1's labels as counted


@pytest.mark.parametrize("cut", [9000, 13_001, 33_000, 40_000])
def test_a_restored_model_publishes_the_same_retraining_events(cut: int) -> None:
    # cuts: in the open episode; before the first labels of version 2; waiting for its outcome;
    # after it
    expected = published(run(Pipeline(settings()), SCENARIO))
    assert published(restored_run(settings(), SCENARIO, cut)) == expected


def test_a_regression_s_error_is_judged_as_a_share_of_its_reference_error() -> None:
    reference = Level("numeric", 1000, 2.0, 1.0)
    assert Level("numeric", 500, 2.2, 1.0).worse_than(reference) == pytest.approx(0.1)
    assert Level("numeric", 500, 2.2, 1.0).value == 2.2
    assert Level("numeric", 500, 1.0, 1.0).worse_than(Level("numeric", 9, 0.0, 0.0)) == float("inf")
    accuracy = Level("rate", 1000, 0.15, 0.1275)
    assert Level("rate", 500, 0.25, 0.1875).worse_than(accuracy) == pytest.approx(0.1)
    assert accuracy.value == pytest.approx(0.85) and accuracy.statistic == "accuracy"


def test_labels_that_never_come_leave_only_input_drift_to_recommend_and_no_outcome() -> None:
    """Production-like: predictions carry ids, and the labels stop for good after the first
    6,000 predictions (a broken label pipeline); an input drifts from prediction 4,000, the
    concept from 6,000, and version 2 is deployed at 20,000. Nothing can say the accuracy
    dropped or recovered: the only recommendation is the input drift's, and no outcome is
    guessed without labels."""
    stream = traffic(30_000, (Deployment("2", 20_000),), (CONCEPT, AGE_SHIFT))
    batch = [m for m in stream if m.topic() == "predictions" or m.offset() < 5_500]
    assert all(orjson.loads(m.value())["id"] for m in batch if m.topic() == "predictions")
    result = run(Pipeline(settings()), batch)

    assert [e["data"]["reason"] for e in events_of(result, RECOMMENDED)] == ["input_drift"]
    assert events_of(result, DEPLOYED) and events_of(result, OUTCOME) == []
