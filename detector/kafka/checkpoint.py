"""Reading and writing the state topic (Kafka I/O; the record format is in detector.core.state)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import Counter

from detector.core.monitors.model import ModelMonitor
from detector.core.state import RestoredPartition, StateCodec, StateError, StateRecord, select
from detector.kafka.delivery import Outputs
from detector.kafka.faults import FaultInjector

log = logging.getLogger(__name__)

RESTORE_TIMEOUT_S = 120.0


def restore_group(group: str) -> str:
    """group.id of the consumer that restores state: it never joins (its partitions are assigned),
    but librdkafka looks up its coordinator, which takes Describe on it."""
    return f"{group}-restore"


class StateStore:
    """Checkpoints per input partition p in partition p of the compacted state topic."""

    def __init__(
        self,
        topic: str,
        codec: StateCodec,
        client_config: dict[str, Any],
        rejected: Counter,
        faults: FaultInjector,
    ) -> None:
        """`rejected`: counts the records skipped on restore, by reason (state.REJECT_REASONS)."""
        self.topic = topic
        self.codec = codec
        self.client_config = client_config
        self.rejected = rejected
        self.faults = faults

    def write(
        self,
        outputs: Outputs,
        partition: int,
        offsets: dict[str, int],
        models: Iterable[ModelMonitor],
        evicted: Iterable[str] = (),
    ) -> int:
        """Queue one checkpoint of a partition: evicted models, changed models, then the closing record."""
        written = 0
        for model in evicted:
            key, value = self.codec.evicted_record(partition, offsets, model)
            outputs.send(self.topic, key, value, partition=partition)
            written += len(value)
        for monitor in models:
            for key, value in self.codec.model_records(
                partition, offsets, monitor.name, monitor.to_state()
            ):
                outputs.send(self.topic, key, value, partition=partition)
                written += len(value)
        key, value = self.codec.checkpoint_record(partition, offsets)
        outputs.send(self.topic, key, value, partition=partition)
        return written + len(value)

    def reader(self, partitions: Iterable[int]) -> StateReader:
        """A reader of the newest complete checkpoint of each of these partitions."""
        return StateReader(self, sorted(set(partitions)))

    def reject(self, where: str, exc: StateError) -> None:
        self.rejected.labels(exc.reason).inc()
        log.error("state %s skipped (%s): %s", where, exc.reason, exc)


class StateReader:
    """Reads partitions of the state topic from the beginning to their end (read_committed), a
    slice at a time: the consumer loop polls between slices, so a long restore never keeps the
    member from its group."""

    def __init__(self, store: StateStore, partitions: list[int]) -> None:
        self.store = store
        self.wanted = partitions
        self.records: dict[int, list[StateRecord]] = defaultdict(list)
        self.at_end: set[int] = set()
        self.unread: deque[Message] = deque()
        self.give_up_at = time.monotonic() + RESTORE_TIMEOUT_S
        self.consumer = Consumer(
            {
                **store.client_config,
                "group.id": restore_group(
                    store.codec.group
                ),  # never joins: partitions are assigned
                "fetch.wait.max.ms": 10,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Read to the end-of-partition event, not to the high watermark: Tansu's lags
                # the true end of a partition written by a batching producer.
                "enable.partition.eof": True,
            }
        )
        if partitions:
            self.consumer.assign(
                [TopicPartition(store.topic, p, OFFSET_BEGINNING) for p in partitions]
            )

    def read_until(self, deadline: float) -> bool:
        """Read until every partition is read to its end (True) or `deadline` (time.monotonic()
        seconds) passes (False: call again). Raises TimeoutError after RESTORE_TIMEOUT_S in all."""
        while len(self.at_end) < len(self.wanted):
            now = time.monotonic()
            if now >= deadline:
                return False
            if now > self.give_up_at:
                raise TimeoutError(
                    f"restoring {self.store.topic} partitions {self.wanted} took over {RESTORE_TIMEOUT_S:.0f}s "
                    f"(reached the end of {sorted(self.at_end)}); is a transaction left open on it?"
                )
            if not self.unread:
                self.unread.extend(self.consumer.consume(1000, min(0.5, deadline - now)))
            while self.unread and time.monotonic() < deadline:
                self._take(self.unread.popleft())
        return True

    def _take(self, message: Message) -> None:
        partition = message.partition()
        assert partition is not None  # a consumed message's
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self.at_end.add(partition)
                return
            raise KafkaException(error)
        store = self.store
        store.faults.restore_record_read()
        where = f"{store.topic}[{partition}]@{message.offset()}"
        try:
            record = store.codec.decode(message.value())
        except StateError as exc:
            store.reject(where, exc)
            return
        if record.group != store.codec.group:  # a topic shared by mistake cannot mix groups
            store.reject(
                where, StateError("other_group", f"written by consumer group {record.group!r}")
            )
            return
        self.records[partition].append(record)

    def result(self) -> dict[int, RestoredPartition]:
        """The newest complete checkpoint of each partition (once read_until returned True)."""
        restored = {
            p: select(self.records.get(p, []), self.store.codec.decode) for p in self.wanted
        }
        for p, partition in restored.items():
            for model, exc in partition.rejected:
                self.store.reject(f"{self.store.topic}[{p}] parts of model {model}", exc)
        return restored

    def close(self) -> None:
        self.consumer.close()
