"""What fired, against the known change points (pure; no I/O).

Change points come from ground truth as the simulator writes it (`--truth FILE`): per
injection the model, scenario, target, start (counted in the model's prediction events), end
or ramp length, the monitor that should alert, and its side effects (monitors that may alert
as a consequence, e.g. the score follows its inputs).

Only models named in the truth are scored. Per change, in prediction events:

* its detection window is [start, start + length + max_delay), length being the injection's
  duration or ramp (0 for an abrupt change that lasts);
* its *detection* is the first `detected` alert of its expected monitor inside that window,
  and the *delay* is that alert's position − start; a change without one is *missed*;
* it is *in effect* from its start to its end + max_delay, or to the end of the history for a
  change that lasts (no end): other alerts in effect, on the expected monitor or a side
  effect, are *consequences* of the change (a shift that lasts moves the score for good);
* every other alert of a scored model is a *false alarm*, and the *mean events between false
  alarms* is the scored models' prediction events outside every change in effect divided by
  the false alarms (undefined without any).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class TruthError(ValueError):
    """Ground truth that cannot be used (the message says which entry and why)."""


@dataclass(frozen=True)
class Change:
    """One known change point of one model."""

    model: str
    scenario: str
    target: str
    monitor: str
    start: int
    end: int | None = None
    length: int = 0
    side_effects: tuple[str, ...] = ()

    @classmethod
    def from_truth(cls, entry: Mapping[str, Any]) -> Change:
        try:
            start, length = int(entry["start"]), int(entry.get("length") or 0)
            end = entry.get("end")
            return cls(
                model=str(entry["model"]),
                scenario=str(entry.get("scenario", "change")),
                target=str(entry.get("target") or ""),
                monitor=str(entry["monitor"]),
                start=start,
                end=None if end is None else int(end),
                length=length,
                side_effects=tuple(str(m) for m in entry.get("side_effects", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TruthError(
                f"ground truth entry {dict(entry)!r} needs model, monitor and a numeric start ({exc})"
            ) from None

    def window_end(self, max_delay: int) -> int:
        """The end (exclusive) of the window in which a detection counts."""
        return self.start + self.length + max_delay

    def effect_end(self, max_delay: int) -> float:
        """The end (exclusive) of the time the change is in effect: never, if it lasts."""
        return math.inf if self.end is None else self.end + max_delay

    def describe(self) -> str:
        """e.g. 'mean_shift amount @10000..15000' or 'incremental_shift f1 @9000 (ramp 3000)'."""
        target = f" {self.target}" if self.target else ""
        if self.end is not None:
            return f"{self.scenario}{target} @{self.start}..{self.end}"
        ramp = f" (ramp {self.length})" if self.length else ""
        return f"{self.scenario}{target} @{self.start}{ramp}"


def changes_from_truth(truth: Any) -> list[Change]:
    """Changes from the simulator's ground truth: {"model", "injections": [...]}, or a list of those
    objects or of injections."""
    documents = truth if isinstance(truth, list) else [truth]
    changes: list[Change] = []
    for document in documents:
        if not isinstance(document, dict):
            raise TruthError(f"ground truth must be JSON objects, not {type(document).__name__}")
        entries = document.get("injections", [document])
        if not isinstance(entries, list):
            raise TruthError("ground truth 'injections' must be a list")
        changes += [
            Change.from_truth({"model": document.get("model"), **entry}) for entry in entries
        ]
    return sorted(changes, key=lambda change: (change.model, change.start))


@dataclass(frozen=True)
class Detection:
    """A `detected` alert, placed in its model's prediction events."""

    model: str
    monitor: str
    position: int | None
    alert_id: str
    statistic: str
    detector: str
    start_position: int | None = None  # the alert's estimate of where the change began


@dataclass(frozen=True)
class Outcome:
    change: Change
    detection: Detection | None

    @property
    def delay(self) -> int | None:
        if self.detection is None or self.detection.position is None:
            return None
        return self.detection.position - self.change.start

    @property
    def start_error(self) -> int | None:
        """The detection's estimate of the change's start − the true start, in events."""
        if self.detection is None or self.detection.start_position is None:
            return None
        return self.detection.start_position - self.change.start


