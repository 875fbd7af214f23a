"""Routing, dead letters, caps and schema monitoring, without Kafka."""

from __future__ import annotations

import random

import pytest

from detector.pipeline import BatchResult, Pipeline
from detector.settings import load_settings
from producers.simulate import Injection, Simulator
from tests.fakes import FakeMessage, messages


def run(pipeline: Pipeline, batch: list[FakeMessage], size: int = 1000) -> BatchResult:
    total = BatchResult()
    for start in range(0, len(batch), size):
        result = pipeline.process(batch[start : start + size])
        total.alerts += result.alerts
        total.dead_letters += result.dead_letters
        total.events.update(result.events)
        total.invalid.update(result.invalid)
    return total


def drifting_stream(events: int = 12_000) -> list[FakeMessage]:
    simulator = Simulator(seed=3, injections=(Injection("mean_shift", "amount", start=6000, magnitude=1.0),))
    return messages(simulator.events(events))


def test_a_feature_shift_raises_the_right_alert() -> None:
    result = run(Pipeline(load_settings(None)), drifting_stream())
    detected = [a for a in result.alerts if a.kind == "detected"]
    assert detected and detected[0].monitor == "feature.amount"
    assert 6000 <= detected[0].offset < 6300
    assert result.events["predictions", "fraud"] == 12_000


@pytest.mark.parametrize("size", [1, 333, 5000])
def test_published_alerts_do_not_depend_on_batching(size: int) -> None:
    simulator = Simulator(seed=6, injections=(Injection("mean_shift", "amount", start=3000, length=3000), Injection("category_mix", "country", start=8000)))
    batch = messages(simulator.events(12_000))
    whole = [a.encode("g") for a in run(Pipeline(load_settings(None)), batch, size=12_000).alerts]
    assert len(whole) >= 3
    assert [a.encode("g") for a in run(Pipeline(load_settings(None)), batch, size=size).alerts] == whole


def test_a_stationary_stream_raises_nothing() -> None:
    result = run(Pipeline(load_settings(None)), messages(Simulator(seed=4).events(60_000)), size=5000)
    assert result.alerts == []


def test_bad_input_is_dead_lettered_and_does_not_change_detections() -> None:
    clean = drifting_stream()
    expected = [(a.monitor, a.offset, a.kind) for a in run(Pipeline(load_settings(None)), clean).alerts]
    rng = random.Random(1)
    garbage = [b"{oops", b"[]", b'{"model": 5}', b'{"model": "fraud", "score": 7}', b'{"features": {}}', None, b'{"model": "fraud", "features": {"a": NaN}}']
    dirty: list[FakeMessage] = []
    for message in clean:
        if rng.random() < 0.1:
            dirty.append(FakeMessage("predictions", 0, -1, rng.choice(garbage)))
        dirty.append(message)
    result = run(Pipeline(load_settings(None)), dirty)
    assert [(a.monitor, a.offset, a.kind) for a in result.alerts] == expected
    assert len(result.dead_letters) == len(dirty) - len(clean) > 500
    assert sum(result.invalid.values()) == len(result.dead_letters)
    letter = result.dead_letters[0]
    headers = dict(letter.headers())
    assert headers["streamdrift.reason"].decode() == letter.reason
    assert headers["streamdrift.source.topic"] == b"predictions"


def test_unknown_models_are_rejected_when_auto_discovery_is_off() -> None:
    settings = load_settings(None, auto_discover_models=False, models={"known": {}})
    result = run(Pipeline(settings), messages([{"model": "known"}, {"model": "stranger"}]))
    assert [d.reason for d in result.dead_letters] == ["unknown_model"]
    assert result.events == {("predictions", "known"): 1}


def test_model_cap_is_enforced_and_counted() -> None:
    settings = load_settings(None, limits={"max_models": 3})
    pipeline = Pipeline(settings)
    result = run(pipeline, messages([{"model": f"m{i}"} for i in range(10)]))
    assert pipeline.model_count == 3
    assert result.invalid["predictions", "model_cap"] == 7


def test_feature_cap_keeps_memory_bounded_and_counts_overflow() -> None:
    settings = load_settings(None, limits={"max_features_per_model": 5})
    pipeline = Pipeline(settings)
    run(pipeline, messages([{"model": "m", "features": {f"f{i}_{j}": 1.0 for j in range(4)}} for i in range(50)]))
    monitor = next(iter(pipeline.models()))
    assert len(monitor.feature_kinds) == 5
    assert monitor.feature_overflow == 195


def test_state_lives_per_partition_and_is_dropped_on_revoke() -> None:
    pipeline = Pipeline(load_settings(None))
    pipeline.assign([0, 1])
    run(pipeline, messages([{"model": "a"}], partition=0) + messages([{"model": "b"}], partition=1))
    assert pipeline.revoke([1]) == ["b"]
    assert [m.name for m in pipeline.models()] == ["a"]


