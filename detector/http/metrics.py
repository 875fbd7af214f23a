"""Prometheus metrics of the detector, on a registry the caller provides.

Label values are bounded by the caps: models by limits.max_models, monitors by
limits.max_features_per_model, versions by limits.max_versions_per_model (live ones only),
reasons by events.REASONS (state: state.REJECT_REASONS and
monitors.model.RELEARN_REASONS), partitions by the topic.
Series of models and partitions this process no longer owns are removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from detector import __version__
from detector.core.alerts import COMPARED, DEPLOYED, RECOMMENDED, Alert, ModelEvent
from detector.core.monitors.model import RELEARN_REASONS, ModelMonitor
from detector.core.monitors.retraining import RECOVERED
from detector.core.pipeline import BatchResult
from detector.core.state import REJECT_REASONS

Metric = TypeVar("Metric", Counter, Gauge, Histogram, Info)

_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the detector exports (prefix `streamdrift_`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._with_labels: set[str] = set()  # models that have had a label join
        # Per model, the series of its live versions (recorded by _record_versions).
        self._version_series: dict[str, set[tuple[Gauge, tuple[str, ...]]]] = {}
        # Per model, the series created for it (metric, label values): what forget_models removes.
        self._model_series: dict[
            str, set[tuple[Counter | Gauge | Histogram | Info, tuple[str, ...]]]
        ] = {}
        self.build = Info(
            "streamdrift_build", "Version of the running detector.", registry=registry
        )
        self.build.info({"version": __version__})
        self.events = Counter(
            "streamdrift_events",
            "Valid input events, by topic and model.",
            ["topic", "model"],
            registry=registry,
        )
        self.events_invalid = Counter(
            "streamdrift_events_invalid",
            "Input messages rejected and dead-lettered, by topic and reason.",
            ["topic", "reason"],
            registry=registry,
        )
        self.dead_letters_truncated = Counter(
            "streamdrift_dead_letters_truncated",
            "Dead letters written with their key and value cut to limits.max_output_bytes (or left out after the "
            "broker refused them as too large), by source topic.",
            ["topic"],
            registry=registry,
        )
        self.dead_letters_undelivered = Counter(
            "streamdrift_dead_letters_undelivered",
            "Dead letters the broker refused as too large even without key and value: logged, not written.",
            registry=registry,
        )
        self.alerts = Counter(
            "streamdrift_alerts",
            "Alerts published (detected and resolved), by model, monitor, detector and severity.",
            ["model", "monitor", "detector", "severity"],
            registry=registry,
        )
        self.drift_active = Gauge(
            "streamdrift_drift_active",
            "1 while a monitor's drift is open, else 0.",
            ["model", "monitor"],
            registry=registry,
        )
        self.monitor_statistic = Gauge(
            "streamdrift_monitor_statistic",
            "Recent-window value of a monitored signal: PIT location/spread/novelty (0.5 = as the reference), "
            "raw mean, or rate.",
            ["model", "monitor", "statistic"],
            registry=registry,
        )
        self.last_event = Gauge(
            "streamdrift_last_event_timestamp_seconds",
            "Event time of the newest event seen per model (Unix seconds).",
            ["model"],
            registry=registry,
        )
        self.features_unmonitored = Gauge(
            "streamdrift_features_unmonitored",
            "Feature names seen but not monitored because of limits.max_features_per_model.",
            ["model"],
            registry=registry,
        )
        self.accuracy = Gauge(
            "streamdrift_model_accuracy",
            "Share of recent labelled predictions that were right (classifiers).",
            ["model"],
            registry=registry,
        )
        self.error = Gauge(
            "streamdrift_model_error",
            "Recent error of labelled predictions (regressions): mae or rmse.",
            ["model", "statistic"],
            registry=registry,
        )
        self.estimated_accuracy = Gauge(
            "streamdrift_estimated_accuracy",
            "Estimated accuracy of the recent predictions, before their labels: each one's chance of being right "
            "given its score, as its model version's earlier labels calibrated it (the mean confidence until "
            "streamdrift_estimate_calibration_labels reaches detection.warmup_events).",
            ["model"],
            registry=registry,
        )
        self.mean_confidence = Gauge(
            "streamdrift_mean_confidence",
            "Mean confidence (probability of the predicted class) of the recent predictions: the accuracy their "
            "scores claim.",
            ["model"],
            registry=registry,
        )
        self.calibration_labels = Gauge(
            "streamdrift_estimate_calibration_labels",
            "Labelled predictions the newest model version's score calibration learned from (the last 10,000 to "
            "20,000).",
            ["model"],
            registry=registry,
        )
        self.estimation_error = Gauge(
            "streamdrift_estimation_error",
            "Estimated minus realised accuracy over the same recent labelled predictions, each estimated before "
            "its label was learned (0: the estimate holds).",
            ["model"],
            registry=registry,
        )
        self.label_pending = Gauge(
            "streamdrift_label_join_pending",
            "Predictions waiting for their label.",
            ["model"],
            registry=registry,
        )
        self.label_awaiting_first = Gauge(
            "streamdrift_label_join_awaiting_first_label",
            "1 while a model's predictions carry ids but no label has ever come: only its first "
            "limits.pending_labels_before_first predictions wait, later ones are not kept (nor counted); 0 once labels came.",
            ["model"],
            registry=registry,
        )
        self.label_expired = Counter(
            "streamdrift_label_join_expired",
            "Predictions whose label never came: reason ttl (waited label_ttl_seconds) or cap (buffer full).",
            ["model", "reason"],
            registry=registry,
        )
        self.label_unmatched = Counter(
            "streamdrift_label_join_unmatched",
            "Labels that found no prediction: reason unknown (never seen or not sampled) or late (after its TTL).",
            ["model", "reason"],
            registry=registry,
        )
        self.label_coverage = Gauge(
            "streamdrift_label_coverage_ratio",
            "Share of recent predictions that got their label within the maturity age.",
            ["model"],
            registry=registry,
        )
        self.label_delay = Histogram(
            "streamdrift_label_delay_seconds",
            "Event time from a prediction to its label.",
            ["model"],
            buckets=(
                1,
                10,
                60,
                300,
                900,
                3600,
                4 * 3600,
                12 * 3600,
                86_400,
                3 * 86_400,
                7 * 86_400,
            ),
            registry=registry,
        )
        self.models = Gauge(
            "streamdrift_models", "Models monitored by this process.", registry=registry
        )
        self.deployments = Counter(
            "streamdrift_deployments",
            "Model versions deployed (io.streamdrift.model.deployed published), rollbacks included.",
            ["model"],
            registry=registry,
        )
        self.version_comparisons = Counter(
            "streamdrift_version_comparisons",
            "Live versions found significantly apart (io.streamdrift.version.compared published), by statistic: "
            "score_mean, accuracy or mae.",
            ["model", "statistic"],
            registry=registry,
        )
        self.retrain_recommendations = Counter(
            "streamdrift_retrain_recommendations",
            "Retraining recommended (io.streamdrift.retrain.recommended published), by reason: performance_drop "
            "or input_drift.",
            ["model", "reason"],
            registry=registry,
        )
        self.retrain_recovered = Counter(
            "streamdrift_retrain_recovered",
            "Versions deployed after a retraining recommendation whose performance is back within "
            "retrain.recovered_within of the reference (io.streamdrift.retrain.outcome, outcome recovered).",
            ["model"],
            registry=registry,
        )
        self.retrain_not_recovered = Counter(
            "streamdrift_retrain_not_recovered",
            "Versions deployed after a retraining recommendation whose performance is not back at the reference "
            "(io.streamdrift.retrain.outcome, outcome not_recovered).",
            ["model"],
            registry=registry,
        )
        self.retrain_open = Gauge(
            "streamdrift_retrain_recommended",
            "1 while a model's retraining recommendation stands (its episode has not ended: no new version "
            "deployed, performance not recovered, input drift not resolved), else 0.",
            ["model"],
            registry=registry,
        )
        self.version_live = Gauge(
            "streamdrift_version_live",
            "1 for each live version of a model (a prediction among its last detection.version_idle_events).",
            ["model", "version"],
            registry=registry,
        )
        self.version_value = Gauge(
            "streamdrift_version_value",
            "Per live version, over its last complete comparison window (else the current one): score_mean, "
            "accuracy (classifiers) or mae (regressions) of the labels joined in it.",
            ["model", "version", "statistic"],
            registry=registry,
        )
        self.versions_unmonitored = Gauge(
            "streamdrift_version_unmonitored_predictions",
            "Predictions of a version over limits.max_versions_per_model: not monitored on the output side.",
            ["model"],
            registry=registry,
        )
        # Prometheus' info convention: value 1, the facts in labels; the alerting rules join it
        # on `model` to give every per-model alert its owner (deploy/prometheus/rules.yml).
        self.model_info = Info(
            "streamdrift_model",
            "Who owns a model and what serves it: the configured owner and runbook_url, and the "
            "newest model version seen in its events (labels; value 1).",
            ["model"],
            registry=registry,
        )
        self.models_evicted = Counter(
            "streamdrift_models_evicted",
            "Models dropped with their state and series: reason idle (limits.model_idle_seconds) or cap (a newcomer at "
            "limits.max_models took the place of a model still in its warm-up).",
            ["reason"],
            registry=registry,
        )
        self.model_errors = Counter(
            "streamdrift_model_errors",
            "Batches in which a model's monitors raised; the model restarted from scratch and its events were dead-lettered.",
            ["model", "stage"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "streamdrift_consumer_lag",
            "Messages behind the end of each owned input partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.ready = Gauge(
            "streamdrift_ready",
            "1 when /readyz answers 200: connected, partitions assigned and their state restored, "
            "neither the loop nor a commit stalled.",
            registry=registry,
        )
        self.last_progress = Gauge(
            "streamdrift_last_progress_timestamp_seconds",
            "Unix time at which the consumer loop last completed a step (or a wait for the broker).",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "streamdrift_batch_processing_seconds",
            "Time to process one batch of input.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.checkpoint_seconds = Histogram(
            "streamdrift_checkpoint_seconds",
            "Time to flush outputs and commit offsets (and state) at a checkpoint.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.commits = Counter("streamdrift_commits", "Checkpoints committed.", registry=registry)
        self.last_commit = Gauge(
            "streamdrift_last_commit_timestamp_seconds",
            "Unix time of the last checkpoint committed (0: none yet).",
            registry=registry,
        )
        self.commit_pending = Gauge(
            "streamdrift_commit_pending_seconds",
            "Age of the oldest processed work not committed yet (0: none): at most about "
            "commit_interval_ms while checkpoints go through; /readyz is 503 while it is over the "
            "commit_overdue threshold.",
            registry=registry,
        )
        self.commit_failures = Counter(
            "streamdrift_commit_failures", "Checkpoints that failed.", registry=registry
        )
        self.kafka_outages = Counter(
            "streamdrift_kafka_outages",
            "Times a Kafka client reported a broker unreachable (down, hung, or a partition leader lost) or a topic "
            "gone, after which the detector was not ready until the cluster's metadata answered with every topic.",
            registry=registry,
        )
        self.kafka_brokers = Gauge(
            "streamdrift_kafka_brokers",
            "Cluster nodes known to a Kafka client (consumer or producer), by its connection to them: up, "
            "connecting, down (no connection, also an idle node's state); from librdkafka's statistics.",
            ["client", "state"],
            registry=registry,
        )
        self.kafka_requests_waiting = Gauge(
            "streamdrift_kafka_requests_waiting",
            "Requests of a Kafka client queued for or waiting on a broker (a consumer's fetches wait up to "
            "fetch.wait.max.ms by design); from librdkafka's statistics.",
            ["client"],
            registry=registry,
        )
        self.kafka_request_timeouts = Counter(
            "streamdrift_kafka_request_timeouts",
            "Requests of a Kafka client that a broker did not answer within the request timeout (librdkafka "
            "then drops the connection and retries): a hung or overloaded broker.",
            ["client"],
            registry=registry,
        )
        self.topic_missing = Gauge(
            "streamdrift_topic_missing",
            "1 while a topic the detector reads or writes is missing from the cluster, else 0 (checked after a connection problem).",
            ["topic"],
            registry=registry,
        )
        self.topic_losses = Counter(
            "streamdrift_topic_losses",
            "Times a topic the detector uses was found gone from the cluster (deleted, or lost by a broker that keeps no data).",
            ["topic"],
            registry=registry,
        )
        self.state_rejected = Counter(
            "streamdrift_state_records_rejected",
            "State records skipped on restore, by reason: format (not a state record), signature (does not match "
            "state.signing_key), malformed (does not decode), other_group (written by another consumer group).",
            ["reason"],
            registry=registry,
        )
        self.state_relearned = Counter(
            "streamdrift_state_models_relearned",
            "Models whose checkpointed state was not loaded on restore, so they re-learn, by reason: schema or library "
            "(written under another state schema or river version), settings (other detection settings), load_error.",
            ["reason"],
            registry=registry,
        )
        for reason in REJECT_REASONS:  # every reason exported from the start, at 0
            self.state_rejected.labels(reason)
        for reason in RELEARN_REASONS:
            self.state_relearned.labels(reason)

    def record_batch(self, result: BatchResult) -> None:
        for (topic, model), count in result.events.items():
            self._series(model, self.events, topic, model).inc(count)
        for (topic, reason), count in result.invalid.items():
            self.events_invalid.labels(topic, reason).inc(count)
        for model, newest_ms in result.last_event_ms.items():
            self._series(model, self.last_event, model).set(newest_ms / 1000)
        for failure in result.model_errors:
            self._series(failure.model, self.model_errors, failure.model, "process").inc()
        for eviction in result.evictions:
            self.models_evicted.labels(eviction.reason).inc()

    def record_alerts(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self._series(
                alert.model, self.alerts, alert.model, alert.monitor, alert.detector, alert.severity
            ).inc()
            self._series(alert.model, self.drift_active, alert.model, alert.monitor).set(
                1 if alert.kind == "detected" else 0
            )

    def record_model_events(self, events: Iterable[ModelEvent]) -> None:
        for event in events:
            model = event.model
            if event.type == DEPLOYED:
                self._series(model, self.deployments, model).inc()
            elif event.type == COMPARED:
                statistic = event.data["statistic"]
                self._series(model, self.version_comparisons, model, statistic).inc()
            elif event.type == RECOMMENDED:
                reason = event.data["reason"]
                self._series(model, self.retrain_recommendations, model, reason).inc()
                self._series(model, self.retrain_open, model).set(1)
            else:
                recovered = event.data["outcome"] == RECOVERED
                counter = self.retrain_recovered if recovered else self.retrain_not_recovered
                self._series(model, counter, model).inc()

    def record_models(self, monitors: Iterable[ModelMonitor], total: int) -> None:
        """Refresh per-model gauges (called at checkpoints, for models that saw events)."""
        self.models.set(total)
        for monitor in monitors:
            self._series(monitor.name, self.model_info, monitor.name).info(
                {
                    "owner": monitor.settings.owner,
                    "runbook_url": monitor.settings.runbook_url,
                    "version": monitor.version or "",
                }
            )
            for name, drifting in monitor.drifting_monitors().items():
                self._series(monitor.name, self.drift_active, monitor.name, name).set(
                    1 if drifting else 0
                )
            for name, signal in monitor.statistic_signals().items():
                for statistic, value in signal.window_statistics().items():
                    self._series(
                        monitor.name, self.monitor_statistic, monitor.name, name, statistic
                    ).set(value)
            self._series(monitor.name, self.features_unmonitored, monitor.name).set(
                monitor.feature_overflow
            )
            self._record_performance(monitor)
            self._record_versions(monitor)
            if monitor.retrain is not None:
                self._series(monitor.name, self.retrain_open, monitor.name).set(
                    0 if monitor.retrain.episode is None else 1
                )

    def _record_versions(self, monitor: ModelMonitor) -> None:
        """The live versions' series; those of versions retired since the last call go."""
        model, versions = monitor.name, monitor.versions
        fresh: set[tuple[Gauge, tuple[str, ...]]] = set()
        for version in versions.live.values():
            name = "" if version.name is None else version.name
            self._series(model, self.version_live, model, name).set(1)
            fresh.add((self.version_live, (model, name)))
            for statistic, value in version.reported().items():
                self._series(model, self.version_value, model, name, statistic).set(value)
                fresh.add((self.version_value, (model, name, statistic)))
        for metric, labels in self._version_series.get(model, set()) - fresh:
            metric.remove(*labels)
            self._model_series.get(model, set()).discard((metric, labels))
        self._version_series[model] = fresh
        if versions.overflow:
            self._series(model, self.versions_unmonitored, model).set(versions.overflow)

    def _record_performance(self, monitor: ModelMonitor) -> None:
        model, performance = monitor.name, monitor.performance
        values = performance.summary()
        for name, gauge in (
            ("accuracy", self.accuracy),
            ("estimated", self.estimated_accuracy),
            ("confidence", self.mean_confidence),
            ("coverage", self.label_coverage),
        ):
            if name in values:
                self._series(model, gauge, model).set(values[name])
        if "confidence" in values:
            self._series(model, self.calibration_labels, model).set(performance.calibrated_labels())
        for statistic in ("mae", "rmse"):
            if statistic in values:
                self._series(model, self.error, model, statistic).set(values[statistic])
        if "accuracy" in values and "estimated_labelled" in values:
            self._series(model, self.estimation_error, model).set(
                values["estimated_labelled"] - values["accuracy"]
            )
        if performance.pending or performance.labelled or model in self._with_labels:
            self._with_labels.add(model)
            self._series(model, self.label_pending, model).set(performance.pending)
            self._series(model, self.label_awaiting_first, model).set(
                0 if performance.labelled else 1
            )
        counts, delays = performance.take_counts()
        for reason, key in (("ttl", "expired"), ("cap", "evicted")):
            if counts[key]:
                self._series(model, self.label_expired, model, reason).inc(counts[key])
        for reason, key in (("unknown", "unmatched"), ("late", "late")):
            if counts[key]:
                self._series(model, self.label_unmatched, model, reason).inc(counts[key])
        if delays:
            histogram = self._series(model, self.label_delay, model)
            for delay in delays:
                histogram.observe(delay)

    def _series(self, model: str, metric: Metric, *labels: str) -> Metric:
        """`metric.labels(*labels)`, a series of `model`, recorded for forget_models."""
        self._model_series.setdefault(model, set()).add((metric, labels))
        return metric.labels(*labels)

    def forget_models(self, models: Iterable[str]) -> None:
        """Remove the series of models whose partitions moved to another process (or that were
        evicted): those recorded by `_series`, by their full label values (`remove` is public)."""
        for model in models:
            self._with_labels.discard(model)
            self._version_series.pop(model, None)
            for metric, labels in self._model_series.pop(model, ()):
                metric.remove(*labels)

    def record_client(
        self, client: str, brokers: dict[str, int], waiting: int, new_timeouts: int
    ) -> None:
        """A Kafka client's statistics: nodes by connection state, requests waiting, and requests
        timed out since its previous statistics."""
        for state, count in brokers.items():
            self.kafka_brokers.labels(client, state).set(count)
        self.kafka_requests_waiting.labels(client).set(waiting)
        self.kafka_request_timeouts.labels(client).inc(new_timeouts)

    def set_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Replace the lag series with `lags` (owned partitions only)."""
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
