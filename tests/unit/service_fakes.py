"""Stand-ins for the Kafka clients and the state topic, for unit tests of the service's parts
(what they were asked to do is recorded in one list, in order)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from detector.core.state import RestoredPartition


def tps(
    topics: Iterable[str], partitions: Iterable[int], offset: int = -1001
) -> list[TopicPartition]:
    return [TopicPartition(topic, p, offset) for p in partitions for topic in topics]


def named(partitions: Iterable[TopicPartition]) -> list[tuple[str, int, int]]:
    return sorted((tp.topic, tp.partition, tp.offset) for tp in partitions)


class FakeConsumer:
    """A subscribed consumer: assignment, pause/resume/seek and committed offsets."""

    def __init__(
        self, calls: list[str], committed: dict[tuple[str, int], int] | None = None
    ) -> None:
        self.calls = calls
        self.offsets = committed or {}
        self.assigned: list[TopicPartition] = []
        self.paused: set[tuple[str, int]] = set()
        self.seeks: list[tuple[str, int, int]] = []
        self.unseekable = 0  # seeks refused (`_STATE`) before the start offsets are known

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("assign")
        self.assigned = list(partitions)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("incremental_assign")
        self.assigned += partitions

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("pause")
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("resume")
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def seek(self, tp: TopicPartition) -> None:
        if self.unseekable:
            self.unseekable -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return -1001, -1001  # nothing fetched yet

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.calls.append("committed")
        return [
            TopicPartition(
                tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), -1001)
            )
            for tp in partitions
        ]


class FakeReader:
    """Reads for `slices` calls of read_until, then has `restored`."""

    def __init__(self, store: FakeStore, partitions: list[int]) -> None:
        self.store, self.partitions = store, partitions
        self.slices_left = store.slices
        self.closed = False

    def read_until(self, deadline: float) -> bool:
        self.store.calls.append("read")
        self.slices_left -= 1
        return self.slices_left <= 0

    def result(self) -> dict[int, RestoredPartition]:
        return {p: self.store.restored.get(p, RestoredPartition(None, {})) for p in self.partitions}

    def close(self) -> None:
        self.closed = True


class FakeStore:
    """The state topic: `restored` per partition, read in `slices` steps."""

    def __init__(
        self,
        calls: list[str],
        restored: dict[int, RestoredPartition] | None = None,
        slices: int = 1,
    ) -> None:
        self.calls = calls
        self.restored = restored or {}
        self.slices = slices
        self.readers: list[FakeReader] = []

    def reader(self, partitions: Iterable[int]) -> FakeReader:
        self.calls.append("reader")
        reader = FakeReader(self, sorted(set(partitions)))
        self.readers.append(reader)
        return reader


class FakeOutputs:
    """Outputs that record the checkpoint steps and the deadline given to them."""

    def __init__(self, calls: list[str], raises: Exception | None = None) -> None:
        self.calls = calls
        self.raises = raises
        self.deadlines: list[float | None] = []
        self.committed: list[TopicPartition] = []
        self.producer = self

    def settle(self, deadline: float | None = None) -> None:
        self.calls.append("settle")
        self.deadlines.append(deadline)

    def send(
        self, topic: str, key: Any, value: Any, headers: Any = None, partition: int = -1
    ) -> None:
        self.calls.append(f"send {topic}[{partition}]")

    def commit(
        self, consumer: Any, offsets: list[TopicPartition], deadline: float | None = None
    ) -> None:
        self.calls.append("commit")
        self.deadlines.append(deadline)
        if self.raises is not None:
            raise self.raises
        self.committed = offsets

    def abort(self) -> None:
        self.calls.append("abort")

    def flush(self, timeout: float) -> int:
        return 0
