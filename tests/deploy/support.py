"""Helpers of the deployment tests: the deploy files, settings checks, the dashboard's
metric names and a real Prometheus server on loopback."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from detector.http.metrics import Metrics
from detector.settings import CONFIG_ENV_VAR, ENV_PREFIX, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamdrift.json"

# Metrics that the dashboard (and the accuracy rule) query before the detector exports them:
# the performance and label-join metrics of the label-join work. Each entry makes the
# metric-name checks fail as soon as detector.http.metrics declares it, so that it is moved from
# here to the live checks (and the end-to-end test then produces labels so its series exist).
PENDING_METRICS: frozenset[str] = frozenset()

_METRIC_NAME = re.compile(r"\bstreamdrift_[a-z0-9_]+")
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
    "summary": ("", "_count", "_sum"),
}


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


# -- settings ---------------------------------------------------------------------------


def setting_path(env_name: str) -> str:
    """The dotted setting an environment variable sets; AssertionError if it sets none."""
    assert env_name.startswith(ENV_PREFIX), f"{env_name} does not start with {ENV_PREFIX}"
    parts = env_name.removeprefix(ENV_PREFIX).lower().split("__")
    model: type[BaseModel] | None = Settings
    for depth, part in enumerate(parts):
        assert model is not None and part in model.model_fields, (
            f"{env_name} sets no setting: {'.'.join(parts[: depth + 1])} is not in detector/settings.py"
        )
        annotation = model.model_fields[part].annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return ".".join(parts)


def settings_from_environment(env: Mapping[str, str], config_file: Path | None = None) -> Settings:
    """Resolve the settings a container with this environment gets (none of the test
    process' own STREAMDRIFT_ variables); every STREAMDRIFT_ variable must name a setting
    (or the config file)."""
    for name in env:
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV_VAR:
            setting_path(name)
    outside = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    with mock.patch.dict(os.environ, {**outside, **env}, clear=True):
        return load_settings(config_file)


# -- metric names -----------------------------------------------------------------------


def metric_names(expression: str) -> set[str]:
    """streamdrift metric (sample) names used in a PromQL expression."""
    return set(_METRIC_NAME.findall(expression))


def declared_sample_names() -> set[str]:
    """Every sample name detector.http.metrics.Metrics can export, series or not."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in _SAMPLE_SUFFIXES[family.type]
    }


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, those nested in collapsed rows included."""
    panels = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    """The PromQL expressions of every panel target."""
    return [
        target["expr"] for panel in dashboard_panels(board) for target in panel.get("targets", [])
    ]


def dashboard_variable_queries(board: dict[str, Any]) -> dict[str, str]:
    """Query variables: name -> Grafana `label_values(selector, label)` definition."""
    return {v["name"]: v["definition"] for v in board["templating"]["list"] if v["type"] == "query"}


def dashboard_metrics(board: dict[str, Any]) -> set[str]:
    expressions = dashboard_queries(board) + list(dashboard_variable_queries(board).values())
    return set().union(*(metric_names(e) for e in expressions))


# -- a Prometheus server ----------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusTools:
    """Paths of Debian's Prometheus binaries (the `prometheus_tools` fixture)."""

    prometheus: str
    promtool: str
    amtool: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """Debian's Prometheus on a free loopback port, with a temporary config and data dir."""

    def __init__(self, binary: str, config: dict[str, Any], workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log_path = workdir / "prometheus.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> PrometheusServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(
                f"{self.url}/api/v1/{path}?{query}", timeout=10
            ) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        assert body["status"] == "success", (
            f"prometheus /api/v1/{path} {params}: {body.get('errorType')}: {body.get('error')}"
        )
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        return self.api("query", query=expression)["result"]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
