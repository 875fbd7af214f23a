"""The backtest as one self-contained HTML page: the summary tables, every alert with its
evidence, and a picture of each monitor that alerted or should have (PNG, embedded as base64);
and `streamdrift periods` as another (tables only: no matplotlib needed). No script and no
external resource, so it opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence

from detector.backtest.period_summary import (
    PERIOD_COLUMNS,
    PeriodsResult,
    moved_shares,
    p_value,
    period_rows,
    score_text,
)
from detector.backtest.plots import signal_png
from detector.backtest.replay import Run
from detector.backtest.score import Change, Score
from detector.backtest.summary import (
    Results,
    alert_row,
    comparison_rows,
    moved,
    ordered,
    start_error_text,
    title,
)

Picture = tuple[str, str, str]  # (run name, model, monitor)

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.missed, .false { color: #b00020; font-weight: 600; } .meta { color: #555; }
figure { margin: 16px 0; } figure img { max-width: 100%; border: 1px solid #eee; } figcaption { color: #555; font-size: 13px; }
"""


def pictures_wanted(run: Run, changes: Sequence[Change]) -> list[tuple[str, str]]:
    """(model, monitor) of every monitor that alerted, and of every change's expected monitor."""
    wanted = {(f.alert.model, f.alert.monitor) for f in run.fired}
    wanted |= {(change.model, change.monitor) for change in changes}
    return sorted(wanted)


def draw(results: Results, changes: Sequence[Change]) -> dict[Picture, bytes]:
    """Every run's pictures, as PNG bytes."""
    counts = results.replayed.timeline.predictions
    drawn: dict[Picture, bytes] = {}
    for run in results.replayed.runs:
        for model, monitor in pictures_wanted(run, changes):
            fired = [f for f in run.fired if f.alert.model == model and f.alert.monitor == monitor]
            own = [
                change
                for change in changes
                if change.model == model and monitor in (change.monitor, *change.side_effects)
            ]
            first = next(
                (
                    f
                    for f in fired
                    if f.alert.kind == "detected" and "top_changes" in f.alert.evidence
                ),
                None,
            )
            caption = f"{run.name}: {model}/{monitor}" + (
                f"\n{moved(first.alert.evidence)}" if first else ""
            )
            drawn[(run.name, model, monitor)] = signal_png(
                caption, run.trace.of(model, monitor), fired, own, counts.get(model, 0)
            )
    return drawn


