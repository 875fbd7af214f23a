"""The statistics of `streamdrift periods` (pure): PIT tests against a reference period, shares,
Holm's adjustment, performance, and the chi-square tail against scipy's."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from detector.backtest.compare import (
    Fit,
    Tested,
    Values,
    _holm,
    chi_square_p,
    compare,
    normal_p,
)

FIT = Fit(reference_bins=128, max_categories=64)


def numbers(kind: str, values: np.ndarray) -> Values:
    found = Values(kind)
    found.add(values)
    return found


def categories(counts: dict[str, int]) -> Values:
    found = Values("categorical")
    found.add(list(Counter(counts).elements()))
    return found


@pytest.mark.parametrize("degrees", [1, 2, 3, 5, 8, 31, 64])
@pytest.mark.parametrize("statistic", [0.01, 0.7, 3.0, 12.5, 80.0, 400.0, 5000.0])
def test_chi_square_tail_matches_scipy(degrees: int, statistic: float) -> None:
    expected = float(stats.chi2.sf(statistic, degrees))
    assert chi_square_p(statistic, degrees) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_normal_p_matches_scipy() -> None:
    for z in (0.0, 1.0, -1.96, 5.0, 30.0):
        assert normal_p(z) == pytest.approx(2 * float(stats.norm.sf(abs(z))), rel=1e-12)


def test_holm_adjusts_step_down_and_monotone() -> None:
    tests = [Tested("location", 0.0, 0.0, 0.0, p) for p in (0.01, 0.04, 0.03, 0.5)]
    _holm(tests)
    assert [t.adjusted for t in tests] == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_a_shift_is_found_and_no_change_is_not() -> None:
    rng = np.random.default_rng(1)
    reference = {
        ("m", "feature.x"): numbers("numeric", rng.normal(0, 1, 5000)),
        ("m", "feature.y"): numbers("numeric", rng.poisson(3, 5000).astype(float)),
        ("m", "quality.missing.x"): numbers("rate", (rng.random(5000) < 0.05).astype(float)),
    }
    current = {
        ("m", "feature.x"): numbers("numeric", rng.normal(0.2, 1, 4000)),
        ("m", "feature.y"): numbers("numeric", rng.poisson(3, 4000).astype(float)),
        ("m", "quality.missing.x"): numbers("rate", (rng.random(4000) < 0.05).astype(float)),
    }

    result = compare(reference, current, {"m": FIT}, alpha=0.01)

    assert [m.monitor for m in result.flagged()] == ["feature.x"]
    assert result.monitors[0].monitor == "feature.x"  # most significant first
    location = result.monitors[0].tests[0]
    # A 0.2 sd shift of a normal moves the mean PIT to Phi(0.2/sqrt(2)) = 0.556.
    assert location.current == pytest.approx(0.556, abs=0.01)
    assert location.expected == pytest.approx(0.5, abs=1e-3)
    assert location.shift > 5
    y = next(m for m in result.monitors if m.monitor == "feature.y")
    assert 0 < y.tests[0].expected < 1 and y.adjusted > 0.01  # discrete values: mid-PIT


def test_null_p_values_are_uniform_enough() -> None:
    """Under no change the location test's p-values are not too small too often (its level)."""
    rng = np.random.default_rng(2)
    small = 0
    for _ in range(200):
        reference = {("m", "feature.x"): numbers("numeric", rng.exponential(1.0, 500))}
        current = {("m", "feature.x"): numbers("numeric", rng.exponential(1.0, 300))}
        tests = compare(reference, current, {"m": FIT}, 0.01).monitors[0].tests
        small += tests[0].p < 0.05
    assert small <= 20  # 10 expected at the 5% level


