"""Drift scenarios: what each one changes, which monitor should notice it, and the column math
that applies it to a block of events (pure; numpy only).

An `Injection` places a scenario on a target (a feature, a class, or nothing) from a known event
position. Event positions count a model's prediction events from 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUMERIC, CATEGORICAL, FEATURE, CLASS, NONE = (
    "numeric feature",
    "categorical feature",
    "feature",
    "class",
    "nothing",
)


@dataclass(frozen=True)
class Scenario:
    """A kind of drift. `monitor` is a template on the target; `target` says what the target
    must name; `ramps` is true when `length` is a ramp after which the drift stays at full
    strength (otherwise `length` is the drift's duration, 0 meaning until the end)."""

    monitor: str
    target: str
    effect: str
    ramps: bool = False


SCENARIOS: dict[str, Scenario] = {
    "mean_shift": Scenario(
        "feature.{target}",
        NUMERIC,
        "abrupt covariate shift: + magnitude reference standard deviations",
    ),
    "gradual_shift": Scenario(
        "feature.{target}",
        NUMERIC,
        "gradual covariate shift: over `length` events a growing share (0 to 1) of events is shifted by + magnitude std",
        ramps=True,
    ),
    "incremental_shift": Scenario(
        "feature.{target}",
        NUMERIC,
        "incremental covariate shift: the mean moves steadily to + magnitude std over `length` events",
        ramps=True,
    ),
    "scale_change": Scenario(
        "feature.{target}",
        NUMERIC,
        "variance change: the spread around the reference median × magnitude",
    ),
    "category_mix": Scenario(
        "feature.{target}",
        CATEGORICAL,
        "category-mix change: for a share `magnitude` of events the category order is reversed (rarest become most common)",
    ),
    "missing_burst": Scenario(
        "quality.missing.{target}",
        FEATURE,
        "missing-value burst: the feature is null with probability magnitude",
    ),
    "field_missing": Scenario(
        "quality.missing.{target}",
        FEATURE,
        "upstream field gone: the feature's key is absent from events",
    ),
    "field_rename": Scenario(
        "quality.schema", FEATURE, "upstream field renamed: the feature arrives as '<target>_v2'"
    ),
    "latency_creep": Scenario(
        "prediction.latency",
        NONE,
        "latency creep: latency × (1 + magnitude) reached over `length` events",
        ramps=True,
    ),
    "rate_drop": Scenario(
        "traffic.rate",
        NONE,
        "traffic drop: the event rate × magnitude (0 < magnitude) for `length` events (0: until the end); later events come later",
    ),
    "prior_shift": Scenario(
        "prediction.score",
        CLASS,
        "prior (label) shift: the share of class `target` becomes magnitude; inputs given the class do not change",
    ),
    "concept_drift": Scenario(
        "performance.error",
        NONE,
        "concept drift: a label differs from the old concept with probability magnitude; inputs do not change",
    ),
}

COVARIATE = (
    "mean_shift",
    "gradual_shift",
    "incremental_shift",
    "scale_change",
    "category_mix",
    "missing_burst",
)
SCHEMA = ("field_missing", "field_rename")
RENAMED_SUFFIX = "_v2"


@dataclass(frozen=True)
class Injection:
    """A drift of kind `scenario` on `target` from event `start` (0-based) with strength
    `magnitude`; `length` is its duration (0: until the end), or its ramp for ramping scenarios."""

    scenario: str
    target: str
    start: int
    magnitude: float = 1.0
    length: int = 0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {self.scenario!r}; choose from {', '.join(SCENARIOS)}"
            )
        if self.start < 0 or self.length < 0:
            raise ValueError(f"{self.scenario}: start and length must be >= 0")
        if self.scenario == "rate_drop" and not self.magnitude > 0:
            raise ValueError(f"rate_drop: magnitude must be > 0, not {self.magnitude}")

    @property
    def kind(self) -> Scenario:
        return SCENARIOS[self.scenario]

    @property
    def monitor(self) -> str:
        return self.kind.monitor.format(target=self.target)

    @property
    def end(self) -> int | None:
        """First position after the drift, or None when it lasts until the end."""
        return self.start + self.length if self.length and not self.kind.ramps else None

    def active(self, index: np.ndarray) -> np.ndarray:
        mask = index >= self.start
        return mask & (index < self.end) if self.end is not None else mask

    def progress(self, index: np.ndarray) -> np.ndarray:
        """Strength in [0, 1] at each position: 0 before the start, then the ramp (if any)."""
        if not self.kind.ramps or not self.length:
            return self.active(index).astype(np.float64)
        return np.clip((index - self.start + 1) / self.length, 0.0, 1.0)


