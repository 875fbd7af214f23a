"""`streamdrift periods` results as text and JSON (pure; no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detector.backtest.compare import (
    Comparison,
    MonitorComparison,
    Performance,
    PeriodScore,
    Tested,
)
from detector.backtest.periods import Collected, Period, rfc3339

SHARES_SHOWN = 5  # categories shown per monitor in the text (the JSON has them all)
PERIOD_COLUMNS = [
    "",
    "model",
    "monitor",
    "statistic",
    "reference",
    "current",
    "PIT mean",
    "expected",
    "shift",
    "p",
    "adjusted p",
]


@dataclass
class PeriodsResult:
    source: str
    periods: list[tuple[Period, Collected]]  # reference, then current
    predictions_topic: str
    comparison: Comparison


def to_json(result: PeriodsResult) -> dict[str, Any]:
    alpha = result.comparison.alpha
    return {
        "source": result.source,
        "periods": {
            period.name: {
                "from": rfc3339(period.from_ms),
                "to": rfc3339(period.to_ms),
                "from_ms": period.from_ms,
                "to_ms": period.to_ms,
                "messages": collected.messages,
                "predictions": collected.predictions(result.predictions_topic),
            }
            for period, collected in result.periods
        },
        "alpha": alpha,
        "correction": "holm",
        "tests": result.comparison.tests,
        "flagged": [f"{m.model}/{m.monitor}" for m in result.comparison.flagged()],
        "monitors": [
            {
                "model": m.model,
                "monitor": m.monitor,
                "kind": m.kind,
                "significant": m.significant(alpha),
                "adjusted_p": m.adjusted if m.tests else None,
                **({"untested": m.untested} if m.untested else {}),
                "reference": m.reference,
                "current": m.current,
                "tests": [_test_json(t) for t in m.tests],
                **(
                    {
                        "shares": {name: list(pair) for name, pair in m.shares.items()},
                        "top_changes": m.top_changes,
                    }
                    if m.kind == "categorical" and m.tests
                    else {}
                ),
            }
            for m in result.comparison.monitors
        ],
        "performance": [
            {
                "model": p.model,
                "measure": p.measure,
                "reference": vars(p.reference),
                "current": vars(p.current),
                "p": p.p,
            }
            for p in result.comparison.performance
        ],
    }


def _test_json(test: Tested) -> dict[str, Any]:
    if test.statistic == "shares":
        return {
            "statistic": "shares",
            "chi_square": test.current,
            "degrees_of_freedom": int(test.expected),
            "p": test.p,
            "adjusted_p": test.adjusted,
        }
    return {
        "statistic": test.statistic,
        "current": test.current,
        "expected": test.expected,
        "shift_se": test.shift,
        "p": test.p,
        "adjusted_p": test.adjusted,
    }


def to_text(result: PeriodsResult) -> str:
    comparison = result.comparison
    lines = [f"History: {result.source}"]
    for period, collected in result.periods:
        counts = ", ".join(
            f"{model} {count:,}"
            for model, count in collected.predictions(result.predictions_topic).items()
        )
        lines.append(
            f"{period.name.capitalize():<10} {period.describe()}: {collected.messages:,} messages; predictions: {counts or 'none'}"
        )
    flagged = comparison.flagged()
    lines += [
        "",
        f"{len(flagged)} of {len(comparison.monitors)} monitors moved (Holm-adjusted p < {comparison.alpha:g} "
        f"over {comparison.tests} tests, flagged *). PIT means are 0.5 under no change; shift in standard errors.",
        "",
    ]
    rows = [PERIOD_COLUMNS]
    for m in comparison.monitors:
        rows += period_rows(m, comparison.alpha)
    lines += _columns(rows, right=set(range(4, len(PERIOD_COLUMNS))))
    categorical = [m for m in comparison.monitors if m.shares]
    if categorical:
        lines += ["", "Category shares, reference -> current (the categories that moved most):"]
        lines += [f"  {m.model}/{m.monitor}: {moved_shares(m)}" for m in categorical]
    if comparison.performance:
        lines += ["", "Performance (95% intervals; p: two-sample test of the difference):"]
        lines += [f"  {_performance(p)}" for p in comparison.performance]
    return "\n".join(lines) + "\n"


def moved_shares(compared: MonitorComparison) -> str:
    return ", ".join(
        f"{name} {compared.shares[name][0]:.1%} -> {compared.shares[name][1]:.1%}"
        for name in compared.top_changes[:SHARES_SHOWN]
    )


def period_rows(m: MonitorComparison, alpha: float) -> list[list[str]]:
    flag = "*" if m.significant(alpha) else ""
    if not m.tests:
        return [
            [
                flag,
                m.model,
                m.monitor,
                f"({m.untested}: no test)",
                raw(m.reference, m.kind),
                raw(m.current, m.kind),
                *[""] * 5,
            ]
        ]
    rows = []
    for i, test in enumerate(m.tests):
        first = i == 0
        values = (
            [f"chi2 {test.current:,.1f}", f"df {int(test.expected)}", ""]
            if test.statistic == "shares"
            else [f"{test.current:.4f}", f"{test.expected:.4f}", f"{test.shift:+.1f}"]
        )
        rows.append(
            [
                flag if first else "",
                m.model if first else "",
                m.monitor if first else "",
                test.statistic,
                raw(m.reference, m.kind) if first else "",
                raw(m.current, m.kind) if first else "",
                *values,
                p_value(test.p),
                p_value(test.adjusted),
            ]
        )
    return rows


def raw(summary: dict[str, Any], kind: str) -> str:
    """A period's raw values in a few characters: mean, rate, or count of categories."""
    if not summary.get("count"):
        return "-"
    if kind == "categorical":
        return f"{summary['categories']} categories"
    if kind == "rate":
        return f"rate {summary['rate']:.4f}"
    return f"mean {summary['mean']:.4g}"


def p_value(p: float) -> str:
    if math.isnan(p):
        return ""
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def score_text(score: PeriodScore) -> str:
    """A period's accuracy or MAE with its 95% interval (and RMSE), and its labels."""
    rmse = f", RMSE {score.rmse:.4g}" if score.rmse is not None else ""
    return (
        f"{score.value:.4f} [{score.low:.4f}, {score.high:.4f}]{rmse} ({score.labelled:,} labelled)"
    )


def _performance(p: Performance) -> str:
    name = "accuracy" if p.measure == "accuracy" else "MAE"
    return (
        f"{p.model} {name}: {score_text(p.reference)} -> {score_text(p.current)}, p {p_value(p.p)}"
    )


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
