"""Prometheus metrics of the detector, on a registry the caller provides.

Label values are bounded by the caps: models by limits.max_models, monitors by
limits.max_features_per_model, reasons by events.REASONS, partitions by the topic.
Series of models and partitions this process no longer owns are removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from detector import __version__
from detector.alerts import Alert
from detector.monitors.model import ModelMonitor
from detector.pipeline import BatchResult

_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the detector exports (prefix `streamdrift_`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._with_labels: set[str] = set()  # models that have had a label join
        self.build = Info("streamdrift_build", "Version of the running detector.", registry=registry)
        self.build.info({"version": __version__})
        self.events = Counter(
            "streamdrift_events", "Valid input events, by topic and model.", ["topic", "model"], registry=registry
        )
        self.events_invalid = Counter(
            "streamdrift_events_invalid",
            "Input messages rejected and dead-lettered, by topic and reason.",
            ["topic", "reason"],
            registry=registry,
        )
        self.alerts = Counter(
            "streamdrift_alerts",
            "Alerts published (detected and resolved), by model, monitor, detector and severity.",
            ["model", "monitor", "detector", "severity"],
            registry=registry,
        )
        self.drift_active = Gauge(
            "streamdrift_drift_active", "1 while a monitor's drift is open, else 0.", ["model", "monitor"], registry=registry
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
            "streamdrift_model_accuracy", "Share of recent labelled predictions that were right (classifiers).", ["model"], registry=registry
        )
        self.error = Gauge(
            "streamdrift_model_error", "Recent error of labelled predictions (regressions): mae or rmse.", ["model", "statistic"], registry=registry
        )
        self.estimated_accuracy = Gauge(
            "streamdrift_estimated_accuracy",
            "Accuracy implied by the recent predictions' confidence (probability of the predicted class), before labels.",
            ["model"],
            registry=registry,
        )
        self.estimation_error = Gauge(
            "streamdrift_estimation_error",
            "Estimated minus realised accuracy over the same recent labelled predictions (0: the estimate holds).",
            ["model"],
            registry=registry,
        )
        self.label_pending = Gauge(
            "streamdrift_label_join_pending", "Predictions waiting for their label.", ["model"], registry=registry
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
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86_400, 3 * 86_400, 7 * 86_400),
            registry=registry,
        )
        self.models = Gauge("streamdrift_models", "Models monitored by this process.", registry=registry)
        self.consumer_lag = Gauge(
            "streamdrift_consumer_lag", "Messages behind the end of each owned input partition.", ["topic", "partition"], registry=registry
        )
        self.ready = Gauge("streamdrift_ready", "1 when partitions are assigned and their state restored.", registry=registry)
        self.last_progress = Gauge(
            "streamdrift_last_progress_timestamp_seconds",
            "Unix time at which the consumer loop last completed a step (or a wait for the broker).",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "streamdrift_batch_processing_seconds", "Time to process one batch of input.", buckets=_SECONDS_BUCKETS, registry=registry
        )
        self.checkpoint_seconds = Histogram(
            "streamdrift_checkpoint_seconds",
            "Time to flush outputs and commit offsets (and state) at a checkpoint.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.commits = Counter("streamdrift_commits", "Checkpoints committed.", registry=registry)
        self.commit_failures = Counter("streamdrift_commit_failures", "Checkpoints that failed.", registry=registry)
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

    def record_batch(self, result: BatchResult) -> None:
        for (topic, model), count in result.events.items():
            self.events.labels(topic, model).inc(count)
        for (topic, reason), count in result.invalid.items():
            self.events_invalid.labels(topic, reason).inc(count)
        for model, newest_ms in result.last_event_ms.items():
            self.last_event.labels(model).set(newest_ms / 1000)

    def record_alerts(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.alerts.labels(alert.model, alert.monitor, alert.detector, alert.severity).inc()
            self.drift_active.labels(alert.model, alert.monitor).set(1 if alert.kind == "detected" else 0)

    def record_models(self, monitors: Iterable[ModelMonitor], total: int) -> None:
        """Refresh per-model gauges (called at checkpoints, for models that saw events)."""
        self.models.set(total)
        for monitor in monitors:
            for name, drifting in monitor.drifting_monitors().items():
                self.drift_active.labels(monitor.name, name).set(1 if drifting else 0)
            for name, signal in monitor.signals.items():
                for statistic, value in signal.window_statistics().items():
                    self.monitor_statistic.labels(monitor.name, name, statistic).set(value)
            self.features_unmonitored.labels(monitor.name).set(monitor.feature_overflow)
            self._record_performance(monitor)

    def _record_performance(self, monitor: ModelMonitor) -> None:
        model, performance = monitor.name, monitor.performance
        values = performance.summary()
        for name, gauge in (("accuracy", self.accuracy), ("estimated", self.estimated_accuracy), ("coverage", self.label_coverage)):
            if name in values:
                gauge.labels(model).set(values[name])
        for statistic in ("mae", "rmse"):
            if statistic in values:
                self.error.labels(model, statistic).set(values[statistic])
        if "accuracy" in values and "estimated_labelled" in values:
            self.estimation_error.labels(model).set(values["estimated_labelled"] - values["accuracy"])
        counts, delays = performance.take_counts()
        # A batch can bring predictions and all their labels at once (pending 0): joined labels count too.
        if performance.pending or delays or model in self._with_labels:
            self._with_labels.add(model)
            self.label_pending.labels(model).set(performance.pending)
        for reason, key in (("ttl", "expired"), ("cap", "evicted")):
            if counts[key]:
                self.label_expired.labels(model, reason).inc(counts[key])
        for reason, key in (("unknown", "unmatched"), ("late", "late")):
            if counts[key]:
                self.label_unmatched.labels(model, reason).inc(counts[key])
        if delays:
            histogram = self.label_delay.labels(model)
            for delay in delays:
                histogram.observe(delay)

    def forget_models(self, models: Iterable[str]) -> None:
        """Remove the series of models whose partitions moved to another process."""
        gone = set(models)
        if not gone:
            return
        per_model = (
            self.events, self.alerts, self.drift_active, self.monitor_statistic, self.last_event, self.features_unmonitored,
            self.accuracy, self.error, self.estimated_accuracy, self.estimation_error, self.label_pending, self.label_expired,
            self.label_unmatched, self.label_coverage, self.label_delay,
        )
        self._with_labels -= gone
        for metric in per_model:
            names = metric._labelnames  # the public API removes by full label set only
            position = names.index("model")
            for labels in list(metric._metrics):
                if labels[position] in gone:
                    metric.remove(*labels)

    def set_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Replace the lag series with `lags` (owned partitions only)."""
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
