"""History from the input topics of a cluster: `topics.predictions`, `features` and `labels`
(those that exist), each partition read from a start (offset, time, or its beginning) to an end
(offset, time, or the end found while reading), by a consumer that `assign()`s partitions,
never joins a group, commits nothing and reads only committed messages.

Partitions are merged by message timestamp (ties by topic, then partition), so labels meet the
predictions they follow in the same order on every run, whatever the fetch timing.
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import (
    Message as KafkaMessage,
)

from detector.backtest.sources import Batch, Peeker, Record, SourceError
from detector.settings import ConfigError, Settings

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = (
    30.0  # no message and no end of partition for this long: the cluster is not answering
)
SILENT_S = (
    3.0  # a partition silent this long is read again from its beginning (see `_rewind_silent`)
)
PAUSE_ABOVE, RESUME_BELOW = 50_000, 10_000  # messages buffered per partition while merging


@dataclass(frozen=True)
class Range:
    """Where to read each partition: offsets (end exclusive) or event times in epoch ms
    (from the first message at or after `from_time`, up to the first at or after `to_time`)."""

    from_offset: int | None = None
    to_offset: int | None = None
    from_time_ms: int | None = None
    to_time_ms: int | None = None
    partitions: tuple[int, ...] | None = None  # None: all


@dataclass
class _Partition:
    """One topic partition being read."""

    tp: TopicPartition  # with its start offset
    rank: tuple[int, int]  # (topic order, partition): the merge's tie-break
    end: int | None  # first offset not to read
    started: bool  # reached from_time (always true without one)
    buffered: deque[KafkaMessage] = field(default_factory=deque)
    done: bool = False  # its end was reached: nothing more will be buffered
    paused: bool = False
    heard: bool = False  # a message or its end arrived
    rewound: bool = False


class _Merge:
    """Partitions' buffered messages, released in timestamp order once every unfinished
    partition has one buffered (so that nothing earlier can still come)."""

    def __init__(self, partitions: list[_Partition]) -> None:
        self.partitions = partitions
        self.heads: list[
            tuple[int, tuple[int, int], int]
        ] = []  # (timestamp, rank, partition index)
        # unfinished partitions with nothing buffered
        self.starving = sum(not p.done for p in partitions)
        self.unfinished = self.starving

    @property
    def exhausted(self) -> bool:
        return not self.unfinished and not self.heads

    def add(self, index: int, message: KafkaMessage) -> None:
        part = self.partitions[index]
        if not part.buffered:
            heapq.heappush(self.heads, (_timestamp(message), part.rank, index))
            if not part.done:
                self.starving -= 1
        part.buffered.append(message)

    def finish(self, index: int) -> None:
        part = self.partitions[index]
        if not part.done:
            part.done = True
            self.unfinished -= 1
            if not part.buffered:
                self.starving -= 1

    def pop(self) -> tuple[int, KafkaMessage] | None:
        """The earliest message, when it is certainly the earliest; else None."""
        if self.starving or not self.heads:
            return None
        _, _, index = heapq.heappop(self.heads)
        part = self.partitions[index]
        message = part.buffered.popleft()
        if part.buffered:
            heapq.heappush(self.heads, (_timestamp(part.buffered[0]), part.rank, index))
        elif not part.done:
            self.starving += 1
        return index, message


class TopicSource:
    """The input topics of the configured cluster, read without touching any consumer group."""

    def __init__(self, settings: Settings, bounds: Range) -> None:
        kafka = settings.kafka
        if not kafka.bootstrap_servers:
            raise ConfigError(
                "no history to replay: give --file FILE, or a cluster with STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS or --bootstrap-servers"
            )
        self.settings = settings
        self.bounds = bounds
        self.group = f"streamdrift-backtest-{uuid.uuid4().hex[:12]}"  # never joined: partitions are assign()ed
        t = settings.topics
        self.topics = [t.predictions, t.features, t.labels]
        self.description = f"{', '.join(self.topics)} at {kafka.bootstrap_servers}"
        self.read = 0
        self.total: int | None = None
        self.partitions: list[_Partition] = []
        self.model_names: dict[bytes, str] = {}
        self.peeker = Peeker(settings)

    def batches(self, size: int) -> Iterator[Batch]:
        consumer = Consumer(self._config())
        try:
            self._assign(consumer)
            yield from self._read(consumer, size)
        except KafkaException as exc:
            raise SourceError(
                f"reading {self.description}: {exc.args[0].str()}; is the cluster up and are the bootstrap servers right?"
            ) from None
        finally:
            consumer.close()  # nothing to commit: auto-commit is off and no group was joined

    def fraction_done(self) -> float | None:
        return min(self.read / self.total, 1.0) if self.total else None

    def _config(self) -> dict[str, Any]:
        return {
            "log_level": 2,  # quiet librdkafka's connection logs (failures surface as one SourceError); properties may override
            **self.settings.kafka.client_config(),
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }

    def _assign(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(timeout=10).topics
        present = [
            topic for topic in self.topics if topic in metadata and not metadata[topic].error
        ]
        if not present:
            raise SourceError(
                f"none of the topics {', '.join(self.topics)} exists at {self.settings.kafka.bootstrap_servers}; check [topics] in the config"
            )
        bounds = self.bounds
        tps = [
            TopicPartition(topic, number)
            for topic in present
            for number in sorted(metadata[topic].partitions)
            if bounds.partitions is None or number in bounds.partitions
        ]
        if not tps:
            raise ConfigError(
                f"--partitions {','.join(map(str, bounds.partitions or ()))}: no such partition in {', '.join(present)}"
            )
        starts = self._starts(consumer, tps)
        for tp, start in zip(tps, starts):
            rank = (self.topics.index(tp.topic), tp.partition)
            end = bounds.to_offset
            # nothing at or after the start
            empty = start.offset == OFFSET_END or (end is not None and start.offset >= end)
            self.partitions.append(
                _Partition(start, rank, end, started=bounds.from_time_ms is None, done=empty)
            )
        if bounds.to_offset is not None:
            self.total = sum(
                max(p.end - max(p.tp.offset, 0), 0)
                for p in self.partitions
                if p.end is not None and not p.done
            )
        consumer.assign([p.tp for p in self.partitions if not p.done])
        log.info("backtest reads %d partitions of %s", len(self.partitions), ", ".join(present))

    def _starts(self, consumer: Consumer, tps: list[TopicPartition]) -> list[TopicPartition]:
        bounds = self.bounds
        if bounds.from_time_ms is not None:
            # A hint only: messages before from_time are also skipped as they arrive, because
            # Tansu answers offsets_for_times with 0 (harmless on Kafka, whose hint is exact).
            return consumer.offsets_for_times(
                [TopicPartition(tp.topic, tp.partition, bounds.from_time_ms) for tp in tps],
                timeout=10,
            )
        start = OFFSET_BEGINNING if bounds.from_offset is None else bounds.from_offset
        return [TopicPartition(tp.topic, tp.partition, start) for tp in tps]

    def _read(self, consumer: Consumer, size: int) -> Iterator[Batch]:
        merge = _Merge(self.partitions)
        index = {(p.tp.topic, p.tp.partition): i for i, p in enumerate(self.partitions)}
        batch = Batch()
        started = last_data = time.monotonic()
        while not merge.exhausted:
            for message in consumer.consume(size, 0.5):
                last_data = time.monotonic()
                topic, partition = message.topic(), message.partition()
                assert topic is not None and partition is not None  # set on every fetched record
                self._receive(message, index[(topic, partition)], merge, consumer)
            while (released := merge.pop()) is not None:
                part, message = self.partitions[released[0]], released[1]
                self._throttle(part, consumer)
                batch.append(Record.of(message), self._model(message))
                if len(batch) >= size:
                    self.read += len(batch)
                    yield batch
                    batch = Batch()
            if time.monotonic() - started > SILENT_S:
                self._rewind_silent(consumer)
            if time.monotonic() - last_data > IDLE_TIMEOUT_S:
                waiting = ", ".join(
                    f"{p.tp.topic}[{p.tp.partition}]" for p in self.partitions if not p.done
                )
                raise SourceError(
                    f"no data from {waiting} at {self.settings.kafka.bootstrap_servers} for {IDLE_TIMEOUT_S:.0f}s; is the cluster up?"
                )
        if batch:
            self.read += len(batch)
            yield batch

    def _receive(
        self, message: KafkaMessage, index: int, merge: _Merge, consumer: Consumer
    ) -> None:
        """Buffer a consumed message if it is history to replay; finish its partition at the end."""
        part = self.partitions[index]
        part.heard = True
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._finish(index, merge, consumer)
            elif error.fatal() or error.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
            ):
                raise KafkaException(error)
            else:
                log.warning("consumer: %s", error.str())
            return
        bounds, offset = self.bounds, message.offset() or 0
        if part.done or offset < max(part.tp.offset, 0):
            return  # after the end, or before the start (after an out-of-range reset or a rewind)
        if (part.end is not None and offset >= part.end) or (
            bounds.to_time_ms is not None and _timestamp(message) >= bounds.to_time_ms
        ):
            self._finish(index, merge, consumer)
            return
        part.started = part.started or _timestamp(message) >= (bounds.from_time_ms or 0)
        if not part.started:
            return
        merge.add(index, message)
        self._throttle(part, consumer)
        if part.end is not None and offset + 1 >= part.end:
            self._finish(index, merge, consumer)

    def _rewind_silent(self, consumer: Consumer) -> None:
        """Tansu workaround: the embedded broker answers a fetch past a partition's end with silence
        instead of an out-of-range error, so neither data nor its end ever comes (Apache Kafka
        answers, so this never triggers there). Such a partition
        is read from its beginning instead: messages before the start are skipped as they arrive."""
        for part in self.partitions:
            if not (part.heard or part.done or part.rewound):
                part.rewound = True
                log.info(
                    "no answer for %s[%d] at offset %d: reading it from the beginning",
                    part.tp.topic,
                    part.tp.partition,
                    part.tp.offset,
                )
                consumer.seek(TopicPartition(part.tp.topic, part.tp.partition, OFFSET_BEGINNING))

    def _finish(self, index: int, merge: _Merge, consumer: Consumer) -> None:
        part = self.partitions[index]
        if not part.done:
            merge.finish(index)
            consumer.pause([part.tp])

    def _throttle(self, part: _Partition, consumer: Consumer) -> None:
        """Bound the memory of a partition that is far ahead of the others in time."""
        if part.done:
            return
        if not part.paused and len(part.buffered) > PAUSE_ABOVE:
            part.paused = True
            consumer.pause([part.tp])
        elif part.paused and len(part.buffered) < RESUME_BELOW:
            part.paused = False
            consumer.resume([part.tp])

    def _model(self, message: KafkaMessage) -> str:
        """The model a message belongs to: its key (the contract), else its model field."""
        key = message.key()
        if key:
            name = self.model_names.get(key)
            if name is None:
                name = self.model_names[key] = key.decode(errors="replace")
            return name
        return self.peeker.peek(message.value() or b"")[0]


def _timestamp(message: KafkaMessage) -> int:
    return max(message.timestamp()[1], 0)
