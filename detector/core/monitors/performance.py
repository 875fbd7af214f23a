"""How good a model is, once labels arrive and before they do (pure; no I/O).

* `performance.error`: for classifiers, 1 when the prediction was wrong (a rate watched by the
  PIT detectors and by river's DDM and HDDM_A); for regressions, the absolute error (watched
  like any numeric signal: the PIT makes it relative to the reference error distribution).
* `performance.recall.<class>`: 1 when a labelled event of that class was predicted right,
  for the first `max_recall_classes` classes.
* `performance.estimated`: the confidence of each prediction (probability of the predicted
  class), available before any label. Its detectors watch the confidence's distribution against
  its reference: a change there is a change of what the scores imply, whatever their calibration
  (the PIT is rank-based, and a recalibration that keeps the scores' order moves no rank), and
  it decides from the predictions alone, so its alerts do not depend on when labels are read.
* `quality.labels`: 1 when a prediction got its label within the maturity age, 0 when not
  (from the model's first label on: before it, no label is missing).

Rolling gauges (decayed over about `window` values): accuracy, MAE, RMSE, label coverage, the
mean confidence, and the estimated accuracy over all predictions and over the labelled ones (so
estimated vs realised can be compared). Each prediction's estimate is its chance of being right
given its score, from the calibration its model version learned from earlier labels
(detector.core.monitors.score_calibration; the confidence itself until the version has
`warmup` labelled predictions). A labelled prediction's estimate is taken as it stood before its
own label was learned, so the estimated-vs-realised gap measures the estimate without the labels.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter
from typing import Any

import numpy as np

from detector.core.events import CONFIDENCE_OF, Event
from detector.core.monitors.columns import Columns, number_columns
from detector.core.monitors.decay import DecayedMean
from detector.core.monitors.labels import Joined, LabelJoin, PendingBudget
from detector.core.monitors.score_calibration import ScoreCalibration
from detector.core.monitors.signal_type import SignalType
from detector.settings import LimitSettings, ModelSettings

ERROR, ESTIMATED, LABELS = "performance.error", "performance.estimated", "quality.labels"
RECALL = "performance.recall."
MAX_PENDING_DELAYS = 10_000  # label delays kept for the histogram between two metric refreshes
MAX_CALIBRATED_VERSIONS = 4  # score calibrations kept per model; the least recently used goes
SCORE_OF, VERSION_OF = attrgetter("score"), attrgetter("version")
_MIN_MATURITY_MS = 1000


@dataclass(frozen=True)
class Feed:
    """Values for one monitor, from one batch."""

    monitor: str
    signal_type: SignalType
    columns: Columns
    binary_detectors: bool = False
    versions: list[str | None] | None = None  # of labelled values: their predictions' versions


def same_class(prediction: Any, label: Any) -> bool:
    """Predicted and true class agree (booleans and their JSON spelling, numbers and their text)."""
    return _class_text(prediction) == _class_text(label)


def _class_text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Performance:
    def __init__(
        self,
        settings: ModelSettings,
        limits: LimitSettings,
        warmup: int,
        window: int,
        budget: PendingBudget | None = None,
    ) -> None:
        self.join = LabelJoin(
            ttl_ms=int(settings.label_ttl_seconds * 1000),
            wait_ms=int(settings.label_wait_seconds * 1000),
            max_pending=limits.max_pending_labels,
            max_waiting=limits.max_waiting_labels,
            sample_rate=settings.label_sample_rate,
            warmup=warmup,
            maturity_ms=int(settings.label_maturity_seconds * 1000)
            if settings.label_maturity_seconds
            else None,
            min_maturity_ms=_MIN_MATURITY_MS,
            before_first_label=limits.pending_labels_before_first,
            budget=budget,
        )
        self.max_recall_classes = limits.max_recall_classes
        self.calibration_labels = warmup  # a version's labelled predictions before its estimate
        self.calibrations: OrderedDict[str | None, ScoreCalibration] = OrderedDict()
        self.version: str | None = None  # of the newest prediction with a score
        decay = 1.0 - 1.0 / window
        self.gauges = {
            name: DecayedMean(decay)
            for name in (
                "accuracy",
                "absolute_error",
                "squared_error",
                "confidence",
                "estimated",
                "estimated_labelled",
                "coverage",
            )
        }
        self.recall_classes: dict[str, None] = {}
        self.counts: Counter[str] = (
            Counter()
        )  # joined, expired, evicted, unmatched, late (since last taken)
        self.delays_s: list[float] = []  # since last taken

    # -- one batch ------------------------------------------------------------------------

    def observe(self, events: Sequence[Event], classifier: bool | None) -> list[Feed]:
        """Join this batch's labels; return what the performance monitors should see."""
        feeds: list[Feed] = []
        confidences = number_columns(list(map(CONFIDENCE_OF, events)))
        if len(confidences.rows):
            self.gauges["confidence"].update(confidences.values)
            self.gauges["estimated"].update(
                self._estimates(events, confidences.rows, np.asarray(confidences.values))
            )
            feeds.append(Feed(ESTIMATED, SignalType.numeric, confidences))
        outcome = self.join.observe(events)
        self.counts.update(
            joined=len(outcome.joined),
            expired=outcome.expired,
            evicted=outcome.evicted,
            unmatched=outcome.unmatched,
            late=outcome.late,
        )
        if outcome.matured:
            rows, values = zip(*outcome.matured)
            matured = np.asarray(values, dtype=np.float64)
            self.gauges["coverage"].update(matured)
            feeds.append(Feed(LABELS, SignalType.rate, Columns(np.asarray(rows), matured)))
        if outcome.joined and classifier is not None:
            self._note_delays(outcome.joined)
            feeds += (
                self._classified(outcome.joined) if classifier else self._regressed(outcome.joined)
            )
        return feeds

    def _estimates(
        self, events: Sequence[Event], rows: np.ndarray, confidences: np.ndarray
    ) -> np.ndarray:
        """Each scored prediction's chance of being right (at `rows` of the batch, with these
        confidences), from its version's calibration."""
        self.version = events[int(rows[-1])].version
        if not any(calibration.ready for calibration in self.calibrations.values()):
            return confidences  # no labels learned yet: no need to read scores
        scored = [events[row] for row in rows.tolist()]
        # A decoded event with a confidence has its score (detector.core.events sets both).
        scores = np.fromiter(map(SCORE_OF, scored), np.float64, len(scored))
        estimates = confidences.copy()
        for version, mine in _by_version(list(map(VERSION_OF, scored))):
            calibration = self.calibrations.get(version)
            if calibration is not None:
                estimates[mine] = calibration.estimate(scores[mine], confidences[mine])
        return estimates

    def _calibrate(self, joined: list[Joined], correct: np.ndarray) -> None:
        """Learn from the labelled predictions; note their estimates as before their labels."""
        scored = [i for i, j in enumerate(joined) if j.score is not None]
        if not scored:
            return
        scores = np.array([joined[i].score for i in scored], dtype=np.float64)
        confidences = np.array([joined[i].confidence for i in scored], dtype=np.float64)
        right = correct[scored]
        estimates = confidences.copy()
        for version, mine in _by_version([joined[i].version for i in scored]):
            estimates[mine] = self._calibration(version).learn(
                scores[mine], confidences[mine], right[mine]
            )
        self.gauges["estimated_labelled"].update(estimates)

    def _calibration(self, version: str | None) -> ScoreCalibration:
        """The version's calibration (created on its first label), now the most recently used."""
        calibration = self.calibrations.get(version)
        if calibration is None:
            calibration = self.calibrations[version] = ScoreCalibration(self.calibration_labels)
            if len(self.calibrations) > MAX_CALIBRATED_VERSIONS:
                self.calibrations.popitem(last=False)
        self.calibrations.move_to_end(version)
        return calibration

    def _note_delays(self, joined: list[Joined]) -> None:
        room = MAX_PENDING_DELAYS - len(self.delays_s)
        self.delays_s += [j.delay_ms / 1000 for j in joined[:room]]

    def _classified(self, joined: list[Joined]) -> list[Feed]:
        rows = np.array([j.row for j in joined])
        correct = np.array([same_class(j.prediction, j.label) for j in joined], dtype=np.float64)
        self.gauges["accuracy"].update(correct)
        self._calibrate(joined, correct)
        versions = [j.version for j in joined]
        feeds = [
            Feed(ERROR, SignalType.rate, Columns(rows, 1.0 - correct), True, versions=versions)
        ]
        labels = [_class_text(j.label) for j in joined]
        for name in dict.fromkeys(labels):
            if (
                name not in self.recall_classes
                and len(self.recall_classes) < self.max_recall_classes
            ):
                self.recall_classes[name] = None
            if name in self.recall_classes:
                mine = np.array([label == name for label in labels])
                feeds.append(
                    Feed(
                        RECALL + name,
                        SignalType.rate,
                        Columns(rows[mine], correct[mine]),
                        versions=list(compress(versions, mine.tolist())),
                    )
                )
        return feeds

    def _regressed(self, joined: list[Joined]) -> list[Feed]:
        numeric = [j for j in joined if _is_number(j.prediction) and _is_number(j.label)]
        if not numeric:
            return []
        errors = np.array([abs(float(j.prediction) - float(j.label)) for j in numeric])
        self.gauges["absolute_error"].update(errors)
        self.gauges["squared_error"].update(errors * errors)
        return [
            Feed(
                ERROR,
                SignalType.numeric,
                Columns(np.array([j.row for j in numeric]), errors),
                versions=[j.version for j in numeric],
            )
        ]

    # -- for metrics ----------------------------------------------------------------------

    def summary(self) -> dict[str, float]:
        """Current rolling values (only those that have data)."""
        values = {
            name: gauge.value for name, gauge in self.gauges.items() if gauge.value is not None
        }
        if "squared_error" in values:
            values["rmse"] = math.sqrt(values.pop("squared_error"))
        if "absolute_error" in values:
            values["mae"] = values.pop("absolute_error")
        return values

    def calibrated_labels(self) -> int:
        """Labelled predictions behind the newest version's estimate (below the warm-up: none
        are used, the estimate is the mean confidence)."""
        calibration = self.calibrations.get(self.version)
        return 0 if calibration is None else calibration.labels

    @property
    def pending(self) -> int:
        return len(self.join.pending)

    @property
    def labelled(self) -> bool:
        """Has a label ever arrived for this model (else its join keeps only a small budget)?"""
        return self.join.labelled

    def take_counts(self) -> tuple[Counter[str], list[float]]:
        """Join counts and label delays (s) since the last call."""
        counts, delays = self.counts, self.delays_s
        self.counts, self.delays_s = Counter(), []
        return counts, delays

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "join": self.join.to_state(),
            "gauges": {name: gauge.to_state() for name, gauge in self.gauges.items()},
            "recall_classes": list(self.recall_classes),
            "version": self.version,
            "calibrations": [
                [version, calibration.to_state()]
                for version, calibration in self.calibrations.items()
            ],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.join.load_state(state["join"])
        for name, gauge_state in state["gauges"].items():
            self.gauges[name].load_state(gauge_state)
        self.recall_classes = dict.fromkeys(str(c) for c in state["recall_classes"])
        self.version = state["version"]
        self.calibrations = OrderedDict()
        for version, calibration_state in state["calibrations"]:
            calibration = self.calibrations[version] = ScoreCalibration(self.calibration_labels)
            calibration.load_state(calibration_state)


def _by_version(versions: list[str | None]) -> list[tuple[str | None, slice | np.ndarray]]:
    """Each version among `versions` with the positions of its entries (in first-seen order)."""
    distinct = list(dict.fromkeys(versions))
    if len(distinct) == 1:
        return [(distinct[0], slice(None))]
    return [(version, np.array([v == version for v in versions])) for version in distinct]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
