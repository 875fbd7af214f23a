"""Routing, dead letters, caps and schema monitoring, without Kafka."""

from __future__ import annotations

import random

import orjson
import pytest

from detector.core.events import Event, Invalid
from detector.core.pipeline import DECODED_TOGETHER_LEAST, BatchResult, Pipeline
from detector.settings import load_settings
from producers.simulate import Injection, Simulator
from tests.fakes import FakeMessage, failing_observe, messages
from tests.simulated import run


def drifting_stream(events: int = 12_000) -> list[FakeMessage]:
    simulator = Simulator(
        seed=3, injections=(Injection("mean_shift", "amount", start=6000, magnitude=1.0),)
    )
    return messages(simulator.events(events))


def test_a_feature_shift_raises_the_right_alert() -> None:
    result = run(Pipeline(load_settings(None)), drifting_stream())
    detected = [a for a in result.alerts if a.kind == "detected"]
    assert detected and detected[0].monitor == "feature.amount"
    assert 6000 <= detected[0].offset < 6300
    assert result.events["predictions", "fraud"] == 12_000


def test_an_empty_batch_is_an_empty_result() -> None:
    """(A poll that returned nothing: decoding by key must not look for a first message.)"""
    result = Pipeline(load_settings(None)).process([])
    assert not result.alerts and not result.dead_letters and not result.events


@pytest.mark.parametrize("size", [1, 333, 5000])
def test_published_alerts_do_not_depend_on_batching(size: int) -> None:
    simulator = Simulator(
        seed=6,
        injections=(
            Injection("mean_shift", "amount", start=3000, length=3000),
            Injection("category_mix", "country", start=8000),
        ),
    )
    batch = messages(simulator.events(12_000))
    whole = [a.encode("g") for a in run(Pipeline(load_settings(None)), batch, size=12_000).alerts]
    assert len(whole) >= 3
    assert [
        a.encode("g") for a in run(Pipeline(load_settings(None)), batch, size=size).alerts
    ] == whole


def test_a_stationary_stream_raises_nothing() -> None:
    result = run(
        Pipeline(load_settings(None)), messages(Simulator(seed=4).events(60_000)), size=5000
    )
    assert result.alerts == []


def test_bad_input_is_dead_lettered_and_does_not_change_detections() -> None:
    clean = drifting_stream()
    expected = [
        (a.monitor, a.offset, a.kind) for a in run(Pipeline(load_settings(None)), clean).alerts
    ]
    rng = random.Random(1)
    garbage = [
        b"{oops",
        b"[]",
        b'{"model": 5}',
        b'{"model": "fraud", "score": 7}',
        b'{"features": {}}',
        None,
        b'{"model": "fraud", "features": {"a": NaN}}',
    ]
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


def test_at_the_model_cap_a_newcomer_is_admitted_at_its_second_message_in_place_of_a_model_in_its_warm_up() -> (
    None
):
    settings = load_settings(None, limits={"max_models": 3})
    pipeline = Pipeline(settings)
    result = run(
        pipeline,
        messages([{"model": f"m{i}"} for i in range(5)] + [{"model": "m4"}, {"model": "m3"}]),
    )
    assert [m.name for m in pipeline.models()] == ["m2", "m4", "m3"]
    assert [(e.model, e.reason) for e in result.evictions] == [("m0", "cap"), ("m1", "cap")]
    assert [(d.offset, d.reason) for d in result.dead_letters] == [
        (3, "model_cap"),
        (4, "model_cap"),
    ]
    assert pipeline.partitions[0].take_evicted() == []  # never checkpointed: nothing to retire


def test_at_the_model_cap_with_every_model_past_its_warm_up_a_newcomer_is_refused() -> None:
    settings = load_settings(None, limits={"max_models": 2}, detection={"warmup_events": 50})
    pipeline = Pipeline(settings)
    result = run(
        pipeline,
        messages(
            [{"model": m, "score": 0.5} for m in ("a", "b") for _ in range(50)]
            + [{"model": "c"}] * 3
        ),
    )
    assert sorted(m.name for m in pipeline.models()) == ["a", "b"]
    assert [d.reason for d in result.dead_letters] == ["model_cap"] * 3
    assert result.evictions == []