def test_a_new_feature_after_warm_up_is_a_schema_change() -> None:
    settings = load_settings(None, detection={"warmup_events": 200, "resolve_window_events": 500, "cooldown_events": 0})
    events = [{"model": "m", "features": {"a": float(i % 7)}} for i in range(1000)]
    events += [{"model": "m", "features": {"a": float(i % 7), "b": "x"}} for i in range(2000)]
    result = run(Pipeline(settings), messages(events))
    schema = [a for a in result.alerts if a.monitor == "quality.schema"]
    assert [(a.kind, a.offset) for a in schema] == [("detected", 1000), ("resolved", 1500)]
    assert schema[0].evidence["changes"] == ["new feature 'b'"]


def test_one_event_with_a_new_name_in_place_of_a_known_one_is_noticed() -> None:
    """As many names as usual, one of them new: the quick check for known names must not pass it."""
    events = [{"model": "m", "features": {"a": float(i % 7), "b": 1.0}} for i in range(1000)]
    events[900] = {"model": "m", "features": {"a": 1.0, "c": 1.0}}
    pipeline = Pipeline(load_settings(None, detection={"warmup_events": 200}))
    run(pipeline, messages(events), size=500)
    assert set(next(iter(pipeline.models())).feature_kinds) == {"a", "b", "c"}


def test_a_renamed_field_shows_as_missing_and_as_schema_change() -> None:
    settings = load_settings(None, detection={"warmup_events": 200})
    events = [{"model": "m", "features": {"amount": float(i % 13)}} for i in range(1500)]
    events += [{"model": "m", "features": {"amount_usd": float(i % 13)}} for i in range(1500)]
    monitors = {a.monitor for a in run(Pipeline(settings), messages(events)).alerts if a.kind == "detected"}
    assert {"quality.missing.amount", "quality.schema"} <= monitors


@pytest.mark.parametrize("changed", ["1.5", True])
def test_numbers_sent_as_text_or_booleans_are_a_type_change_not_numbers(changed: object) -> None:
    settings = load_settings(None, detection={"warmup_events": 100})
    events = [{"model": "m", "features": {"a": float(i % 5), "b": float(i % 3)}} for i in range(500)]
    events += [{"model": "m", "features": {"a": changed, "b": float(i % 3)}} for i in range(500)]
    pipeline = Pipeline(settings)
    result = run(pipeline, messages(events), size=100)
    schema = [a for a in result.alerts if a.monitor == "quality.schema" and a.kind == "detected"]
    assert len(schema) == 1 and schema[0].evidence["changes"] == ["feature 'a' is no longer numeric"]
    assert schema[0].offset == 500  # the first changed event
    assert pipeline.partitions[0].models["m"].signals["feature.a"].seen == 500  # the text was not taken as a number


def test_a_batch_whose_sampled_rows_hold_text_is_read_column_by_column_where_all_text_is_found() -> None:
    settings = load_settings(None, detection={"warmup_events": 100})
    events = [{"model": "m", "features": {"a": float(i % 5)}} for i in range(600)]
    events[500]["features"]["a"] = "2.0"  # the first row of a batch: always in the sample
    events[530]["features"]["a"] = "3.0"  # a row the sample does not check
    pipeline = Pipeline(settings)
    result = run(pipeline, messages(events), size=100)
    schema = [a for a in result.alerts if a.monitor == "quality.schema" and a.kind == "detected"]
    assert [a.offset for a in schema] == [500]
    assert pipeline.partitions[0].models["m"].signals["feature.a"].seen == 598  # neither text taken as a number


def test_a_type_change_is_reported_once() -> None:
    settings = load_settings(None, detection={"warmup_events": 100})
    events = [{"model": "m", "features": {"a": float(i % 5)}} for i in range(500)]
    events += [{"model": "m", "features": {"a": "five"}} for _ in range(500)]
    result = run(Pipeline(settings), messages(events), size=100)
    schema = [a for a in result.alerts if a.monitor == "quality.schema" and a.kind == "detected"]
    assert len(schema) == 1 and "no longer numeric" in schema[0].evidence["changes"][0]
    assert any(a.monitor == "quality.missing.a" for a in result.alerts)


@pytest.mark.parametrize("task,kind", [("auto", "categorical"), ("regression", "numeric")])
def test_prediction_kind_follows_the_task(task: str, kind: str) -> None:
    settings = load_settings(None, models={"m": {"task": task}})
    pipeline = Pipeline(settings)
    run(pipeline, messages([{"model": "m", "prediction": i % 3} for i in range(10)]))
    assert next(iter(pipeline.models())).signals["prediction.value"].kind.value == kind


def test_alerts_carry_owner_and_runbook_from_config() -> None:
    settings = load_settings(None, models={"fraud": {"owner": "team-risk", "runbook_url": "https://rb"}})
    alert = run(Pipeline(settings), drifting_stream()).alerts[0]
    assert (alert.owner, alert.runbook_url, alert.version) == ("team-risk", "https://rb", "1")
