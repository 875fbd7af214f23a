"""Reading and writing the state topic (Kafka I/O; the record format is in detector.core.state)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter

from detector.core.monitors.model import ModelMonitor
from detector.core.state import RestoredPartition, StateCodec, StateError, StateRecord, select
from detector.kafka.delivery import Outputs

log = logging.getLogger(__name__)

RESTORE_TIMEOUT_S = 120.0


class StateStore:
    """Checkpoints per input partition p in partition p of the compacted state topic."""

    def __init__(
        self, topic: str, codec: StateCodec, client_config: dict[str, Any], rejected: Counter
    ) -> None:
        """`rejected`: counts the records skipped on restore, by reason (state.REJECT_REASONS)."""
        self.topic = topic
        self.codec = codec
        self.client_config = client_config
        self.rejected = rejected

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

    def read(self, partitions: Iterable[int]) -> dict[int, RestoredPartition]:
        """The newest complete checkpoint of each partition (read_committed, to the end)."""
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        consumer = Consumer(
            {
                **self.client_config,
                "group.id": f"{self.codec.group}-restore",  # never joins: partitions are assigned
                "fetch.wait.max.ms": 10,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Read to the end-of-partition event, not to the high watermark: Tansu's lags
                # the true end of a partition written by a batching producer.
                "enable.partition.eof": True,
            }
        )
        records: dict[int, list[StateRecord]] = defaultdict(list)
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in wanted])
            at_end: set[int] = set()
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            while len(at_end) < len(wanted):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"restoring {self.topic} partitions {wanted} took over {RESTORE_TIMEOUT_S:.0f}s "
                        f"(reached the end of {sorted(at_end)}); is a transaction left open on it?"
                    )
                for message in consumer.consume(1000, 0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            at_end.add(message.partition())
                            continue
                        raise KafkaException(error)
                    where = f"{self.topic}[{message.partition()}]@{message.offset()}"
                    try:
                        record = self.codec.decode(message.value())
                    except StateError as exc:
                        self._reject(where, exc)
                        continue
                    if (
                        record.group != self.codec.group
                    ):  # a topic shared by mistake cannot mix groups
                        self._reject(
                            where,
                            StateError(
                                "other_group", f"written by consumer group {record.group!r}"
                            ),
                        )
                        continue
                    records[message.partition()].append(record)
        finally:
            consumer.close()
        restored = {p: select(records.get(p, []), self.codec.decode) for p in wanted}
        for p, partition in restored.items():
            for model, exc in partition.rejected:
                self._reject(f"{self.topic}[{p}] parts of model {model}", exc)
        return restored

    def _reject(self, where: str, exc: StateError) -> None:
        self.rejected.labels(exc.reason).inc()
        log.error("state %s skipped (%s): %s", where, exc.reason, exc)
