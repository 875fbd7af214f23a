"""This period against the last (pure; no I/O): each monitor's values over a reference period and
a current one, compared as the live detector compares a signal with its reference.

The reference period's values are fitted with the live references (`NumericReference`,
`CategoricalReference`, with the model's `reference_bins` and `max_categories`), and both
periods' values are mapped through that fit to the PIT statistics the live detectors watch:
location (u; mass moving up or down), spread (|2u - 1|; mass moving to or from the tails) for
numbers, novelty for categories. Under no change each statistic has the same mean in both
periods; the test is a two-sample z-test of the current mean against the reference's, with the
reference's own variance (in-sample, as the live monitor's levels; floored like them):

    z = (mean_current - mean_reference) / sqrt(variance_reference * (1/n + 1/m))

For continuous values u is Uniform(0, 1): mean 1/2, variance 1/12. Ties (counts, rates,
categories) take the middle of their mass (mid-PIT): the mean stays 1/2 and the variance, which
is the reference's own, is smaller, so the test keeps its level without being conservative.
Categories also get Pearson's chi-square test of the shares. The p-values of all tests of all
monitors are adjusted together (Holm: the chance of flagging any unchanged monitor stays below
alpha), and with labels each period's accuracy (classifiers) or MAE and RMSE (regressions) is
reported with a 95% interval and a two-sample test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.monitors.reference import CategoricalReference, NumericReference, spread_of
from detector.core.statistics import holm, means_p, normal_p, rates_p

MIN_VALUES = 30  # fewer values in a period than this: summaries only, no test
VARIANCE_FLOOR = 1e-4  # the live monitor's floor of a reference level's variance
MIN_EXPECTED = 5.0  # categories expected fewer times than this pool into '(other)' for chi-square
SHOWN_SHARE = (
    0.01  # categories outside the reference are listed when this common in the current period
)
TOP_CHANGES = 5  # categories whose share moved most, listed per categorical monitor
Z_95 = 1.959963984540054
ERROR = "performance.error"
OTHER = "(other)"


@dataclass
class Values:
    """One monitor's values over one period: numbers (numeric and rate signals) or category
    counts; `kind` is the live signal type ('numeric', 'rate' or 'categorical')."""

    kind: str
    chunks: list[np.ndarray] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, values: Sequence[Any] | np.ndarray) -> None:
        if self.kind == "categorical":
            self.counts.update(values)
        else:
            self.chunks.append(np.asarray(values, dtype=np.float64))

    def numbers(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.empty(0)

    def __len__(self) -> int:
        if self.kind == "categorical":
            return sum(self.counts.values())
        return sum(map(len, self.chunks))


@dataclass(frozen=True)
class Fit:
    """How a model's references are learned (its `reference_bins` and `max_categories`)."""

    reference_bins: int
    max_categories: int


@dataclass
class Tested:
    """One test of one monitor: a PIT statistic's mean, or the shares of its categories."""

    __test__ = False  # not a pytest class

    statistic: str  # location, spread, novelty, or shares (chi-square)
    current: float  # the statistic over the current period (chi-square: its value)
    expected: float  # its mean over the reference period (chi-square: its degrees of freedom)
    shift: float  # in standard errors (chi-square: none, NaN)
    p: float
    adjusted: float = math.nan  # Holm-adjusted over every test of the comparison


@dataclass
class MonitorComparison:
    model: str
    monitor: str
    kind: str
    reference: dict[str, Any]  # summary of each period's raw values
    current: dict[str, Any]
    tests: list[Tested]
    # category -> shares (reference, current)
    shares: dict[str, tuple[float, float]] = field(default_factory=dict)
    top_changes: list[str] = field(default_factory=list)  # categories whose share moved most
    untested: str = ""  # why there is no test

    @property
    def adjusted(self) -> float:
        """The monitor's smallest adjusted p-value (1 without tests)."""
        return min((t.adjusted for t in self.tests), default=1.0)

    def significant(self, alpha: float) -> bool:
        return self.adjusted < alpha


@dataclass(frozen=True)
class PeriodScore:
    """A model's performance over one period: accuracy (classifiers) or MAE (regressions) with a
    95% interval, RMSE for regressions, from `labelled` joined labels."""

    labelled: int
    value: float
    low: float
    high: float
    rmse: float | None = None


@dataclass(frozen=True)
class Performance:
    model: str
    measure: str  # accuracy or mae
    reference: PeriodScore
    current: PeriodScore
    p: float  # two-sample test of the difference


@dataclass
class Comparison:
    monitors: list[MonitorComparison]
    performance: list[Performance]
    alpha: float

    @property
    def tests(self) -> int:
        return sum(len(m.tests) for m in self.monitors)

    def flagged(self) -> list[MonitorComparison]:
        return [m for m in self.monitors if m.significant(self.alpha)]


Periods = dict[tuple[str, str], Values]  # (model, monitor) -> values