def test_a_flood_of_names_cannot_lock_out_a_real_model() -> None:
    """5,000 one-off names against a cap of 50: they cost no monitor, the established models keep
    their state, and a real new model that comes after the flood is monitored from its second event."""
    settings = load_settings(None, limits={"max_models": 50}, detection={"warmup_events": 50})
    pipeline = Pipeline(settings)
    real = [{"model": f"real{j}", "score": 0.5} for _ in range(60) for j in range(3)]
    flood = [{"model": f"junk-{i}", "score": 0.5} for i in range(5000)]
    newcomer = [{"model": "fresh", "score": 0.5} for _ in range(60)]
    result = run(pipeline, messages(real + flood + newcomer), size=500)
    assert result.invalid["predictions", "model_cap"] == 5000 - (50 - 3) + 1
    assert result.events["predictions", "fresh"] == 59
    seen = {m.name: m.events_seen for m in pipeline.models()}
    assert {name: seen[name] for name in ("real0", "real1", "real2", "fresh")} == {
        "real0": 60,
        "real1": 60,
        "real2": 60,
        "fresh": 59,
    }
    assert pipeline.model_count == 50
    assert [(e.model, e.reason) for e in result.evictions] == [("junk-0", "cap")]
    # bounded by the cap; the admitted name leaves it
    assert len(pipeline.refused) == 50 - 1 and "fresh" not in pipeline.refused


T0_MS = 1_764_064_800_000
HOUR_MS = 3_600_000


def _at(model: str, after_ms: int, **fields: object) -> tuple[int, dict[str, object]]:
    """An event whose Kafka message is stamped `after_ms` after T0_MS."""
    return T0_MS + after_ms, {"model": model, "score": 0.5, **fields}


def stamped(
    events: list[tuple[int, dict[str, object]]], first_offset: int = 0
) -> list[FakeMessage]:
    return [
        # type: ignore[union-attr]
        FakeMessage(
            "predictions", 0, offset, orjson.dumps(value), value["model"].encode(), timestamp_ms=ts
        )
        for offset, (ts, value) in enumerate(events, start=first_offset)
    ]


def test_an_idle_model_is_evicted_and_starts_afresh_when_it_comes_back() -> None:
    settings = load_settings(None, limits={"model_idle_seconds": 3600})
    pipeline = Pipeline(settings)
    early = [_at("quiet", 0)] * 10 + [_at("busy", t * 60_000) for t in range(59)]
    result = run(pipeline, stamped(early))
    assert result.evictions == [] and pipeline.partitions[0].models["quiet"].events_seen == 10
    assert [m.name for m in pipeline.partitions[0].take_dirty()] == [
        "busy",
        "quiet",
    ]  # a checkpoint stores both
    later = [_at("busy", HOUR_MS + t * 60_000) for t in range(30)]
    result = run(pipeline, stamped(later, first_offset=100))
    assert [(e.model, e.reason) for e in result.evictions] == [("quiet", "idle")]
    assert pipeline.partitions[0].take_evicted() == ["quiet"]  # its stored state is retired
    run(pipeline, stamped([_at("quiet", 2 * HOUR_MS)], first_offset=200))
    assert pipeline.partitions[0].models["quiet"].events_seen == 1


def test_an_event_time_far_in_the_future_does_not_make_other_models_idle() -> None:
    """The clock is the messages' timestamps: an event stamped in microseconds evicts nobody."""
    pipeline = Pipeline(load_settings(None, limits={"model_idle_seconds": 3600}))
    events = (
        [_at("a", t * 1000) for t in range(10)]
        + [_at("b", 10_000, ts=(T0_MS + 10_000) * 1000)]
        + [_at("a", 11_000)]
    )
    result = run(pipeline, stamped(events))
    assert result.evictions == [] and pipeline.partitions[0].models["a"].events_seen == 11