@dataclass
class Score:
    outcomes: list[Outcome]
    false_alarms: list[Detection]
    consequences: list[tuple[Detection, Change]]
    stationary_events: int
    max_delay: int
    unscored: list[Detection] = field(default_factory=list)  # alerts of models without truth

    @property
    def detected(self) -> int:
        return sum(outcome.detection is not None for outcome in self.outcomes)

    @property
    def missed(self) -> int:
        return len(self.outcomes) - self.detected

    @property
    def mean_delay(self) -> float | None:
        delays = [outcome.delay for outcome in self.outcomes if outcome.delay is not None]
        return sum(delays) / len(delays) if delays else None

    @property
    def start_errors(self) -> list[int]:
        """Absolute errors of the detections' start estimates, in events, smallest first."""
        return sorted(abs(o.start_error) for o in self.outcomes if o.start_error is not None)

    @property
    def start_error_quantiles(self) -> tuple[float, float] | None:
        """Median and 90th percentile of `start_errors` (nearest rank), None without any."""
        errors = self.start_errors
        if not errors:
            return None
        return float(np.median(errors)), float(errors[math.ceil(0.9 * len(errors)) - 1])

    @property
    def mean_events_between_false_alarms(self) -> float | None:
        return self.stationary_events / len(self.false_alarms) if self.false_alarms else None

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": len(self.outcomes),
            "detected": self.detected,
            "missed": self.missed,
            "mean_delay_events": self.mean_delay,
            "start_error_events": dict(
                zip(("median", "p90"), self.start_error_quantiles or (None, None))
            ),
            "false_alarms": len(self.false_alarms),
            "stationary_events": self.stationary_events,
            "mean_events_between_false_alarms": self.mean_events_between_false_alarms,
            "max_delay_events": self.max_delay,
            "outcomes": [
                {
                    "change": vars(outcome.change)
                    | {"side_effects": list(outcome.change.side_effects)},
                    "detected": outcome.detection is not None,
                    "delay_events": outcome.delay,
                    "start_error_events": outcome.start_error,
                    "detection": vars(outcome.detection) if outcome.detection else None,
                }
                for outcome in self.outcomes
            ],
            "false_alarm_alerts": [vars(detection) for detection in self.false_alarms],
            "consequences": [
                vars(detection) | {"change": change.describe()}
                for detection, change in self.consequences
            ],
        }


def score(
    changes: Iterable[Change],
    detections: Iterable[Detection],
    predictions: Mapping[str, int],
    max_delay: int,
) -> Score:
    """Match detections (in any order) to changes; `predictions` counts each model's prediction events."""
    changes = list(changes)
    scored_models = {change.model for change in changes}
    found: dict[Change, Detection] = {}
    false_alarms: list[Detection] = []
    consequences: list[tuple[Detection, Change]] = []
    unscored: list[Detection] = []
    for detection in sorted(
        detections, key=lambda d: (d.position is None, d.position or 0, d.model, d.monitor)
    ):
        if detection.model not in scored_models:
            unscored.append(detection)
            continue
        explaining = _explaining(changes, detection, max_delay)
        fresh = next(
            (
                c
                for c in explaining
                if c.monitor == detection.monitor
                and c not in found
                and detection.position is not None
                and detection.position < c.window_end(max_delay)
            ),
            None,
        )
        if fresh is not None:
            found[fresh] = detection
        elif explaining:
            consequences.append((detection, explaining[0]))
        else:
            false_alarms.append(detection)
    outcomes = [Outcome(change, found.get(change)) for change in changes]
    stationary = sum(
        _outside_windows(
            predictions.get(model, 0), [c for c in changes if c.model == model], max_delay
        )
        for model in scored_models
    )
    return Score(outcomes, false_alarms, consequences, stationary, max_delay, unscored)


def _explaining(changes: list[Change], detection: Detection, max_delay: int) -> list[Change]:
    """Changes in effect at the detection that name its monitor, latest first."""
    if detection.position is None:
        return []
    at = detection.position
    return [
        change
        for change in sorted(changes, key=lambda c: -c.start)
        if change.model == detection.model
        and change.start <= at < change.effect_end(max_delay)
        and (detection.monitor == change.monitor or detection.monitor in change.side_effects)
    ]


def _outside_windows(events: int, changes: list[Change], max_delay: int) -> int:
    """Events in [0, events) when no change is in effect."""
    covered, reach = 0, 0
    for change in sorted(changes, key=lambda c: c.start):
        start, end = max(change.start, reach), int(min(change.effect_end(max_delay), events))
        if end > start:
            covered += end - start
        reach = max(reach, end)
    return max(events - covered, 0)