def compare(reference: Periods, current: Periods, fits: dict[str, Fit], alpha: float) -> Comparison:
    """Every monitor seen in either period, most significant first; `fits`: per model."""
    monitors = [
        _monitor(
            model,
            monitor,
            reference.get((model, monitor)),
            current.get((model, monitor)),
            fits[model],
        )
        for model, monitor in sorted(reference.keys() | current.keys())
    ]
    _holm([test for m in monitors for test in m.tests])
    monitors.sort(key=lambda m: (m.adjusted, -_largest_shift(m), m.model, m.monitor))
    performance = [
        score
        for model, monitor in sorted(reference.keys() & current.keys())
        if monitor == ERROR
        and (score := _performance(model, reference[(model, monitor)], current[(model, monitor)]))
        is not None
    ]
    return Comparison(monitors, performance, alpha)


def _monitor(
    model: str, monitor: str, reference: Values | None, current: Values | None, fit: Fit
) -> MonitorComparison:
    kind = (reference or current or Values("numeric")).kind
    reference = reference or Values(kind)
    current = current or Values(kind)
    compared = MonitorComparison(
        model, monitor, kind, _summary(reference, fit), _summary(current, fit), []
    )
    compared.untested = _untestable(reference, current)
    if compared.untested:
        return compared
    if kind == "categorical":
        _categorical(compared, reference.counts, current.counts, fit)
    else:
        _numeric(compared, reference.numbers(), current.numbers(), fit)
    return compared


def _untestable(reference: Values, current: Values) -> str:
    """Why the periods' values cannot be compared ('' if they can)."""
    if not (len(reference) and len(current)):
        return "one period only"
    if reference.kind != current.kind:
        return f"{reference.kind}, then {current.kind}"
    if min(len(reference), len(current)) < MIN_VALUES:
        return "too few values"
    return ""


def _summary(values: Values, fit: Fit) -> dict[str, Any]:
    """Raw values of one period: count, then mean and quantiles, rate, or categories."""
    count = len(values)
    if not count:
        return {"count": 0}
    if values.kind == "categorical":
        return {"count": count, "categories": len(values.counts)}
    numbers = values.numbers()
    if values.kind == "rate":
        return {"count": count, "rate": float(numbers.mean())}
    return {"count": count, **NumericReference.fit(numbers, fit.reference_bins).summary}


def _numeric(
    compared: MonitorComparison, reference: np.ndarray, current: np.ndarray, fit: Fit
) -> None:
    if reference.min() == reference.max() == current.min() == current.max():
        compared.untested = "one value throughout"  # a test of it has no power: p = 1 always
        return
    fitted = NumericReference.fit(reference, fit.reference_bins)
    before, after = fitted.transform(reference), fitted.transform(current)
    compared.tests.append(_mean_test("location", before, after))
    if compared.kind == "numeric":
        compared.tests.append(_mean_test("spread", spread_of(before), spread_of(after)))


def _mean_test(statistic: str, reference: np.ndarray, current: np.ndarray) -> Tested:
    return _z_test(
        statistic,
        float(current.mean()),
        float(reference.mean()),
        float(reference.var()),
        len(reference),
        len(current),
    )


def _z_test(
    statistic: str, current: float, expected: float, variance: float, m: int, n: int
) -> Tested:
    """Two-sample z-test of a mean under no change (the reference's variance in both periods)."""
    error = math.sqrt(max(variance, VARIANCE_FLOOR) * (1.0 / m + 1.0 / n))
    shift = (current - expected) / error
    return Tested(statistic, current, expected, shift, normal_p(shift))


