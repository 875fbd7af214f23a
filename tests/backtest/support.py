"""Helpers of the backtest tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

EVENTS = 24_000
INJECTIONS = ("mean_shift:amount@8000,length=6000", "category_mix:country@17000")


@dataclass(frozen=True)
class History:
    """A simulated history as the simulator writes it: events, labels and ground truth."""

    events: Path
    labels: Path
    truth: Path

    @property
    def changes(self) -> list[dict[str, Any]]:
        return orjson.loads(self.truth.read_bytes())["injections"]


def detections(result: dict[str, Any], run: int = 0) -> dict[str, list[int]]:
    """Positions of the `detected` alerts of one run of a --json result, per model/monitor."""
    found: dict[str, list[int]] = {}
    for alert in result["runs"][run]["alerts"]:
        event = alert["cloudevent"]
        if event["type"].endswith("detected"):
            found.setdefault(event["subject"], []).append(alert["position"])
    return found


def alert_ids(result: dict[str, Any], run: int = 0) -> list[str]:
    return [alert["cloudevent"]["id"] for alert in result["runs"][run]["alerts"]]
