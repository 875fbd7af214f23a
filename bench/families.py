"""Distribution families of the synthetic signals, each able to draw stationary values, values
shifted by k standard deviations, and values with their spread scaled around the centre.

* normal, log-normal, bimodal (two equal normal modes): a shift adds k·sd (the family's sd).
* heavy-tailed, Student t with 2 dof: its variance is infinite, so 'sd' is the robust one,
  IQR / 1.349 (the sd of the normal with the same IQR).
* integer counts, Poisson(λ): a shift of k sd draws from Poisson(λ + k·√λ), so the values stay
  counts; a spread change rounds centre + s·(x − centre) to integers (clipped at 0).
* categorical: a shift of k 'sd' mixes in the reversed category order with the weight w that
  moves the mean mid-PIT position as much as a k-sd shift moves it for a normal signal,
  Φ(k/√2) − 1/2 (0.070, 0.138, 0.240 for k = 0.25, 0.5, 1). No spread change is defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detector.core.monitors.signal_type import SignalType

T2_QUARTILE = 1.0 / math.sqrt(
    1.5
)  # upper quartile of Student t with 2 dof: (2p-1)/sqrt(2p(1-p)) at p = 3/4
IQR_PER_SD = 1.349  # interquartile range of a normal, in its standard deviations


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def pit_shift_of_normal(k: float) -> float:
    """How far the mean PIT position of a normal signal moves when it shifts by k sd."""
    return normal_cdf(k / math.sqrt(2.0)) - 0.5


@dataclass(frozen=True)
class Numeric:
    """A numeric family: `name` is one of normal, lognormal, student_t2, poisson, bimodal."""

    name: str
    location: float = 0.0
    scale: float = 1.0

    signal_type = SignalType.numeric

    @property
    def sd(self) -> float:
        """The unit of a shift (robust sd for the t with 2 dof)."""
        if self.name == "lognormal":
            s2 = self.scale**2
            return math.sqrt((math.exp(s2) - 1.0) * math.exp(2.0 * self.location + s2))
        if self.name == "student_t2":
            return self.scale * 2.0 * T2_QUARTILE / IQR_PER_SD
        if self.name == "poisson":
            return math.sqrt(self.location)
        if self.name == "bimodal":
            return self.scale * math.sqrt(1.0 + 2.5**2)  # modes at ±2.5·scale, each with sd = scale
        return self.scale

    @property
    def centre(self) -> float:
        """The median, around which a spread change scales."""
        if self.name == "lognormal":
            return math.exp(self.location)
        if self.name == "poisson":
            return float(round(self.location))
        return self.location

    def draw(
        self, rng: np.random.Generator, n: int, shift: float = 0.0, spread: float = 1.0
    ) -> np.ndarray:
        """n values, shifted by `shift` sd, with the spread around the centre times `spread`."""
        if self.name == "poisson":
            counts = rng.poisson(self.location + shift * self.sd, n).astype(np.float64)
            if spread == 1.0:
                return counts
            return np.maximum(np.round(self.centre + spread * (counts - self.centre)), 0.0)
        x = self._base(rng, n)
        if spread != 1.0:
            x = self.centre + spread * (x - self.centre)
        return x + shift * self.sd

    def _base(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.name == "normal":
            return rng.normal(self.location, self.scale, n)
        if self.name == "lognormal":
            return rng.lognormal(self.location, self.scale, n)
        if self.name == "student_t2":
            return self.location + self.scale * rng.standard_t(2, n)
        if self.name == "bimodal":
            modes = np.where(rng.random(n) < 0.5, -2.5, 2.5)
            return self.location + self.scale * (modes + rng.standard_normal(n))
        raise ValueError(f"unknown numeric family {self.name!r}")


@dataclass(frozen=True)
class Categorical:
    """Categories with Zipf-like probabilities (∝ 1/rank), most frequent first."""

    name: str
    size: int

    signal_type = SignalType.categorical

    @property
    def labels(self) -> np.ndarray:
        return np.array([f"c{i}" for i in range(self.size)])

    @property
    def probabilities(self) -> np.ndarray:
        weights = 1.0 / np.arange(1, self.size + 1)
        return weights / weights.sum()

    def mixing_weight(self, k: float) -> float:
        """Weight of the reversed order that moves the mean mid-PIT by as much as a k-sd normal shift."""
        p = self.probabilities
        upto = np.cumsum(p)
        mid = upto - p / 2
        moved = float(p[::-1] @ mid - p @ mid)  # mean mid-PIT shift when fully reversed
        return min(1.0, pit_shift_of_normal(k) / moved)

    def draw(
        self, rng: np.random.Generator, n: int, shift: float = 0.0, spread: float = 1.0
    ) -> list[str]:
        """n category names; `shift` mixes in the reversed order (see the module docstring)."""
        if spread != 1.0:
            raise ValueError("no spread change is defined for categories")
        p = self.probabilities
        if shift:
            w = self.mixing_weight(shift)
            p = (1.0 - w) * p + w * p[::-1]
        return self.labels[rng.choice(self.size, n, p=p)].tolist()


Family = Numeric | Categorical

# The suite of the quality benchmark: one member of each family.
SUITE: tuple[Family, ...] = (
    Numeric("normal", 100.0, 15.0),
    Numeric("lognormal", 3.0, 0.8),
    Numeric("student_t2", 0.0, 1.0),
    Numeric("poisson", 4.0),
    Numeric("bimodal", 10.0, 1.0),
    Categorical("categorical", 8),
)
