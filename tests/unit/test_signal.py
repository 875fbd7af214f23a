"""A signal's detection and lifecycle with the default settings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detector.core.calibration import detectors_for, thresholds_for_budget
from detector.core.monitors.model import signal_config
from detector.core.monitors.signal import SignalConfig, SignalKind, SignalMonitor, SourceRefs, Transition
from detector.settings import DetectionSettings

RNG = np.random.default_rng(11)


def default_config(**overrides: object) -> SignalConfig:
    detection = DetectionSettings(**overrides)
    thresholds = thresholds_for_budget(
        detection.false_alarm_budget_per_million, detectors_for(100), detection.page_hinkley_delta, detection.block_events
    )
    return signal_config(detection, thresholds)


def observe(kind: SignalKind, values: np.ndarray | Sequence[str], batch: int = 1000, config: SignalConfig | None = None) -> list[tuple[int, Transition]]:
    """Feed values in batches; return (absolute position, transition) pairs."""
    monitor = SignalMonitor("feature.x", kind, config or default_config())
    found = []
    for start in range(0, len(values), batch):
        chunk = values[start : start + batch]
        refs = SourceRefs(("predictions",), 0, np.zeros(len(chunk), dtype=np.int64), np.arange(start, start + len(chunk)))
        found += [(start + t.index, t) for t in monitor.update(chunk, refs)]
    return found


def shifted(draw, n: int, at: int, shift: float) -> np.ndarray:
    values = draw(n)
    values[at:] += shift
    return values


@pytest.mark.parametrize("location,scale", [(120.0, 45.0), (0.5, 0.08)], ids=["dollars", "unit_interval"])
def test_same_defaults_catch_a_one_sd_shift_on_any_scale(location: float, scale: float) -> None:
    values = shifted(lambda n: RNG.normal(location, scale, n), 12_000, 6000, scale)
    found = observe(SignalKind.numeric, values)
    assert [t.kind for _, t in found] == ["detected"]
    position, transition = found[0]
    assert 6000 <= position < 6500
    assert transition.evidence["after"]["mean"] > transition.evidence["before"]["mean"] + 0.5 * scale


def test_catches_a_change_of_category_mix() -> None:
    before = RNG.choice(["a", "b", "c", "d"], 6000, p=[0.5, 0.3, 0.15, 0.05]).tolist()
    after = RNG.choice(["a", "b", "c", "d"], 6000, p=[0.25, 0.25, 0.25, 0.25]).tolist()
    found = observe(SignalKind.categorical, before + after)
    assert found and found[0][1].kind == "detected"
    assert 6000 <= found[0][0] < 7000


def test_catches_new_categories() -> None:
    before = RNG.choice(["a", "b"], 6000).tolist()
    after = [f"new-{i}" if i % 4 == 0 else v for i, v in enumerate(RNG.choice(["a", "b"], 6000).tolist())]
    found = observe(SignalKind.categorical, before + after)
    assert found and 6000 <= found[0][0] < 6600


def test_catches_a_jump_of_a_missing_rate() -> None:
    missing = (RNG.random(12_000) < np.where(np.arange(12_000) < 6000, 0.02, 0.2)).astype(float)
    found = observe(SignalKind.rate, missing)
    assert found and 6000 <= found[0][0] < 6500


def test_catches_a_spread_change() -> None:
    values = RNG.normal(0, 1, 16_000)
    values[8000:] *= 1.5
    found = observe(SignalKind.numeric, values)
    assert found and found[0][1].statistic == "spread" and 8000 <= found[0][0] < 9500


STATIONARY = {
    "normal": lambda n: RNG.normal(0, 1, n),
    "lognormal": lambda n: RNG.lognormal(0, 1, n),
    "heavy_tailed": lambda n: RNG.standard_t(2, n),
    "counts": lambda n: RNG.poisson(4, n).astype(float),
    "bimodal": lambda n: np.where(RNG.random(n) < 0.3, RNG.normal(-4, 1, n), RNG.normal(2, 0.5, n)),
}


@pytest.mark.parametrize("family", STATIONARY)
def test_quiet_on_a_long_stationary_stream(family: str) -> None:
    assert observe(SignalKind.numeric, STATIONARY[family](300_000), batch=5000) == []


def test_quiet_on_a_long_stationary_categorical_stream() -> None:
    values = RNG.choice([f"c{i}" for i in range(30)], 200_000, p=np.arange(30, 0, -1) / 465).tolist()
    assert observe(SignalKind.categorical, values, batch=5000) == []


def test_one_persistent_change_gives_one_alert() -> None:
    values = shifted(lambda n: RNG.normal(0, 1, n), 18_000, 3000, 2.0)
    found = observe(SignalKind.numeric, values, config=default_config(rebaseline_after_events=0))
    assert [t.kind for _, t in found] == ["detected"]


def test_resolves_when_the_signal_returns_to_its_reference() -> None:
    values = RNG.normal(0, 1, 20_000)
    values[5000:9000] += 1.5
    found = observe(SignalKind.numeric, values)
    kinds = [(t.kind, t.reason) for _, t in found]
    assert kinds == [("detected", ""), ("resolved", "returned_to_reference")]
    assert 9000 < found[1][0] < 11_000


def test_rebaselines_a_drift_that_persists_then_watches_again() -> None:
    config = default_config(rebaseline_after_events=5000)
    values = RNG.normal(0, 1, 30_000)
    values[4000:] += 2.0
    values[20_000:] += 2.0
    found = observe(SignalKind.numeric, values, config=config)
    kinds = [(t.kind, t.reason) for _, t in found]
    assert kinds[:3] == [("detected", ""), ("resolved", "rebaselined"), ("detected", "")]
    assert found[1][0] - found[0][0] == 5000 - 1
    assert 20_000 <= found[2][0] < 20_500


def test_a_flap_inside_the_cooldown_raises_nothing() -> None:
    config = default_config(cooldown_events=20_000)
    values = RNG.normal(0, 1, 30_000)
    values[3000:6000] += 2.0
    values[12_000:15_000] += 2.0  # back and gone again within the cooldown of the first resolve
    found = observe(SignalKind.numeric, values, config=config)
    assert [t.kind for _, t in found] == ["detected", "resolved"]


def test_a_change_inside_the_cooldown_is_raised_when_the_cooldown_ends() -> None:
    config = default_config(cooldown_events=4000)
    values = RNG.normal(0, 1, 30_000)
    values[3000:6000] += 2.0
    values[9000:] += 2.0  # a new, lasting change while the first one's cooldown runs
    found = observe(SignalKind.numeric, values, config=config)
    assert [t.kind for _, t in found] == ["detected", "resolved", "detected"]
    resolved_at = found[1][0]
    assert found[2][0] >= resolved_at + 4000 and found[2][0] < resolved_at + 4000 + 100
    assert found[2][1].evidence["window"]["events"] > 4000 - (9000 - resolved_at)  # the change began before


def test_nothing_fires_during_warm_up() -> None:
    values = RNG.normal(0, 1, 5000)
    values[500:] += 3.0
    assert observe(SignalKind.numeric, values, config=default_config(warmup_events=4000)) == []


@pytest.mark.parametrize("batch", [1, 97, 1000, 7777])
def test_decisions_and_evidence_do_not_depend_on_batch_boundaries(batch: int) -> None:
    rng = np.random.default_rng(99)
    values = rng.normal(0, 1, 24_000)
    values[4000:9000] += 1.0
    values[15_000:] *= 2.0
    categories = rng.choice(["a", "b", "c"], 24_000, p=[0.6, 0.3, 0.1]).tolist()
    categories[12_000:] = rng.choice(["a", "b", "c"], 12_000, p=[0.2, 0.3, 0.5]).tolist()
    for kind, stream in ((SignalKind.numeric, values), (SignalKind.categorical, categories)):
        whole = [(p, t.kind, t.statistic, t.detector, t.reason, t.evidence) for p, t in observe(kind, stream, batch=24_000)]
        assert whole
        assert [(p, t.kind, t.statistic, t.detector, t.reason, t.evidence) for p, t in observe(kind, stream, batch=batch)] == whole


def test_evidence_names_the_offset_range() -> None:
    values = shifted(lambda n: RNG.normal(0, 1, n), 8000, 4000, 2.0)
    position, transition = observe(SignalKind.numeric, values)[0]
    window = transition.evidence["window"]
    assert window["to"]["offset"] == position
    assert window["from"]["offset"] <= position
    assert window["from"]["offset"] >= 3900
    assert transition.observations == position + 1
