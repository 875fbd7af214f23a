"""The sidecar's run loop: consume a batch → pipeline → produce alerts and dead letters →
checkpoint (state and input offsets, with or after the outputs).

The loop follows confluent-kafka's and quix-streams' shape: finite poll timeouts, signals only
set a flag, auto-commit and auto offset store off, checkpoints on an interval in a fixed order
(outputs → state → commit), state restored on assignment before any event of a partition is
processed, the work in hand committed on revoke, nothing committed after a failure.

Inputs are assigned with the `range` assignor: it gives partition p of every input topic to
the same member, which is what keeps all of a model's events (and its state) in one process.
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
from detector.core.state import StateCodec, restore_model
from detector.http.endpoints import HealthServer
from detector.http.metrics import Metrics
from detector.kafka.checkpoint import StateStore
from detector.kafka.clients import consumer_config, producer_config
from detector.kafka.delivery import (
    AtLeastOnceOutputs,
    CheckpointAborted,
    CommitSuperseded,
    ExactlyOnceOutputs,
    Outputs,
    ProducerWedged,
)
from detector.kafka.faults import FaultInjector
from detector.kafka.topics import (
    TOPIC_GONE,
    UNREACHABLE,
    ClusterRefused,
    ensure_topics,
    output_topics,
    partition_counts,
    refusal,
    wait_for_cluster,
)
from detector.settings import ProcessingGuarantee, Settings

log = logging.getLogger(__name__)

AlertListener = Callable[[Alert, dict[str, Any]], None]
CONNECTION_CHECK_S = 2.0
# librdkafka's own log lines (a line per failed reconnect) go here, shown only at DEBUG: its errors
# reach the detector through error_cb, which logs each outage once.
LIBRDKAFKA_LOG = logging.getLogger("detector.librdkafka")
COMMITTED_TIMEOUT_S = 30.0


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
        self.pipeline = Pipeline(settings)
        self.inputs = settings.topics.inputs()
        self.aligner = Aligner(
            self.inputs, settings.alignment_idle_ms / 1000, settings.alignment_buffer_events
        )
        key = settings.state.signing_key
        codec = StateCodec(
            settings.kafka.group_id, key.get_secret_value().encode() if key else None
        )
        self.store = StateStore(
            settings.state_topic(),
            codec,
            settings.kafka.client_config(),
            self.metrics.state_rejected,
        )
        self.faults = FaultInjector(settings.fault_injection)
        self.stop_requested = threading.Event()
        self.alert_listeners: list[AlertListener] = []
        self.http: HealthServer | None = None
        self.consumer: Consumer | None = None
        self.outputs: Outputs | None = None
        self.connected = False
        self.last_connection_check = 0.0
        self.fatal_error: KafkaError | None = None
        self.failed = False
        self.joined = False  # the group assigned this member at least once
        self.restoring = False
        self.owned: set[int] = set()  # input partition numbers
        self.covered: dict[
            int, dict[str, int]
        ] = {}  # per owned partition: next offset of each input topic
        self.progressed: set[int] = set()  # partitions with events since the last checkpoint
        self.touched: set[str] = set()  # models with events since the last checkpoint (for gauges)
        self.uncommitted_events = 0
        self.last_checkpoint = time.monotonic()
        self.last_progress = (
            time.monotonic()
        )  # when the loop last completed a step (or a wait for the broker)
        self.processed_events = 0

    # -- control ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the batch in hand, commit and return from run(); safe from a signal handler."""
        self.stop_requested.set()

    def is_ready(self) -> bool:
        """Connected, assigned by the group, every assigned partition's state restored, and the
        loop not stalled."""
        return self.connected and self.joined and not self.restoring and not self.stalled_s()

    def readiness(self) -> tuple[bool, dict[str, object]]:
        details = {
            "connected": self.connected,
            "assigned": self.joined,
            "restoring": self.restoring,
            "partitions": sorted(self.owned),
            "stalled_s": round(self.stalled_s(), 1),
        }
        return self.is_ready(), details

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
            admin = AdminClient(settings.kafka.client_config())
            self.connected = True
            outputs = output_topics(settings)
            partitions = ensure_topics(admin, settings, self.inputs, outputs)
            log.info("inputs %s have %d partitions each", ", ".join(self.inputs), partitions)
            self.outputs = (
                self._make_outputs()
            )  # before joining: init_transactions fences a dead predecessor
            self.consumer = Consumer(self._consumer_config())
            self.consumer.subscribe(
                self.inputs,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self.stop_requested.is_set() and not (until and until(self)):
                self._step()
            if self.fatal_error is not None:
                raise KafkaException(self.fatal_error)
            self._checkpoint()
            log.info("stopped after %d events; offsets committed", self.processed_events)
        except BaseException:
            self.failed = (
                True  # nothing more is committed on the way out: the input will be replayed
            )
            raise
        finally:
            self._close()

    def _step(self) -> None:
        assert self.consumer is not None and self.outputs is not None
        self.outputs.poll()
        messages = self.consumer.consume(
            self.settings.batch_max_events, self.settings.batch_timeout_ms / 1000
        )
        if (
            self.fatal_error is not None
        ):  # reported while consuming: nothing more is processed or committed
            return
        self.aligner.add(m for m in messages if not m.error() or self._on_consume_error(m.error()))
        good = self.aligner.release(self._caught_up, time.monotonic())
        self._apply_flow_control()
        if good:
            with self.metrics.batch_seconds.time():
                result = self.pipeline.process(good)
            self._publish(result)
            for message in good:
                partition = message.partition()
                self.covered.setdefault(partition, {})[message.topic()] = message.offset() + 1
                self.progressed.add(partition)
            self.uncommitted_events += len(good)
            self.processed_events += len(good)
        if (
            not self.connected
        ):  # prefetched messages can still arrive: only metadata proves the broker back
            self._check_connection()
        if self._checkpoint_due():
            self._checkpoint()
        self.last_progress = time.monotonic()

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
        if (
            position < 0
        ):  # nothing read since the assignment: reading starts at the resume point, else the beginning
            position = self.covered.get(partition, {}).get(topic, low)
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
        for letter in result.dead_letters:
            self._send_dead_letter(letter)
        self.metrics.record_batch(result)
        self.metrics.record_alerts(result.alerts)
        self.touched.update(model for _, model in result.events)
        self._note_model_changes(result)
        if result.alerts:
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
        self.progressed.update(
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
        self._on_client_error(error)
        return False

    def _check_connection(self) -> None:
        """While disconnected and idle, ask for metadata every few seconds to notice recovery.

        A topic that is gone (deleted, or lost by a broker that keeps no data) is logged and
        counted once per loss; it is re-created when topics.create_missing allows, else the
        process stays not ready until it exists again."""
        assert self.consumer is not None
        if time.monotonic() - self.last_connection_check < CONNECTION_CHECK_S:
            return
        self.last_connection_check = time.monotonic()
        wanted = self.inputs + output_topics(self.settings)
        try:
            present = partition_counts(self.consumer, wanted, timeout_s=1.0)
        except KafkaException:
            return
        missing = [name for name in wanted if name not in present]
        lost = [
            name
            for name in missing
            if self.registry.get_sample_value("streamdrift_topic_missing", {"topic": name}) != 1
        ]
        create = self.settings.topics.create_missing
        for name in lost:
            self.metrics.topic_losses.labels(name).inc()
            log.warning(
                "topic %s is gone from the cluster (deleted, or lost by a broker that keeps no data): %s",
                name,
                "re-creating it (topics.create_missing); its partitions are read again from the start and their models re-learned"
                if create
                else "not ready until it exists again (topics.create_missing is off)",
            )
        for name in missing:
            self.metrics.topic_missing.labels(name).set(1)
        if lost and self.outputs is not None:
            # Whatever lost the topics (a broker without storage) lost the producer's idempotence
            # and transaction state with them: the old producer would stall; start a fresh one.
            self.outputs.producer.purge()
            self.outputs = self._make_outputs()
        if missing and create:
            ensure_topics(
                AdminClient(self.settings.kafka.client_config()),
                self.settings,
                self.inputs,
                output_topics(self.settings),
            )
        elif missing:
            return
        for name in wanted:
            self.metrics.topic_missing.labels(name).set(0)
        log.info("kafka is reachable again")
        self.connected = True

    # -- checkpoints --------------------------------------------------------------------

    def _checkpoint_due(self) -> bool:
        s = self.settings
        if (
            not self.progressed or not self.connected
        ):  # a commit started against a dead coordinator can hang
            return False
        elapsed_ms = (time.monotonic() - self.last_checkpoint) * 1000
        return (
            elapsed_ms >= s.commit_interval_ms
            or self.uncommitted_events >= s.commit_interval_events
        )

    def _checkpoint(self) -> None:
        """Outputs, then state, then input offsets: under exactly_once all in one transaction;
        under at_least_once each acknowledged before the next is sent. An aborted transaction
        rewinds input and state to the last checkpoint."""
        if self.consumer is None or self.outputs is None:
            return
        partitions = sorted(self.progressed & self.owned)
        offsets = [
            TopicPartition(topic, p, offset)
            for p in partitions
            for topic, offset in self.covered[p].items()
        ]
        outputs = self.outputs
        with self.metrics.checkpoint_seconds.time():
            try:
                outputs.settle()
                if self.settings.state.enabled:
                    for p in partitions:
                        state = self.pipeline.partitions[p]
                        self.store.write(
                            outputs, p, self.covered[p], state.take_dirty(), state.take_evicted()
                        )
                self.faults.reached("before_commit", before_exit=lambda: outputs.producer.flush(10))
                outputs.commit(self.consumer, offsets)
            except CheckpointAborted as exc:
                self.metrics.commit_failures.inc()
                log.warning("checkpoint aborted (%s): rewinding to the last checkpoint", exc)
                if isinstance(exc, ProducerWedged):  # its successor aborts its transaction
                    self.outputs = self._make_outputs()
                self._rewind()
                return
            except CommitSuperseded as exc:
                self.metrics.commit_failures.inc()
                log.warning(
                    "offsets not committed, the group moved on (%s): the next owner resumes from the state",
                    exc,
                )
                self.progressed.clear()
                return
            except Exception:
                self.metrics.commit_failures.inc()
                raise
        self.faults.reached("after_commit")
        self.metrics.commits.inc()
        self.progressed.clear()
        self.uncommitted_events = 0
        self.last_checkpoint = time.monotonic()
        self._refresh_gauges()

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

    # -- rebalancing and restore --------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        self.restoring = True
        try:
            starts = self._restore(consumer, partitions)
            consumer.assign(starts)
        finally:
            self.restoring = False
        self.owned = numbers
        self.joined = True
        # Restored models show their gauges at once, not at their next event: an open drift stays visible across a rebalance.
        self.touched.update(
            monitor.name
            for p in numbers
            if p in self.pipeline.partitions
            for monitor in self.pipeline.partitions[p].models.values()
        )
        self._refresh_gauges()
        log.info("assigned input partitions %s", sorted(numbers) or "none")

    def _restore(
        self, consumer: Consumer, partitions: list[TopicPartition]
    ) -> list[TopicPartition]:
        """Load the newest checkpoint of each partition into the pipeline; return where each
        input partition resumes: the checkpoint's offsets, else the committed ones."""
        numbers = sorted({tp.partition for tp in partitions})
        started = time.monotonic()
        restored = self.store.read(numbers) if self.settings.state.enabled else {}
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S)
        }
        starts: list[TopicPartition] = []
        for p in numbers:
            checkpoint = restored.get(p)
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
            self.covered[p] = {}
            for topic in self.inputs:
                offset = committed.get((topic, p), -1001)
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
                        self.progressed.add(p)  # commit the resume point even if no new event comes
                    offset = resume
                if offset >= 0:
                    self.covered[p][topic] = offset
                starts.append(TopicPartition(topic, p, offset))
        if restored:
            loaded = sum(len(self.pipeline.partitions[p].models) for p in numbers)
            log.info(
                "restored %d models of partitions %s in %.2fs",
                loaded,
                numbers,
                time.monotonic() - started,
            )
        return starts

    def _rewind(self) -> None:
        """After an aborted transaction: reload the last checkpoint and seek back to it."""
        assert self.consumer is not None
        assignment = [tp for tp in self.consumer.assignment() if tp.partition in self.owned]
        paused = self.aligner.drop(self.owned)  # read again from the checkpoint
        if paused:
            self.consumer.resume([TopicPartition(topic, p) for topic, p in paused])
        self.progressed.clear()
        self.uncommitted_events = 0
        self.restoring = True
        try:
            for tp in self._restore(self.consumer, assignment):
                if tp.offset >= 0:
                    self.consumer.seek(tp)
        finally:
            self.restoring = False

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        if self.failed or self.fatal_error is not None:
            log.warning(
                "revoking input partitions %s after a failure: not committing", sorted(numbers)
            )
            if self.outputs is not None:
                self.outputs.abort()
        else:
            log.info("revoking input partitions %s: committing work in hand", sorted(numbers))
            self._checkpoint()
            self.faults.reached("in_revoke")
        self._drop(numbers)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        log.warning(
            "lost input partitions %s: dropping their state without committing", sorted(numbers)
        )
        if self.outputs is not None:
            self.outputs.abort()
        self._drop(numbers)

    def _drop(self, numbers: set[int]) -> None:
        self.metrics.forget_models(self.pipeline.revoke(numbers))
        self.owned -= numbers
        self.progressed -= numbers
        self.aligner.drop(numbers)  # not processed, so not committed: the next owner reads them
        for p in numbers:
            self.covered.pop(p, None)

    # -- clients ------------------------------------------------------------------------

    def _consumer_config(self) -> dict[str, Any]:
        return {
            **consumer_config(self.settings),
            "error_cb": self._on_client_error,
            "logger": LIBRDKAFKA_LOG,
        }

    def _make_outputs(self) -> Outputs:
        config = {
            **producer_config(self.settings),
            "error_cb": self._on_client_error,
            "logger": LIBRDKAFKA_LOG,
        }
        if self.settings.processing_guarantee is ProcessingGuarantee.exactly_once:
            return ExactlyOnceOutputs(Producer(config))
        return AtLeastOnceOutputs(Producer(config))

    def _on_client_error(self, error: KafkaError) -> None:
        """librdkafka's error callback. Fatal errors and refusals (TLS, credentials, ACLs) stop the
        process. An unreachable broker or a vanished topic makes it not ready: logged once per
        outage (repeats at DEBUG) until `_check_connection` finds the cluster whole again."""
        problem = refusal(error)
        if error.fatal() or problem:
            log.error("kafka client fatal error: %s", problem or error.str())
            self.fatal_error = error
            self.request_stop()
            return
        if error.code() in UNREACHABLE or error.code() in TOPIC_GONE:
            log.log(
                logging.WARNING if self.connected else logging.DEBUG,
                "kafka: %s (not ready until this passes)",
                error.str(),
            )
            if self.connected:
                self.metrics.kafka_outages.inc()
            self.connected = False
            return
        log.warning("kafka: %s", error.str())

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
        if self.outputs is not None and not self.failed:
            _attempt(
                self.outputs.discard if errors else self.outputs.close, errors
            )  # a failed revoke commit is a failure
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
