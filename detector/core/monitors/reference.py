"""References: what a signal looked like while it was trusted, and the map from a raw value
to its position in that distribution (the probability integral transform, PIT).

Every detector downstream sees PIT positions u in [0, 1] instead of raw values, which is what
makes the defaults scale-free: a feature in dollars, one in [0, 1], an integer count and a
category all give u ~ Uniform(0, 1) while they behave like their reference. Values that tie
with a reference point mass (counts, categories, booleans) get the middle of their mass
(mid-PIT), which keeps the mean at 1/2 and the variance below 1/12, so thresholds calibrated
on the uniform stay conservative for discrete data. No randomness: a replay gives the same u.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

_SORT_FROM_VALUES = 64  # NumericReference.transform sorts batches at least this long...
_SORT_FROM_POINTS = 48  # ...against at least this many interpolation points (16 knots)


def spread_of(u: np.ndarray) -> np.ndarray:
    """A PIT position's distance from the middle, |2u − 1| in [0, 1]: its mean moves when the
    values' spread does (uniform u: 1/2)."""
    return np.abs(2.0 * u - 1.0)


@dataclass(frozen=True)
class NumericReference:
    """A distribution as knots: value, CDF just below it, CDF at it (equal unless a point mass).

    Between knots the CDF is linear; below the first knot u = 0, above the last u = 1.
    """

    values: np.ndarray
    below: np.ndarray
    upto: np.ndarray
    summary: dict[str, float]

    @classmethod
    def fit(cls, sample: np.ndarray, bins: int) -> NumericReference:
        """Learn from a sample of finite values; keeps at most `bins` knots."""
        sample = np.sort(np.asarray(sample, dtype=np.float64))
        if not len(sample):
            raise ValueError("a reference needs at least one value")
        distinct, counts = np.unique(sample, return_counts=True)
        if len(distinct) <= bins:
            upto = np.cumsum(counts) / len(sample)
            below = upto - counts / len(sample)
            values = distinct
        else:
            probabilities = np.linspace(0.0, 1.0, bins)
            quantiles = np.quantile(sample, probabilities)
            # A value repeated among the quantiles is a point mass: it spans those probabilities.
            values, first = np.unique(quantiles, return_index=True)
            last = np.append(first[1:] - 1, len(quantiles) - 1)
            below, upto = probabilities[first], probabilities[last]
        return cls(values=values, below=below, upto=upto, summary=_numeric_summary(sample))

    @classmethod
    def binary(cls, rate: float) -> NumericReference:
        """A 0/1 indicator that is 1 with probability `rate`."""
        rate = float(np.clip(rate, 0.0, 1.0))
        return cls(
            values=np.array([0.0, 1.0]),
            below=np.array([0.0, 1.0 - rate]),
            upto=np.array([1.0 - rate, 1.0]),
            summary={"rate": rate},
        )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """PIT positions in [0, 1] of finite values x.

        np.interp's binary search mispredicts a branch at almost every step on values in random
        order (about 50 ns a value against 128 knots); on sorted values it walks. Sorting first
        (SIMD quicksort), then putting the positions back, gives the same numbers 3× faster on a
        batch; tiny batches and references of few knots are faster as they come."""
        xp, fp = self._interpolation
        if len(x) < _SORT_FROM_VALUES or len(xp) < _SORT_FROM_POINTS:
            return np.interp(x, xp, fp)
        order = np.argsort(x)
        positions = np.empty(len(x))
        positions[order] = np.interp(x[order], xp, fp)
        return positions

    def mean_over(self, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means of the PIT position u and of its spread (`spread_of`) over each interval [low, high]
        (low < high): the statistics of a value known only to lie in a cell, such as a count
        spread over its unit. Exact, as the CDF is piecewise linear: its integral G over the
        interval, split for the spread at the median m, where 2u − 1 changes sign."""
        median = float(np.interp(0.5, *reversed(self._interpolation)))
        at_low, at_high = self._integral(low), self._integral(high)
        at_median = float(self._integral(np.array([median]))[0])
        # G rises, so G(max(x, m)) = max(G(x), G(m)), and likewise for the minimum
        above = 2.0 * (np.maximum(at_high, at_median) - np.maximum(at_low, at_median)) - (
            np.maximum(high, median) - np.maximum(low, median)
        )
        below = (np.minimum(high, median) - np.minimum(low, median)) - 2.0 * (
            np.minimum(at_high, at_median) - np.minimum(at_low, at_median)
        )
        width = high - low
        return (at_high - at_low) / width, (above + below) / width

    def _integral(self, x: np.ndarray) -> np.ndarray:
        """The CDF's integral from below the first knot up to each x."""
        xp, fp = self._interpolation
        inside = np.clip(x, xp[0], xp[-1])
        i = np.clip(np.searchsorted(xp, inside, side="right") - 1, 0, len(xp) - 2)
        into = inside - xp[i]
        width = xp[i + 1] - xp[i]
        # (the share of the way to the next point, not a slope: a point mass's points are a
        # float apart, where a slope overflows)
        share = np.divide(into, width, out=np.zeros_like(into), where=width > 0)
        below = self._integral_at_points[i]
        return (
            below + into * (fp[i] + 0.5 * share * (fp[i + 1] - fp[i])) + np.maximum(x - xp[-1], 0.0)
        )

    @cached_property
    def _integral_at_points(self) -> np.ndarray:
        """The CDF's integral up to each interpolation point (trapezoids: it is linear between)."""
        xp, fp = self._interpolation
        return np.concatenate(([0.0], np.cumsum(np.diff(xp) * 0.5 * (fp[1:] + fp[:-1]))))

    @cached_property
    def _interpolation(self) -> tuple[np.ndarray, np.ndarray]:
        """The CDF as one piecewise-linear function: each knot v becomes three points, the float
        just below v (CDF below), v itself (the middle of its mass) and the float just above
        (CDF at v), so point masses jump exactly there and np.interp does the rest in C."""
        v = self.values
        xp = np.column_stack((np.nextafter(v, -np.inf), v, np.nextafter(v, np.inf))).ravel()
        fp = np.column_stack((self.below, 0.5 * (self.below + self.upto), self.upto)).ravel()
        return xp, fp

    def to_state(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "below": self.below,
            "upto": self.upto,
            "summary": self.summary,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NumericReference:
        arrays = {
            key: np.asarray(state[key], dtype=np.float64) for key in ("values", "below", "upto")
        }
        return cls(**arrays, summary={k: float(v) for k, v in state["summary"].items()})


@dataclass(frozen=True)
class CategoricalReference:
    """Category frequencies, most frequent first; categories beyond the cap pool as 'other'.

    The PIT of a category orders categories by reference frequency, so mass moving from
    common to rare categories moves u up. Unseen categories fall into 'other', at the top.
    """

    categories: tuple[str, ...]
    below: np.ndarray  # per code; code len(categories) is 'other'
    upto: np.ndarray
    novelty_rate: float  # expected rate of values outside `categories` (other mass or Good-Turing)

    @classmethod
    def fit(cls, sample: Sequence[str], max_categories: int) -> CategoricalReference:
        counts = Counter(sample)
        if not counts:
            raise ValueError("a reference needs at least one value")
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = ranked[:max_categories]
        total = len(sample)
        masses = np.array([count for _, count in kept] + [total - sum(c for _, c in kept)]) / total
        upto = np.cumsum(masses)
        upto[-1] = 1.0
        singletons = sum(1 for _, count in counts.items() if count == 1)
        return cls(
            categories=tuple(name for name, _ in kept),
            below=upto - masses,
            upto=upto,
            novelty_rate=float(max(masses[-1], singletons / total)),
        )

    @property
    def other_code(self) -> int:
        return len(self.categories)

    def index(self) -> dict[str, int]:
        return {name: code for code, name in enumerate(self.categories)}

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """Mid-PIT positions of category codes (from `index()`, `other_code` for the rest)."""
        return self._middles[codes]

    @cached_property
    def _middles(self) -> np.ndarray:
        return 0.5 * (self.below + self.upto)

    def shares(self) -> dict[str, float]:
        """Reference probability of each kept category, and of 'other'."""
        masses = self.upto - self.below
        return {**dict(zip(self.categories, masses.tolist())), "(other)": float(masses[-1])}

    def to_state(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "below": self.below,
            "upto": self.upto,
            "novelty_rate": self.novelty_rate,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalReference:
        return cls(
            categories=tuple(str(c) for c in state["categories"]),
            below=np.asarray(state["below"], dtype=np.float64),
            upto=np.asarray(state["upto"], dtype=np.float64),
            novelty_rate=float(state["novelty_rate"]),
        )


def _numeric_summary(sorted_sample: np.ndarray) -> dict[str, float]:
    p05, p50, p95 = np.quantile(sorted_sample, [0.05, 0.5, 0.95])
    return {
        "mean": float(sorted_sample.mean()),
        "std": float(sorted_sample.std()),
        "p05": float(p05),
        "p50": float(p50),
        "p95": float(p95),
    }