@dataclass(frozen=True)
class Reference:
    """Undrifted location and spread of a numeric feature, the unit of shifts."""

    median: float
    std: float


def shift_numeric(
    injection: Injection,
    values: np.ndarray,
    index: np.ndarray,
    reference: Reference,
    rng: np.random.Generator,
) -> None:
    """Apply a covariate scenario to a numeric column in place (NaN stays missing)."""
    strength = injection.progress(index)
    step = injection.magnitude * reference.std
    if injection.scenario in ("mean_shift", "incremental_shift"):
        values += step * strength
    elif injection.scenario == "gradual_shift":
        values += step * (rng.random(len(index)) < strength)
    elif injection.scenario == "scale_change":
        active = strength > 0
        values[active] = (
            reference.median + (values[active] - reference.median) * injection.magnitude
        )
    elif injection.scenario == "missing_burst":
        values[(strength > 0) & (rng.random(len(index)) < injection.magnitude)] = np.nan


def shift_categorical(
    injection: Injection,
    codes: np.ndarray,
    index: np.ndarray,
    categories: int,
    rng: np.random.Generator,
) -> None:
    """Apply a covariate scenario to a categorical column of codes in place (-1 = missing)."""
    active = injection.active(index) & (rng.random(len(index)) < injection.magnitude)
    if injection.scenario == "category_mix":
        flip = active & (codes >= 0)
        codes[flip] = categories - 1 - codes[flip]
    elif injection.scenario == "missing_burst":
        codes[active] = -1


def slowed(injection: Injection, index: np.ndarray) -> np.ndarray:
    """Positions in time of events: a rate drop stretches the gaps between the events it covers
    by 1 / magnitude, and delays every later event by the time it added."""
    covered = np.clip(index - injection.start, 0, injection.length or None)
    return index + (1.0 / injection.magnitude - 1.0) * covered


def creep_latency(injection: Injection, latency_ms: np.ndarray, index: np.ndarray) -> np.ndarray:
    return latency_ms * (1.0 + injection.magnitude * injection.progress(index))


def change_concept(
    injection: Injection,
    labels: np.ndarray,
    index: np.ndarray,
    classes: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Labels (class codes) that, with probability magnitude, become another class."""
    n = len(index)
    flip = injection.active(index) & (rng.random(n) < injection.magnitude)
    other = (labels + rng.integers(1, max(classes, 2), n)) % classes
    return np.where(flip, other, labels)


QUALITIES = {
    "same": "the same model under a new name: nothing changes but the version",
    "fixed": "retrained on the current concept: where a concept drift changed an event's class, it predicts the new one",
    "worse": "a regression: a share `magnitude` of its predictions (and scores) turn to another class",
}


@dataclass(frozen=True)
class Deployment:
    """A new model `version` serving from event `start` (0-based) a share `share` of the
    predictions (1: all of them; less: a canary beside the version before it), of `quality`
    (QUALITIES); `magnitude` is a 'worse' version's share of wrong turns."""

    version: str
    start: int
    share: float = 1.0
    quality: str = "same"
    magnitude: float = 0.3

    def __post_init__(self) -> None:
        if self.quality not in QUALITIES:
            raise ValueError(
                f"unknown quality {self.quality!r}; choose from {', '.join(QUALITIES)}"
            )
        if self.start < 0 or not 0 < self.share <= 1 or not 0 <= self.magnitude <= 1:
            raise ValueError("start must be >= 0, share in (0, 1] and magnitude in [0, 1]")
        if not self.version:
            raise ValueError("a deployment names its version")


def deployed_probabilities(
    deployment: Deployment,
    probabilities: np.ndarray,
    concept: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The class probabilities of the deployed version, (n, classes), given the old version's,
    the classes of the old concept and the current labels: a 'fixed' version swaps the old and
    the new class where they differ, a 'worse' one swaps its predicted class with the next for
    a share `magnitude` of events."""
    rows = np.arange(len(labels))
    if deployment.quality == "fixed":
        first, second = concept, labels
    elif deployment.quality == "worse":
        first = probabilities.argmax(axis=1)
        turned = rng.random(len(labels)) < deployment.magnitude
        second = np.where(turned, (first + 1) % probabilities.shape[1], first)
    else:
        return probabilities
    swapped = probabilities.copy()
    swapped[rows, first] = probabilities[rows, second]
    swapped[rows, second] = probabilities[rows, first]
    return swapped


def renamed(target: str) -> str:
    return target + RENAMED_SUFFIX
