"""PIT references: uniform positions under the reference, for every kind of data."""

from __future__ import annotations

import numpy as np
import pytest

from detector.core.monitors.reference import CategoricalReference, NumericReference, spread_of

RNG = np.random.default_rng(5)
FAMILIES = {
    "normal": lambda n: RNG.normal(0, 1, n),
    "dollars": lambda n: RNG.lognormal(3.5, 0.8, n),
    "heavy_tailed": lambda n: RNG.standard_t(2, n),
    "bimodal": lambda n: np.where(RNG.random(n) < 0.5, RNG.normal(-3, 1, n), RNG.normal(3, 0.5, n)),
    "counts": lambda n: RNG.poisson(3, n).astype(float),
    "zero_inflated": lambda n: np.where(RNG.random(n) < 0.4, 0.0, RNG.exponential(5, n)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_positions_have_mean_one_half_and_at_most_uniform_variance(family: str) -> None:
    draw = FAMILIES[family]
    reference = NumericReference.fit(draw(5000), bins=128)
    u = reference.transform(draw(200_000))
    assert u.min() >= 0 and u.max() <= 1
    assert abs(u.mean() - 0.5) < 0.02
    assert u.var() <= 1 / 12 + 0.005


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [10, 5000])
def test_positions_equal_np_interp_whether_or_not_the_batch_is_sorted_first(
    family: str, size: int
) -> None:
    reference = NumericReference.fit(FAMILIES[family](5000), bins=128)
    x = FAMILIES[family](size)
    xp, fp = reference._interpolation
    assert np.array_equal(reference.transform(x), np.interp(x, xp, fp))


def test_continuous_positions_are_close_to_uniform() -> None:
    reference = NumericReference.fit(RNG.normal(size=20_000), bins=256)
    u = reference.transform(RNG.normal(size=100_000))
    deciles = np.histogram(u, bins=10, range=(0, 1))[0] / len(u)
    assert np.all(np.abs(deciles - 0.1) < 0.01)


def test_transform_is_monotone_and_maps_outside_values_to_the_ends() -> None:
    reference = NumericReference.fit(np.arange(1000, dtype=float), bins=32)
    x = np.linspace(-100, 1100, 5000)
    u = reference.transform(x)
    assert np.all(np.diff(u) >= 0)
    assert u[0] == 0.0 and u[-1] == 1.0


def test_point_masses_get_the_middle_of_their_mass() -> None:
    reference = NumericReference.fit(np.array([0.0] * 30 + [1.0] * 70), bins=128)
    assert reference.transform(np.array([0.0, 1.0])).tolist() == pytest.approx([0.15, 0.65])
    binary = NumericReference.binary(0.0)
    assert binary.transform(np.array([0.0, 1.0])).tolist() == [0.5, 1.0]


@pytest.mark.parametrize("family", ["normal", "counts", "zero_inflated"])
def test_the_statistics_over_a_cell_are_those_of_every_point_in_it_averaged(family: str) -> None:
    """`mean_over` integrates the CDF exactly: it matches a dense average of the positions and
    of their spread over each interval, across point masses and across the median."""
    reference = NumericReference.fit(FAMILIES[family](5000), bins=128)
    low = np.concatenate((np.quantile(reference.values, [0.1, 0.45, 0.5, 0.9]), [-1e3, 1e3]))
    high = low + np.array([0.2, 1.0, 3.0, 0.01, 1.0, 1.0])
    location, spread = reference.mean_over(low, high)
    for i, (a, b) in enumerate(zip(low, high, strict=True)):
        u = reference.transform(np.linspace(a, b, 200_001))
        assert location[i] == pytest.approx(u.mean(), abs=1e-5)
        assert spread[i] == pytest.approx(spread_of(u).mean(), abs=1e-5)
    masses = NumericReference.fit(np.array([0.0] * 30 + [1.0] * 70), bins=128)
    location, _ = masses.mean_over(np.array([-0.5, 0.5]), np.array([0.5, 1.5]))
    assert location.tolist() == pytest.approx([0.15, 0.65])  # a mass's cell: its middle


def test_scale_free_the_same_positions_for_dollars_and_cents() -> None:
    dollars = RNG.lognormal(3, 1, 3000)
    a = NumericReference.fit(dollars, bins=128).transform(dollars[:500])
    b = NumericReference.fit(dollars * 100, bins=128).transform(dollars[:500] * 100)
    assert np.allclose(a, b)


def test_categories_most_frequent_first_and_unseen_at_the_top() -> None:
    sample = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    reference = CategoricalReference.fit(sample, max_categories=10)
    assert reference.categories == ("a", "b", "c")
    index = reference.index()
    codes = np.array([index["a"], index["b"], index["c"], reference.other_code])
    assert reference.transform(codes).tolist() == pytest.approx([0.25, 0.65, 0.9, 1.0])


def test_categories_beyond_the_cap_pool_as_other() -> None:
    sample = [f"c{i % 40}" for i in range(4000)]
    reference = CategoricalReference.fit(sample, max_categories=8)
    assert len(reference.categories) == 8
    assert reference.novelty_rate == pytest.approx(32 / 40)
    shares = reference.shares()
    assert shares["(other)"] == pytest.approx(0.8)


def test_state_round_trip() -> None:
    reference = NumericReference.fit(RNG.normal(size=1000), bins=64)
    again = NumericReference.from_state(reference.to_state())
    x = RNG.normal(size=100)
    assert np.array_equal(reference.transform(x), again.transform(x))
    categorical = CategoricalReference.fit(["x", "y", "y"], 4)
    assert CategoricalReference.from_state(categorical.to_state()).categories == ("y", "x")
