"""docker-compose.yml, checked without a Docker engine (none runs on the development
machines): services, pinned images, mounted files, ports, and that the detector's
environment names real settings and points at the right Kafka listener."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from tests.deploy.support import (
    PROMETHEUS_DIR,
    REPO,
    load_yaml,
    settings_from_environment,
)

COMPOSE = load_yaml(REPO / "docker-compose.yml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PINNED_IMAGE = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+$")


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    result = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        result[target] = (REPO / source).resolve()
    return result


def host_path(service: str, container_path: str) -> Path:
    """The host file a container path comes from, through the service's bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {service}")


def published(service: str) -> dict[int, int]:
    """Container port -> host port."""
    pairs = (port.split(":") for port in SERVICES[service].get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def command_options(args: list[str]) -> dict[str, str | bool]:
    """`--name value` and `--flag` arguments as a dict (flags map to True)."""
    options: dict[str, str | bool] = {}
    for arg, following in zip(args, [*args[1:], None], strict=True):
        if arg.startswith("--"):
            options[arg] = (
                following if following is not None and not following.startswith("--") else True
            )
    return options


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {
        "kafka",
        "kafka-init",
        "detector",
        "producer",
        "prometheus",
        "alertmanager",
        "grafana",
    }


def test_images_are_pinned_and_the_detector_is_built_from_deploy_dockerfile() -> None:
    for name, service in SERVICES.items():
        assert PINNED_IMAGE.match(service["image"]) or "build" in service, (
            f"{name}: image {service['image']} is not pinned to a version"
        )
    for name in ("detector", "producer"):
        build = SERVICES[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert build["dockerfile"] == "deploy/Dockerfile"
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")


def test_every_mounted_file_exists_and_is_read_only() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, _, mode = volume.split(":")
            assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            assert mode == "ro", f"{name} mounts {source} writable"


def test_environment_values_are_strings() -> None:
    # Compose rejects booleans in an environment map; numbers are quoted for clarity.
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            assert isinstance(value, str), f"{name}: {key} is {value!r}, quote it"


def test_kafka_runs_in_kraft_mode_with_a_listener_for_containers_and_one_for_the_host() -> None:
    env = SERVICES["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["HOST"] == f"localhost:{published('kafka')[9092]}"
    assert "healthcheck" in SERVICES["kafka"]


def test_the_detector_environment_names_real_settings_and_the_internal_listener() -> None:
    service = SERVICES["detector"]
    env = service["environment"]
    config = host_path("detector", env["STREAMDRIFT_CONFIG"])
    settings = settings_from_environment(env, config_file=config)
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://{settings.kafka.bootstrap_servers}" in advertised.split(",")
    assert published("detector") == {settings.metrics.port: settings.metrics.port}
    assert settings.topics.create_missing is False, "topics come from kafka-init"
    assert service["depends_on"] == {"kafka-init": {"condition": "service_completed_successfully"}}
    assert settings.models["fraud"].owner


def test_kafka_init_creates_the_topics_of_the_detector_defaults(tmp_path: Path) -> None:
    """Runs the service's script with a stand-in kafka-topics.sh that records its arguments."""
    service = SERVICES["kafka-init"]
    assert service["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    record = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    stub.chmod(0o755)
    script = (
        service["command"][0]
        .replace("$$", "$")
        .replace("/opt/kafka/bin/kafka-topics.sh", str(stub))
    )
    subprocess.run(
        [*service["entrypoint"], script], env=service["environment"], check=True, timeout=30
    )
    calls = {}
    for line in record.read_text().splitlines():
        options = command_options(shlex.split(line))
        assert options.get("--create") is True and options.get("--if-not-exists") is True, line
        calls[options["--topic"]] = options
    detector = SERVICES["detector"]["environment"]
    settings = settings_from_environment(
        detector, config_file=host_path("detector", detector["STREAMDRIFT_CONFIG"])
    )
    topics, state = settings.topics, settings.state_topic()
    assert set(calls) == {
        topics.predictions,
        topics.features,
        topics.labels,
        topics.alerts,
        topics.dlq,
        state,
    }
    assert {options["--partitions"] for options in calls.values()} == {
        service["environment"]["PARTITIONS"]
    }
    assert calls[state].get("--config") == "cleanup.policy=compact"
    assert all(options["--bootstrap-server"] == "kafka:19092" for options in calls.values())


def test_prometheus_loads_the_project_config_and_rules_and_scrapes_the_detector() -> None:
    command = SERVICES["prometheus"]["command"]
    config_path = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--config.file="))
    assert host_path("prometheus", config_path) == PROMETHEUS_DIR / "prometheus.yml"
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config_dir = PurePosixPath(config_path).parent
    for rule_file in config["rule_files"]:
        assert host_path("prometheus", str(config_dir / rule_file)) == PROMETHEUS_DIR / rule_file
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "streamdrift")
    metrics_port = SERVICES["detector"]["environment"]["STREAMDRIFT_METRICS__PORT"]
    assert job["static_configs"][0]["targets"] == [f"detector:{metrics_port}"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == [f"alertmanager:{next(iter(published('alertmanager')))}"]


def test_alertmanager_loads_the_project_config() -> None:
    command = SERVICES["alertmanager"]["command"]
    config_path = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--config.file="))
    assert host_path("alertmanager", config_path) == PROMETHEUS_DIR / "alertmanager.yml"


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    provisioning = host_path("grafana", "/etc/grafana/provisioning")
    datasource = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == f"http://prometheus:{next(iter(published('prometheus')))}"
    provider = load_yaml(provisioning / "dashboards" / "streamdrift.yml")["providers"][0]
    dashboards = host_path("grafana", provider["options"]["path"])
    assert (dashboards / "streamdrift.json").is_file()
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path("grafana", home).is_file()


def test_the_demo_producer_command_runs(tmp_path: Path) -> None:
    """The producer service's command, played to a file instead of Kafka for 3,000 events."""
    producer = SERVICES["producer"]
    assert producer["image"] == SERVICES["detector"]["image"]
    assert producer["entrypoint"] == ["python", "-m", "producers"]
    assert "--bootstrap-servers=kafka:19092" in producer["command"]
    to_file = [
        "--events=3000",
        "--rate=0",
        f"--out={tmp_path / 'predictions'}",
        f"--truth={tmp_path / 'truth'}",
    ]
    result = subprocess.run(
        [sys.executable, *producer["entrypoint"][1:], *producer["command"], *to_file],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "predictions").read_text().splitlines()) == 3000
    truth = json.loads((tmp_path / "truth").read_text())
    injected = {injection["monitor"] for injection in truth["injections"]}
    assert injected == {"feature.amount", "feature.country", "performance.error"}
