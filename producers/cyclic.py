"""A simulated shop model whose traffic follows the hour of the day and the day of the week
(pure; no I/O).

Event times follow the traffic cycle (`producers.cycles.traffic_factor`: a night-time trough,
an evening peak, busier weekends; `interval_ms` is the mean gap), and so do the signals:

* `amount` (dollars, lognormal): baskets grow in the evening and at the weekend;
* `sessions` (a count): more in the evening and at the weekend;
* `temperature` (°C): a daily cycle of ±6 °C peaking at 15:00, within-hour sd 2;
* `device` (ios/android/web): mobile in the evening, web in working hours;
* `noise` (normal): the one feature without a cycle;
* the score (a calibrated probability from amount, sessions and device) follows its inputs,
  and latency follows the load;
* each label is drawn from the score (1 with the score's probability), so the labels follow
  the cycle as a real calibrated model's do: the error rate is about 15% in the morning and
  30% in the evening, the positive class's recall 3% and 28%.

Injections work as on the fraud simulator; a numeric shift's unit (`reference[...].std`) is
the feature's within-hour standard deviation, so `mean_shift` at magnitude 0.5 moves every
hour's values by half their usual spread within that hour: a change within the cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from producers.cycles import HOUR_MS, WEEK_MS, cyclic_times, daily, traffic_factor, weekend_of
from producers.scenarios import Reference
from producers.stream import Draw, EventStream, FeatureSpec

DEVICES = ("ios", "android", "web")
FEATURES = (
    FeatureSpec("amount", decimals=2),
    FeatureSpec("sessions", decimals=0),
    FeatureSpec("temperature", decimals=2),
    FeatureSpec("device", categories=DEVICES),
    FeatureSpec("noise", decimals=4),
)
EVENING = 20.0  # the hour (UTC) at which amounts, sessions and the mobile share peak
REFERENCE_EVENTS = 20_160  # spread over one week: 120 an hour
REFERENCE_STREAM = 2**32  # seeds the reference sample apart from every block's streams
WEEK_HOURS = WEEK_MS // HOUR_MS


@dataclass
class Cyclic(EventStream):
    """Events of the shop model; call `events(n)` or `batch(n)` repeatedly for the next n."""

    model: str = "shop"
    interval_ms: int = 3_000  # on average: 20 events a minute
    base_latency_ms: float = 40.0

    def _setup(self) -> None:
        self.features = FEATURES
        self.classes = (0, 1)
        self.model_inputs = ("amount", "sessions", "device")
        ts = self.start_ms + np.arange(REFERENCE_EVENTS) * (WEEK_MS // REFERENCE_EVENTS)
        sample, _ = self._columns(ts, np.random.default_rng([self.seed, REFERENCE_STREAM]))
        hours = (ts // HOUR_MS) % WEEK_HOURS
        self.reference = {
            spec.name: Reference(
                float(np.median(sample[spec.name])), _within_hour_std(sample[spec.name], hours)
            )
            for spec in FEATURES
            if not spec.categories
        }

    def _clock(self, at: np.ndarray) -> np.ndarray:
        return cyclic_times(self.start_ms, at, self.interval_ms)

    def _load(self, index: np.ndarray) -> np.ndarray:
        # slower under load: about 0.84 times the base at the night-time trough, 1.2 at the peak
        return np.exp(0.25 * (traffic_factor(self._times(index)) - 1.0))

    def _draw(self, index: np.ndarray, rng: np.random.Generator) -> Draw:
        return Draw(index, *self._columns(self._times(index), rng))

    _redraw = _draw

    def _columns(
        self, ts: np.ndarray, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Undrifted features, and the score's hidden columns, of events at times `ts`."""
        n = len(ts)
        evening, weekend = daily(ts, peak_hour=EVENING), weekend_of(ts)
        ios = 0.35 + 0.15 * evening
        android = 0.3 + 0.1 * evening + 0.05 * weekend
        shares = np.column_stack((ios, android, 1.0 - ios - android))
        device = (rng.random(n)[:, None] > np.cumsum(shares, axis=1)).sum(axis=1)
        features = {
            "amount": rng.lognormal(3.5 + 0.35 * evening + 0.3 * weekend, 0.7),
            "sessions": rng.poisson(4.0 + 2.0 * evening + 1.5 * weekend).astype(np.float64),
            "temperature": rng.normal(15.0 + 6.0 * daily(ts, peak_hour=15.0), 2.0),
            "device": np.minimum(device, len(DEVICES) - 1),
            "noise": rng.normal(0.0, 1.0, n),
        }
        hidden = {"noise": rng.normal(0.0, 0.5, n), "uniform": rng.random(n)}
        return features, hidden

    def _probabilities(self, draw: Draw) -> np.ndarray:
        x = draw.features
        # A missing input is imputed with its reference median, as a serving pipeline would.
        amount = np.where(np.isnan(x["amount"]), self.reference["amount"].median, x["amount"])
        sessions = np.where(
            np.isnan(x["sessions"]), self.reference["sessions"].median, x["sessions"]
        )
        logit = (
            -1.5
            + 0.8 * (np.log(np.maximum(amount, 0.01)) - 3.5)
            + 0.15 * (sessions - 4.0)
            + 0.4 * (x["device"] == DEVICES.index("web"))
            + draw.hidden["noise"]
        )
        positive = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1.0 - positive, positive])

    def _labels(self, draw: Draw, probabilities: np.ndarray) -> np.ndarray:
        return (draw.hidden["uniform"] < probabilities[:, 1]).astype(np.int64)


def _within_hour_std(values: np.ndarray, hours: np.ndarray) -> float:
    """The root mean of the per-hour variances (NaN ignored): the spread within an hour."""
    seen = ~np.isnan(values)
    count = np.bincount(hours[seen], minlength=WEEK_HOURS)
    total = np.bincount(hours[seen], values[seen], minlength=WEEK_HOURS)
    squares = np.bincount(hours[seen], values[seen] ** 2, minlength=WEEK_HOURS)
    full = count > 1
    mean = total[full] / count[full]
    variance = (squares[full] - count[full] * mean**2) / (count[full] - 1)
    return float(np.sqrt(np.mean(variance)))
