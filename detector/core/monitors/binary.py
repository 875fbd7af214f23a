"""river's detectors for 0/1 error streams (DDM and HDDM_A), with parameters derived from the
false-alarm budget and an explicit, code-free state encoding.

Both test every value. HDDM_A's `drift_confidence` bounds its false-alarm probability per test
(Hoeffding), so it is set to the detector's share of the budget; DDM's `drift_threshold` is the
number of standard deviations whose one-sided normal tail is that share. DDM rests on a normal
approximation of the error rate: with almost no errors its minimum spread can be 0 and the next
error fires, so it runs only when the reference held at least `MIN_DDM_ERRORS` errors, and it
warms up over as many values as the reference.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
from river import stats
from river.base import BinaryDriftDetector
from river.drift.binary import DDM, HDDMA

from detector.core.monitors.batch_detector import DetectorResult, Hit

MIN_DDM_ERRORS = 30


def make_binary_detectors(
    rate_per_event: float, reference_size: int, reference_errors: int
) -> dict[str, BinaryDriftDetector]:
    detectors: dict[str, BinaryDriftDetector] = {
        "hddm_a": HDDMA(
            drift_confidence=rate_per_event, warning_confidence=min(0.5, 10 * rate_per_event)
        ),
    }
    if reference_errors >= MIN_DDM_ERRORS:
        z = NormalDist().inv_cdf(1.0 - rate_per_event)
        detectors["ddm"] = DDM(
            warm_start=reference_size, warning_threshold=z - 1.0, drift_threshold=z
        )
    return detectors


class BinaryDetector:
    """One of river's binary detectors behind the batch interface (`BatchDetector`)."""

    def __init__(self, name: str, detector: BinaryDriftDetector) -> None:
        self.name = name
        self.detector = detector

    def update(self, values: np.ndarray) -> DetectorResult:
        """Feed values in order: 0/1 errors as integers (river is faster on them), or floats in
        [0, 1] (errors adjusted for their hour: seasonal.BinarySeason.adjust); hits by index
        (change age unknown: 1)."""
        hits = []
        for index, value in enumerate(values.tolist()):
            self.detector.update(value)
            if self.detector.drift_detected:
                hits.append(Hit(index, self.name, 1))
        return DetectorResult(hits)

    def to_state(self) -> dict[str, Any]:
        return binary_state(self.detector)

    def load_state(self, state: dict[str, Any]) -> None:
        load_binary_state(self.detector, state)


def binary_detectors(
    rate_per_event: float, reference_size: int, reference_errors: int
) -> dict[str, BinaryDetector]:
    """The binary detectors of a 0/1 error stream, by name (see `make_binary_detectors`)."""
    made = make_binary_detectors(rate_per_event, reference_size, reference_errors)
    return {name: BinaryDetector(name, detector) for name, detector in made.items()}


def binary_state(detector: BinaryDriftDetector) -> dict[str, Any]:
    """The private state of a river binary detector: numbers (or None), infinities as
    {"float": "inf"}, and running means as {"mean": [n, mean]}.

    Private API, for want of a public one: river saves a detector only by pickling, which runs
    code on load, so its private attributes are encoded one by one. An attribute of a kind not
    listed here raises (TypeError) rather than being lost. Pinned by river's upper bound in
    pyproject.toml and by tests/unit/test_dependencies.py (a detector restored mid-stream
    decides as the uninterrupted one); a river change re-learns instead of loading
    (monitors/model.py STATE_LIBRARIES)."""
    state: dict[str, Any] = {}
    for name, value in vars(detector).items():
        if not name.startswith("_"):
            continue  # constructor arguments come from the configuration
        if isinstance(value, stats.Mean):
            state[name] = {"mean": [value.n, value.get()]}
        elif isinstance(value, float) and math.isinf(value):
            state[name] = {"float": str(value)}
        elif value is None or isinstance(value, (bool, int, float)):
            state[name] = value
        else:
            raise TypeError(
                f"cannot encode {type(detector).__name__}.{name} of type {type(value).__name__}"
            )
    return state


def load_binary_state(detector: BinaryDriftDetector, state: dict[str, Any]) -> None:
    for name, value in state.items():
        if name not in vars(detector) or not name.startswith("_"):
            raise ValueError(f"unexpected attribute {name!r} for {type(detector).__name__}")
        if isinstance(value, dict) and "float" in value:
            setattr(
                detector,
                name,
                float(value["float"]) if value["float"] in ("inf", "-inf") else math.nan,
            )
        elif isinstance(value, dict):
            setattr(detector, name, running_mean(float(value["mean"][0]), float(value["mean"][1])))
        elif value is None or isinstance(value, (bool, int, float)):
            setattr(detector, name, value)
        else:
            raise ValueError(f"unexpected value for {type(detector).__name__}.{name}")


def running_mean(weight: float, mean: float) -> stats.Mean:
    """The running mean of `weight` values averaging `mean`, through the public update: one
    value of that weight (exact: the first update sets the mean to the value)."""
    running = stats.Mean()
    if weight:
        running.update(mean, w=weight)
    return running
