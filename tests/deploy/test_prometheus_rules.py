"""deploy/prometheus: the alerting rules pass promtool's checks and unit tests, the configs
are valid, and every metric the rules use is one the detector exports (or a pending one)."""

from __future__ import annotations

import subprocess
import tomllib

from tests.deploy.support import (
    DEPLOY,
    PENDING_METRICS,
    PROMETHEUS_DIR,
    PrometheusTools,
    declared_sample_names,
    load_yaml,
    load_yaml_documents,
    metric_names,
)

RULES = PROMETHEUS_DIR / "rules.yml"
REQUIRED_ALERTS = {
    "StreamdriftDriftActive",  # drift active per model and monitor
    "StreamdriftModelSilent",
    "StreamdriftPerformanceDrift",
    "StreamdriftAccuracyDrop",
    "StreamdriftRetrainRecommended",  # the retraining policy's recommendation stands
    "StreamdriftConsumerLag",
    "StreamdriftDeadLetters",
    "StreamdriftDown",
    "StreamdriftNotReady",
    "StreamdriftStalled",  # scraped fine, but the consumer loop has stopped
}


def run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(command)}` failed:\n{output}"
    return output


def rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules(prometheus_tools: PrometheusTools) -> None:
    output = run([prometheus_tools.promtool, "check", "rules", str(RULES)])
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_unit_tests_of_the_rules_pass(prometheus_tools: PrometheusTools) -> None:
    output = run([prometheus_tools.promtool, "test", "rules", "rules_test.yml"])
    assert "SUCCESS" in output


def test_every_alert_has_a_unit_test_case_that_fires() -> None:
    tested = load_yaml(PROMETHEUS_DIR / "rules_test.yml")
    firing = {
        case["alertname"]
        for test in tested["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in rules()}
    assert alerts >= REQUIRED_ALERTS
    assert alerts - firing == set(), "alerts without a unit test case in which they fire"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_rules_use_only_metrics_the_detector_declares() -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert used, "no streamdrift metric found in the rules"
    unknown = used - declared_sample_names() - PENDING_METRICS
    assert not unknown, (
        f"rules use metrics that detector/http/metrics.py does not declare: {sorted(unknown)}"
    )


def test_promtool_checks_the_compose_prometheus_config(prometheus_tools: PrometheusTools) -> None:
    output = run([prometheus_tools.promtool, "check", "config", "prometheus.yml"])
    assert "SUCCESS: 1 rule files found" in output


def test_amtool_checks_the_alertmanager_config(prometheus_tools: PrometheusTools) -> None:
    output = run([prometheus_tools.amtool, "check-config", "alertmanager.yml"])
    assert "SUCCESS" in output
    route = load_yaml(PROMETHEUS_DIR / "alertmanager.yml")["route"]
    assert "model" in route["group_by"], "alerts should be grouped per model"


def receiver_of(prometheus_tools: PrometheusTools, *labels: str) -> str:
    """The receiver the shipped Alertmanager config routes an alert with these labels to."""
    command = [
        prometheus_tools.amtool,
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
    ]
    result = subprocess.run(
        [*command, *labels], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"`{' '.join(command)}` failed:\n{result.stderr}"
    return result.stdout.strip()


def shipped_owners() -> set[str]:
    """Owners of the models in the shipped configurations (compose and the k8s ConfigMap)."""
    configs = [(DEPLOY / "compose" / "streamdrift.toml").read_text()]
    for document in load_yaml_documents(DEPLOY / "k8s" / "configmap.yaml"):
        configs += [text for name, text in document["data"].items() if name.endswith(".toml")]
    return {
        model["owner"]
        for config in configs
        for model in tomllib.loads(config).get("models", {}).values()
        if model.get("owner")
    }


def test_alertmanager_routes_each_configured_owner_to_its_own_receiver(
    prometheus_tools: PrometheusTools,
) -> None:
    owners = shipped_owners()
    assert owners, "the shipped configurations name no owner"
    for owner in owners:
        labels = ("alertname=StreamdriftDriftActive", f"owner={owner}", "model=m")
        assert receiver_of(prometheus_tools, *labels) == owner
    default = load_yaml(PROMETHEUS_DIR / "alertmanager.yml")["route"]["receiver"]
    assert default not in owners
    assert receiver_of(prometheus_tools, "alertname=StreamdriftDriftActive", "model=m") == default
    assert receiver_of(prometheus_tools, "alertname=StreamdriftDown") == default
