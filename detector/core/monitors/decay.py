"""Exponentially decayed sums over an ordered stream, updated a batch at a time (pure)."""

from __future__ import annotations

import numpy as np


def decay_weights(n: int, decay: float) -> np.ndarray:
    """Weight of each of n values in order: the newest 1, each older one `decay` times less."""
    return decay ** np.arange(n - 1, -1, -1, dtype=np.float64)


def decayed_sum(current: float, values: np.ndarray, decay: float) -> float:
    """sum_i decay**age_i * values_i (ages counted in values), carried over from `current`."""
    return current * decay ** len(values) + float(decay_weights(len(values), decay) @ values)


class DecayedMean:
    """Mean with exponentially fading weights (memory of about 1 / (1 - decay) values)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.total = 0.0
        self.weight = 0.0

    def update(self, values: np.ndarray) -> None:
        self.total = decayed_sum(self.total, values, self.decay)
        self.weight = decayed_sum(self.weight, np.ones(len(values)), self.decay)

    @property
    def value(self) -> float | None:
        return self.total / self.weight if self.weight > 0 else None

    def to_state(self) -> list[float]:
        return [self.total, self.weight]

    def load_state(self, state: list[float]) -> None:
        self.total, self.weight = float(state[0]), float(state[1])