def _categorical(
    compared: MonitorComparison, reference: Counter[str], current: Counter[str], fit: Fit
) -> None:
    """Location and novelty as the live monitor computes them, the chi-square test of the shares,
    each period's shares and the categories that moved most."""
    if len(reference | current) == 1:
        compared.untested = "one value throughout"
        return
    fitted = CategoricalReference.fit(list(reference.elements()), fit.max_categories)
    index, other = fitted.index(), fitted.other_code
    novelty = NumericReference.binary(fitted.novelty_rate)

    def statistics(counts: Counter[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        names = list(counts)
        codes = np.array([index.get(name, other) for name in names], dtype=np.int64)
        weights = np.array([counts[name] for name in names], dtype=np.float64)
        return (
            fitted.transform(codes),
            novelty.transform((codes == other).astype(np.float64)),
            weights,
        )

    before_location, _, before_weights = statistics(reference)
    after_location, after_novelty, after_weights = statistics(current)
    m, n = int(before_weights.sum()), int(after_weights.sum())
    location_mean = _weighted_mean(before_location, before_weights)
    compared.tests.append(
        _z_test(
            "location",
            _weighted_mean(after_location, after_weights),
            location_mean,
            _weighted_mean((before_location - location_mean) ** 2, before_weights),
            m,
            n,
        )
    )
    # Novelty is judged against the reference's expected rate of new values (its 'other' mass or
    # the Good-Turing estimate), as live: a reference period holds none of its own new values.
    # Without new values expected or seen it has no power (p = 1 always): not tested.
    rate = fitted.novelty_rate
    novel_values = novelty.transform(np.array([0.0, 1.0]))
    novel_mean = float(np.dot([1.0 - rate, rate], novel_values))
    current_novelty = _weighted_mean(after_novelty, after_weights)
    if rate > 0 or current_novelty != novel_mean:
        compared.tests.append(
            _z_test(
                "novelty",
                current_novelty,
                novel_mean,
                float(np.dot([1.0 - rate, rate], (novel_values - novel_mean) ** 2)),
                m,
                n,
            )
        )
    compared.tests.append(_shares_test(reference, current, fitted.categories))
    compared.shares = _shares(reference, current, fitted.categories)
    compared.top_changes = sorted(
        (name for name in compared.shares if name != OTHER),
        key=lambda name: (-abs(compared.shares[name][1] - compared.shares[name][0]), name),
    )[:TOP_CHANGES]


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.dot(values, weights) / weights.sum())


def _shares_test(reference: Counter[str], current: Counter[str], kept: Sequence[str]) -> Tested:
    """Pearson's chi-square test of homogeneity over the reference's kept categories and
    '(other)'; categories expected fewer than MIN_EXPECTED times in a period pool into '(other)'."""
    m, n = sum(reference.values()), sum(current.values())
    table = np.array(
        [
            [reference[name] for name in kept] + [m - sum(reference[name] for name in kept)],
            [current[name] for name in kept] + [n - sum(current[name] for name in kept)],
        ],
        dtype=np.float64,
    )
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    small = expected.min(axis=0) < MIN_EXPECTED
    small[-1] = False
    table = np.column_stack((table[:, ~small][:, :-1], table[:, small].sum(axis=1) + table[:, -1]))
    table = table[:, table.sum(axis=0) > 0]
    degrees = table.shape[1] - 1
    if degrees < 1:
        return Tested("shares", 0.0, 0.0, math.nan, 1.0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return Tested("shares", statistic, float(degrees), math.nan, chi_square_p(statistic, degrees))


def _shares(
    reference: Counter[str], current: Counter[str], kept: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Shares in each period of the reference's kept categories, of the current period's others
    that reach SHOWN_SHARE, and of all the rest as '(other)'."""
    m, n = sum(reference.values()), sum(current.values())
    shown = list(kept) + sorted(
        (
            name
            for name, count in current.items()
            if name not in set(kept) and count >= SHOWN_SHARE * n
        ),
        key=lambda name: (-current[name], name),
    )
    shares = {name: (reference[name] / m, current[name] / n) for name in shown}
    rest = (1.0 - sum(r for r, _ in shares.values()), 1.0 - sum(c for _, c in shares.values()))
    if max(rest) > 1e-12:
        shares[OTHER] = (max(rest[0], 0.0), max(rest[1], 0.0))
    return shares


def _largest_shift(compared: MonitorComparison) -> float:
    return max((abs(t.shift) for t in compared.tests if not math.isnan(t.shift)), default=0.0)


def _holm(tests: list[Tested]) -> None:
    """Holm's step-down adjustment, in place: adjusted p-values, monotone in the raw ones."""
    for test, adjusted in zip(tests, holm([test.p for test in tests])):
        test.adjusted = adjusted


def _performance(model: str, reference: Values, current: Values) -> Performance | None:
    """Accuracy (classifiers: the error stream is 0/1, a rate) or MAE and RMSE (regressions: the
    absolute errors) of each period, and the test of their difference."""
    if _untestable(reference, current):
        return None
    before, after = reference.numbers(), current.numbers()
    if reference.kind == "rate":
        first, second = _accuracy(before), _accuracy(after)
        p = rates_p(first.value, len(before), second.value, len(after))
        return Performance(model, "accuracy", first, second, p)
    first, second = _mae(before), _mae(after)
    p = means_p(
        first.value, float(before.var()), len(before), second.value, float(after.var()), len(after)
    )
    return Performance(model, "mae", first, second, p)


def _accuracy(errors: np.ndarray) -> PeriodScore:
    """Accuracy with its Wilson 95% interval."""
    n, accuracy = len(errors), 1.0 - float(errors.mean())
    centre = (accuracy + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
    half = (
        Z_95 * math.sqrt(accuracy * (1 - accuracy) / n + Z_95**2 / (4 * n * n)) / (1 + Z_95**2 / n)
    )
    return PeriodScore(n, accuracy, centre - half, centre + half)


def _mae(errors: np.ndarray) -> PeriodScore:
    n, mae = len(errors), float(errors.mean())
    half = Z_95 * float(errors.std()) / math.sqrt(n)
    return PeriodScore(n, mae, mae - half, mae + half, float(np.sqrt(np.mean(errors**2))))


def chi_square_p(statistic: float, degrees: int) -> float:
    """Upper tail of the chi-square distribution (closed form of the regularized gamma function
    for whole and half-whole shapes, summed in logarithms so large statistics do not overflow)."""
    if statistic <= 0:
        return 1.0
    h = statistic / 2.0
    if degrees % 2 == 0:
        terms = (i * math.log(h) - math.lgamma(i + 1) - h for i in range(degrees // 2))
        return min(1.0, sum(map(math.exp, terms)))
    terms = ((i + 0.5) * math.log(h) - math.lgamma(i + 1.5) - h for i in range(degrees // 2))
    return min(1.0, math.erfc(math.sqrt(h)) + sum(map(math.exp, terms)))