def file_name(picture: Picture) -> str:
    """A safe PNG file name for a picture."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(picture)) + ".png"


def html_report(results: Results, pictures: dict[Picture, bytes]) -> str:
    replayed = results.replayed
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">',
        "<title>streamdrift backtest</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>streamdrift backtest</h1>",
        f'<p class="meta">{_e(results.source)}: {replayed.messages:,} messages replayed in {replayed.seconds:.1f}s '
        f"({replayed.events_per_second:,.0f} events/s). Positions are counted in each model's prediction events.</p>",
    ]
    if len(replayed.runs) > 1:
        columns = ["", *(_e(title(run)) for run in replayed.runs)]
        rows = [[_e(label), *map(_e, values)] for label, values in comparison_rows(results)]
        parts += [
            "<h2>Side by side</h2>",
            _table(columns, rows, numeric=set(range(1, len(columns)))),
        ]
    for run in replayed.runs:
        parts += _run_section(run, results.score(run), pictures)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _run_section(run: Run, score: Score | None, pictures: dict[Picture, bytes]) -> list[str]:
    detected = sum(f.alert.kind == "detected" for f in run.fired)
    parts = [
        f"<h2>{_e(title(run))}</h2>",
        f"<p>{detected} detected, {len(run.fired) - detected} resolved.</p>",
    ]
    if score is not None:
        parts += _truth_section(score)
    if run.fired:
        rows = [alert_row(run, fired) for fired in ordered(run)]
        names = [
            "monitor",
            "alert",
            "at event",
            "source",
            "time",
            "severity",
            "statistic/detector",
            "evidence",
        ]
        parts += [
            "<h3>Alerts, per monitor</h3>",
            _table(names, [[_e(row[n]) for n in names] for row in rows], numeric={2}),
        ]
    for (name, model, monitor), png in sorted(pictures.items()):
        if name == run.name:
            data = base64.b64encode(png).decode()
            parts.append(
                f'<figure><img alt="{_e(model)}/{_e(monitor)} over time" src="data:image/png;base64,{data}">'
                f"<figcaption>{_e(model)}/{_e(monitor)}: window means with their reference bands; "
                "red: detected, green dashed: resolved, dotted: true change (shaded while it lasts or ramps).</figcaption></figure>"
            )
    return parts


def _truth_section(score: Score) -> list[str]:
    rows = []
    for outcome in score.outcomes:
        change, detection = outcome.change, outcome.detection
        found = (
            ['<span class="missed">MISSED</span>', "", "", ""]
            if detection is None
            else [
                str(detection.position),
                f"{outcome.delay:+d}",
                "" if outcome.start_error is None else f"{outcome.start_error:+d}",
                _e(f"{detection.statistic}/{detection.detector}"),
            ]
        )
        rows.append([_e(change.model), _e(change.describe()), _e(change.monitor), *found])
    between = score.mean_events_between_false_alarms
    summary = (
        f"Detected {score.detected} of {len(score.outcomes)} changes"
        + (f", mean delay {score.mean_delay:,.0f} events" if score.mean_delay is not None else "")
        + start_error_text(score)
        + f". False alarms: {len(score.false_alarms)}"
        + (
            f", one per {between:,.0f} events outside the changes"
            if between
            else f" in {score.stationary_events:,} events outside the changes"
        )
        + f". A detection counts up to {score.max_delay:,} events after a change ends (or its ramp)."
    )
    parts = [
        "<h3>Against the ground truth</h3>",
        _table(
            ["model", "change", "expected monitor", "detected at", "delay", "start error", "by"],
            rows,
            numeric={3, 4, 5},
        ),
        f"<p>{summary}</p>",
    ]
    if score.false_alarms:
        items = "".join(
            f'<li class="false">{_e(d.model)}/{_e(d.monitor)} at event {d.position} ({_e(d.statistic)}/{_e(d.detector)})</li>'
            for d in score.false_alarms
        )
        parts.append(f"<p>False alarms:</p><ul>{items}</ul>")
    if score.consequences:
        effects = ", ".join(sorted({f"{d.model}/{d.monitor}" for d, _ in score.consequences}))
        parts.append(f"<p>Also alerted, as consequences of a change: {_e(effects)}.</p>")
    return parts


def _table(
    header: Iterable[str], rows: Iterable[Sequence[str]], numeric: set[int] | None = None
) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def periods_report(result: PeriodsResult) -> str:
    """`streamdrift periods` as one self-contained HTML page: the periods, every monitor's tests
    (most significant first; flagged rows marked), category shares and performance."""
    comparison = result.comparison
    alpha = comparison.alpha
    periods = [
        [
            _e(period.name),
            _e(period.describe()),
            f"{collected.messages:,}",
            _e(
                ", ".join(
                    f"{model} {count:,}"
                    for model, count in collected.predictions(result.predictions_topic).items()
                )
            ),
        ]
        for period, collected in result.periods
    ]
    rows = [
        [_e(cell) for cell in row] for m in comparison.monitors for row in period_rows(m, alpha)
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">',
        "<title>streamdrift periods</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>streamdrift periods: this period against the reference</h1>",
        f'<p class="meta">{_e(result.source)}</p>',
        _table(["period", "from .. to", "messages", "predictions"], periods, numeric={2}),
        "<h2>Monitors, most significant first</h2>",
        f"<p>{len(comparison.flagged())} of {len(comparison.monitors)} monitors moved: Holm-adjusted "
        f"p &lt; {alpha:g} over {comparison.tests} tests (flagged *). PIT means are 0.5 under no "
        "change; the shift is in standard errors.</p>",
        _table(PERIOD_COLUMNS, rows, numeric=set(range(4, len(PERIOD_COLUMNS)))),
    ]
    categorical = [m for m in comparison.monitors if m.shares]
    if categorical:
        parts.append("<h2>Category shares</h2>")
        for m in categorical:
            shares = [
                [_e(name), f"{before:.1%}", f"{after:.1%}", f"{after - before:+.1%}"]
                for name, (before, after) in m.shares.items()
            ]
            parts += [
                f"<h3>{_e(m.model)}/{_e(m.monitor)}</h3>",
                f"<p>Moved most: {_e(moved_shares(m))}.</p>",
                _table(["category", "reference", "current", "change"], shares, numeric={1, 2, 3}),
            ]
    if comparison.performance:
        parts += [
            "<h2>Performance</h2>",
            _table(
                ["model", "measure", "reference", "current", "p (difference)"],
                [
                    [
                        _e(p.model),
                        _e(p.measure),
                        _e(score_text(p.reference)),
                        _e(score_text(p.current)),
                        _e(p_value(p.p)),
                    ]
                    for p in comparison.performance
                ],
            ),
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
