"""`streamdrift demo` runs the whole job on its own embedded broker and ends by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

EXPECTED = {  # injected drift -> the monitor that must detect it
    ("fraud", "mean_shift amount"): "feature.amount",
    ("fraud", "concept_drift"): "performance.error",
    ("fraud", "category_mix country"): "feature.country",
    ("fraud", "missing_burst income"): "quality.missing.income",
    ("shuttle", "incremental_shift f1"): "feature.f1",
    ("shuttle", "latency_creep"): "prediction.latency",
    ("shop", "mean_shift amount"): "feature.amount",
    ("shop", "rate_drop"): "traffic.rate",
    ("credit", "concept_drift"): "performance.error",
}
# The retraining loop's rows: (position, kind, detail) of the credit model's events.
CREDIT_EVENT = re.compile(
    r"^\s*(\d+)  credit/\S+\s+(RECOMMENDED|DEPLOYED|OUTCOME)\s+(.+)$", re.MULTILINE
)
SHOP_DETECTED = re.compile(r"^\s*(\d+)  shop/(\S+)\s+DETECTED .*  (.+)$", re.MULTILINE)
SUMMARY_ROW = re.compile(
    r"^  (\w+)\s+(\w+(?: \w+)?) @\d+\S*(?: \(ramp \d+\))?\s+(\S+)\s+(\S+/\S+)\s+(\d+)\s+\+(\d+)$",
    re.MULTILINE,
)


def test_demo_detects_every_injected_drift_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMDRIFT_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector.commands.cli",
            "demo",
            "--events",
            "16000",
            "--rate",
            "6000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    port = re.search(r"starting the embedded broker \.\.\. listening on 127\.0\.0\.1:(\d+)", out)
    assert port, out
    assert not broker_processes_on(int(port[1])), "the demo left its broker running"

    assert "event  model/monitor" in out  # the live table's header
    assert re.search(
        r"^\s+\d+  fraud/feature\.amount\s+DETECTED .* mean_shift amount @\d+\.\.\d+ \(\+\d+\)$",
        out,
        re.MULTILINE,
    )
    assert re.search(
        r"^\s+\d+  fraud/feature\.amount\s+RESOLVED .* returned_to_reference$", out, re.MULTILINE
    )
    assert "[########################] 100%" in out  # the progress indicator reached the end

    detected = {
        (model, injected): (monitor, int(delay))
        for model, injected, monitor, _, _, delay in SUMMARY_ROW.findall(out)
    }
    assert {key: monitor for key, (monitor, _) in detected.items()} == EXPECTED, out
    # Labels come 500 events after their predictions: the concept drift is seen later than the rest.
    assert all(
        delay < (3000 if monitor.startswith("performance.") else 1500)
        for monitor, delay in detected.values()
    ), out
    assert "unexpected alerts (false alarms): 0" in out
    assert "UNEXPECTED" not in out
    assert "all 9 injected drifts detected" in out

    # The retraining loop: the concept drift at 3/8 of the credit model's events is recommended
    # for retraining before version 2, retrained on the new concept, is deployed at 5/8; the
    # outcome after it says the new version recovered.
    credit = {kind: (int(at), detail) for at, kind, detail in CREDIT_EVENT.findall(out)}
    assert set(credit) == {"RECOMMENDED", "DEPLOYED", "OUTCOME"}, out
    assert 6000 <= credit["RECOMMENDED"][0] < credit["DEPLOYED"][0] == 10_000, out
    assert credit["OUTCOME"][0] > 10_000, out
    assert "retrained version 2 recovered" in credit["OUTCOME"][1], out
    # The summary closes the loop, and the exit code depends on it.
    assert re.search(
        r"^  credit\s+retraining loop, version 2 @10000\s+recommended @\d+, outcome recovered @\d+$",
        out,
        re.MULTILINE,
    ), out
    assert "NOT CLOSED" not in out

    # The cyclic model: learned for a week of event time, then silent until its shift (at 7/8 of
    # its events); that and its outage (at 15/16) explain all of its alerts.
    assert "the detector learns them over a week of event time, then watches" in out
    shop = SHOP_DETECTED.findall(out)
    assert shop, out
    for at, monitor, cause in shop:
        assert int(at) >= 14_000, (monitor, out)
        assert re.search(r"(mean_shift amount @14000|rate_drop @15000\.\.15040)\b", cause), out


def broker_processes_on(port: int) -> list[int]:
    """Processes whose command line names this loopback port (the embedded broker's)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"tcp://127.0.0.1:{port}" in command:
            found.append(int(proc.name))
    return found
