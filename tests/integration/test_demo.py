"""`streamdrift demo` runs the whole job on its own embedded broker and ends by itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.broker


def test_demo_detects_every_injected_drift_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMDRIFT_")}
    result = subprocess.run(
        [sys.executable, "-m", "detector.cli", "demo", "--events", "16000", "--rate", "6000"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "starting the embedded broker" in out
    assert "DETECTED fraud/feature.amount" in out
    assert "RESOLVED fraud/feature.amount" in out
    assert "all injected drifts detected" in out
    assert "false alarms before the first injection: 0" in out
