"""Event-time alignment of the co-partitioned input topics (pure; no I/O), as Kafka Streams'
`PartitionGroup` does for joins.

Partition p of predictions, features and labels is one task: its messages are buffered per
topic and released in timestamp order across the topics (ties: topic order, then offset), so
that a labels topic read seconds behind the predictions topic (fetch imbalance, or a catch-up
where each topic has its own lag) does not let predictions mature "without label" while their
labels are on the broker, unread. A topic's own offset order is never changed: the merge
compares the heads of the topics' buffers, so a timestamp that goes backwards only delays what
follows it in that topic.

A topic with nothing buffered holds its partition back, unless it is caught up (nothing more on
the broker to read, so nothing earlier can come) or it has waited `idle_s` since it ran dry
(its data is not arriving: the others go on without it, as with `max.task.idle.ms`). A buffer
that reaches `max_buffered` messages asks for its topic partition to be paused; it asks to be
resumed at half of that.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

TopicPartition = tuple[str, int]
CaughtUp = Callable[[str, int], bool]  # (topic, partition) -> nothing more to read on the broker


class Message(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class Aligner:
    """Per input partition, per topic buffers released in event-time order."""

    def __init__(self, topics: Sequence[str], idle_s: float, max_buffered: int) -> None:
        self.topics = list(topics)
        self.rank = {topic: i for i, topic in enumerate(self.topics)}
        self.idle_s = idle_s
        self.max_buffered = max_buffered
        # partition -> a buffer of messages per topic, in topic order
        self.buffers: dict[int, list[list[Any]]] = {}
        self.dry_since: dict[
            TopicPartition, float
        ] = {}  # lagging topic partitions with nothing buffered: since when
        self.paused: set[TopicPartition] = set()

    @property
    def buffered(self) -> int:
        """Messages held back, in all partitions."""
        return sum(len(buffer) for buffers in self.buffers.values() for buffer in buffers)

    def add(self, messages: Iterable[Message]) -> None:
        """Buffer consumed messages (of the input topics, without errors)."""
        width, rank = len(self.topics), self.rank
        for message in messages:
            buffers = self.buffers.get(message.partition())  # type: ignore[arg-type]
            if buffers is None:
                buffers = self.buffers[message.partition()] = [[] for _ in range(width)]  # type: ignore[index]
            buffers[rank[message.topic()]].append(message)  # type: ignore[index]

    def release(self, caught_up: CaughtUp, now_s: float) -> list[Any]:
        """The messages that can be processed now, each partition's in event-time order.

        `caught_up` is asked about the topic partitions of partitions with something buffered;
        `now_s` is a monotonic clock in seconds, for the idle timeout."""
        released: list[Any] = []
        for partition, buffers in self.buffers.items():
            if any(buffers):
                released += self._release_partition(partition, buffers, caught_up, now_s)
        return released

    def _release_partition(
        self, partition: int, buffers: list[list[Any]], caught_up: CaughtUp, now_s: float
    ) -> list[Any]:
        """Merge the topics' buffers by their heads, up to the point where a lagging topic runs
        dry; nothing if one already has (and has not waited `idle_s`)."""
        last_of_lagging: set[int] = set()  # ids of messages after which a lagging topic is empty
        for rank, buffer in enumerate(buffers):
            key = (self.topics[rank], partition)
            if caught_up(*key):
                self.dry_since.pop(key, None)
            elif buffer:
                self.dry_since.pop(key, None)
                last_of_lagging.add(id(buffer[-1]))
            elif now_s - self.dry_since.setdefault(key, now_s) < self.idle_s:
                return []
        filled = [rank for rank, buffer in enumerate(buffers) if buffer]
        if len(filled) == 1:  # one topic alone: released whole, in its own order
            (rank,) = filled
            taken, buffers[rank] = buffers[rank], []
            if id(taken[-1]) in last_of_lagging:
                self.dry_since[self.topics[rank], partition] = now_s
            return taken
        taken = []
        counts = [0] * len(buffers)
        for _, rank, _, message in heapq.merge(*map(_ordered, buffers, range(len(buffers)))):
            taken.append(message)
            counts[rank] += 1
            if id(message) in last_of_lagging:
                self.dry_since[self.topics[rank], partition] = now_s
                break
        for rank, count in enumerate(counts):
            del buffers[rank][:count]
        return taken

    def flow(self) -> tuple[list[TopicPartition], list[TopicPartition]]:
        """Topic partitions to pause (their buffer is full) and to resume (down to half), since
        the last call."""
        pause: list[TopicPartition] = []
        resume: list[TopicPartition] = []
        for partition, buffers in self.buffers.items():
            for topic, buffer in zip(self.topics, buffers):
                key = (topic, partition)
                if key not in self.paused and len(buffer) >= self.max_buffered:
                    self.paused.add(key)
                    pause.append(key)
                elif key in self.paused and len(buffer) <= self.max_buffered // 2:
                    self.paused.discard(key)
                    resume.append(key)
        return pause, resume

    def drop(self, partitions: Iterable[int]) -> list[TopicPartition]:
        """Forget the buffered messages of partitions (revoked, lost, or rewound to a checkpoint:
        they were not processed, so they are not committed and are read again); return their
        topic partitions that were paused."""
        numbers = set(partitions)
        for partition in numbers:
            self.buffers.pop(partition, None)
        self.dry_since = {
            key: since for key, since in self.dry_since.items() if key[1] not in numbers
        }
        paused = sorted(key for key in self.paused if key[1] in numbers)
        self.paused.difference_update(paused)
        return paused


def _ordered(buffer: list[Any], rank: int) -> list[tuple[int, int, int, Any]]:
    """A topic's buffered messages with their place in the partition's merge: (timestamp ms,
    topic rank, offset, message)."""
    return [(message.timestamp()[1], rank, message.offset(), message) for message in buffer]
