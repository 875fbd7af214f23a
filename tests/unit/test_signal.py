"""A signal's detection and lifecycle with the default settings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson
import pytest

from detector.core.calibration import detectors_for, thresholds_for_budget
from detector.core.monitors.columns import SourceRefs
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.lifecycle import Transition
from detector.core.monitors.model import signal_config
from detector.core.monitors.signal import SignalMonitor
from detector.core.monitors.signal_type import SignalType
from detector.settings import DetectionSettings

RNG = np.random.default_rng(11)


def default_config(**overrides: object) -> SignalConfig:
    detection = DetectionSettings(**overrides)
    thresholds = thresholds_for_budget(
        detection.false_alarm_budget_per_million,
        detectors_for(100),
        detection.page_hinkley_delta,
        detection.block_events,
    )
    return signal_config(detection, thresholds)


def observe(
    signal_type: SignalType,
    values: np.ndarray | Sequence[str],
    batch: int = 1000,
    config: SignalConfig | None = None,
) -> list[tuple[int, Transition]]:
    """Feed values in batches; return (absolute position, transition) pairs."""
    monitor = SignalMonitor("feature.x", signal_type, config or default_config())
    found = []
    for start in range(0, len(values), batch):
        chunk = values[start : start + batch]
        refs = SourceRefs(
            ("predictions",),
            0,
            np.zeros(len(chunk), dtype=np.int64),
            np.arange(start, start + len(chunk)),
        )
        found += [(start + t.index, t) for t in monitor.update(chunk, refs)]
    return found


def shifted(draw, n: int, at: int, shift: float) -> np.ndarray:
    values = draw(n)
    values[at:] += shift
    return values


@pytest.mark.parametrize(
    "location,scale", [(120.0, 45.0), (0.5, 0.08)], ids=["dollars", "unit_interval"]
)
def test_same_defaults_catch_a_one_sd_shift_on_any_scale(location: float, scale: float) -> None:
    values = shifted(lambda n: RNG.normal(location, scale, n), 12_000, 6000, scale)
    found = observe(SignalType.numeric, values)
    assert [t.kind for _, t in found] == ["detected"]
    position, transition = found[0]
    assert 6000 <= position < 6500
    assert (
        transition.evidence["after"]["mean"] > transition.evidence["before"]["mean"] + 0.5 * scale
    )


def test_catches_a_change_of_category_mix() -> None:
    before = RNG.choice(["a", "b", "c", "d"], 6000, p=[0.5, 0.3, 0.15, 0.05]).tolist()
    after = RNG.choice(["a", "b", "c", "d"], 6000, p=[0.25, 0.25, 0.25, 0.25]).tolist()
    found = observe(SignalType.categorical, before + after)
    assert found and found[0][1].kind == "detected"
    assert 6000 <= found[0][0] < 7000


def test_catches_new_categories() -> None:
    before = RNG.choice(["a", "b"], 6000).tolist()
    after = [
        f"new-{i}" if i % 4 == 0 else v for i, v in enumerate(RNG.choice(["a", "b"], 6000).tolist())
    ]
    found = observe(SignalType.categorical, before + after)
    assert found and 6000 <= found[0][0] < 6600


def test_catches_a_jump_of_a_missing_rate() -> None:
    missing = (RNG.random(12_000) < np.where(np.arange(12_000) < 6000, 0.02, 0.2)).astype(float)
    found = observe(SignalType.rate, missing)
    assert found and 6000 <= found[0][0] < 6500


def test_catches_a_spread_change() -> None:
    values = RNG.normal(0, 1, 16_000)
    values[8000:] *= 1.5
    found = observe(SignalType.numeric, values)
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
    assert observe(SignalType.numeric, STATIONARY[family](300_000), batch=5000) == []


def test_quiet_on_a_long_stationary_categorical_stream() -> None:
    values = RNG.choice(
        [f"c{i}" for i in range(30)], 200_000, p=np.arange(30, 0, -1) / 465
    ).tolist()
    assert observe(SignalType.categorical, values, batch=5000) == []


def test_one_persistent_change_gives_one_alert() -> None:
    values = shifted(lambda n: RNG.normal(0, 1, n), 18_000, 3000, 2.0)
    found = observe(SignalType.numeric, values, config=default_config(rebaseline_after_events=0))
    assert [t.kind for _, t in found] == ["detected"]


def test_resolves_when_the_signal_returns_to_its_reference() -> None:
    values = RNG.normal(0, 1, 20_000)
    values[5000:9000] += 1.5
    found = observe(SignalType.numeric, values)
    kinds = [(t.kind, t.reason) for _, t in found]
    assert kinds == [("detected", ""), ("resolved", "returned_to_reference")]
    assert 9000 < found[1][0] < 11_000


def test_rebaselines_a_drift_that_persists_then_watches_again() -> None:
    config = default_config(rebaseline_after_events=5000)
    values = RNG.normal(0, 1, 30_000)
    values[4000:] += 2.0
    values[20_000:] += 2.0
    found = observe(SignalType.numeric, values, config=config)
    kinds = [(t.kind, t.reason) for _, t in found]
    assert kinds[:3] == [("detected", ""), ("resolved", "rebaselined"), ("detected", "")]
    assert found[1][0] - found[0][0] == 5000 - 1
    assert 20_000 <= found[2][0] < 20_500


def test_a_flap_inside_the_cooldown_raises_nothing() -> None:
    config = default_config(cooldown_events=20_000)
    values = RNG.normal(0, 1, 30_000)
    values[3000:6000] += 2.0
    values[12_000:15_000] += 2.0  # back and gone again within the cooldown of the first resolve
    found = observe(SignalType.numeric, values, config=config)
    assert [t.kind for _, t in found] == ["detected", "resolved"]


def test_a_change_inside_the_cooldown_is_raised_when_the_cooldown_ends() -> None:
    config = default_config(cooldown_events=4000)
    values = RNG.normal(0, 1, 30_000)
    values[3000:6000] += 2.0
    values[9000:] += 2.0  # a new, lasting change while the first one's cooldown runs
    found = observe(SignalType.numeric, values, config=config)
    assert [t.kind for _, t in found] == ["detected", "resolved", "detected"]
    resolved_at = found[1][0]
    assert found[2][0] >= resolved_at + 4000 and found[2][0] < resolved_at + 4000 + 100
    # the change began before
    assert found[2][1].evidence["window"]["events"] > 4000 - (9000 - resolved_at)


def test_nothing_fires_during_warm_up() -> None:
    values = RNG.normal(0, 1, 5000)
    values[500:] += 3.0
    assert observe(SignalType.numeric, values, config=default_config(warmup_events=4000)) == []


@pytest.mark.parametrize("batch", [1, 97, 1000, 7777])
def test_decisions_and_evidence_do_not_depend_on_batch_boundaries(batch: int) -> None:
    rng = np.random.default_rng(99)
    values = rng.normal(0, 1, 24_000)
    values[4000:9000] += 1.0
    values[15_000:] *= 2.0
    categories = rng.choice(["a", "b", "c"], 24_000, p=[0.6, 0.3, 0.1]).tolist()
    categories[12_000:] = rng.choice(["a", "b", "c"], 12_000, p=[0.2, 0.3, 0.5]).tolist()
    for signal_type, stream in (
        (SignalType.numeric, values),
        (SignalType.categorical, categories),
    ):
        whole = [
            (p, t.kind, t.statistic, t.detector, t.reason, t.evidence)
            for p, t in observe(signal_type, stream, batch=24_000)
        ]
        assert whole
        assert [
            (p, t.kind, t.statistic, t.detector, t.reason, t.evidence)
            for p, t in observe(signal_type, stream, batch=batch)
        ] == whole


def test_evidence_names_the_offset_range() -> None:
    values = shifted(lambda n: RNG.normal(0, 1, n), 8000, 4000, 2.0)
    position, transition = observe(SignalType.numeric, values)[0]
    window = transition.evidence["window"]
    assert window["to"]["offset"] == position
    assert window["from"]["offset"] <= position
    assert window["from"]["offset"] >= 3900
    assert transition.observations == position + 1


def restored(monitor: SignalMonitor, config: SignalConfig) -> SignalMonitor:
    """The monitor through its checkpoint (JSON, as the state topic stores it)."""
    state = orjson.loads(orjson.dumps(monitor.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    return SignalMonitor.from_state(monitor.monitor, config, state)


def test_a_new_category_is_named_in_the_evidence_with_its_share() -> None:
    rng = np.random.default_rng(5)
    before = rng.choice(["phone", "desktop"], 6000, p=[0.7, 0.3]).tolist()
    after = rng.choice(["phone", "desktop", "tablet"], 6000, p=[0.6, 0.2, 0.2]).tolist()
    position, transition = observe(SignalType.categorical, before + after)[0]
    assert 6000 <= position < 6600
    changes = transition.evidence["top_changes"]
    tablet = next(c for c in changes if c["category"] == "tablet")
    assert tablet["new"] is True and tablet["reference"] == tablet["before"] == 0.0
    assert 0.1 < tablet["after"] < 0.3
    assert changes[0]["category"] == "tablet"  # the largest move
    assert "tablet" in transition.evidence["after"]["top_categories"]  # not pooled as '(other)'
    assert len(changes) <= 5 and not any(c["new"] for c in changes if c["category"] != "tablet")


def test_a_category_whose_share_moved_is_named_with_its_shares_before_and_after() -> None:
    rng = np.random.default_rng(6)
    before = rng.choice(["a", "b", "c"], 6000, p=[0.6, 0.3, 0.1]).tolist()
    after = rng.choice(["a", "b", "c"], 6000, p=[0.2, 0.3, 0.5]).tolist()
    _, transition = observe(SignalType.categorical, before + after)[0]
    changes = {c["category"]: c for c in transition.evidence["top_changes"]}
    assert {"a", "c"} <= set(changes)
    assert (
        changes["a"]["before"] > 0.5
        and changes["a"]["after"] < 0.4
        and 0.55 < changes["a"]["reference"] < 0.65
    )
    assert (
        changes["c"]["before"] < 0.2
        and changes["c"]["after"] > 0.3
        and changes["c"]["new"] is False
    )


@pytest.mark.parametrize("cut", [6050, 6400])
def test_named_new_categories_survive_a_restore_and_batch_boundaries(cut: int) -> None:
    """A long tail of new names (more than are named) and one new category that stays: the
    evidence is the same whether the stream is cut by a checkpoint or by batches."""
    rng = np.random.default_rng(8)
    values = rng.choice(["a", "b", "c"], 12_000, p=[0.5, 0.3, 0.2]).tolist()
    for i in range(6000, 12_000):
        values[i] = f"tail-{i}" if i % 50 == 0 else "new" if i % 4 == 0 else values[i]
    config = default_config()
    whole = [
        (p, t.kind, t.evidence) for p, t in observe(SignalType.categorical, values, batch=12_000)
    ]
    assert whole and any(c["category"] == "new" for c in whole[0][2]["top_changes"])
    assert (
        observe(SignalType.categorical, values, batch=97)
        and [(p, t.kind, t.evidence) for p, t in observe(SignalType.categorical, values, batch=97)]
        == whole
    )
    monitor, found = SignalMonitor("feature.x", SignalType.categorical, config), []
    for start, end in ((0, cut), (cut, 12_000)):
        chunk = values[start:end]
        refs = SourceRefs(
            ("predictions",), 0, np.zeros(len(chunk), dtype=np.int64), np.arange(start, end)
        )
        found += [(start + t.index, t.kind, t.evidence) for t in monitor.update(chunk, refs)]
        monitor = restored(monitor, config)
    assert found == whole
    assert monitor.categories is not None
    assert (
        len(monitor.categories.new_categories) == 16
        and monitor.categories.recent.nbytes == config.codes_kept * 2
    )


def test_a_new_category_is_named_even_after_many_rare_ones_came_and_went() -> None:
    """Rare strays take the named slots for a while; once absent for codes_kept values they give
    them up, so a new category that comes much later is still named."""
    rng = np.random.default_rng(9)
    values = rng.choice(["phone", "desktop"], 16_000, p=[0.7, 0.3]).tolist()
    for i in range(40):
        values[1500 + 25 * i] = f"stray-{i}"
    values[10_000:] = rng.choice(["phone", "desktop", "tablet"], 6000, p=[0.6, 0.2, 0.2]).tolist()
    whole = observe(SignalType.categorical, values, batch=16_000)
    detected = [t for _, t in whole if t.kind == "detected"]
    assert detected and detected[-1].evidence["top_changes"][0]["category"] == "tablet"
    assert detected[-1].evidence["top_changes"][0]["new"] is True
    for batch in (1, 97, 2016, 5003):  # forgetting falls on the same positions whatever the batches
        assert [
            (p, t.evidence) for p, t in observe(SignalType.categorical, values, batch=batch)
        ] == [(p, t.evidence) for p, t in whole]
