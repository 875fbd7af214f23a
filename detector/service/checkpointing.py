"""The checkpoint: how far each owned input partition is processed since the last commit, when
the next commit is due, and the commit itself in a fixed order.

The order follows quix-streams' Checkpoint: outputs settled → state records of the partitions
that progressed → input offsets. Under exactly_once all three are one transaction, committed
with the offsets (send_offsets_to_transaction); under at_least_once each is acknowledged before
the next is sent, so committed offsets never run ahead of the state and outputs they cover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from detector.core.pipeline import Pipeline
from detector.http.metrics import Metrics
from detector.kafka.checkpoint import StateStore
from detector.kafka.delivery import CheckpointAborted, CommitSuperseded, Outputs, ProducerWedged
from detector.kafka.faults import FaultInjector
from detector.settings import Settings

log = logging.getLogger(__name__)


class Outcome(Enum):
    """What became of a commit."""

    committed = "committed"
    aborted = "aborted"  # nothing of it is visible: rewind input and state to the last checkpoint
    wedged = "wedged"  # aborted, and the producer stuck in a call: replace it, then rewind
    superseded = "superseded"  # the group moved on: the next owner resumes from the state


class Checkpoint:
    """Progress per owned input partition since the last commit, and the commit."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        store: StateStore,
        faults: FaultInjector,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self.faults = faults
        self.metrics = metrics
        self.covered: dict[
            int, dict[str, int]
        ] = {}  # per partition: next offset of each input topic
        self.progressed: set[int] = set()  # partitions to commit: events, evictions, a moved start
        self.uncommitted_events = 0
        self.last_commit = time.monotonic()
        # when the oldest progress not yet committed was made (time.monotonic()); None: nothing pending
        self.pending_since: float | None = None

    def advance(self, messages: Sequence[Any]) -> None:
        """Processed messages: their partitions progressed up to (and including) each one."""
        newest: dict[tuple[int, str], int] = {}  # (partition, topic) -> offset; in offset order
        for message in messages:
            newest[message.partition(), message.topic()] = message.offset()
        for (partition, topic), offset in newest.items():
            self.covered.setdefault(partition, {})[topic] = offset + 1
        self.touch(partition for partition, _ in newest)
        self.uncommitted_events += len(messages)

    def touch(self, partitions: Iterable[int]) -> None:
        """These partitions have something to checkpoint besides offsets (an eviction)."""
        before = len(self.progressed)
        self.progressed.update(partitions)
        if not before and self.progressed:
            self.pending_since = time.monotonic()

    def pending_s(self) -> float:
        """Seconds since the oldest progress that is not committed yet was made (0: none pending):
        a commit interval at most while commits go through, growing while one waits on Kafka."""
        if self.pending_since is None:
            return 0.0
        return time.monotonic() - self.pending_since

    def _settled(self) -> None:
        """Nothing left to commit: the progress was committed, rewound or handed over."""
        self.progressed.clear()
        self.uncommitted_events = 0
        self.pending_since = None

    def start(self, partition: int, offsets: dict[str, int], moved: bool) -> None:
        """A restored partition resumes at `offsets`; `moved`: they differ from the committed
        offsets, so they are committed even if no new event comes."""
        self.covered[partition] = dict(offsets)
        if moved:
            self.touch((partition,))

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions no longer owned: nothing of theirs is committed any more."""
        for p in partitions:
            self.covered.pop(p, None)
            self.progressed.discard(p)
        if not self.progressed:
            self.pending_since = None

    def rewound(self) -> None:
        """Input and state go back to the last checkpoint: no progress since."""
        self._settled()

    def due(self) -> bool:
        """Progress to commit, and commit_interval_ms or commit_interval_events reached."""
        if not self.progressed:
            return False
        elapsed_ms = (time.monotonic() - self.last_commit) * 1000
        return (
            elapsed_ms >= self.settings.commit_interval_ms
            or self.uncommitted_events >= self.settings.commit_interval_events
        )

    def commit(
        self,
        outputs: Outputs,
        consumer: Consumer,
        owned: set[int],
        deadline: float | None = None,
    ) -> Outcome:
        """Commit the progress of the owned partitions: outputs, then state, then input offsets.
        `deadline` (time.monotonic() seconds) bounds the blocking calls. Raises on failures
        other than an aborted transaction or a group that moved on."""
        partitions = sorted(self.progressed & owned)
        offsets = [
            TopicPartition(topic, p, offset)
            for p in partitions
            for topic, offset in self.covered[p].items()
        ]
        with self.metrics.checkpoint_seconds.time():
            try:
                outputs.settle(deadline)
                if self.settings.state.enabled:
                    for p in partitions:
                        state = self.pipeline.partitions[p]
                        self.store.write(
                            outputs, p, self.covered[p], state.take_dirty(), state.take_evicted()
                        )
                self.faults.reached("before_commit", before_exit=lambda: outputs.producer.flush(10))
                outputs.commit(consumer, offsets, deadline)
            except CheckpointAborted as exc:
                self.metrics.commit_failures.inc()
                log.warning("checkpoint aborted (%s): rewinding to the last checkpoint", exc)
                return Outcome.wedged if isinstance(exc, ProducerWedged) else Outcome.aborted
            except CommitSuperseded as exc:
                self.metrics.commit_failures.inc()
                log.warning(
                    "offsets not committed, the group moved on (%s): the next owner resumes from the state",
                    exc,
                )
                self._settled()
                return Outcome.superseded
            except Exception:
                self.metrics.commit_failures.inc()
                raise
        self.faults.reached("after_commit")
        self.metrics.commits.inc()
        self._settled()
        self.last_commit = time.monotonic()
        self.metrics.last_commit.set(time.time())
        return Outcome.committed
