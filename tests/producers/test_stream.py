"""Properties every generated stream has: reproducible, chunking-independent, delayed labels that
join their predictions, honest ground truth, and clear errors for impossible injections."""

from __future__ import annotations

import pytest

from producers.scenarios import Deployment, Injection
from producers.simulate import Simulator


def test_the_same_seed_gives_the_same_events_however_they_are_requested() -> None:
    injections = (
        Injection("mean_shift", "amount", 700),
        Injection("prior_shift", "", 1500, magnitude=0.6),
    )
    whole = Simulator(seed=3, injections=injections).events(3000)
    chunked = Simulator(seed=3, injections=injections)
    pieces = [event for size in (1, 998, 1234, 767) for event in chunked.events(size)]
    assert pieces == whole
    assert Simulator(seed=4, injections=injections).events(3000) != whole


def test_events_follow_the_contract() -> None:
    event = Simulator(model="m", version="7", start_ms=1000, interval_ms=5).events(3)[2]
    assert (
        event["model"] == "m"
        and event["version"] == "7"
        and event["id"] == "m-2"
        and event["ts"] == 1010
    )
    assert set(event["features"]) == {"amount", "utilization", "age", "income", "country", "device"}
    assert isinstance(event["features"]["age"], int)
    assert 0 <= event["score"] <= 1 and event["prediction"] in (0, 1) and event["latency_ms"] > 0


def test_labels_arrive_after_their_delay_and_name_their_prediction() -> None:
    simulator = Simulator(seed=1, interval_ms=10, label_delay_ms=5000, label_coverage=0.4)
    first = simulator.batch(2000)
    last_ts = first.predictions[-1]["ts"]
    assert first.labels and all(label["ts"] <= last_ts for label in first.labels)
    rest = simulator.drain()
    assert rest and all(label["ts"] > last_ts for label in rest)
    predictions = {e["id"]: e for e in first.predictions}
    every = first.labels + rest
    assert all(label["ts"] == predictions[label["id"]]["ts"] + 5000 for label in every)
    assert set(every[0]) == {"model", "id", "ts", "label"}
    assert len(every) / 2000 == pytest.approx(0.4, abs=0.04)
    assert simulator.drain() == []


def test_a_temperature_below_one_makes_the_scores_over_confident_not_the_labels() -> None:
    def accuracy_and_confidence(temperature: float) -> tuple[float, float, list[int]]:
        simulator = Simulator(seed=2, score_temperature=temperature)
        batch = simulator.batch(5000)
        truth = {label["id"]: label["label"] for label in batch.labels + simulator.drain()}
        right = [e["prediction"] == truth[e["id"]] for e in batch.predictions]
        confidence = [max(e["score"], 1 - e["score"]) for e in batch.predictions]
        return (
            sum(right) / len(right),
            sum(confidence) / len(confidence),
            [e["prediction"] for e in batch.predictions],
        )

    calibrated, sharp = accuracy_and_confidence(1.0), accuracy_and_confidence(0.4)
    assert sharp[0] == calibrated[0] and sharp[2] == calibrated[2]  # same labels and classes
    assert abs(calibrated[1] - calibrated[0]) < 0.02  # the default model is calibrated
    assert sharp[1] - sharp[0] > 0.08
    with pytest.raises(ValueError, match="score_temperature"):
        Simulator(score_temperature=0)


def test_ground_truth_names_the_monitor_and_the_consequences() -> None:
    simulator = Simulator(
        injections=(
            Injection("mean_shift", "amount", 100, length=50),
            Injection("missing_burst", "income", 200),
            Injection("field_rename", "device", 300),
            Injection("prior_shift", "", 400, magnitude=0.4),
            Injection("incremental_shift", "age", 500, length=100),
        )
    )
    truth = {t["scenario"]: t for t in simulator.ground_truth()}
    assert truth["mean_shift"]["monitor"] == "feature.amount" and truth["mean_shift"]["end"] == 150
    assert "prediction.score" in truth["mean_shift"]["side_effects"]  # amount feeds the score
    assert (
        truth["missing_burst"]["monitor"] == "quality.missing.income"
        and truth["missing_burst"]["side_effects"] == []
    )
    assert truth["field_rename"]["monitor"] == "quality.schema"
    assert "quality.missing.device" in truth["field_rename"]["side_effects"]
    assert (
        truth["prior_shift"]["target"] == "1"
        and truth["prior_shift"]["monitor"] == "prediction.score"
    )
    assert truth["incremental_shift"]["end"] is None  # a ramp, then the drift stays
    assert all(t["model"] == "fraud" and t["start"] > 0 for t in truth.values())


@pytest.mark.parametrize(
    ("injection", "message"),
    [
        (
            Injection("mean_shift", "country", 0),
            "needs a numeric feature of model 'fraud' as target, not 'country'; choose from: amount",
        ),
        (Injection("category_mix", "amount", 0), "choose from: country, device"),
        (Injection("missing_burst", "nope", 0), "needs a feature"),
        (Injection("prior_shift", "2", 0), "choose from: 0, 1"),
        (Injection("latency_creep", "amount", 0), "latency_creep takes no target"),
    ],
)
def test_an_impossible_injection_is_refused_with_the_choices(
    injection: Injection, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Simulator(injections=(injection,))


def test_an_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'wobble'; choose from mean_shift"):
        Injection("wobble", "amount", 0)


def _accuracy(events: list[dict], labels: dict[str, int], version: str) -> float:
    mine = [e for e in events if e["version"] == version]
    return sum(e["prediction"] == labels[e["id"]] for e in mine) / len(mine)


def test_deployed_versions_serve_their_share_and_differ_as_their_quality_says() -> None:
    concept = (Injection("concept_drift", "", 0, magnitude=0.3),)
    plain = Simulator(seed=2, injections=concept, label_delay_ms=0)
    deployed = Simulator(
        seed=2,
        injections=concept,
        label_delay_ms=0,
        deployments=(
            Deployment("fixed", 2000, share=0.5, quality="fixed"),
            Deployment("worse", 6000, share=0.5, quality="worse", magnitude=0.4),
        ),
    )
    before, after = plain.batch(10_000), deployed.batch(10_000)
    labels = {e["id"]: e["label"] for e in after.labels + deployed.drain()}
    assert labels == {e["id"]: e["label"] for e in before.labels + plain.drain()}  # the world
    assert after.predictions[:2000] == before.predictions[:2000]  # the same until the first
    served = [e["version"] for e in after.predictions]
    assert set(served[:2000]) == {"1"} and 0.4 < served[2000:6000].count("fixed") / 4000 < 0.6
    assert 0.4 < served[6000:].count("worse") / 4000 < 0.6 and "fixed" in served[6000:]
    old = _accuracy(after.predictions, labels, "1")
    assert _accuracy(after.predictions, labels, "fixed") > old + 0.2  # back at the old concept
    assert _accuracy(after.predictions, labels, "worse") < old - 0.05
    truth = deployed.deployment_truth()
    assert [(d["version"], d["start"], d["quality"]) for d in truth] == [
        ("fixed", 2000, "fixed"),
        ("worse", 6000, "worse"),
    ]