@pytest.mark.parametrize("size", [1, 7, 64])
def test_idle_eviction_does_not_depend_on_batching(size: int) -> None:
    """A model that returns after an idle gap restarts whether the gap is seen by a sweep after a
    batch or by its own next event, so its alerts are the same in any batching."""
    settings = load_settings(
        None,
        limits={"model_idle_seconds": 3600},
        # 3 events a minute would first learn a weekly cycle (docs/detection.md): not the point here
        detection={"warmup_events": 50, "cooldown_events": 0, "season_max_warmup_events": 0},
    )
    events = []
    for t in range(600):
        events.append(_at("busy", t * 20_000, features={"x": float(t % 10)}))
        if t < 100 or t > 300:  # 'back' is away for over an hour in the middle
            events.append(
                _at("back", t * 20_000, features={"x": float(t % 10) + (5.0 if t > 450 else 0.0)})
            )
    batch = stamped(events)
    whole = run(Pipeline(settings), batch, size=len(batch))
    split_pipeline = Pipeline(settings)
    split = run(split_pipeline, batch, size=size)
    assert [a.encode("g") for a in split.alerts] == [a.encode("g") for a in whole.alerts]
    assert split_pipeline.partitions[0].models["back"].events_seen == 299
    assert any(a.model == "back" and a.kind == "detected" for a in whole.alerts)


def test_a_model_whose_monitors_raise_is_contained_and_restarts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean = drifting_stream()
    expected = [a.encode("g") for a in run(Pipeline(load_settings(None)), clean).alerts]
    other = messages([{"model": "fragile", "score": 0.5}] * 300, first_offset=50_000)
    failing_observe(monkeypatch, "fragile", KeyError("corrupt state"), after_events=100)
    pipeline = Pipeline(load_settings(None))
    mixed = [m for pair in zip(clean, other) for m in pair] + clean[len(other) :]
    result = run(pipeline, mixed, size=100)
    assert [a.encode("g") for a in result.alerts] == expected  # the other model is untouched
    failed = [d for d in result.dead_letters if d.reason == "processing_error"]
    assert failed and all(d.offset >= 50_000 for d in failed)
    assert "KeyError" in failed[0].detail and "fragile" in failed[0].detail
    assert result.invalid["predictions", "processing_error"] == len(failed)
    # 50 events a batch: each failure restarts the model from scratch, which learns 100 events and fails on the next batch.
    assert len(failed) == 100 and result.events["predictions", "fragile"] == 200
    assert [e.model for e in result.model_errors] == [
        "fragile",
        "fragile",
    ] and "corrupt state" in result.model_errors[0].error
    assert pipeline.partitions[0].models["fragile"].events_seen == 0
    run(pipeline, messages([{"model": "fragile", "score": 0.5}] * 50, first_offset=60_000))
    assert pipeline.partitions[0].models["fragile"].events_seen == 50


def test_feature_cap_keeps_memory_bounded_and_counts_overflow() -> None:
    settings = load_settings(None, limits={"max_features_per_model": 5})
    pipeline = Pipeline(settings)
    run(
        pipeline,
        messages(
            [{"model": "m", "features": {f"f{i}_{j}": 1.0 for j in range(4)}} for i in range(50)]
        ),
    )
    monitor = next(iter(pipeline.models()))
    assert len(monitor.feature_types) == 5
    assert monitor.feature_overflow == 195


def test_state_lives_per_partition_and_is_dropped_on_revoke() -> None:
    pipeline = Pipeline(load_settings(None))
    pipeline.assign([0, 1])
    run(pipeline, messages([{"model": "a"}], partition=0) + messages([{"model": "b"}], partition=1))
    assert pipeline.revoke([1]) == ["b"]
    assert [m.name for m in pipeline.models()] == ["a"]


def test_a_new_feature_after_warm_up_is_a_schema_change() -> None:
    settings = load_settings(
        None, detection={"warmup_events": 200, "resolve_window_events": 500, "cooldown_events": 0}
    )
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
    assert set(next(iter(pipeline.models())).feature_types) == {"a", "b", "c"}


