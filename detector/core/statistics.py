"""Two-sample tests shared by the live version comparison (detector.core.monitors.versions) and
the comparison of two periods (detector.backtest.compare) (pure; closed forms, deterministic)."""

from __future__ import annotations

import math

import numpy as np


def accumulate(sums: list[float], values: np.ndarray, base: int = 0) -> None:
    """Add `values` to the running (count, sum, sum of squares) at `sums[base:base + 3]`, one by
    one in order: the sums are the same bits however the values are split into batches (a
    pairwise sum's are not)."""
    sums[base] += len(values)
    for offset, column in ((1, values), (2, values * values)):
        carried = np.concatenate(([sums[base + offset]], column))
        sums[base + offset] = float(np.add.accumulate(carried)[-1])


def moments(sums: list[float], base: int = 0) -> tuple[int, float, float]:
    """(count, mean, variance) of the running sums at `sums[base:base + 3]` (zeros when empty)."""
    n, total, squares = sums[base : base + 3]
    if not n:
        return 0, 0.0, 0.0
    mean = total / n
    return int(n), mean, max(squares / n - mean * mean, 0.0)


def normal_p(z: float) -> float:
    """Two-sided p-value of a standard normal score."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def rates_p(rate_a: float, n_a: int, rate_b: float, n_b: int) -> float:
    """Two-sided p-value of the difference of two rates (0/1 means) of n_a and n_b values: the
    two-proportion z-test with the pooled rate (1 when the pooled rate is 0 or 1)."""
    pooled = (rate_a * n_a + rate_b * n_b) / (n_a + n_b)
    error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    return normal_p((rate_b - rate_a) / error) if error > 0 else 1.0


def means_p(mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int) -> float:
    """Two-sided p-value of the difference of two means (Welch's z-test, each sample's own
    variance; 1 when both are constant)."""
    error = math.sqrt(var_a / n_a + var_b / n_b)
    return normal_p((mean_b - mean_a) / error) if error > 0 else 1.0


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: adjusted p-values, in the given order, monotone in the raw
    ones (flagging those below alpha keeps the chance of any false flag below alpha)."""
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(sorted(range(len(p_values)), key=p_values.__getitem__)):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
