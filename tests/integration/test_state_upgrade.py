"""A restart after an upgrade, or over a bad state record, on the real broker: the models whose
state cannot be used re-learn, every other model keeps what it learned, the process runs on,
and the metrics count what was skipped."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest
import river
from confluent_kafka import Producer

from detector.core.monitors.model import STATE_SCHEMA
from detector.core.state import StateCodec, StateRecord
from producers.simulate import Simulator
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    create_topics,
    interleaved,
    produce,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.broker

SIGNING_KEY = "state-upgrade-test-key"
EVENTS = 1500  # per model: past the warm-up (1,000), so that every signal runs its detectors


def traffic(models: list[str], events: int, seed: int) -> list[dict[str, Any]]:
    return interleaved(
        [Simulator(model=name, seed=seed + i).events(events) for i, name in enumerate(models)]
    )


def forget_versions(state: dict[str, Any]) -> None:
    """The layout written before states carried a schema."""
    state.pop("state_schema", None)
    state.pop("libraries", None)


def other_river(state: dict[str, Any]) -> None:
    state["libraries"] = {"river": "0.0.1"}


def truncate_adwin(state: dict[str, Any]) -> None:
    """Signed and well-formed JSON, but ADWIN bytes that river's core cannot read (it panics)."""
    streams = next(signal["streams"] for signal in state["signals"].values() if signal["streams"])
    next(iter(streams.values()))["adwin"] = base64.b64encode(b"\x00" * 9).decode()


DAMAGE: dict[str, Callable[[dict[str, Any]], None]] = {
    "old": forget_versions,
    "upgraded": other_river,
    "broken": truncate_adwin,
}
MODELS = ["kept", *DAMAGE]


def by_reason(
    thread: ServiceThread, name: str, reasons: tuple[str, ...]
) -> dict[str, float | None]:
    return {
        reason: thread.service.registry.get_sample_value(name, {"reason": reason})
        for reason in reasons
    }


def test_models_whose_state_cannot_be_used_relearn_and_the_others_are_restored(
    topics: KafkaNames, caplog: pytest.LogCaptureFixture
) -> None:
    settings = topics.settings(state={"signing_key": SIGNING_KEY})
    create_topics(settings)
    produce(topics.bootstrap, topics.predictions, traffic(MODELS, EVENTS, seed=40))
    with ServiceThread(settings) as first:
        first.wait_processed(len(MODELS) * EVENTS)

    codec = StateCodec(topics.group, SIGNING_KEY.encode())
    written = [codec.decode(m.value()) for m in read_topic(topics.bootstrap, topics.state)]
    models = {r.model: r for r in written if r.type == "model"}
    checkpoints = {r.partition: r for r in written if r.type == "checkpoint"}
    assert set(models) == set(MODELS) and all(
        models[name].state["events_seen"] == EVENTS for name in MODELS
    )  # type: ignore[index]
    replace_state(topics, codec, models, checkpoints)

    caplog.set_level(logging.WARNING, logger="detector.service.service")
    with ServiceThread(settings) as second:
        wait_until(
            lambda: second.service.is_ready() or second.error is not None,
            60,
            "the second detector to restore and be ready",
        )
        assert second.error is None, second.error
        restored = {m.name: m.events_seen for m in second.service.pipeline.models()}
        assert restored == {"kept": EVENTS}, (
            "only the model with a usable state is restored, without re-learning"
        )
        relearned = by_reason(
            second,
            "streamdrift_state_models_relearned_total",
            ("schema", "library", "load_error", "settings"),
        )
        assert relearned == {"schema": 1, "library": 1, "load_error": 1, "settings": 0}
        rejected = by_reason(
            second,
            "streamdrift_state_records_rejected_total",
            ("format", "signature", "malformed", "other_group"),
        )
        assert rejected == {"format": 1, "signature": 1, "malformed": 0, "other_group": 1}
        relearning = sorted(r.getMessage() for r in caplog.records if "re-learns" in r.getMessage())
        assert len(relearning) == 3, relearning
        assert "model broken re-learns" in relearning[0] and "PanicException" in relearning[0]
        assert (
            "model old re-learns" in relearning[1]
            and f"state schema 0 -> {STATE_SCHEMA}" in relearning[1]
        )
        assert (
            "model upgraded re-learns" in relearning[2]
            and f"river 0.0.1 -> {river.__version__}" in relearning[2]
        )

        produce(topics.bootstrap, topics.predictions, traffic(MODELS, 100, seed=90))
        second.wait_processed(len(MODELS) * 100)
        expected = {"kept": EVENTS + 100, "old": 100, "upgraded": 100, "broken": 100}

        def seen() -> dict[str, int]:
            return {m.name: m.events_seen for m in second.service.pipeline.models()}

        # consumed is not yet observed: each model's events are held until the next commit
        try:
            wait_until(lambda: seen() == expected, 30, "every model to observe its new events")
        except AssertionError:
            assert seen() == expected


def replace_state(
    topics: KafkaNames,
    codec: StateCodec,
    models: dict[str | None, StateRecord],
    checkpoints: dict[int, StateRecord],
) -> None:
    """After the last checkpoint: a damaged, signed state for each model of DAMAGE, and three
    records the restore must skip (not a state record; signed with another key; another group's)."""
    producer = Producer({"bootstrap.servers": topics.bootstrap})
    for name, damage in DAMAGE.items():
        record = models[name]
        assert record.state is not None
        damage(record.state)
        offsets = checkpoints[record.partition].offsets
        for key, value in codec.model_records(record.partition, offsets, name, record.state):
            producer.produce(topics.state, value=value, key=key, partition=record.partition)
    partition = models["kept"].partition
    offsets = checkpoints[partition].offsets
    forged = StateCodec(topics.group, b"another key").model_records(
        partition, offsets, "forged", {"events_seen": 0}
    )
    strange = StateCodec("another-group", SIGNING_KEY.encode()).model_records(
        partition, offsets, "strange", {"events_seen": 0}
    )
    producer.produce(topics.state, value=b"junk", key=b"model:stray", partition=partition)
    for key, value in forged + strange:
        producer.produce(topics.state, value=value, key=key, partition=partition)
    assert producer.flush(30) == 0
    producer.close()
