"""The sidecar's run loop: consume a batch → pipeline → produce alerts and dead letters →
checkpoint (state and input offsets, with or after the outputs).

The pipeline holds each model's events across batches until it has `model_batch_events` of them
(detector.core.held): with many models on a topic, their monitors then run on many events at a
time. Every checkpoint first observes all held events and publishes their alerts, so the input
offsets committed never run ahead of the events processed; a revoke commits (so flushes) first,
a loss or a failure drops the held events with the rest of the work since the last commit.

The loop follows confluent-kafka's and quix-streams' shape: finite poll timeouts, signals only
set a flag, auto-commit and auto offset store off, nothing committed after a failure. Its
parts each have one job:

* `Checkpoint` (checkpointing.py): progress per partition, when a commit is due, and the commit
  in a fixed order (outputs → state → offsets);
* `Restorer` (restore.py): assigned partitions wait paused while the loop restores their state,
  a slice per step, then resume where the state ends;
* `ClusterWatch` (cluster_watch.py): connection and topic health, and the cluster's refusals.

The rebalance callbacks stay short: an assignment is assigned and paused (its restore runs in
the loop); a revoke commits the work in hand under a deadline of half of max.poll.interval.ms,
so that the member is never dropped from its group for a slow commit; a loss commits nothing.

Inputs are assigned with the `range` assignor (on the broker under the consumer group
protocol): it gives partition p of every input topic to the same member, which is what keeps
all of a model's events (and its state) in one process.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from detector.core.alerts import Alert
from detector.core.alignment import Aligner
from detector.core.pipeline import GC_THRESHOLDS, BatchResult, DeadLetter, Pipeline
from detector.core.state import StateCodec
from detector.http.endpoints import HealthServer
from detector.http.metrics import Metrics
from detector.http.readiness import Health, details, judge
from detector.kafka.checkpoint import StateStore
from detector.kafka.clients import LIBRDKAFKA_LOG, admin_config, consumer_config, producer_config
from detector.kafka.delivery import AtLeastOnceOutputs, ExactlyOnceOutputs, Outputs
from detector.kafka.faults import FaultInjector
from detector.kafka.permissions import check_permissions
from detector.kafka.statistics import STATISTICS_INTERVAL_MS, TimeoutCount, parse_statistics
from detector.kafka.topics import (
    ClusterRefused,
    ensure_topics,
    output_topics,
    refusal,
    wait_for_cluster,
)
from detector.service.checkpointing import Checkpoint, Outcome
from detector.service.cluster_watch import ClusterWatch
from detector.service.restore import Restorer
from detector.settings import ProcessingGuarantee, Settings

log = logging.getLogger(__name__)

AlertListener = Callable[[Alert, dict[str, Any]], None]
RESTORE_SLICE_S = 0.5  # longest restore step between two polls
# Share of max.poll.interval.ms that the work on a revoke may take: the group waits that long
# for a member to give its partitions up, counted from a rebalance the member notices late.
REVOKE_SHARE = 0.5


class Service:
    """One detector process: a consumer-group member that owns some input partitions."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        if not settings.kafka.bootstrap_servers:
            raise ValueError(
                "kafka.bootstrap_servers is empty: set STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS"
            )
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.metrics.ready.set_function(lambda: 1.0 if self.is_ready() else 0.0)
        self.metrics.last_progress.set_function(
            lambda: time.time() - (time.monotonic() - self.last_progress)
        )
        self.timeouts = TimeoutCount()
        self.pipeline = Pipeline(settings)
        self.inputs = settings.topics.inputs()
        self.aligner = Aligner(
            self.inputs, settings.alignment_idle_ms / 1000, settings.alignment_buffer_events
        )
        key = settings.state.signing_key
        codec = StateCodec(
            settings.kafka.group_id, key.get_secret_value().encode() if key else None
        )
        self.faults = FaultInjector(settings.fault_injection)
        store = StateStore(
            settings.state_topic(),
            codec,
            settings.kafka.client_config(),
            self.metrics.state_rejected,
            self.faults,
        )
        self.revoke_budget_s = settings.kafka.max_poll_interval_ms / 1000 * REVOKE_SHARE
        self.checkpoint = Checkpoint(settings, self.pipeline, store, self.faults, self.metrics)
        self.metrics.commit_pending.set_function(self.checkpoint.pending_s)
        self.restorer = Restorer(
            self.inputs,
            store if settings.state.enabled else None,
            self.pipeline,
            self.metrics,
            self.revoke_budget_s,
        )
        self.cluster = ClusterWatch(
            settings, self.metrics, on_fatal=self.request_stop, on_topics_lost=self._replace_outputs
        )
        self.stop_requested = threading.Event()
        self.alert_listeners: list[AlertListener] = []
        self.http: HealthServer | None = None
        self.consumer: Consumer | None = None
        self.outputs: Outputs | None = None
        self.failed = False
        self.joined = False  # the group assigned this member at least once
        self.owned: set[int] = set()  # assigned input partition numbers, restored or restoring
        self.touched: set[str] = set()  # models with events since the last checkpoint (for gauges)
        # when the loop last completed a step (or a wait for the broker)
        self.last_progress = time.monotonic()
        self.processed_events = 0

    # -- control ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the batch in hand, commit and return from run(); safe from a signal handler."""
        self.stop_requested.set()

    def health(self) -> Health:
        """What readiness is judged on, as of now (the HTTP thread asks while the loop may be blocked)."""
        return Health(
            connected=self.cluster.connected,
            assigned=self.joined,
            restoring=self.restorer.restoring,
            partitions=tuple(sorted(self.owned)),
            stalled_s=self.stalled_s(),
            commit_pending_s=self.checkpoint.pending_s(),
            commit_overdue_s=self.settings.commit_overdue_s(),
        )

    def is_ready(self) -> bool:
        """Connected, assigned by the group, every assigned partition's state restored, the loop
        not stalled, and no work waiting on Kafka to be committed for too long (see `judge`)."""
        return judge(self.health())[0]

    def readiness(self) -> tuple[bool, dict[str, object]]:
        return details(self.health())

    def liveness(self) -> tuple[bool, str]:
        """Alive unless the loop has stalled: a call into librdkafka that never returns (a commit
        to a transaction coordinator that died, librdkafka #5456) leaves the process serving
        /metrics while it processes nothing; only a restart helps."""
        stalled = self.stalled_s()
        if stalled:
            return (
                False,
                f"stalled: the consumer loop has not completed a step for {stalled:.0f}s (metrics.stall_after_s)",
            )
        return True, ""

    def stalled_s(self) -> float:
        """Seconds since the loop last made progress, once that exceeds metrics.stall_after_s; else 0."""
        quiet = time.monotonic() - self.last_progress
        return quiet if quiet > self.settings.metrics.stall_after_s else 0.0

    def _progressing(self) -> bool:
        """Mark progress while waiting for the broker; tell whether to stop waiting."""
        self.last_progress = time.monotonic()
        return self.stop_requested.is_set()

    @property
    def metrics_port(self) -> int | None:
        return self.http.port if self.http else None

    # -- the loop -----------------------------------------------------------------------

    def run(self, until: Callable[[Service], bool] | None = None) -> None:
        """Run until a stop is requested (or `until(self)` is true); then checkpoint and close."""
        settings = self.settings
        gc.set_threshold(*GC_THRESHOLDS)
        LIBRDKAFKA_LOG.setLevel(
            logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL
        )
        self.last_progress = time.monotonic()
        self.http = HealthServer(
            settings.metrics.host,
            settings.metrics.port,
            self.registry,
            self.readiness,
            self.liveness,
        ).start()
        log.info(
            "metrics, health and readiness on http://%s:%d/metrics",
            settings.metrics.host,
            self.http.port,
        )
        try:
            if not wait_for_cluster(settings.kafka.client_config(), self._progressing):
                return
            admin = AdminClient(admin_config(settings))
            self.cluster.connected = True
            outputs = output_topics(settings)
            check_permissions(admin, settings)
            partitions = ensure_topics(admin, settings, self.inputs, outputs)
            log.info("inputs %s have %d partitions each", ", ".join(self.inputs), partitions)
            # before joining: init_transactions fences a dead predecessor
            self.outputs = self._make_outputs()
            self.consumer = Consumer(self._consumer_config())
            self.consumer.subscribe(
                self.inputs,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self.stop_requested.is_set() and not (until and until(self)):
                self._step()
            if self.cluster.fatal_error is not None:
                raise KafkaException(self.cluster.fatal_error)
            self._commit()
            log.info("stopped after %d events; offsets committed", self.processed_events)
        except BaseException:
            # nothing more is committed on the way out: the input will be replayed
            self.failed = True
            raise
        finally:
            self._close()

    def _step(self) -> None:
        assert self.consumer is not None and self.outputs is not None
        self.outputs.poll()
        # While state is being read, the poll only serves the group (and the other partitions):
        # the time goes to the restore.
        timeout_s = 0 if self.restorer.reading else self.settings.batch_timeout_ms / 1000
        messages = self.consumer.consume(self.settings.batch_max_events, timeout_s)
        if self.cluster.fatal_error is not None:
            return  # reported while consuming: nothing more is processed or committed
        self._restore_step()
        self.aligner.add(
            m for m in messages if (error := m.error()) is None or self._on_consume_error(error)
        )
        good = self.aligner.release(self._caught_up, time.monotonic())
        self._apply_flow_control()
        if good:
            with self.metrics.batch_seconds.time():
                result = self.pipeline.process(good, hold=True)
            self._publish(result)
            self.checkpoint.advance(good)
            self.processed_events += len(good)
        # prefetched messages can still arrive: only metadata proves the broker back
        self.cluster.check(self.consumer)
        # a commit started against a dead coordinator can hang
        if self.cluster.connected and self.checkpoint.due():
            self._commit()
        self.last_progress = time.monotonic()

    def _restore_step(self) -> None:
        """Advance the pending restore by one slice; partitions restored resume from their state,
        and their models show their gauges at once (an open drift stays visible across a rebalance)."""
        assert self.consumer is not None
        if not self.restorer.restoring:
            return
        resumed = self.restorer.step(self.consumer, time.monotonic() + RESTORE_SLICE_S)
        for partition in resumed:
            self.checkpoint.start(partition.partition, partition.offsets, partition.moved)
            self.touched.update(self.pipeline.partitions[partition.partition].models)
        if resumed:
            self._refresh_gauges()

    def _caught_up(self, topic: str, partition: int) -> bool:
        """Whether the consumer has read all that the broker had of a topic partition at its last
        fetch (librdkafka caches the high watermark of every fetch response; unknown before the
        first, hence not caught up)."""
        assert self.consumer is not None
        tp = TopicPartition(topic, partition)
        low, high = self.consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            return False
        position = self.consumer.position([tp])[0].offset
        if position < 0:
            # nothing read since the assignment: reading starts at the resume point, else the beginning
            position = self.checkpoint.covered.get(partition, {}).get(topic, low)
        return position >= high

    def _apply_flow_control(self) -> None:
        """Pause fetching the topic partitions whose alignment buffer is full; resume drained ones."""
        assert self.consumer is not None
        pause, resume = self.aligner.flow()
        if pause:
            self.consumer.pause([TopicPartition(topic, p) for topic, p in pause])
        if resume:
            self.consumer.resume([TopicPartition(topic, p) for topic, p in resume])

    def _publish(self, result: BatchResult) -> None:
        assert self.outputs is not None
        topics, group = self.settings.topics, self.settings.kafka.group_id
        for alert in result.alerts:
            self.outputs.send(
                topics.alerts, alert.key, alert.encode(group, self.settings.limits.max_output_bytes)
            )
            log.info(
                "alert %s %s/%s (%s, %s, %s) at %s[%d]@%d",
                alert.kind,
                alert.model,
                alert.monitor,
                alert.statistic,
                alert.detector,
                alert.severity,
                alert.topic,
                alert.partition,
                alert.offset,
            )
            for listener in self.alert_listeners:
                listener(alert, alert.cloudevent(group))
        for event in result.model_events:
            self.outputs.send(
                topics.alerts, event.key, event.encode(group, self.settings.limits.max_output_bytes)
            )
            log.info(
                "%s %s version %s at %s[%d]@%d",
                event.type,
                event.model,
                event.version,
                event.topic,
                event.partition,
                event.offset,
            )
        for letter in result.dead_letters:
            self._send_dead_letter(letter)
        self.metrics.record_batch(result)
        self.metrics.record_alerts(result.alerts)
        self.metrics.record_model_events(result.model_events)
        self.touched.update(model for _, model in result.events)
        self._note_model_changes(result)
        if result.alerts or result.model_events:
            self.faults.reached("after_alerts")

    def _note_model_changes(self, result: BatchResult) -> None:
        """Log failed and evicted models; an evicted model's series go (unless it came back in the
        same batch), and its partition checkpoints its retirement."""
        for failure in result.model_errors:
            log.error(
                "model %s failed and restarts from scratch (its events are dead-lettered): %s",
                failure.model,
                failure.error,
            )
        if not result.evictions:
            return
        reasons = Counter(eviction.reason for eviction in result.evictions)
        names = [eviction.model for eviction in result.evictions]
        log.info(
            "evicted %d models (%s): %s%s",
            len(names),
            ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())),
            ", ".join(names[:5]),
            ", …" if len(names) > 5 else "",
        )
        self.checkpoint.touch(
            eviction.partition for eviction in result.evictions if eviction.partition in self.owned
        )
        departed = {
            e.model
            for e in result.evictions
            if e.model not in self.pipeline.partitions[e.partition].models
        }
        self.metrics.forget_models(departed)
        self.touched.difference_update(departed)

    def _send_dead_letter(self, letter: DeadLetter) -> None:
        """Copy a bad message to the dead-letter topic, cut to limits.max_output_bytes. If the broker
        refused its record as too large, the replay sends it without key and value (headers only);
        if it refused that too, it is logged and counted instead, never retried again."""
        assert self.outputs is not None
        refusals = self.outputs.refusals.get(letter.place, 0)
        if refusals >= 2:
            self.metrics.dead_letters_undelivered.inc()
            log.error(
                "dead letter of %s[%d]@%d (%s) refused by the broker even without key and value: not written",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
            )
            return
        if refusals:
            log.warning(
                "dead letter of %s[%d]@%d refused by the broker as too large: resending without key and value",
                *letter.place,
            )
        record = letter.record(0 if refusals else self.settings.limits.max_output_bytes)
        if record.truncated:
            self.metrics.dead_letters_truncated.labels(letter.topic).inc()
        self.outputs.send(
            self.settings.topics.dlq, record.key, record.value, record.headers, place=letter.place
        )

    def _on_consume_error(self, error: KafkaError) -> bool:
        """A consumer error: fatal ones and refusals (TLS, credentials, ACLs) raise, the rest are
        handled as client errors. Returns False (the message is not data)."""
        if error.fatal():
            raise KafkaException(error)
        problem = refusal(error)
        if problem:
            raise ClusterRefused(f"kafka refused the consumer: {problem}")
        self.cluster.on_client_error(error)
        return False

    # -- checkpoints --------------------------------------------------------------------

    def _commit(self, deadline: float | None = None) -> None:
        """Commit the work in hand (see Checkpoint.commit); after an aborted transaction, rewind."""
        if self.consumer is None or self.outputs is None:
            return
        self._flush()
        outcome = self.checkpoint.commit(self.outputs, self.consumer, self.owned, deadline)
        if outcome is Outcome.wedged:  # its successor's init_transactions aborts its transaction
            self.outputs = self._make_outputs()
        if outcome in (Outcome.aborted, Outcome.wedged):
            self._rewind()
        elif outcome is Outcome.committed:
            self._refresh_gauges()

    def _flush(self) -> None:
        """Observe the events the pipeline holds (model_batch_events) and publish what they give:
        the offsets and state a commit covers never run ahead of the events processed."""
        if self.pipeline.holding:
            with self.metrics.batch_seconds.time():
                result = self.pipeline.flush()
            self._publish(result)

    def _rewind(self) -> None:
        """After an aborted transaction: every owned partition goes back to its last checkpoint,
        restored in the loop as after an assignment."""
        assert self.consumer is not None
        self.aligner.drop(self.owned)  # read again from the checkpoint
        self.checkpoint.rewound()
        self.restorer.cancel(self.owned)
        self.restorer.schedule(
            self.consumer, [tp for tp in self.consumer.assignment() if tp.partition in self.owned]
        )

    def _refresh_gauges(self) -> None:
        touched = [m for m in self.pipeline.models() if m.name in self.touched]
        self.metrics.record_models(touched, self.pipeline.model_count)
        self.touched.clear()
        if self.consumer is not None:
            self.metrics.set_lag(self._lags())

    def _lags(self) -> dict[tuple[str, int], int]:
        assert self.consumer is not None
        assigned = [tp for tp in self.consumer.assignment() if tp.partition in self.owned]
        lags: dict[tuple[str, int], int] = {}
        for tp in self.consumer.position(assigned) if assigned else []:
            _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lags[tp.topic, tp.partition] = max(0, high - tp.offset)
        return lags

    # -- rebalancing --------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Take the partitions (all of them under the classic protocol's range assignor, the
        added ones under the consumer protocol) and hold them paused until the loop has
        restored their state."""
        if self.settings.kafka.group_protocol == "consumer":
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        numbers = {tp.partition for tp in partitions}
        self.owned |= numbers
        self.joined = True
        self.restorer.schedule(consumer, partitions)
        log.info("assigned input partitions %s", sorted(numbers) or "none")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        self.restorer.cancel(numbers)
        if self.failed or self.cluster.fatal_error is not None:
            log.warning(
                "revoking input partitions %s after a failure: not committing", sorted(numbers)
            )
            if self.outputs is not None:
                self.outputs.abort()
        else:
            log.info("revoking input partitions %s: committing work in hand", sorted(numbers))
            self._commit_before_handover()
            self.faults.reached("in_revoke")
        self._drop(numbers)

    def _commit_before_handover(self) -> None:
        """Commit the work in hand within the revoke budget. Past it, nothing more is committed:
        the transaction is aborted and every owned partition rewound, so the next owner of the
        revoked ones reads them again from their last checkpoint, and this member keeps its place
        in the group."""
        deadline = time.monotonic() + self.revoke_budget_s
        try:
            self._commit(deadline)
        except Exception as exc:
            if time.monotonic() < deadline:
                raise
            log.warning(
                "the work in hand was not committed within %.0fs (half of kafka.max_poll_interval_ms): "
                "handing the partitions over at their last checkpoint (%s)",
                self.revoke_budget_s,
                exc,
            )
            assert self.outputs is not None
            self.outputs.abort()
            self._rewind()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        log.warning(
            "lost input partitions %s: dropping their state without committing", sorted(numbers)
        )
        if self.outputs is not None:
            self.outputs.abort()
        self._drop(numbers)

    def _drop(self, numbers: set[int]) -> None:
        self.restorer.cancel(numbers)
        self.metrics.forget_models(self.pipeline.revoke(numbers))
        self.owned -= numbers
        self.checkpoint.forget(numbers)
        self.aligner.drop(numbers)  # not processed, so not committed: the next owner reads them

    # -- clients ------------------------------------------------------------------------

    def _consumer_config(self) -> dict[str, Any]:
        return self._with_callbacks(consumer_config(self.settings))

    def _with_callbacks(self, config: dict[str, Any]) -> dict[str, Any]:
        """A client's configuration with the service's callbacks, and statistics every
        STATISTICS_INTERVAL_MS unless kafka.properties sets statistics.interval.ms (0: none)."""
        return {
            "statistics.interval.ms": STATISTICS_INTERVAL_MS,
            **config,
            "error_cb": self.cluster.on_client_error,
            "stats_cb": self._on_statistics,
            "logger": LIBRDKAFKA_LOG,
        }

    def _on_statistics(self, document: str) -> None:
        """librdkafka's statistics of a client (served by its polls): into the metrics."""
        statistics = parse_statistics(document)
        self.metrics.record_client(
            statistics.client,
            statistics.brokers,
            statistics.waiting,
            self.timeouts.increase(statistics),
        )

    def _make_outputs(self) -> Outputs:
        config = self._with_callbacks(producer_config(self.settings))
        if self.settings.processing_guarantee is ProcessingGuarantee.exactly_once:
            return ExactlyOnceOutputs(Producer(config), config["transactional.id"])
        return AtLeastOnceOutputs(Producer(config))

    def _replace_outputs(self) -> None:
        """Topics were lost with the producer's idempotence and transaction state (a broker without
        storage): the old producer would stall; start a fresh one."""
        if self.outputs is not None:
            self.outputs.producer.purge()
            self.outputs = self._make_outputs()

    def _close(self) -> None:
        """Close the clients; every step runs even if one before it raised (the first error is
        raised at the end, unless the process is already stopping on one).

        After a failure the outputs are discarded first: the open transaction is aborted and
        nothing queued is delivered, so the revoke callback that leaving the group runs has
        nothing to commit. Otherwise the consumer goes first, as its revoke callback commits the
        work in hand, and the producer then delivers everything queued."""
        errors: list[Exception] = []
        if self.outputs is not None and self.failed:
            _attempt(self.outputs.discard, errors)
        if self.consumer is not None:
            _attempt(self.consumer.close, errors)
        _attempt(self.restorer.close, errors)
        if self.outputs is not None and not self.failed:
            # a failed revoke commit is a failure
            _attempt(self.outputs.discard if errors else self.outputs.close, errors)
        if self.http is not None:
            _attempt(self.http.stop, errors)
        if errors and not self.failed:
            raise errors[0]


def _attempt(step: Callable[[], object], errors: list[Exception]) -> None:
    """Run one step of closing; an error is logged and added to `errors`, so the next steps still run."""
    try:
        step()
    except Exception as exc:
        log.warning("while closing: %s", exc)
        errors.append(exc)
