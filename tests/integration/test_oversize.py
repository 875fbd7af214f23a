"""Messages too large to copy whole, and a process that stops on an error, on the real broker.

A bad message larger than limits.max_output_bytes is dead-lettered cut to it, with its size and
SHA-256 in headers; the process keeps running, before and after a restart. The input topic's
max.message.bytes is raised to 25 MB (Apache Kafka refuses records over 1 MB by default; the
embedded Tansu accepts any size and ignores the setting) and the test producer raises its own
message.max.bytes, so inputs up to 20 MB are sent. A broker refusing a dead letter as too large
is tested in tests/unit/test_dead_letters.py.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    committed_total,
    create_topics,
    produce,
    read_topic,
    wait_until,
)

MB = 1_000_000
LIMIT = 900_000  # limits.max_output_bytes, the default


def valid(model: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "id": f"{model}-{start + i}",
            "features": {"x": float(i % 7)},
            "score": 0.3,
        }
        for i in range(count)
    ]


def produce_large(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """(key, value) pairs, with a producer that allows records up to 25 MB; each must be stored."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "message.max.bytes": 25 * MB, "linger.ms": 5}
    )
    refused: list[str] = []
    for key, value in messages:
        producer.produce(
            topic,
            value=value,
            key=key,
            on_delivery=lambda error, _: error and refused.append(error.str()),
        )
    assert producer.flush(60) == 0 and not refused, refused


