"""How right a model version's scores turn out to be, learned from its labelled predictions, to
estimate the accuracy of predictions whose labels have not come yet (pure; no I/O).

The mean confidence (probability of the predicted class) equals the accuracy only if the scores
are calibrated; most production scores are not (often over-confident). Like NannyML's CBPE, this
learns P(right | score) from the labels that did arrive, then estimates each new prediction's
chance of being right from its score. Under covariate shift the inputs move but P(label | inputs),
hence P(right | score), does not: the estimate follows the realised accuracy as the scores move.

The map is exact counts in fixed score bins (edges equally spaced in log-odds, so the crowded
ends of an over-confident model's scores get bins of their own): per bin, the labelled
predictions, how many were right, and the sum of their confidence. A prediction's estimate is its
confidence minus its bin's over-confidence (mean confidence minus accuracy), shrunk towards the
version's overall over-confidence by `PRIOR_LABELS` pseudo-labels: a bin with few labels borrows
the overall correction rather than none. Binary models bin
the score P(positive), whose two ends mean opposite predictions; multiclass models their
top-class probability. Counts come in two generations of `GENERATION_LABELS` labels each: when the
newer one fills, the older is dropped, so memory is fixed and the map follows the last 10,000 to
20,000 labels (a concept drift is unlearned too). The map is recomputed at every
`REFRESH_LABELS`-th label, never on a clock, and sums are added in label order: the same labels
in the same order give the same map at the same points, bit for bit, however they are batched.

Until a version's map has been refreshed with `min_labels` labelled predictions, its estimate is
the confidence itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Bin edges at log-odds -8, -7.5, ..., 8 (scores 0.0003 to 0.9997), as scores.
SCORE_EDGES = 1.0 / (1.0 + np.exp(-np.arange(-8.0, 8.25, 0.5)))
BINS = len(SCORE_EDGES) + 1
PRIOR_LABELS = 5.0
REFRESH_LABELS = 100  # the map is recomputed at every 100th label
GENERATION_LABELS = 10_000  # a multiple of REFRESH_LABELS


def score_bins(scores: np.ndarray) -> np.ndarray:
    """The calibration bin of each score."""
    return np.searchsorted(SCORE_EDGES, scores, side="right")


class _Counts:
    """Labelled predictions per score bin: how many, how many right, their summed confidence."""

    def __init__(self) -> None:
        self.labels = np.zeros(BINS, dtype=np.int64)
        self.right = np.zeros(BINS, dtype=np.int64)
        self.confidence = np.zeros(BINS, dtype=np.float64)

    @property
    def total(self) -> int:
        return int(self.labels.sum())

    def add(self, bins: np.ndarray, confidences: np.ndarray, right: np.ndarray) -> None:
        np.add.at(self.labels, bins, 1)
        np.add.at(self.right, bins, right.astype(np.int64))
        np.add.at(self.confidence, bins, confidences)  # unbuffered, in order: batching-proof

    def to_state(self) -> list[list[Any]]:
        return [self.labels.tolist(), self.right.tolist(), self.confidence.tolist()]

    @classmethod
    def from_state(cls, state: list[list[Any]]) -> _Counts:
        counts = cls()
        counts.labels = np.array(state[0], dtype=np.int64).reshape(BINS)
        counts.right = np.array(state[1], dtype=np.int64).reshape(BINS)
        counts.confidence = np.array(state[2], dtype=np.float64).reshape(BINS)
        return counts


class ScoreCalibration:
    """P(right | score) of one model version, from its labelled predictions."""

    def __init__(self, min_labels: int) -> None:
        self.min_labels = min_labels
        self.older, self.newer = _Counts(), _Counts()
        self.gap: np.ndarray | None = None  # per-bin over-confidence at the last refresh point

    @property
    def labels(self) -> int:
        """Labelled predictions the map is made of."""
        return self.older.total + self.newer.total

    @property
    def ready(self) -> bool:
        return self.gap is not None

    def learn(self, scores: np.ndarray, confidences: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Count labelled predictions (in label order): score, confidence, 1/True if right.
        Returns each one's estimate as it stood before its label (the map of the last refresh
        point before it): how far the estimate was from what the labels then said."""
        bins = score_bins(scores)
        estimates = np.empty(len(bins))
        start = 0
        while start < len(bins):
            take = min(len(bins) - start, REFRESH_LABELS - self.newer.total % REFRESH_LABELS)
            part = slice(start, start + take)
            estimates[part] = self._estimate(bins[part], confidences[part])
            self.newer.add(bins[part], confidences[part], right[part])
            start += take
            if self.newer.total % REFRESH_LABELS == 0:
                if self.newer.total >= GENERATION_LABELS:
                    self.older, self.newer = self.newer, _Counts()
                self._refresh()
        return estimates

    def estimate(self, scores: np.ndarray, confidences: np.ndarray) -> np.ndarray:
        """Each prediction's estimated chance of being right (its confidence until ready)."""
        return self._estimate(score_bins(scores), confidences)

    def _estimate(self, bins: np.ndarray, confidences: np.ndarray) -> np.ndarray:
        if self.gap is None:
            return confidences
        return np.clip(confidences - self.gap[bins], 0.0, 1.0)

    def _refresh(self) -> None:
        """The map from the counts, once they hold `min_labels` labels."""
        labels = self.older.labels + self.newer.labels
        if labels.sum() < self.min_labels:
            return
        wrong_confidence = (
            self.older.confidence + self.newer.confidence - self.older.right - self.newer.right
        )
        overall = wrong_confidence.sum() / labels.sum()
        self.gap = (wrong_confidence + PRIOR_LABELS * overall) / (labels + PRIOR_LABELS)

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "older": self.older.to_state(),
            "newer": self.newer.to_state(),
            "gap": None if self.gap is None else self.gap.tolist(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.older = _Counts.from_state(state["older"])
        self.newer = _Counts.from_state(state["newer"])
        gap = state["gap"]
        self.gap = None if gap is None else np.array(gap, dtype=np.float64).reshape(BINS)
