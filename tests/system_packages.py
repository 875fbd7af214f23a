"""The system programs some tests run (chromium, stunnel4, openssl, Prometheus' tools) come from
Debian packages that `make system-packages` (tests/system-packages.sh, a step of `make test`)
installs. Tests never install them: a missing one fails its test with one line naming that step."""

from __future__ import annotations

import shutil

import pytest

SETUP_STEP = "make system-packages"


def system_program(name: str) -> str:
    """Path of `name` on PATH; a one-line test failure naming the setup step when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `{SETUP_STEP}` as root (tests/system-packages.sh; "
            "docs/testing.md, System packages)",
            pytrace=False,
        )
    return path
