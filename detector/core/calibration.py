"""From a per-model false-alarm budget to per-detector thresholds.

A model runs many detectors (two per monitored statistic). Its budget, in expected false
alarms per million events, is split evenly among them; each detector's share is a target
average run length (events between false alarms) under stationarity, which is turned into a
threshold with fitted models of each detector fed with uniform PIT values:

* Page-Hinkley (alpha = 1) is a CUSUM: ln ARL0 = slope * threshold + intercept, with slope
  2·delta / (1/12) from theory and the intercept fitted by simulation.
* ADWIN fed scaled block means: false alarms per block = A * delta ** P, fitted by simulation.

The fits come from `python -m bench calibrate` (results in BENCHMARKS.md); the
model-level rate is checked by simulation in the same benchmark.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

UNIFORM_VARIANCE = 1.0 / 12.0

# Page-Hinkley intercepts of ln ARL0 = slope * threshold + intercept, by delta: fitted by
# `python -m bench calibrate` on 2 to 250 million uniform values per point.
PAGE_HINKLEY_INTERCEPTS = {0.01: 5.41, 0.02: 4.08, 0.03: 3.38, 0.05: 2.54, 0.1: 1.86, 0.2: 2.85}
# ADWIN (clock 1) on block means scaled to unit-event variance: false alarms per block = A * delta**P.
# Measured on 14 to 30 million blocks per delta, the exponent falls as delta shrinks (1.45 overall,
# 1.27 between 0.05 and 0.03), so the small deltas the budget asks for are extrapolated with an
# exponent of 1 from the smallest measured delta, which errs towards fewer false alarms.
ADWIN_RATE_PER_BLOCK = 8.77e-05
ADWIN_RATE_EXPONENT = 1.0

# Detector streams per monitored feature (location, spread or novelty, missing rate), for the
# model outputs (score, prediction, latency: two each) and for performance (error: two,
# estimated: two, label coverage: one, recall per class: one each), used to split the budget.
STREAMS_PER_FEATURE = 3
OUTPUT_STREAMS = 6
PERFORMANCE_STREAMS = 5
DETECTORS_PER_STREAM = 2
BINARY_DETECTORS = 2  # river's DDM and HDDM_A on the 0/1 error stream


@dataclass(frozen=True)
class Thresholds:
    """Detector parameters derived for one model."""

    page_hinkley_threshold: float
    page_hinkley_delta: float
    adwin_delta: float
    detectors: int  # how many detectors the budget was split among
    per_detector_rate: float  # target false alarms per event, each


def detectors_for(monitored_features: int, recall_classes: int = 0) -> int:
    """Number of detectors a model with this many features runs (the budget's divisor)."""
    streams = (
        STREAMS_PER_FEATURE * monitored_features
        + OUTPUT_STREAMS
        + PERFORMANCE_STREAMS
        + recall_classes
    )
    return DETECTORS_PER_STREAM * streams + BINARY_DETECTORS


def page_hinkley_threshold(arl0: float, delta: float) -> float:
    """Threshold giving an average run length `arl0` on uniform input with slack `delta`."""
    slope = 2.0 * delta / UNIFORM_VARIANCE
    return max(1.0, (math.log(arl0) - _intercept(delta)) / slope)


def adwin_delta(rate_per_event: float, block_events: int) -> float:
    """ADWIN delta giving `rate_per_event` false alarms per event with blocks of `block_events`."""
    per_block = rate_per_event * block_events
    return min(1.0, (per_block / ADWIN_RATE_PER_BLOCK) ** (1.0 / ADWIN_RATE_EXPONENT))


def thresholds_for_budget(
    budget_per_million: float, detectors: int, page_hinkley_delta: float, block_events: int
) -> Thresholds:
    """Split `budget_per_million` evenly over `detectors` and derive each detector's threshold."""
    if budget_per_million <= 0 or detectors <= 0:
        raise ValueError("budget and detector count must be positive")
    per_detector = budget_per_million / 1e6 / detectors
    return Thresholds(
        page_hinkley_threshold=page_hinkley_threshold(1.0 / per_detector, page_hinkley_delta),
        page_hinkley_delta=page_hinkley_delta,
        adwin_delta=adwin_delta(per_detector, block_events),
        detectors=detectors,
        per_detector_rate=per_detector,
    )


def _intercept(delta: float) -> float:
    """Intercept for `delta`: interpolated between the fitted deltas, clamped at the ends."""
    known = sorted(PAGE_HINKLEY_INTERCEPTS.items())
    if delta <= known[0][0]:
        return known[0][1]
    for (d0, b0), (d1, b1) in itertools.pairwise(known):
        if delta <= d1:
            return b0 + (b1 - b0) * (delta - d0) / (d1 - d0)
    return known[-1][1]
