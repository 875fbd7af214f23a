"""Fixtures of the deployment tests: Debian's Prometheus tools.

`promtool` and `prometheus` come with Debian's `prometheus` package, `amtool` with
`prometheus-alertmanager`; `make system-packages` installs them (without letting their daemons
start). A missing one fails the tests with one line naming that step: these tests never skip.
The tests run their own Prometheus on a free loopback port with temporary data.
"""

from __future__ import annotations

import pytest

from tests.deploy.support import PrometheusTools
from tests.system_packages import system_program


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    return PrometheusTools(
        prometheus=system_program("prometheus"),
        promtool=system_program("promtool"),
        amtool=system_program("amtool"),
    )
