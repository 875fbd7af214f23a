"""deploy/k8s, checked as YAML (no cluster here): the expected objects, the sidecar's probes,
port and scrape annotations, and that the ConfigMap's TOML and the Secret's JSON load into
the detector's settings the way the container would get them."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from tests.deploy.support import DEPLOY, load_yaml_documents, settings_from_environment

K8S = DEPLOY / "k8s"
OBJECTS = {path.name: load_yaml_documents(path) for path in sorted(K8S.glob("*.yaml"))}
BY_KIND = {doc["kind"]: doc for docs in OBJECTS.values() for doc in docs}
DEPLOYMENT = BY_KIND["Deployment"]
POD = DEPLOYMENT["spec"]["template"]
CONTAINERS = {c["name"]: c for c in POD["spec"]["containers"]}
SIDECAR = CONTAINERS["streamdrift"]


def named_port(container: dict[str, Any], name: str) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def config_file(tmp_path: Path) -> Path:
    """The sidecar's --config file, written out from the ConfigMap volume that holds it."""
    args = SIDECAR["args"]
    path = PurePosixPath(args[args.index("--config") + 1])
    mount = next(m for m in SIDECAR["volumeMounts"] if PurePosixPath(m["mountPath"]) == path.parent)
    volume = next(v for v in POD["spec"]["volumes"] if v["name"] == mount["name"])
    config_map = BY_KIND["ConfigMap"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    local = tmp_path / path.name
    local.write_text(config_map["data"][path.name])
    return local


def sidecar_environment() -> dict[str, str]:
    """The sidecar's environment, Secret references resolved from the Secret manifest."""
    secret = BY_KIND["Secret"]
    env = {}
    for variable in SIDECAR["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"], (
                f"{variable['name']} refers to an unknown Secret"
            )
            env[variable["name"]] = secret["stringData"][ref["key"]]
    return env


def test_the_example_has_the_expected_objects_and_a_kustomization_listing_them() -> None:
    assert sorted(doc["kind"] for docs in OBJECTS.values() for doc in docs) == [
        "ConfigMap",
        "Deployment",
        "Kustomization",
        "Secret",
    ]
    kustomization = BY_KIND["Kustomization"]
    assert sorted(kustomization["resources"]) == sorted(
        name for name in OBJECTS if name != "kustomization.yaml"
    )


def test_the_detector_runs_as_a_sidecar_of_the_inference_container() -> None:
    assert len(CONTAINERS) == 2 and "model" in CONTAINERS
    assert SIDECAR["args"][:1] == ["run"]
    assert (
        DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()
    )


def test_the_sidecar_config_and_secrets_load_into_the_settings(tmp_path: Path) -> None:
    settings = settings_from_environment(sidecar_environment(), config_file=config_file(tmp_path))
    password = settings.kafka.secrets["sasl.password"].get_secret_value()
    client = settings.kafka.client_config()
    assert (
        client["security.protocol"] == "SASL_SSL"
        and client["sasl.username"]
        and client["sasl.password"] == password
    )
    assert password not in json.dumps(settings.redacted()), "the password would be logged"
    assert named_port(SIDECAR, "metrics") == settings.metrics.port


def test_probes_ask_healthz_and_readyz_on_the_metrics_port() -> None:
    assert SIDECAR["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert SIDECAR["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_prometheus_scrape_annotations_point_at_the_metrics_port() -> None:
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == named_port(SIDECAR, "metrics")


def test_the_sidecar_runs_unprivileged() -> None:
    assert POD["spec"]["securityContext"]["runAsNonRoot"] is True
    context = SIDECAR["securityContext"]
    assert context["runAsUser"] != 0 and context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == [
        "ALL"
    ]
