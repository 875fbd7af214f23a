"""Checkpoint state: exact round trip, replay-equivalence, safe decoding, restore selection."""

from __future__ import annotations

import pickle
import zlib

import numpy as np
import orjson
import pytest

from detector.pipeline import Pipeline
from detector.settings import load_settings
from detector.state import MAGIC, StateCodec, StateError, StateRecord, select
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
    _, value = codec.model_record(0, {"predictions": cut}, monitor.name, monitor.to_state())
    record = codec.decode(value)

    second = Pipeline(settings)
    restored = second.new_monitor(monitor.name)
    assert record.state is not None and restored.load_state(record.state)
    second.install(0, {monitor.name: restored})
    after = second.process(batch[cut:]).alerts
    assert alert_keys(before + after) == expected


def test_state_learned_under_other_parameters_is_not_reused() -> None:
    settings = load_settings(None)
    pipeline = Pipeline(settings)
    pipeline.process(stream()[:2000])
    state = next(iter(pipeline.models())).to_state()
    other = load_settings(None, detection={"warmup_events": 700})
    fresh = Pipeline(other).new_monitor("fraud")
    assert fresh.load_state(state) is False
    assert fresh.signals == {}


def test_records_are_versioned_compressed_and_never_unpickled() -> None:
    codec = StateCodec("g")
    key, value = codec.checkpoint_record(3, {"predictions": 10})
    assert key == b"checkpoint" and value.startswith(MAGIC)
    assert codec.decode(value) == StateRecord("checkpoint", "g", 3, {"predictions": 10})
    evil = pickle.dumps(ValueError("boom"))
    for bad in [None, b"", evil, MAGIC + evil, MAGIC + zlib.compress(b"[1,2]"), MAGIC + zlib.compress(orjson.dumps({"type": "model", "partition": 0, "offsets": {}})), b"SDS\x02" + value[4:]]:
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


def test_restore_takes_the_newest_complete_checkpoint() -> None:
    def model(name: str, offset: int, mark: int) -> StateRecord:
        return StateRecord("model", "g", 0, {"predictions": offset, "features": 0}, name, {"mark": mark})

    def checkpoint(offset: int) -> StateRecord:
        return StateRecord("checkpoint", "g", 0, {"predictions": offset, "features": 0})

    log = [
        model("a", 100, 1), model("b", 100, 1), checkpoint(100),
        model("a", 200, 2), checkpoint(200),
        model("a", 300, 3), model("b", 300, 3),  # a checkpoint that never completed
    ]
    restored = select(log)
    assert restored.offsets == {"predictions": 200, "features": 0}
    assert restored.models == {"a": {"mark": 2}, "b": {"mark": 1}}
    assert select([model("a", 1, 1)]).offsets is None


def test_encoded_state_stays_small() -> None:
    pipeline = Pipeline(load_settings(None))
    pipeline.process(stream())
    monitor = next(iter(pipeline.models()))
    _, value = StateCodec("g").model_record(0, {"predictions": 1}, monitor.name, monitor.to_state())
    assert len(value) < 400_000, f"{len(value)} bytes for one model"
    assert np.isfinite(len(value))
