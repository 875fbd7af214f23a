"""Simulated model traffic in the contract's event format, with drifts injected at known events.

A `Simulator` produces the prediction events of one model: numeric features on very
different scales (dollars, a ratio in [0, 1], an integer count), categorical features, a
missing-prone feature, a score that depends on the features, a predicted class and a
latency. `Injection`s change the stream from a given event on; `ground_truth()` says what
was injected where and which monitor should notice. Same seed, same stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Scenarios this simulator can inject, and the monitor each should trip.
SCENARIOS = {
    "mean_shift": "feature.{target}",  # numeric feature: + magnitude reference standard deviations
    "scale_change": "feature.{target}",  # numeric feature: spread around the median × magnitude
    "category_mix": "feature.{target}",  # categorical feature: probabilities reversed
    "missing_burst": "quality.missing.{target}",  # feature missing with probability magnitude
    "latency_creep": "prediction.latency",  # latency × (1 + magnitude · progress), over `length` events
}

COUNTRIES = ("DE", "FR", "US", "GB", "IN", "BR")
COUNTRY_P = (0.35, 0.25, 0.2, 0.1, 0.06, 0.04)
DEVICES = ("ios", "android", "web")
DEVICE_P = (0.45, 0.4, 0.15)


@dataclass(frozen=True)
class Injection:
    """A drift of kind `scenario` on `target`, from event `start` (0-based) for `length` events
    (0: until the end)."""

    scenario: str
    target: str
    start: int
    magnitude: float = 1.0
    length: int = 0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose from {', '.join(SCENARIOS)}")

    @property
    def monitor(self) -> str:
        return SCENARIOS[self.scenario].format(target=self.target)

    @property
    def end(self) -> int | None:
        return self.start + self.length if self.length else None

    def active(self, index: np.ndarray) -> np.ndarray:
        mask = index >= self.start
        return mask & (index < self.end) if self.end is not None else mask


@dataclass
class Simulator:
    """Events of one model; call `events(n)` repeatedly for the next n."""

    model: str = "fraud"
    seed: int = 0
    injections: tuple[Injection, ...] = ()
    version: str = "1"
    start_ms: int = 1_764_064_800_000
    interval_ms: int = 10
    produced: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        # Reference spreads for mean shifts, measured once on the undrifted distribution.
        reference = self._columns(np.arange(20_000), np.random.default_rng(self.seed + 1), drift=False)
        self.reference_std = {name: float(np.nanstd(reference[name])) for name in ("amount", "utilization", "age", "income")}

    def events(self, n: int) -> list[dict[str, Any]]:
        index = np.arange(self.produced, self.produced + n)
        columns = self._columns(index, self.rng, drift=True)
        self.produced += n
        return list(self._rows(index, columns))

    def ground_truth(self) -> list[dict[str, Any]]:
        return [{**asdict(i), "model": self.model, "monitor": i.monitor} for i in self.injections]

    def _columns(self, index: np.ndarray, rng: np.random.Generator, drift: bool) -> dict[str, np.ndarray]:
        n = len(index)
        c: dict[str, np.ndarray] = {
            "amount": np.round(rng.lognormal(3.5, 0.8, n), 2),  # dollars, heavy right tail
            "utilization": rng.beta(2.0, 5.0, n),  # a ratio in [0, 1]
            "age": rng.poisson(38, n).astype(np.float64),  # an integer count
            "income": rng.normal(52_000, 12_000, n),  # missing for ~5% of events
            "country": rng.choice(len(COUNTRIES), n, p=COUNTRY_P),
            "device": rng.choice(len(DEVICES), n, p=DEVICE_P),
        }
        c["income"][rng.random(n) < 0.05] = np.nan
        latency = rng.lognormal(np.log(12.0), 0.25, n)
        noise = rng.normal(0.0, 0.5, n)
        if drift:
            for injection in self.injections:
                self._inject(injection, index, c, rng)
                if injection.scenario == "latency_creep":
                    mask = injection.active(index)
                    progress = np.clip((index - injection.start) / max(injection.length or n, 1), 0, 1)
                    latency = np.where(mask, latency * (1 + injection.magnitude * progress), latency)
        logit = -2.0 + 0.9 * (np.log(c["amount"]) - 3.5) + 2.0 * (c["utilization"] - 0.28) + 0.6 * (c["country"] >= 4) + noise
        c["score"] = 1.0 / (1.0 + np.exp(-logit))
        c["latency_ms"] = np.round(latency, 3)
        return c

    def _inject(self, injection: Injection, index: np.ndarray, c: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        mask = injection.active(index)
        if not mask.any():
            return
        target = c[injection.target]
        if injection.scenario == "mean_shift":
            target[mask] += injection.magnitude * self.reference_std[injection.target]
        elif injection.scenario == "scale_change":
            median = np.nanmedian(target)
            target[mask] = median + (target[mask] - median) * injection.magnitude
        elif injection.scenario == "category_mix":
            size = len(COUNTRIES) if injection.target == "country" else len(DEVICES)
            target[mask] = size - 1 - target[mask]  # the rarest categories become the most common
        elif injection.scenario == "missing_burst":
            target[mask & (rng.random(len(index)) < injection.magnitude)] = np.nan

    def _rows(self, index: np.ndarray, c: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
        income = [None if np.isnan(v) else round(v, 2) for v in c["income"].tolist()]
        countries = [COUNTRIES[i] for i in c["country"].tolist()]
        devices = [DEVICES[i] for i in c["device"].tolist()]
        for i, amount, utilization, age, inc, country, device, score, latency in zip(
            index.tolist(), c["amount"].tolist(), c["utilization"].tolist(), c["age"].tolist(), income,
            countries, devices, c["score"].tolist(), c["latency_ms"].tolist(),
        ):
            yield {
                "model": self.model,
                "version": self.version,
                "id": f"{self.model}-{i}",
                "ts": self.start_ms + i * self.interval_ms,
                "features": {
                    "amount": amount,
                    "utilization": round(utilization, 5),
                    "age": int(age),
                    "income": inc,
                    "country": country,
                    "device": device,
                },
                "prediction": int(score >= 0.5),
                "score": round(score, 5),
                "latency_ms": latency,
            }
