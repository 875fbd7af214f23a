"""A real Prometheus (Debian's) scraping a running detector, with the project's scrape config
and alerting rules: the detector's series arrive, the drift alert fires after an injected
drift, and the Grafana dashboard's queries find what they draw.

The module starts one stack: the detector (ServiceThread on the session broker) sees a
warm-up of clean events plus a few invalid messages, Prometheus starts scraping it every
second and evaluating deploy/prometheus/rules.yml every second, and only then the drift
arrives, so that the alert goes from inactive to firing under Prometheus' eyes.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from producers.simulate import Injection, Simulator
from tests.deploy.support import (
    PENDING_METRICS,
    PROMETHEUS_DIR,
    PrometheusServer,
    PrometheusTools,
    dashboard,
    dashboard_metrics,
    dashboard_queries,
    dashboard_variable_queries,
    load_yaml,
    metric_names,
)
from tests.kafka_helpers import KafkaNames, ServiceThread, produce, wait_until

pytestmark = pytest.mark.broker

MODEL = "fraud"
OWNER = "team-risk"  # routed to its own receiver by deploy/prometheus/alertmanager.yml
WARMUP_EVENTS = 2000  # the reference takes the first 1,000
DRIFT_EVENTS = 2000  # mean shift of `amount` from event WARMUP_EVENTS on
INVALID = [b"{broken", b'{"model": "fraud", "score": 2}', b"[]"] * 5
GRAFANA_SUBSTITUTIONS = {"$__rate_interval": "1m", "$job": ".*", "$model": ".*", "$monitor": ".*"}


@dataclass
class Stack:
    detector: ServiceThread
    prometheus: PrometheusServer
    metrics_url: str
    firing_before_drift: set[str]

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return response.read().decode()


def scrape_config(metrics_target: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with 1 s intervals, the detector's loopback target, the
    rules by absolute path, and neither Alertmanager nor other jobs."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    del config["alerting"]
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "streamdrift")
    job["static_configs"][0]["targets"] = [metrics_target]
    config["scrape_configs"] = [job]
    return config


def rules_evaluated_since(prometheus: PrometheusServer, moment: float) -> bool:
    """Whether every rule group was evaluated after `moment` (Unix seconds)."""
    groups = prometheus.api("rules")["groups"]
    evaluated = [
        datetime.fromisoformat(g["lastEvaluation"][:19]).replace(tzinfo=UTC).timestamp()
        for g in groups
    ]
    return bool(evaluated) and min(evaluated) > moment + 1


def firing_alerts(prometheus: PrometheusServer) -> list[dict[str, Any]]:
    return [alert for alert in prometheus.api("alerts")["alerts"] if alert["state"] == "firing"]


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, prometheus_tools: PrometheusTools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    names = KafkaNames(bootstrap=bootstrap, suffix=uuid.uuid4().hex[:10])
    # Labels for 80% of the predictions, 5 s of event time later; the rest expire after 20 s, so
    # that every label-join series exists too.
    simulator = Simulator(
        model=MODEL,
        seed=5,
        label_delay_ms=5000,
        label_coverage=0.8,
        injections=(Injection("mean_shift", "amount", start=WARMUP_EVENTS),),
    )
    warmup = simulator.batch(WARMUP_EVENTS)
    produce(bootstrap, names.predictions, [*warmup.predictions, *INVALID], key=MODEL)
    produce(bootstrap, names.labels, warmup.labels, key=MODEL)
    settings = names.settings(
        metrics={"host": "127.0.0.1"},
        models={MODEL: {"label_ttl_seconds": 20, "owner": OWNER, "runbook_url": "https://rb/f"}},
    )
    detector = ServiceThread(settings).start()
    prometheus = None
    try:
        detector.wait_processed(WARMUP_EVENTS + len(warmup.labels))
        target = f"127.0.0.1:{detector.service.metrics_port}"
        prometheus = PrometheusServer(
            prometheus_tools.prometheus,
            scrape_config(target),
            tmp_path_factory.mktemp("prometheus"),
        )
        prometheus.start()
        wait_until(
            lambda: bool(prometheus.query(f'streamdrift_events_total{{model="{MODEL}"}}')),
            30,
            "the first scrape",
        )
        wait_until(
            lambda: bool(prometheus.query("streamdrift_drift_active")),
            30,
            "the drift gauges in Prometheus",
        )
        seen = time.time()
        wait_until(
            lambda: rules_evaluated_since(prometheus, seen), 30, "a rule evaluation over the gauges"
        )
        firing_before = {alert["labels"]["alertname"] for alert in firing_alerts(prometheus)}
        drift = simulator.batch(DRIFT_EVENTS)
        produce(bootstrap, names.predictions, drift.predictions, key=MODEL)
        produce(bootstrap, names.labels, drift.labels, key=MODEL)
        detector.wait_processed(
            WARMUP_EVENTS + DRIFT_EVENTS + len(warmup.labels) + len(drift.labels)
        )
        wait_until(
            lambda: bool(prometheus.query("streamdrift_drift_active == 1")),
            30,
            "the drift in Prometheus",
        )
        yield Stack(detector, prometheus, f"http://{target}/metrics", firing_before)
    finally:
        if prometheus is not None:
            prometheus.stop()
        detector.stop()


def test_prometheus_scrapes_the_detector_with_the_projects_scrape_config(stack: Stack) -> None:
    up = stack.prometheus.query('up{job="streamdrift"}')
    assert [series["value"][1] for series in up] == ["1"]
    assert up[0]["metric"]["environment"] == "compose", (
        "the static labels of deploy/prometheus/prometheus.yml"
    )
    events = stack.prometheus.query(
        f'sum(streamdrift_events_total{{model="{MODEL}",topic=~"predictions-.*"}})'
    )
    assert float(events[0]["value"][1]) == WARMUP_EVENTS + DRIFT_EVENTS
    invalid = stack.prometheus.query("sum(streamdrift_events_invalid_total)")
    assert float(invalid[0]["value"][1]) == len(INVALID)


def test_the_drift_alert_fires_after_the_injected_drift(stack: Stack) -> None:
    assert "StreamdriftDriftActive" not in stack.firing_before_drift

    def drift_alerts() -> dict[str, dict[str, str]]:
        """monitor -> labels of the firing StreamdriftDriftActive alerts."""
        firing = [alert["labels"] for alert in firing_alerts(stack.prometheus)]
        return {
            labels["monitor"]: labels
            for labels in firing
            if labels["alertname"] == "StreamdriftDriftActive"
        }

    # The shift of `amount` moves the score too (a side effect): look for the feature's alert.
    wait_until(
        lambda: "feature.amount" in drift_alerts(),
        30,
        "StreamdriftDriftActive to fire for feature.amount",
    )
    labels = drift_alerts()["feature.amount"]
    assert (labels["model"], labels["severity"]) == (MODEL, "warning")
    assert (labels["owner"], labels["runbook_url"]) == (OWNER, "https://rb/f"), (
        "the owner joined from streamdrift_model_info, for Alertmanager's route"
    )
    assert "instance" not in labels, "the alert must survive a partition moving to another replica"


def test_prometheus_loaded_every_rule_of_the_rules_file_and_evaluates_them_without_error(
    stack: Stack,
) -> None:
    groups = stack.prometheus.api("rules")["groups"]
    assert {g["file"] for g in groups} == {str(PROMETHEUS_DIR / "rules.yml")}
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    expected = {
        rule["alert"]
        for group in load_yaml(PROMETHEUS_DIR / "rules.yml")["groups"]
        for rule in group["rules"]
    }
    assert set(loaded) == expected
    errors = {
        name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"
    }
    assert not errors, f"rules failing to evaluate: {errors}"


def test_every_metric_the_dashboard_queries_is_in_the_live_metrics(stack: Stack) -> None:
    live = {
        sample.name
        for family in text_string_to_metric_families(stack.scrape())
        for sample in family.samples
    }
    queried = dashboard_metrics(dashboard())
    missing = queried - live - PENDING_METRICS
    assert not missing, (
        f"the dashboard queries series the running detector does not export: {sorted(missing)}"
    )
    arrived = PENDING_METRICS & live
    assert not arrived, (
        f"{sorted(arrived)} are exported now: remove them from PENDING_METRICS in tests/deploy/support.py"
    )


def as_promql(grafana_expression: str) -> str:
    """A dashboard expression with Grafana's variables set as "All" would set them."""
    for variable, value in GRAFANA_SUBSTITUTIONS.items():
        grafana_expression = grafana_expression.replace(variable, value)
    return grafana_expression


def test_every_dashboard_query_evaluates_and_finds_data_in_prometheus(stack: Stack) -> None:
    board = dashboard()
    for expression in dashboard_queries(board):
        promql = as_promql(expression)
        if metric_names(expression) & PENDING_METRICS:
            stack.prometheus.query(promql)  # no data yet, but Prometheus must accept the query
        else:  # a rate needs two scrapes in its window: allow a few seconds
            wait_until(
                lambda promql=promql: bool(stack.prometheus.query(promql)),
                10,
                f"data for the dashboard query {expression}",
            )
    for name, definition in dashboard_variable_queries(board).items():
        selector, label = definition.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        series = stack.prometheus.api("series", **{"match[]": as_promql(selector)})
        assert any(label in s for s in series), f"variable {name}: no {label} values for {selector}"
