"""Checkpoint state: exact round trip, replay-equivalence, safe decoding, restore selection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
import river

from detector.core.monitors.model import STATE_SCHEMA, ModelMonitor, Relearn
from detector.core.pipeline import Pipeline
from detector.core.state import (
    MAGIC,
    PART_BYTES,
    REJECT_REASONS,
    StateCodec,
    StateError,
    StateRecord,
    restore_model,
    select,
)
from detector.settings import Settings, load_settings
from producers.simulate import Injection, Simulator
from tests.fakes import messages


def stream() -> list:
    simulator = Simulator(
        seed=8,
        injections=(
            Injection("mean_shift", "amount", start=3000, length=4000),
            Injection("category_mix", "country", start=9000),
            Injection("missing_burst", "income", start=11_000, magnitude=0.4),
        ),
    )
    return messages(simulator.events(14_000))


def alert_keys(alerts: list) -> list[bytes]:
    """The alerts exactly as published (ids, evidence and all)."""
    return [a.encode("g") for a in alerts]


@pytest.mark.parametrize("cut", [500, 2999, 3050, 7777, 10_000])
def test_a_restored_model_decides_exactly_as_if_never_interrupted(cut: int) -> None:
    settings = load_settings(None)
    batch = stream()
    uninterrupted = Pipeline(settings)
    expected = alert_keys(uninterrupted.process(batch).alerts)
    assert len(expected) >= 5

    first = Pipeline(settings)
    before = first.process(batch[:cut]).alerts
    codec = StateCodec("g")
    monitor = next(iter(first.models()))
    ((_, value),) = codec.model_records(0, {"predictions": cut}, monitor.name, monitor.to_state())
    record = codec.decode(value)

    second = Pipeline(settings)
    restored = second.new_monitor(monitor.name)
    assert record.state is not None and restore_model(restored, record.state) is None
    second.install(0, {monitor.name: restored})
    after = second.process(batch[cut:]).alerts
    assert alert_keys(before + after) == expected


def learned_state(events: int = 2000) -> dict[str, Any]:
    """A model's state after `events` events (labels included), through a signed codec."""
    pipeline = Pipeline(load_settings(None))
    pipeline.process(stream()[:events])
    monitor = next(iter(pipeline.models()))
    codec = StateCodec("g", b"key")
    ((_, value),) = codec.model_records(
        0, {"predictions": events}, monitor.name, monitor.to_state()
    )
    state = codec.decode(value).state
    assert state is not None
    return state


def fresh_monitor(settings: Settings | None = None) -> ModelMonitor:
    return Pipeline(settings or load_settings(None)).new_monitor("fraud")


def test_a_model_state_names_its_schema_and_the_river_that_wrote_it() -> None:
    state = learned_state()
    assert state["state_schema"] == STATE_SCHEMA >= 1
    assert state["libraries"] == {"river": river.__version__}
    monitor = fresh_monitor()
    assert restore_model(monitor, state) is None
    assert monitor.events_seen == 2000


def test_state_learned_under_other_parameters_is_not_reused() -> None:
    other = load_settings(None, detection={"warmup_events": 700})
    fresh = fresh_monitor(other)
    assert restore_model(fresh, learned_state()) == Relearn(
        "settings", "learned under other detection settings"
    )
    assert fresh.signals == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"state_schema": STATE_SCHEMA + 1},
            Relearn("schema", f"state schema {STATE_SCHEMA + 1} -> {STATE_SCHEMA}"),
        ),
        (
            {"state_schema": STATE_SCHEMA - 1},
            Relearn("schema", f"state schema {STATE_SCHEMA - 1} -> {STATE_SCHEMA}"),
        ),
        (
            {"libraries": {"river": "0.0.1"}},
            Relearn("library", f"river 0.0.1 -> {river.__version__}"),
        ),
        ({"libraries": {}}, Relearn("library", f"river unknown -> {river.__version__}")),
    ],
)
def test_a_state_of_another_schema_or_river_is_not_loaded(
    change: dict[str, Any], expected: Relearn
) -> None:
    monitor = fresh_monitor()
    assert restore_model(monitor, {**learned_state(), **change}) == expected
    assert monitor.events_seen == 0 and monitor.signals == {}


