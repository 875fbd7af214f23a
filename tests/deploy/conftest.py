"""Fixtures of the deployment tests: Debian's Prometheus tools, installed when missing.

`promtool` and `prometheus` come with Debian's `prometheus` package, `amtool` with
`prometheus-alertmanager`. When one is missing the session installs both with apt-get
(root only; no recommended packages) and fails with a clear message if it cannot: these
tests never skip. The Debian packages may start their daemons (on ports 9090 and 9093)
where the init system allows it; daemons that appeared during the install are stopped
again, and the tests use their own free loopback ports and temporary data either way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.support import PrometheusTools

# tool -> Debian package that ships it
DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
}
DAEMONS = ("/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager")


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    missing = sorted(
        {package for tool, package in DEBIAN_PACKAGES.items() if shutil.which(tool) is None}
    )
    if missing:
        _apt_install(missing)
    paths = {tool: shutil.which(tool) for tool in DEBIAN_PACKAGES}
    absent = [tool for tool, path in paths.items() if path is None]
    if absent:
        pytest.fail(
            f"{', '.join(absent)} still not on PATH after installing {', '.join(missing)}",
            pytrace=False,
        )
    return PrometheusTools(**paths)  # type: ignore[arg-type]


def _apt_install(packages: list[str]) -> None:
    hint = (
        f"install them with `apt-get install --no-install-recommends {' '.join(packages)}` as root"
    )
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(
            f"Debian packages {', '.join(packages)} are missing and this session cannot install them: {hint}",
            pytrace=False,
        )
    daemons_before = _daemon_pids()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` took longer than 10 minutes; {hint}", pytrace=False)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[-2000:]
            pytest.fail(
                f"`{' '.join(command)}` failed (exit {result.returncode}): {output}\n{hint}",
                pytrace=False,
            )
    _stop(_daemon_pids() - daemons_before)


def _daemon_pids() -> set[int]:
    """Processes running the Debian Prometheus or Alertmanager daemon binaries."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe") in DAEMONS:
                    pids.add(int(entry.name))
            except OSError:
                continue  # gone, or not ours to inspect
    return pids


def _stop(pids: set[int]) -> None:
    """Stop the daemons the package install started, so that nothing holds ports 9090/9093."""
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pids & _daemon_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
