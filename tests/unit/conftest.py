"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment without the caller's STREAMDRIFT_ variables; set the test's own on it."""
    for name in list(os.environ):
        if name.upper().startswith("STREAMDRIFT_"):
            monkeypatch.delenv(name)
    return monkeypatch