def test_a_record_from_before_versions_is_schema_0_and_relearns() -> None:
    """Today's layout without a schema: nothing says which river encoded its ADWIN buckets."""
    state = learned_state()
    del state["state_schema"], state["libraries"]
    monitor = fresh_monitor()
    assert restore_model(monitor, state) == Relearn("schema", f"state schema 0 -> {STATE_SCHEMA}")
    assert monitor.events_seen == 0


def first_stream(state: dict[str, Any]) -> dict[str, Any]:
    signal = state["signals"]["feature.amount"]
    return signal["streams"][next(iter(signal["streams"]))]


CORRUPTIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing key": lambda s: s.pop("signals"),
    "text for a count": lambda s: s.update(events_seen="many"),
    "list for a map": lambda s: s["signals"]["feature.amount"].update(levels=[1, 2]),
    "short pair": lambda s: s["signals"]["feature.amount"].update(block_source=[]),
    "unknown kind": lambda s: s["feature_kinds"].update(amount="complex"),
    "truncated ADWIN buckets": lambda s: first_stream(s).update(
        adwin=base64.b64encode(b"\x00" * 9).decode()
    ),
    "null label join": lambda s: s["performance"].update(join=None),
    "unknown gauge after the label join": lambda s: s["performance"]["gauges"].update(
        nope=[0.0, 0.0]
    ),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_signed_but_malformed_state_relearns_instead_of_raising(corruption: str) -> None:
    """Whatever loading a bad state raises (even a panic of river's Rust core, a BaseException)
    is contained; the half-loaded monitor gives its label-join budget back."""
    state = learned_state()
    assert state["performance"]["join"]["pending"]["ids"], (
        "the state should hold waiting predictions"
    )
    CORRUPTIONS[corruption](state)
    pipeline = Pipeline(load_settings(None))
    monitor = pipeline.new_monitor("fraud")
    relearn = restore_model(monitor, state)
    assert relearn is not None and relearn.reason == "load_error", relearn
    assert "\n" not in relearn.detail
    assert pipeline.pending_budget.used == 0


def test_records_are_versioned_compressed_and_never_unpickled() -> None:
    codec = StateCodec("g")
    key, value = codec.checkpoint_record(3, {"predictions": 10})
    assert key == b"checkpoint" and value.startswith(MAGIC)
    assert codec.decode(value) == StateRecord("checkpoint", "g", 3, {"predictions": 10})
    evil = pickle.dumps(ValueError("boom"))
    for bad in [
        None,
        b"",
        evil,
        MAGIC + evil,
        MAGIC + zlib.compress(b"[1,2]"),
        MAGIC + zlib.compress(orjson.dumps({"type": "model", "partition": 0, "offsets": {}})),
        b"SDS\x02" + value[4:],
    ]:
        with pytest.raises(StateError):
            codec.decode(bad)


def test_decompression_bombs_are_refused() -> None:
    bomb = MAGIC + zlib.compress(b"{" + b" " * (80 * 1024 * 1024) + b"}", 9)
    with pytest.raises(StateError, match="exceeds"):
        StateCodec("g").decode(bomb)


def test_signed_records_reject_forgeries() -> None:
    signer = StateCodec("g", b"secret")
    _, value = signer.checkpoint_record(0, {"predictions": 5})
    assert signer.decode(value).offsets == {"predictions": 5}
    _, forged = StateCodec("g", b"other-key").checkpoint_record(0, {"predictions": 999})
    with pytest.raises(StateError, match="signature"):
        signer.decode(forged)
    _, unsigned = StateCodec("g").checkpoint_record(0, {"predictions": 999})
    with pytest.raises(StateError):
        signer.decode(unsigned)


def test_a_rejected_record_says_why_in_a_bounded_reason() -> None:
    signer = StateCodec("g", b"secret")
    payload = b"not zlib"
    signed_junk = MAGIC + hmac.new(b"secret", payload, hashlib.sha256).digest() + payload
    cases = {
        b"junk": "format",
        StateCodec("g", b"other-key").checkpoint_record(0, {"predictions": 1})[1]: "signature",
        signed_junk: "malformed",
    }
    for value, reason in cases.items():
        with pytest.raises(StateError) as raised:
            signer.decode(value)
        assert raised.value.reason == reason
        assert reason in REJECT_REASONS


