"""Outputs (alerts, dead letters, state) and how input offsets are committed with them.

* at_least_once: outputs are produced by an idempotent producer; a checkpoint flushes them,
  fails if any was not acknowledged, and only then commits the input offsets.
* exactly_once: outputs are produced inside a transaction; a checkpoint adds the input
  offsets to it (send_offsets_to_transaction) and commits everything at once.

Errors follow confluent-kafka's three kinds: retriable (retried here), abortable (the
transaction is aborted and `CheckpointAborted` raised: the caller rewinds), fatal (raised).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
QUEUE_FULL_TIMEOUT_S = 60.0
TRANSACTION_TIMEOUT_S = 30.0
RETRIES = 5


class DeliveryError(RuntimeError):
    """Outputs could not be delivered: offsets were not committed (input will be replayed)."""


class CheckpointAborted(RuntimeError):
    """The transaction was aborted: nothing of it is visible; rewind to the last checkpoint."""


class CommitSuperseded(RuntimeError):
    """at_least_once: the group moved on before the offsets were committed (not fatal)."""


# Offset commits refused because this member's generation is over.
GROUP_MOVED_ON = frozenset({KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS})


class Outputs:
    """Common producing logic; subclasses define the commit protocol."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.failures: list[str] = []
        self.unacknowledged = 0

    def _on_delivery(self, error: KafkaError | None, message: Any) -> None:
        self.unacknowledged -= 1
        if error is not None:
            self.failures.append(f"{message.topic()}: {error.str()}")

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None, partition: int = -1
    ) -> None:
        """Queue one message (partition -1: by key); waits (bounded) while the local queue is full."""
        deadline = time.monotonic() + QUEUE_FULL_TIMEOUT_S
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=list(headers or ()), partition=partition, on_delivery=self._on_delivery
                )
                self.unacknowledged += 1
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise DeliveryError(f"producer queue stayed full for {QUEUE_FULL_TIMEOUT_S:.0f}s") from None
                self.producer.poll(0.05)

    def poll(self) -> None:
        self.producer.poll(0)

    def _raise_failures(self) -> None:
        if self.failures:
            failures, self.failures = self.failures, []
            raise DeliveryError(f"{len(failures)} output message(s) were not delivered, first: {failures[0]}")

    def settle(self) -> None:
        """Make sure what was sent so far is durable before anything that depends on it is sent."""

    def commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what is in flight (exactly_once: abort the transaction)."""

    def close(self) -> None:
        self.producer.flush(FLUSH_TIMEOUT_S)
        self.producer.close()


class AtLeastOnceOutputs(Outputs):
    def settle(self) -> None:
        """Wait until everything sent is acknowledged; raise if anything failed."""
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            raise DeliveryError(f"{remaining} output message(s) still unacknowledged after {FLUSH_TIMEOUT_S:.0f}s")
        self._raise_failures()

    def commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        self.settle()
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() not in GROUP_MOVED_ON:
                raise
            # The group rebalanced under us (e.g. after a short outage): these offsets are no longer
            # ours to commit. The state they cover was written; whoever gets the partitions resumes from it.
            raise CommitSuperseded(exc.args[0].str()) from None


class ExactlyOnceOutputs(Outputs):
    def __init__(self, producer: Producer) -> None:
        super().__init__(producer)
        self.in_transaction = False
        _retrying(lambda: producer.init_transactions(TRANSACTION_TIMEOUT_S), "init_transactions")

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None, partition: int = -1
    ) -> None:
        self._begin()
        super().send(topic, key, value, headers, partition)

    def _begin(self) -> None:
        if not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True

    def commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        if not offsets and not self.in_transaction:
            return
        self._begin()
        try:
            if offsets:
                metadata = consumer.consumer_group_metadata()
                _retrying(lambda: self.producer.send_offsets_to_transaction(offsets, metadata, TRANSACTION_TIMEOUT_S), "send_offsets")
            _retrying(lambda: self.producer.commit_transaction(TRANSACTION_TIMEOUT_S), "commit_transaction")
        except KafkaException as exc:
            if exc.args[0].txn_requires_abort():
                self.abort()
                raise CheckpointAborted(exc.args[0].str()) from None
            raise
        finally:
            self.failures.clear()  # a committed transaction delivered all; an aborted one none
        self.in_transaction = False

    def abort(self) -> None:
        if self.in_transaction:
            self.producer.abort_transaction(TRANSACTION_TIMEOUT_S)
            self.in_transaction = False

    def close(self) -> None:
        self.abort()
        super().close()


def _retrying(call: Any, what: str) -> None:
    """Run a transactional call, retrying errors Kafka marks as retriable."""
    for attempt in range(1, RETRIES + 1):
        try:
            call()
            return
        except KafkaException as exc:
            error = exc.args[0]
            if not error.retriable() or attempt == RETRIES:
                raise
            log.warning("%s failed (%s), retrying (%d/%d)", what, error.str(), attempt, RETRIES)
            time.sleep(0.2 * attempt)
