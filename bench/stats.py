"""Counting statistics for the benchmarks: Poisson rates with exact (Garwood) confidence
intervals, and weighted least-squares fits of a line."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

CONFIDENCE = 0.95


def poisson_interval(count: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided interval for the mean of a Poisson variable observed as `count`."""
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if count == 0 else chi2.ppf(tail, 2 * count) / 2.0
    high = chi2.ppf(1.0 - tail, 2 * count + 2) / 2.0
    return float(low), float(high)


@dataclass(frozen=True)
class Count:
    """`hits` events (false alarms, detections) in `trials` opportunities (values, blocks)."""

    hits: int
    trials: int

    @property
    def rate(self) -> float:
        return self.hits / self.trials if self.trials else float("nan")

    def interval(self) -> tuple[float, float]:
        """95% interval of the rate."""
        low, high = poisson_interval(self.hits)
        return low / self.trials, high / self.trials

    def per_million(self) -> str:
        """'rate [low, high]' per million trials."""
        low, high = self.interval()
        return f"{self.rate * 1e6:.3g} [{low * 1e6:.3g}, {high * 1e6:.3g}]"


@dataclass(frozen=True)
class Line:
    """y = slope · x + intercept, with standard errors."""

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float


def fit_line(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Line:
    """Weighted least squares (weights = inverse variances of y)."""
    design = np.column_stack([x, np.ones_like(x)])
    w = np.asarray(weights, dtype=np.float64)
    covariance = np.linalg.inv(design.T @ (design * w[:, None]))
    slope, intercept = covariance @ (design.T @ (w * y))
    return Line(
        float(slope), float(intercept), math.sqrt(covariance[0, 0]), math.sqrt(covariance[1, 1])
    )
