"""A simulated fraud model: its traffic in the contract's event format, with drifts injected at
known events (pure; no I/O).

Features on very different scales: `amount` (dollars, heavy right tail), `utilization` (a ratio in
[0, 1]), `age` (an integer count), `income` (missing for ~5% of events), and the categories
`country` and `device`. The model's score depends on amount, utilization and country; it is
calibrated, so each event's true label is drawn with the score's probability (about 17% fraud).
`Injection`s change the stream from a given event on; `ground_truth()` says what was injected
where and which monitor should notice. Same seed, same stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from producers.scenarios import SCENARIOS, Injection, Reference
from producers.stream import Draw, EventStream, FeatureSpec

__all__ = ["SCENARIOS", "Injection", "Simulator"]

COUNTRIES = ("DE", "FR", "US", "GB", "IN", "BR")
COUNTRY_P = (0.35, 0.25, 0.2, 0.1, 0.06, 0.04)
DEVICES = ("ios", "android", "web")
DEVICE_P = (0.45, 0.4, 0.15)
FEATURES = (
    FeatureSpec("amount", decimals=2),
    FeatureSpec("utilization", decimals=5),
    FeatureSpec("age", decimals=0),
    FeatureSpec("income", decimals=2),
    FeatureSpec("country", categories=COUNTRIES),
    FeatureSpec("device", categories=DEVICES),
)
INCOME_MISSING = 0.05
REFERENCE_EVENTS = 20_000
REFERENCE_STREAM = 2**32  # seeds the reference sample apart from every block's streams


@dataclass
class Simulator(EventStream):
    """Events of the simulated model; call `events(n)` or `batch(n)` repeatedly for the next n."""

    model: str = "fraud"

    def _setup(self) -> None:
        self.features = FEATURES
        self.classes = (0, 1)
        self.model_inputs = ("amount", "utilization", "country")
        sample = self._draw(
            np.arange(REFERENCE_EVENTS), np.random.default_rng([self.seed, REFERENCE_STREAM])
        ).features
        self.reference = {
            spec.name: Reference(
                float(np.nanmedian(sample[spec.name])), float(np.nanstd(sample[spec.name]))
            )
            for spec in FEATURES
            if not spec.categories
        }

    def _draw(self, index: np.ndarray, rng: np.random.Generator) -> Draw:
        n = len(index)
        features = {
            "amount": rng.lognormal(3.5, 0.8, n),
            "utilization": rng.beta(2.0, 5.0, n),
            "age": rng.poisson(38, n).astype(np.float64),
            "income": rng.normal(52_000, 12_000, n),
            "country": rng.choice(len(COUNTRIES), n, p=COUNTRY_P),
            "device": rng.choice(len(DEVICES), n, p=DEVICE_P),
        }
        features["income"][rng.random(n) < INCOME_MISSING] = np.nan
        hidden = {"noise": rng.normal(0.0, 0.5, n), "uniform": rng.random(n)}
        return Draw(index, features, hidden)

    _redraw = _draw

    def _probabilities(self, draw: Draw) -> np.ndarray:
        x = draw.features
        # A missing input is imputed with its reference median, as a serving pipeline would.
        amount = np.where(np.isnan(x["amount"]), self.reference["amount"].median, x["amount"])
        utilization = np.where(
            np.isnan(x["utilization"]), self.reference["utilization"].median, x["utilization"]
        )
        logit = (
            -2.0
            + 0.9 * (np.log(np.maximum(amount, 0.01)) - 3.5)
            + 2.0 * (utilization - 0.28)
            + 0.6 * (x["country"] >= 4)
            + draw.hidden["noise"]
        )
        fraud = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1.0 - fraud, fraud])

    def _labels(self, draw: Draw, probabilities: np.ndarray) -> np.ndarray:
        return (draw.hidden["uniform"] < probabilities[:, 1]).astype(np.int64)
