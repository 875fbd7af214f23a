"""Restoring the state of assigned input partitions, outside the rebalance callback.

As quix-streams' recovery does: the assignment callback only assigns the new partitions and
pauses them (`schedule`); the consumer loop then reads their checkpoints from the state topic a
slice at a time (`step`), polling the consumer between slices so that the member keeps its
place in the group however long the restore takes; once read, the models are installed, each
input partition is moved to where its state ends, and fetching resumes. Other partitions are
processed meanwhile. An aborted transaction rewinds the same way.

Moving a partition (seek) fails with `_STATE` until librdkafka has looked up where the
partition starts (its committed offset) after the assignment: the partition then stays paused
and the seek is tried again at the next step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from detector.core.pipeline import Pipeline
from detector.core.state import RestoredPartition, restore_model
from detector.http.metrics import Metrics
from detector.kafka.checkpoint import StateReader, StateStore

log = logging.getLogger(__name__)

COMMITTED_TIMEOUT_S = 30.0
INVALID_OFFSET = -1001  # librdkafka's OFFSET_INVALID: start from the committed offset, else reset


@dataclass(frozen=True)
class Resumed:
    """A partition whose state is installed and whose input resumes at `offsets` (per topic;
    topics without an offset start at the committed one, else per auto.offset.reset)."""

    partition: int
    offsets: dict[str, int]
    moved: bool  # the state's offsets differ from the committed ones


@dataclass
class _Job:
    """Partitions assigned together (or rewound together), restored together."""

    partitions: list[TopicPartition]
    reader: StateReader | None = None
    started: float = field(default_factory=time.monotonic)
    resumed: list[Resumed] | None = None  # once the state is installed
    unpositioned: list[TopicPartition] = field(default_factory=list)  # seeks still to make

    @property
    def numbers(self) -> list[int]:
        return sorted({tp.partition for tp in self.partitions})


class Restorer:
    """The partitions waiting for their state, and the restore of each, step by step."""

    def __init__(
        self,
        inputs: list[str],
        store: StateStore | None,
        pipeline: Pipeline,
        metrics: Metrics,
        blocking_timeout_s: float,
    ) -> None:
        """`store` None: state is off, partitions start empty at their committed offsets.
        `blocking_timeout_s` bounds a single blocking call (the committed-offsets lookup)."""
        self.inputs = inputs
        self.store = store
        self.pipeline = pipeline
        self.metrics = metrics
        self.blocking_timeout_s = min(COMMITTED_TIMEOUT_S, blocking_timeout_s)
        self.jobs: list[_Job] = []

    @property
    def restoring(self) -> bool:
        return bool(self.jobs)

    @property
    def reading(self) -> bool:
        """State is being read (rather than waiting for partitions to be positioned)."""
        return bool(self.jobs) and self.jobs[0].resumed is None

    def pending(self) -> set[int]:
        """Partition numbers whose state is not restored yet."""
        return {p for job in self.jobs for p in job.numbers}

    def schedule(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Hold these assigned input partitions (paused) until their state is restored."""
        if not partitions:
            return
        consumer.pause(partitions)
        self.jobs.append(_Job(list(partitions)))

    def cancel(self, numbers: Iterable[int]) -> None:
        """Partitions revoked or lost before their restore ended: no longer restored."""
        gone = set(numbers)
        for job in list(self.jobs):
            job.partitions = [tp for tp in job.partitions if tp.partition not in gone]
            job.unpositioned = [tp for tp in job.unpositioned if tp.partition not in gone]
            if job.resumed is not None:
                job.resumed = [r for r in job.resumed if r.partition not in gone]
            if not job.partitions:
                self._finish(job)

    def step(self, consumer: Consumer, deadline: float) -> list[Resumed]:
        """Advance the oldest restore until `deadline` (time.monotonic() seconds); when it is
        complete, install its models, position and resume its input partitions, and return them."""
        if not self.jobs:
            return []
        job = self.jobs[0]
        if job.resumed is None and not self._install_when_read(job, consumer, deadline):
            return []
        job.unpositioned = [tp for tp in job.unpositioned if not _seek(consumer, tp)]
        if job.unpositioned:
            return []
        consumer.resume(job.partitions)
        self._finish(job)
        if job.reader is not None:
            log.info(
                "restored %d models of partitions %s in %.2fs",
                sum(len(self.pipeline.partitions[p].models) for p in job.numbers),
                job.numbers,
                time.monotonic() - job.started,
            )
        return job.resumed or []

    def _install_when_read(self, job: _Job, consumer: Consumer, deadline: float) -> bool:
        """Read the job's checkpoints until `deadline`; once all are read, install them and note
        where each input partition resumes. False while reading."""
        if job.reader is None and self.store is not None:
            job.reader = self.store.reader(job.numbers)
        if job.reader is not None and not job.reader.read_until(deadline):
            return False
        restored = job.reader.result() if job.reader is not None else {}
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(job.partitions, timeout=self.blocking_timeout_s)
        }
        job.resumed = [self._install(p, restored.get(p), committed) for p in job.numbers]
        starts = {
            (topic, r.partition): offset for r in job.resumed for topic, offset in r.offsets.items()
        }
        job.unpositioned = [
            TopicPartition(tp.topic, tp.partition, starts[tp.topic, tp.partition])
            for tp in job.partitions
            if (tp.topic, tp.partition) in starts
        ]
        return True

    def close(self) -> None:
        for job in list(self.jobs):
            self._finish(job)

    def _finish(self, job: _Job) -> None:
        self.jobs.remove(job)
        if job.reader is not None:
            job.reader.close()

    def _install(
        self, p: int, checkpoint: RestoredPartition | None, committed: dict[tuple[str, int], int]
    ) -> Resumed:
        """Load a partition's checkpointed models into the pipeline (a model whose state cannot
        be used re-learns); the input resumes where the state ends, else at the committed offsets."""
        models = {}
        for name, state in (checkpoint.models if checkpoint else {}).items():
            monitor = self.pipeline.new_monitor(name)
            relearn = restore_model(monitor, state)
            if relearn is None:
                models[name] = monitor
            else:
                self.metrics.state_relearned.labels(relearn.reason).inc()
                log.warning(
                    "model %s re-learns from its next events, its checkpointed state not loaded: %s",
                    name,
                    relearn.detail,
                )
        self.pipeline.install(p, models)
        offsets: dict[str, int] = {}
        moved = False
        for topic in self.inputs:
            offset = committed.get((topic, p), INVALID_OFFSET)
            if checkpoint and checkpoint.offsets is not None and topic in checkpoint.offsets:
                resume = checkpoint.offsets[topic]
                if resume != offset:
                    if offset >= 0:
                        log.warning(
                            "%s[%d]: state covers offset %d, committed offset is %d: resuming at %d",
                            topic,
                            p,
                            resume,
                            offset,
                            resume,
                        )
                    moved = True
                offset = resume
            if offset >= 0:
                offsets[topic] = offset
        return Resumed(p, offsets, moved)


def _seek(consumer: Consumer, tp: TopicPartition) -> bool:
    """Move an assigned partition's fetch position; False while librdkafka cannot yet (`_STATE`:
    its start offset is still being looked up), to be tried again."""
    try:
        consumer.seek(tp)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._STATE:
            raise
        return False
    return True