def allow_records_up_to(bootstrap: str, topic: str, size: int) -> None:
    """Raise the topic's max.message.bytes (Apache Kafka refuses records over 1 MB by default; the
    embedded broker accepts any size and ignores the setting)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        "topic",
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", str(size), incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def bad(size: int, filler: bytes) -> bytes:
    """A value of exactly `size` bytes that is not JSON."""
    return (b"no json " + filler * size)[:size]


def by_source_offset(letters: list[Message]) -> dict[int, Message]:
    return {int(dict(m.headers())["streamdrift.source.offset"]): m for m in letters}


def headers_of(message: Message) -> dict[str, bytes]:
    return dict(message.headers())


# Sizes (key plus value, the key is "m") of bad inputs around the limits: under, at and over the
# copy limit, at and over the decoder's limits.max_message_bytes (1,000,000: a larger value is
# `oversize`, the others `not_json`), and far over both.
FIRST_RUN = [LIMIT - 1, LIMIT, LIMIT + 1, MB + 1, MB + 2, 5 * MB, 20 * MB]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_messages_too_large_to_copy_whole_are_dead_lettered_cut_and_the_process_keeps_running(
    guarantee: str, topics: KafkaNames
) -> None:
    settings = topics.settings(
        processing_guarantee=guarantee, topics={"partitions": 1}
    )  # whatever the key
    create_topics(settings)
    allow_records_up_to(topics.bootstrap, topics.predictions, 25 * MB)
    sent: dict[int, tuple[bytes, bytes]] = {}  # offset on the predictions partition -> key, value
    offset = 0

    def send(valid_events: list[dict[str, Any]], large: list[tuple[bytes, bytes]]) -> None:
        """Valid events before and after each large one."""
        nonlocal offset
        for key, value in large:
            offset += produce(topics.bootstrap, topics.predictions, valid_events)
            produce_large(topics.bootstrap, topics.predictions, [(key, value)])
            sent[offset] = (key, value)
            offset += 1
        offset += produce(topics.bootstrap, topics.predictions, valid_events)

    first = [(b"m", bad(size - 1, b"a")) for size in FIRST_RUN]
    send(valid("m", 20), first)
    with ServiceThread(settings) as detector:
        detector.wait_processed(offset, timeout_s=120)
    assert committed_total(topics.bootstrap, topics.group, topics.predictions) == offset

    # While it is stopped: more valid events, a 5 MB oversize message and a message with a 2 MB key.
    second = [(b"m", b"{" + b" " * (5 * MB)), (b"m" * (2 * MB), b"not json either")]
    before = offset
    send(valid("m", 20, start=1000), second)
    with ServiceThread(settings) as detector:  # restores from its checkpoint, reads the rest
        detector.wait_processed(offset - before, timeout_s=120)
        registry = detector.service.registry

        def valid_seen() -> float | None:
            return registry.get_sample_value(
                "streamdrift_events_total", {"topic": topics.predictions, "model": "m"}
            )

        # counted once their model's monitors ran on them: at the commit that flushes them
        wait_until(lambda: valid_seen() == 20 * (len(second) + 1), 30, "the valid events counted")
        truncated = detector.service.registry.get_sample_value(
            "streamdrift_dead_letters_truncated_total", {"topic": topics.predictions}
        )
    assert truncated == 2

    letters = read_topic(topics.bootstrap, topics.dlq, idle_s=3)
    assert Counter(int(headers_of(m)["streamdrift.source.offset"]) for m in letters) == Counter(
        sent.keys()
    ), "each bad input exactly once"
    for source_offset, letter in by_source_offset(letters).items():
        key, value = sent[source_offset]
        headers = headers_of(letter)
        assert headers["streamdrift.source.topic"].decode() == topics.predictions
        assert headers["streamdrift.reason"] == (b"oversize" if len(value) > MB else b"not_json")
        kept_key, kept_value = letter.key() or b"", letter.value() or b""
        if len(key) + len(value) <= LIMIT:
            assert (kept_key, kept_value) == (key, value)
            assert "streamdrift.truncated" not in headers
            continue
        assert len(kept_key) + len(kept_value) == LIMIT
        assert key.startswith(kept_key) and value.startswith(kept_value)
        assert headers["streamdrift.truncated"] == b"true"
        assert int(headers["streamdrift.original.value.bytes"]) == len(value)
        assert (
            headers["streamdrift.original.value.sha256"].decode()
            == hashlib.sha256(value).hexdigest()
        )
        assert int(headers["streamdrift.original.key.bytes"]) == len(key)
        assert (
            headers["streamdrift.original.key.sha256"].decode() == hashlib.sha256(key).hexdigest()
        )
    huge_key = by_source_offset(letters)[max(sent)]
    assert huge_key.value() == b"not json either" and len(huge_key.key()) == LIMIT - len(
        b"not json either"
    )


class FailingBatch(RuntimeError):
    """The error forced in the middle of a stream."""


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_process_that_stops_on_an_error_delivers_and_commits_nothing_more(
    guarantee: str, topics: KafkaNames
) -> None:
    """Outputs of the failed run still queued in the producer (linger.ms of 20 s keeps them
    there) are discarded, the transaction aborted and no offset committed; the restart then
    dead-letters every bad input exactly once. On the old code the at_least_once run delivered
    its queue while closing, so its dead letters appeared twice.

    What this cannot show on the embedded broker: records of an aborted transaction that had
    reached it. Tansu 0.6.0 shows them to read_committed readers after the abort (checked with a
    bare transactional producer), where Apache Kafka hides them."""
    restarted = topics.settings(processing_guarantee=guarantee)
    failing = topics.settings(
        processing_guarantee=guarantee, kafka={"properties": {"linger.ms": 20_000}}
    )
    settings = failing.model_copy(update={"commit_interval_ms": 600_000})
    create_topics(settings)
    stream: list[bytes | dict[str, Any]] = []
    for i, event in enumerate(valid("m", 400)):
        stream.append(event)
        if i % 40 == 0:
            stream.append(b"bad %d" % i)
    produce(topics.bootstrap, topics.predictions, stream[:200], key=b"m")
    detector = ServiceThread(settings).start()
    detector.wait_processed(200, timeout_s=120)  # its dead letters are queued, not yet sent

    def fail_on_the_next_batch(messages: Any, hold: bool = False) -> Any:
        raise FailingBatch("forced mid-stream")

    detector.service.pipeline.process = fail_on_the_next_batch  # type: ignore[method-assign]
    produce(topics.bootstrap, topics.predictions, stream[200:], key=b"m")
    detector.thread.join(timeout=120)  # it stops on the error
    with pytest.raises(FailingBatch):
        detector.stop()
    assert committed_total(topics.bootstrap, topics.group, topics.predictions) == 0, (
        "nothing is committed after a failure"
    )
    assert read_topic(topics.bootstrap, topics.dlq, idle_s=3, committed_only=False) == [], (
        "nothing of the failed run was delivered"
    )

    with ServiceThread(restarted) as detector:
        detector.wait_processed(len(stream), timeout_s=120)
    letters = read_topic(topics.bootstrap, topics.dlq, idle_s=3)
    bad_inputs = sum(1 for item in stream if isinstance(item, bytes))
    assert sorted(m.value() for m in letters) == sorted(
        item for item in stream if isinstance(item, bytes)
    )
    assert len(letters) == bad_inputs
