"""Outputs too large for the broker: dead letters cut to limits.max_output_bytes, alerts with
shortened texts, and what happens when the broker refuses a dead letter as too large anyway
(Kafka is faked here: the embedded broker accepts records of any size)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, TopicPartition

from detector.core.pipeline import DeadLetter
from detector.kafka.delivery import (
    AtLeastOnceOutputs,
    CheckpointAborted,
    DeliveryError,
    ExactlyOnceOutputs,
)
from detector.service.service import Service
from detector.settings import OUTPUT_HEADROOM_BYTES, ConfigError, load_settings
from tests.unit.test_alerts import sample

LIMIT = 1000


def letter(
    key: bytes | None, value: bytes | None, topic: str = "predictions", detail: str = "not JSON"
) -> DeadLetter:
    return DeadLetter(topic, 2, 41, key, value, 1_764_064_800_000, "not_json", detail)


def test_a_dead_letter_that_fits_is_copied_verbatim() -> None:
    key, value = b"k" * 10, b"v" * (LIMIT - 10)
    record = letter(key, value).record(LIMIT)
    assert (record.key, record.value, record.truncated) == (key, value, False)
    assert record.headers == letter(key, value).headers()
    assert not any(name.startswith("streamdrift.original") for name, _ in record.headers)


def test_a_value_too_large_is_cut_and_described_in_headers() -> None:
    key, value = b"model-a", bytes(range(256)) * 40
    record = letter(key, value).record(LIMIT)
    assert record.truncated and record.key == key
    assert record.value == value[: LIMIT - len(key)]
    headers = dict(record.headers)
    assert headers["streamdrift.truncated"] == b"true"
    assert headers["streamdrift.original.value.bytes"] == b"10240"
    assert (
        headers["streamdrift.original.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
    )
    assert headers["streamdrift.original.key.bytes"] == b"7"
    assert headers["streamdrift.original.key.sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert (
        headers["streamdrift.reason"] == b"not_json"
        and headers["streamdrift.source.offset"] == b"41"
    )


def test_a_huge_key_is_cut_too_and_keeps_at_least_half_the_room() -> None:
    small_value = letter(b"k" * 5000, b"short").record(LIMIT)
    assert (len(small_value.key or b""), small_value.value) == (LIMIT - 5, b"short")
    both_huge = letter(b"k" * 5000, b"v" * 5000).record(LIMIT)
    assert (len(both_huge.key or b""), len(both_huge.value or b"")) == (LIMIT // 2, LIMIT // 2)
    no_value = letter(b"k" * 5000, None).record(LIMIT)
    assert (len(no_value.key or b""), no_value.value) == (LIMIT, None)
    assert dict(no_value.headers)["streamdrift.original.value.bytes"] == b"0"


def test_no_room_leaves_key_and_value_out_but_keeps_the_description() -> None:
    record = letter(b"m", b"{}").record(0)
    assert (record.key, record.value, record.truncated) == (None, None, True)
    assert (
        dict(record.headers)["streamdrift.original.value.sha256"]
        == hashlib.sha256(b"{}").hexdigest().encode()
    )


def test_headers_fit_the_room_left_for_them() -> None:
    """The largest headers a dead letter can carry: a 249-character topic (Kafka's longest), a
    long detail, the longest reason and 20-digit numbers, with Kafka's per-header framing."""
    worst = DeadLetter(
        "t" * 249,
        2**31 - 1,
        2**63 - 1,
        b"k" * 10,
        b"v" * 10,
        2**63 - 1,
        "missing_model",
        "é" * 5000,
    )
    headers = worst.record(0).headers
    framing = 10  # varint lengths of name and value, per header
    assert (
        sum(len(name.encode()) + len(value) + framing for name, value in headers)
        < OUTPUT_HEADROOM_BYTES // 2
    )


def test_the_output_limit_must_fit_a_producer_limit_set_in_kafka_properties() -> None:
    assert load_settings().limits.max_output_bytes == 900_000
    assert (
        load_settings(
            kafka={"properties": {"message.max.bytes": 2_000_000}}
        ).limits.max_output_bytes
        == 900_000
    )
    with pytest.raises(ConfigError, match=r"message\.max\.bytes"):
        load_settings(kafka={"properties": {"message.max.bytes": 900_000}})
    assert load_settings(
        kafka={"properties": {"message.max.bytes": 500_000}}, limits={"max_output_bytes": 400_000}
    )


def test_an_alert_too_large_has_its_texts_shortened_and_keeps_its_id() -> None:
    name = "feature." + "x" * 600_000  # a feature name may be as long as an input message
    alert = sample(
        monitor=name, evidence={"changes": [f"new feature '{name}'"] * 3, "before": {"mean": 1.5}}
    )
    whole = alert.encode("grp")
    assert len(whole) > 2_000_000
    bounded = alert.encode("grp", max_bytes=100_000)
    assert len(bounded) + len(alert.key) <= 100_000
    event = orjson.loads(bounded)
    assert event["id"] == orjson.loads(whole)["id"] == alert.id("grp")
    assert event["data"]["truncated"] is True
    assert event["data"]["monitor"] == name[:1000] and event["data"]["evidence"]["before"] == {
        "mean": 1.5
    }
    assert sample().encode("grp", max_bytes=100_000) == sample().encode("grp"), (
        "an alert that fits is unchanged"
    )


# -- the broker refuses a dead letter as too large ---------------------------------------


class FakeError:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return f"error {self._code}"

    def txn_requires_abort(self) -> bool:
        return False


class FakeRecord:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeProducer:
    """Delivers on flush; refuses as too large the records whose value is in `refuse`."""

    def __init__(
        self, refuse: set[bytes | None] = frozenset(), fail: set[bytes | None] = frozenset()
    ) -> None:
        self.refuse, self.fail = refuse, fail
        self.queued: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.delivered: list[tuple[str, bytes | None, bytes | None]] = []
        self.calls: list[str] = []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Any,
        partition: int,
        on_delivery: Any,
    ) -> None:
        self.queued.append((topic, key, value, on_delivery))

    def flush(self, timeout: float) -> int:
        queued, self.queued = self.queued, []
        for topic, key, value, on_delivery in queued:
            error = None
            if value in self.refuse:
                error = FakeError(KafkaError.MSG_SIZE_TOO_LARGE)
            elif value in self.fail:
                error = FakeError(KafkaError._MSG_TIMED_OUT)
            else:
                self.delivered.append((topic, key, value))
            on_delivery(error, FakeRecord(topic))
        return 0

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> None:
            self.calls.append(name)

        return call