def test_a_renamed_field_shows_as_missing_and_as_schema_change() -> None:
    settings = load_settings(None, detection={"warmup_events": 200})
    events = [{"model": "m", "features": {"amount": float(i % 13)}} for i in range(1500)]
    events += [{"model": "m", "features": {"amount_usd": float(i % 13)}} for i in range(1500)]
    monitors = {
        a.monitor for a in run(Pipeline(settings), messages(events)).alerts if a.kind == "detected"
    }
    assert {"quality.missing.amount", "quality.schema"} <= monitors


@pytest.mark.parametrize("changed", ["1.5", True])
def test_numbers_sent_as_text_or_booleans_are_a_type_change_not_numbers(changed: object) -> None:
    settings = load_settings(None, detection={"warmup_events": 100})
    events = [
        {"model": "m", "features": {"a": float(i % 5), "b": float(i % 3)}} for i in range(500)
    ]
    events += [{"model": "m", "features": {"a": changed, "b": float(i % 3)}} for i in range(500)]
    pipeline = Pipeline(settings)
    result = run(pipeline, messages(events), size=100)
    schema = [a for a in result.alerts if a.monitor == "quality.schema" and a.kind == "detected"]
    assert len(schema) == 1 and schema[0].evidence["changes"] == [
        "feature 'a' is no longer numeric"
    ]
    assert schema[0].offset == 500  # the first changed event
    # the text was not taken as a number
    assert pipeline.partitions[0].models["m"].signals["feature.a"].seen == 500


def test_a_batch_whose_sampled_rows_hold_text_is_read_column_by_column_where_all_text_is_found() -> (
    None
):
    settings = load_settings(None, detection={"warmup_events": 100})
    events = [{"model": "m", "features": {"a": float(i % 5)}} for i in range(600)]
    events[500]["features"]["a"] = "2.0"  # the first row of a batch: always in the sample
    events[530]["features"]["a"] = "3.0"  # a row the sample does not check
    pipeline = Pipeline(settings)
    result = run(pipeline, messages(events), size=100)
    schema = [a for a in result.alerts if a.monitor == "quality.schema" and a.kind == "detected"]
    assert [a.offset for a in schema] == [500]
    # neither text taken as a number
    assert pipeline.partitions[0].models["m"].signals["feature.a"].seen == 598


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
    assert (
        next(iter(pipeline.models())).statistic_signals()["prediction.value"].signal_type.value
        == kind
    )


def test_alerts_carry_owner_and_runbook_from_config() -> None:
    settings = load_settings(
        None, models={"fraud": {"owner": "team-risk", "runbook_url": "https://rb"}}
    )
    alert = run(Pipeline(settings), drifting_stream()).alerts[0]
    assert (alert.owner, alert.runbook_url, alert.version) == ("team-risk", "https://rb", "1")


def _feature_mix() -> list[FakeMessage]:
    """Two models' drifting streams with the feature changes the decoder's structs must get
    right: a new name, a name only ever null and then typed, names absent, keys in another
    order; and a gap in the traffic longer than the idle time, after which both models start
    afresh from events decoded for their predecessors (a struct of the names they knew)."""
    events: list[tuple[int, dict[str, object]]] = []
    for t in range(3000):
        a = float(t % 11) + (4.0 if t > 2000 else 0.0)
        features: dict[str, object] = {"a": a, "b": f"k{t % 3}", "later": None}
        if t >= 1200:
            features = {"later": 1.0 if t > 1500 else None, "b": f"k{t % 3}", "a": a}
        if t % 97 == 0:
            del features["a"]
        if t == 1700:
            features["new"] = 1.0
        at_ms = t * 1000 + (700_000 if t >= 2600 else 0)
        events.append(_at("m", at_ms, features=features))
        x, y = float(t % 7), t % 5  # names that are no Python identifiers
        events.append(
            _at(
                "n", at_ms, features={"y.1": y, "class": x} if t >= 2600 else {"class": x, "y.1": y}
            )
        )
    return stamped(events)


