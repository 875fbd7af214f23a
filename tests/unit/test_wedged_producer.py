"""A transactional call that never returns (librdkafka #5456/#5511: send_offsets_to_transaction
waits forever for a group coordinator whose broker was fenced) abandons the checkpoint instead
of blocking the detector (Kafka is faked: the real hang needs a cluster, see
tests/apache_kafka/test_cluster_faults.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from confluent_kafka import TopicPartition

from detector.kafka import delivery
from detector.kafka.delivery import CheckpointAborted, ExactlyOnceOutputs, ProducerWedged


class HangingProducer:
    """A transactional producer whose send_offsets_to_transaction blocks until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init_transactions")

    def begin_transaction(self) -> None:
        self.calls.append("begin_transaction")

    def flush(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(
        self, offsets: object, metadata: object, timeout: float
    ) -> None:
        self.calls.append("send_offsets_to_transaction")
        self.release.wait()

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit_transaction")

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort_transaction")


class Consumer:
    def consumer_group_metadata(self) -> object:
        return object()


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[HangingProducer]:
    monkeypatch.setattr(delivery, "TRANSACTION_TIMEOUT_S", 0.1)
    monkeypatch.setattr(delivery, "WEDGE_GRACE_S", 0.1)
    hanging = HangingProducer()
    yield hanging
    hanging.release.set()


def test_a_send_offsets_that_never_returns_abandons_the_producer(producer: HangingProducer) -> None:
    outputs = ExactlyOnceOutputs(producer, "tx")  # type: ignore[arg-type]
    with pytest.raises(ProducerWedged, match="send_offsets_to_transaction did not return"):
        outputs.commit(Consumer(), [TopicPartition("predictions", 0, 8)])  # type: ignore[arg-type]
    # Neither committed nor aborted: a call into the wedged producer would block as well; its
    # successor's init_transactions aborts the transaction.
    assert producer.calls == [
        "init_transactions",
        "begin_transaction",
        "send_offsets_to_transaction",
    ]
    assert issubclass(ProducerWedged, CheckpointAborted)  # the caller rewinds as after an abort


def test_a_send_offsets_that_returns_in_time_commits(producer: HangingProducer) -> None:
    producer.release.set()
    outputs = ExactlyOnceOutputs(producer, "tx")  # type: ignore[arg-type]
    outputs.commit(Consumer(), [TopicPartition("predictions", 0, 8)])  # type: ignore[arg-type]
    assert producer.calls[-2:] == ["send_offsets_to_transaction", "commit_transaction"]