def test_reassembled_parts_that_do_not_decode_are_rejected_not_raised() -> None:
    codec = StateCodec("g")
    log = [
        StateRecord("part", "g", 0, {"predictions": 10}, "wide", part=(0, 1, b"junk")),
        *[
            codec.decode(v)
            for _, v in codec.model_records(0, {"predictions": 10}, "narrow", {"mark": 1})
        ],
        codec.decode(codec.checkpoint_record(0, {"predictions": 10})[1]),
    ]
    restored = select(log, codec.decode)
    assert restored.models == {"narrow": {"mark": 1}}
    assert [(model, error.reason) for model, error in restored.rejected] == [("wide", "format")]


def test_restore_takes_the_newest_complete_checkpoint() -> None:
    def model(name: str, offset: int, mark: int) -> StateRecord:
        return StateRecord(
            "model", "g", 0, {"predictions": offset, "features": 0}, name, {"mark": mark}
        )

    def checkpoint(offset: int) -> StateRecord:
        return StateRecord("checkpoint", "g", 0, {"predictions": offset, "features": 0})

    log = [
        model("a", 100, 1),
        model("b", 100, 1),
        checkpoint(100),
        model("a", 200, 2),
        checkpoint(200),
        model("a", 300, 3),
        model("b", 300, 3),  # a checkpoint that never completed
    ]
    restored = select(log, StateCodec("g").decode)
    assert restored.offsets == {"predictions": 200, "features": 0}
    assert restored.models == {"a": {"mark": 2}, "b": {"mark": 1}}
    assert select([model("a", 1, 1)], StateCodec("g").decode).offsets is None


def test_an_evicted_model_is_not_restored_unless_it_came_back_later() -> None:
    codec = StateCodec("g")
    offsets = {"predictions": 10}
    log = [
        codec.model_records(0, offsets, "gone", {"mark": 1})[0],
        codec.model_records(0, offsets, "back", {"mark": 1})[0],
        codec.checkpoint_record(0, offsets),
        codec.evicted_record(0, {"predictions": 20}, "gone"),
        codec.evicted_record(0, {"predictions": 20}, "back"),
        codec.model_records(0, {"predictions": 20}, "back", {"mark": 2})[0],
        codec.checkpoint_record(0, {"predictions": 20}),
        codec.evicted_record(0, {"predictions": 30}, "back"),  # a checkpoint that never completed
    ]
    assert log[3][0] == b"model:gone"  # the same key: compaction drops the old state
    restored = select([codec.decode(value) for _, value in log], codec.decode)
    assert restored.models == {"back": {"mark": 2}}


def test_encoded_state_stays_small() -> None:
    pipeline = Pipeline(load_settings(None))
    pipeline.process(stream())
    monitor = next(iter(pipeline.models()))
    records = StateCodec("g").model_records(0, {"predictions": 1}, monitor.name, monitor.to_state())
    assert len(records) == 1 and len(records[0][1]) < PART_BYTES, (
        f"{len(records[0][1])} bytes for one model"
    )


def big_state() -> dict:
    rng = np.random.default_rng(0)
    return {"noise": rng.random(300_000).tolist()}  # about 2 MB encoded: several parts


def test_a_large_model_record_is_written_as_parts_and_reassembled() -> None:
    codec = StateCodec("g", b"key")
    parts = codec.model_records(0, {"predictions": 10}, "wide", big_state())
    assert len(parts) > 2 and all(len(value) < 1_000_000 for _, value in parts)
    assert [key for key, _ in parts] == [b"model:wide#%d" % i for i in range(len(parts))]
    log = [codec.decode(value) for _, value in parts] + [
        codec.decode(codec.checkpoint_record(0, {"predictions": 10})[1])
    ]
    # parts may come in any order
    restored = select(list(reversed(log[:-1])) + log[-1:], codec.decode)
    assert restored.models["wide"] == big_state()


def test_an_incomplete_set_of_parts_is_ignored() -> None:
    codec = StateCodec("g")
    older = codec.model_records(0, {"predictions": 5}, "wide", {"mark": 1})
    newer = codec.model_records(0, {"predictions": 10}, "wide", big_state())
    checkpoint = codec.checkpoint_record(0, {"predictions": 10})[1]
    log = (
        [codec.decode(v) for _, v in older]
        + [codec.decode(v) for _, v in newer[:-1]]
        + [codec.decode(checkpoint)]
    )
    assert select(log, codec.decode).models["wide"] == {"mark": 1}


def test_parts_are_signed() -> None:
    parts = StateCodec("g", b"key").model_records(0, {}, "wide", big_state())
    with pytest.raises(StateError, match="signature"):
        StateCodec("g", b"other").decode(parts[0][1])