@pytest.mark.parametrize("size", [1, 250, 5000])
def test_features_decoded_as_structs_change_no_alert_and_no_state(size: int) -> None:
    settings = load_settings(
        None,
        limits={"model_idle_seconds": 600},
        detection={"warmup_events": 200, "cooldown_events": 0, "season_max_warmup_events": 0},
    )
    batch = _feature_mix()
    with_structs, without = Pipeline(settings), Pipeline(settings)
    without.decoder.expect = lambda *names, **null_names: None  # type: ignore[method-assign]
    fast, plain = run(with_structs, batch, size=size), run(without, batch, size=size)
    assert [a.encode("g") for a in fast.alerts] == [a.encode("g") for a in plain.alerts]
    assert any(a.monitor == "feature.a" for a in fast.alerts)
    assert fast.evictions == plain.evictions and fast.evictions
    states = [
        [orjson.dumps(m.to_state(), option=orjson.OPT_SERIALIZE_NUMPY) for m in p.models()]
        for p in (with_structs, without)
    ]
    assert states[0] == states[1]
    assert all(m.feature_struct is not None for m in with_structs.models())
    m = next(m for m in with_structs.models() if m.name == "m")
    assert m.feature_struct is not None
    named = {attribute: name for name, attribute in m.feature_struct.attributes.items()}
    numeric = [n for n, kind in m.feature_types.items() if kind.value == "numeric"]
    assert len(numeric) >= 2 and numeric != list(m.feature_types)[: len(numeric)]
    # its numeric features lead the struct, one run read whole (FeatureStruct.rows)
    assert [named[f] for f in m.feature_struct.__struct_fields__[: len(numeric)]] == numeric
    assert list(next(m for m in with_structs.models() if m.name == "n").feature_types) == [
        "y.1",
        "class",
    ]


def test_a_model_s_messages_decoded_together_give_what_each_gives_alone() -> None:
    pipeline = Pipeline(load_settings(None))
    pipeline.process(messages(Simulator(seed=5).events(300)))  # its features are expected now
    assert b"fraud" in pipeline.decoder._expected
    odd = [
        b'{"model": "fraud", "score": 7}',
        b'{"model": "fraud", "features": {"amount": NaN}}',
        b"{oops",
        b'{"model": "fraud", "ts": "2025-11-25T10:00:00Z", "id": 5}',  # valid, as text and number
        b'{"model": "other"}',  # keyed as fraud
        b'{"model": "fraud", "x": [',  # with the next: one value, if simply joined
        b'{"model": "fraud"}]}',
    ]
    rng, batch = random.Random(2), []
    for message in messages(Simulator(seed=5).events(600), first_offset=300):
        offset = message.offset()
        if offset >= 600 and rng.random() < 0.05:  # the first 256 predictions decode together
            batch.append(FakeMessage("predictions", 0, 10_000 + offset, rng.choice(odd), b"fraud"))
        if rng.random() < 0.2:
            label = orjson.dumps({"model": "fraud", "id": f"fraud-{offset}", "label": 1})
            batch.append(FakeMessage("labels", 0, offset, label, b"fraud"))
        batch.append(message)
    assert sum(m.topic() == "labels" for m in batch) >= DECODED_TOGETHER_LEAST
    alone = [
        pipeline.decoder.decode(
            m.value(),
            pipeline.sources[m.topic()],
            m.partition(),
            m.offset(),
            m.timestamp()[1],
            m.key(),
        )
        for m in batch
    ]
    result = BatchResult()
    assert pipeline.decode(batch, result) == [e for e in alone if type(e) is Event]
    assert [(d.topic, d.offset, d.reason, d.detail) for d in result.dead_letters] == [
        (m.topic(), m.offset(), e.reason, e.detail)
        for m, e in zip(batch, alone)
        if type(e) is Invalid
    ]
    assert len(result.dead_letters) >= 5