class FakeConsumer:
    def consumer_group_metadata(self) -> object:
        return object()

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        pass


def test_at_least_once_a_refused_dead_letter_abandons_the_checkpoint_and_is_remembered() -> None:
    outputs = AtLeastOnceOutputs(FakeProducer(refuse={b"big"}))  # type: ignore[arg-type]
    outputs.send("dlq", None, b"big", place=("predictions", 0, 7))
    outputs.send("alerts", None, b"alert")
    with pytest.raises(CheckpointAborted, match="too large"):
        outputs.settle()
    assert outputs.refusals == {("predictions", 0, 7): 1}
    outputs.settle()  # reported once: the replay starts clean


def test_a_refusal_without_a_place_or_another_failure_stops_as_before() -> None:
    outputs = AtLeastOnceOutputs(FakeProducer(refuse={b"big"}, fail={b"denied"}))  # type: ignore[arg-type]
    outputs.send("state", None, b"big")
    with pytest.raises(DeliveryError):
        outputs.settle()
    outputs.send("dlq", None, b"big", place=("predictions", 0, 7))
    outputs.send("dlq", None, b"denied", place=("predictions", 0, 8))
    with pytest.raises(DeliveryError, match="1 output"):
        outputs.settle()


def test_exactly_once_a_refused_dead_letter_aborts_the_transaction_before_the_offsets() -> None:
    producer = FakeProducer(refuse={b"big"})
    outputs = ExactlyOnceOutputs(producer, "streamdrift-test")  # type: ignore[arg-type]
    outputs.send("dlq", None, b"big", place=("predictions", 0, 7))
    with pytest.raises(CheckpointAborted, match="too large"):
        outputs.commit(FakeConsumer(), [TopicPartition("predictions", 0, 8)])  # type: ignore[arg-type]
    assert "abort_transaction" in producer.calls
    assert (
        "send_offsets_to_transaction" not in producer.calls
        and "commit_transaction" not in producer.calls
    )
    assert outputs.refusals == {("predictions", 0, 7): 1} and not outputs.in_transaction
    outputs.send("dlq", None, b"small", place=("predictions", 0, 7))
    outputs.commit(FakeConsumer(), [TopicPartition("predictions", 0, 8)])  # type: ignore[arg-type]
    assert producer.calls[-2:] == ["send_offsets_to_transaction", "commit_transaction"]


def test_the_replay_sends_a_refused_dead_letter_headers_only_then_gives_up_on_it() -> None:
    service = Service(
        load_settings(
            kafka={"bootstrap_servers": "127.0.0.1:1"}, processing_guarantee="at_least_once"
        )
    )
    producer = FakeProducer()
    service.outputs = outputs = AtLeastOnceOutputs(producer)  # type: ignore[arg-type]
    bad = letter(b"m", b"x" * 2_000_000)
    service._send_dead_letter(bad)
    producer.flush(0)
    assert len(producer.delivered[-1][2] or b"") == 900_000 - 1
    outputs.refusals[bad.place] = 1  # the broker refused it
    service._send_dead_letter(bad)
    producer.flush(0)
    assert producer.delivered[-1] == ("drift-dlq", None, None)
    outputs.refusals[bad.place] = 2  # and refused the headers-only copy too
    service._send_dead_letter(bad)
    producer.flush(0)
    assert len(producer.delivered) == 2
    assert service.registry.get_sample_value("streamdrift_dead_letters_undelivered_total") == 1
    assert (
        service.registry.get_sample_value(
            "streamdrift_dead_letters_truncated_total", {"topic": "predictions"}
        )
        == 2
    )
