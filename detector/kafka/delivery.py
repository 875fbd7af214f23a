"""Outputs (alerts, dead letters, state) and how input offsets are committed with them.

* at_least_once: outputs are produced by an idempotent producer; a checkpoint flushes them,
  fails if any was not acknowledged, and only then commits the input offsets.
* exactly_once: outputs are produced inside a transaction; a checkpoint adds the input
  offsets to it (send_offsets_to_transaction) and commits everything at once.

`settle` and `commit` take an optional deadline (time.monotonic() seconds): the work done while
partitions are revoked must end before the group gives up on the member (see
detector.service.checkpointing). Past it, the blocking calls time out and raise.

Errors follow confluent-kafka's three kinds: retriable (retried here), abortable (the
transaction is aborted and `CheckpointAborted` raised: the caller rewinds), fatal (raised).
A missing ACL is neither retried nor rewound: it raises `ClusterRefused` (`NotAuthorized` where
the resource is known), as a replay would be refused again.

A record the broker refuses as too large (its limit below limits.max_output_bytes) would be
refused again on every replay. Records sent with a `place` (dead letters: the source message)
are remembered when refused so; the checkpoint is abandoned like an aborted transaction, and the
caller resends them smaller on the replay (see `refusals`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from detector.kafka.topics import AUTHORIZATION_FAILURES, Acl, ClusterRefused, NotAuthorized

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
QUEUE_FULL_TIMEOUT_S = 60.0
TRANSACTION_TIMEOUT_S = 30.0
WEDGE_GRACE_S = 5.0  # beyond a transactional call's own timeout, before it counts as wedged
RETRIES = 5
REFUSALS_KEPT = 10_000  # places remembered in Outputs.refusals (about 200 bytes each)


class DeliveryError(RuntimeError):
    """Outputs could not be delivered: offsets were not committed (input will be replayed)."""


class CheckpointAborted(RuntimeError):
    """The transaction was aborted: nothing of it is visible; rewind to the last checkpoint."""


class ProducerWedged(CheckpointAborted):
    """A transactional call did not return within its timeout: the producer is abandoned, and
    the caller replaces it (the successor's init_transactions aborts the open transaction)."""


class CommitSuperseded(RuntimeError):
    """at_least_once: the group moved on before the offsets were committed (not fatal)."""


# Offset commits refused because this member's generation is over.
GROUP_MOVED_ON = frozenset(
    {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS}
)


class Outputs:
    """Common producing logic; subclasses define the commit protocol."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.failures: list[str] = []
        self.refused: list[
            str
        ] = []  # records with a place refused as too large since the last checkpoint
        self.refusals: dict[
            Hashable, int
        ] = {}  # place -> times its record was refused as too large
        self.unacknowledged = 0
        self.denied: NotAuthorized | None = None  # the first record refused for a missing ACL
        self.topics: set[str] = set()  # written since the last checkpoint

    def _on_delivery(
        self, error: KafkaError | None, message: Any, place: Hashable | None = None
    ) -> None:
        self.unacknowledged -= 1
        if error is None:
            return
        failure = f"{message.topic()}: {error.str()}"
        if error.code() in AUTHORIZATION_FAILURES and self.denied is None:
            self.denied = NotAuthorized(Acl("Write", "topic", message.topic()), error.name())
        if place is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            # re-inserted: the oldest come first
            self.refusals[place] = self.refusals.pop(place, 0) + 1
            if len(self.refusals) > REFUSALS_KEPT:
                del self.refusals[next(iter(self.refusals))]
            self.refused.append(failure)
        else:
            self.failures.append(failure)

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int = -1,
        place: Hashable | None = None,
    ) -> None:
        """Queue one message (partition -1: by key); waits (bounded) while the local queue is full.
        `place` names what the record stands for, to be counted in `refusals` if it is refused as
        too large."""
        self._begin()
        self.topics.add(topic)
        deadline = time.monotonic() + QUEUE_FULL_TIMEOUT_S
        on_delivery = (
            self._on_delivery if place is None else partial(self._on_delivery, place=place)
        )
        while True:
            try:
                self.producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=list(headers or ()),
                    partition=partition,
                    on_delivery=on_delivery,
                )
                self.unacknowledged += 1
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise DeliveryError(
                        f"producer queue stayed full for {QUEUE_FULL_TIMEOUT_S:.0f}s"
                    ) from None
                self.producer.poll(0.05)

    def _begin(self) -> None:
        """Called before each message is queued (exactly_once: opens the transaction)."""

    def poll(self) -> None:
        self.producer.poll(0)

    def _raise_failures(self) -> None:
        """DeliveryError for failed records; CheckpointAborted if the only failures are records
        refused as too large, which the replay resends smaller."""
        failures, refused, self.failures, self.refused = self.failures, self.refused, [], []
        self.topics.clear()
        if self.denied is not None:
            raise self.denied
        if failures:
            raise DeliveryError(
                f"{len(failures)} output message(s) were not delivered, first: {failures[0]}"
            )
        if refused:
            raise _refused_error(refused)

    def settle(self, deadline: float | None = None) -> None:
        """Make sure what was sent so far is durable before anything that depends on it is sent."""

    def commit(
        self, consumer: Consumer, offsets: list[TopicPartition], deadline: float | None = None
    ) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what is in flight (exactly_once: abort the transaction)."""

    def close(self) -> None:
        """Abort what is uncommitted (exactly_once), deliver what is queued, close the producer."""
        self.abort()
        self.producer.flush(FLUSH_TIMEOUT_S)
        self.producer.close()

    def discard(self) -> None:
        """After a failure: abort, drop everything queued or in flight undelivered, close the producer.
        Nothing of the failed run is delivered after this; its input is replayed on restart."""
        self.abort()
        self.producer.purge()
        self.producer.flush(0)  # serves the purged messages' delivery reports
        self.producer.close()


class AtLeastOnceOutputs(Outputs):
    def settle(self, deadline: float | None = None) -> None:
        """Wait until everything sent is acknowledged; raise if anything failed."""
        timeout = _within(deadline, FLUSH_TIMEOUT_S)
        remaining = self.producer.flush(timeout)
        if remaining:
            raise DeliveryError(
                f"{remaining} output message(s) still unacknowledged after {timeout:.0f}s"
            )
        self._raise_failures()

    def commit(
        self, consumer: Consumer, offsets: list[TopicPartition], deadline: float | None = None
    ) -> None:
        self.settle(deadline)
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
    def __init__(self, producer: Producer, transactional_id: str) -> None:
        super().__init__(producer)
        self.in_transaction = False
        try:
            _retrying(
                lambda: producer.init_transactions(TRANSACTION_TIMEOUT_S), "init_transactions"
            )
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in AUTHORIZATION_FAILURES:
                acl = Acl("Write", "transactional-id", transactional_id)
                raise NotAuthorized(acl, error.name()) from None
            raise

    def _begin(self) -> None:
        if not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True

    def commit(
        self, consumer: Consumer, offsets: list[TopicPartition], deadline: float | None = None
    ) -> None:
        if not offsets and not self.in_transaction:
            return
        self._begin()
        try:
            # every delivery report is in before the decision
            self.producer.flush(_within(deadline, FLUSH_TIMEOUT_S))
            if self.refused:
                self.abort()
                raise _refused_error(self.refused)
            if offsets:
                metadata = consumer.consumer_group_metadata()
                _retrying(
                    lambda: _bounded(
                        lambda: self.producer.send_offsets_to_transaction(
                            offsets, metadata, _within(deadline, TRANSACTION_TIMEOUT_S)
                        ),
                        _within(deadline, TRANSACTION_TIMEOUT_S) + WEDGE_GRACE_S,
                        "send_offsets_to_transaction",
                    ),
                    "send_offsets",
                    deadline,
                )
            _retrying(
                lambda: self.producer.commit_transaction(_within(deadline, TRANSACTION_TIMEOUT_S)),
                "commit_transaction",
                deadline,
            )
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in AUTHORIZATION_FAILURES:
                denied = self._not_authorized(error)
                self._abort_quietly()
                raise denied from None
            if error.txn_requires_abort():
                self.abort()
                raise CheckpointAborted(error.str()) from None
            raise
        finally:
            self.failures.clear()  # a committed transaction delivered all; an aborted one none
            self.refused.clear()
            self.topics.clear()
        self.in_transaction = False

    def _not_authorized(self, error: KafkaError) -> ClusterRefused:
        """A transaction refused for a missing ACL. Adding a topic to the transaction fails for all
        its topics at once, and librdkafka names the refused one only in its log."""
        if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED and len(self.topics) == 1:
            return NotAuthorized(Acl("Write", "topic", next(iter(self.topics))), error.name())
        written = ", ".join(f"'{name}'" for name in sorted(self.topics))
        return ClusterRefused(
            f"not authorized to complete a transaction writing {written} ({error.name()}: "
            f"{error.str()}): check the detector's Write ACLs on them and its consumer group's "
            "Read; docs/security.md lists every ACL the detector needs"
        )

    def _abort_quietly(self) -> None:
        """Abort before stopping on another error, which stays the one reported."""
        try:
            self.abort()
        except KafkaException as exc:
            log.warning("aborting the transaction failed too: %s", exc.args[0].str())
        self.in_transaction = False

    def abort(self) -> None:
        if self.in_transaction:
            self.producer.abort_transaction(TRANSACTION_TIMEOUT_S)
            self.in_transaction = False


def _refused_error(refused: list[str]) -> CheckpointAborted:
    return CheckpointAborted(
        f"the broker refused {len(refused)} record(s) as too large, first: {refused[0]}"
    )


def _bounded(call: Callable[[], object], timeout_s: float, what: str) -> None:
    """Run a librdkafka call in a helper thread and wait at most timeout_s for it; raise
    ProducerWedged if it has not returned by then, else what it raised.

    librdkafka's send_offsets_to_transaction ignores its timeout while it waits for a group
    coordinator (librdkafka #5456), and waits forever for one whose broker left the cluster's
    metadata (#5511: a killed broker of a KRaft cluster, once fenced): the calling thread would
    block for good. The helper thread stays blocked instead, holding the abandoned producer."""
    outcome: list[BaseException] = []
    returned = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        finally:
            returned.set()

    threading.Thread(target=run, name=f"streamdrift-{what}", daemon=True).start()
    if not returned.wait(timeout_s):
        raise ProducerWedged(f"{what} did not return within {timeout_s:.0f}s")
    if outcome:
        raise outcome[0]


def _within(deadline: float | None, timeout_s: float) -> float:
    """`timeout_s`, or less if the deadline comes first (0 once it has passed)."""
    if deadline is None:
        return timeout_s
    return max(0.0, min(timeout_s, deadline - time.monotonic()))


def _retrying(call: Any, what: str, deadline: float | None = None) -> None:
    """Run a transactional call, retrying errors Kafka marks as retriable (not past the deadline)."""
    for attempt in range(1, RETRIES + 1):
        try:
            call()
            return
        except KafkaException as exc:
            error = exc.args[0]
            if not error.retriable() or attempt == RETRIES or _within(deadline, 1.0) == 0:
                raise
            log.warning("%s failed (%s), retrying (%d/%d)", what, error.str(), attempt, RETRIES)
            time.sleep(0.2 * attempt)