def test_categories_shares_novelty_and_chi_square() -> None:
    reference = {("m", "feature.c"): categories({"a": 500, "b": 300, "c": 200})}
    current = {("m", "feature.c"): categories({"a": 300, "b": 300, "c": 200, "new": 200})}

    (compared,) = compare(reference, current, {"m": FIT}, 0.01).monitors

    assert compared.shares["a"] == pytest.approx((0.5, 0.3))
    assert compared.shares["new"] == pytest.approx((0.0, 0.2))
    assert compared.top_changes[:2] == ["a", "new"]
    by_name = {t.statistic: t for t in compared.tests}
    assert by_name["novelty"].shift > 10 and by_name["shares"].p < 1e-20
    assert by_name["shares"].expected == 3  # a, b, c and (other)
    assert compared.significant(0.01)


def test_accuracy_and_mae_of_each_period() -> None:
    rng = np.random.default_rng(3)
    reference = {
        ("c", "performance.error"): numbers("rate", (rng.random(4000) < 0.1).astype(float)),
        ("r", "performance.error"): numbers("numeric", np.abs(rng.normal(0, 1, 4000))),
    }
    current = {
        ("c", "performance.error"): numbers("rate", (rng.random(4000) < 0.2).astype(float)),
        ("r", "performance.error"): numbers("numeric", np.abs(rng.normal(0, 1, 4000))),
    }

    classifier, regression = compare(reference, current, {"c": FIT, "r": FIT}, 0.01).performance

    assert classifier.measure == "accuracy" and classifier.p < 1e-20
    for score, true in ((classifier.reference, 0.9), (classifier.current, 0.8)):
        assert score.labelled == 4000 and score.value == pytest.approx(true, abs=0.02)
        assert score.low < score.value < score.high
        # Wilson's interval is about +-1.96 standard errors at this size.
        half = 1.96 * math.sqrt(score.value * (1 - score.value) / 4000)
        assert (score.high - score.low) / 2 == pytest.approx(half, rel=0.01)
    assert regression.measure == "mae" and regression.p > 0.01
    mae = regression.reference
    assert mae.value == pytest.approx(math.sqrt(2 / math.pi), abs=0.03)  # E|N(0, 1)|
    assert (mae.high - mae.low) / 2 == pytest.approx(
        1.96 * math.sqrt(1 - 2 / math.pi) / math.sqrt(4000), rel=0.05
    )
    assert mae.rmse == pytest.approx(1.0, abs=0.05)


def test_a_monitor_in_one_period_only_is_summarised_without_test() -> None:
    reference = {("m", "feature.x"): numbers("numeric", np.arange(100.0))}
    current = {("m", "feature.z"): numbers("numeric", np.arange(100.0))}

    result = compare(reference, current, {"m": FIT}, 0.01)

    assert [(m.monitor, m.tests, m.current["count"], m.untested) for m in result.monitors] == [
        ("feature.x", [], 0, "one period only"),
        ("feature.z", [], 100, "one period only"),
    ]


def test_a_value_constant_in_both_periods_is_not_a_test() -> None:
    """It could never be significant, but would weigh on every other monitor's adjustment."""
    reference = {
        ("m", "quality.missing.x"): numbers("rate", np.zeros(1000)),
        ("m", "feature.c"): categories({"a": 1000}),
        ("m", "feature.d"): categories({"a": 600, "b": 400}),
    }
    current = {
        ("m", "quality.missing.x"): numbers("rate", np.zeros(800)),
        ("m", "feature.c"): categories({"a": 800}),
        ("m", "feature.d"): categories({"a": 500, "b": 300}),
    }

    result = compare(reference, current, {"m": FIT}, 0.01)

    tested = {m.monitor: [t.statistic for t in m.tests] for m in result.monitors}
    assert tested == {
        "quality.missing.x": [],
        "feature.c": [],
        "feature.d": ["location", "shares"],  # no new category expected nor seen: no novelty test
    }
    assert result.tests == 2


def test_a_feature_whose_kind_changed_is_summarised_without_test() -> None:
    reference = {("m", "feature.x"): numbers("numeric", np.arange(100.0))}
    current = {("m", "feature.x"): categories({"a": 60, "b": 40})}

    (compared,) = compare(reference, current, {"m": FIT}, 0.01).monitors

    assert compared.tests == [] and compared.untested == "numeric, then categorical"
