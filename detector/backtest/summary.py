"""The backtest's results as text for a person and as JSON for programs (pure; no I/O)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from detector.backtest.replay import Fired, Replayed, Run
from detector.backtest.score import Score
from detector.core.alerts import describe, describe_model_event


@dataclass
class Results:
    """Everything the outputs are made of."""

    replayed: Replayed
    source: str
    scores: dict[str, Score | None]  # per run name; None without ground truth

    def score(self, run: Run) -> Score | None:
        return self.scores.get(run.name)


def ordered(run: Run) -> list[Fired]:
    """Alerts grouped per monitor, in the order they fired."""
    return sorted(
        run.fired,
        key=lambda f: (
            f.alert.model,
            f.alert.monitor,
            f.position if f.position is not None else -1,
            f.alert.offset,
        ),
    )


def to_json(results: Results) -> dict[str, Any]:
    replayed = results.replayed
    first = replayed.runs[0]
    return {
        "source": results.source,
        "messages": replayed.messages,
        "events_by_topic": _by_topic(first),
        "invalid": {f"{topic}/{reason}": n for (topic, reason), n in sorted(first.invalid.items())},
        "predictions_by_model": dict(sorted(replayed.timeline.predictions.items())),
        "seconds": round(replayed.seconds, 3),
        "events_per_second": round(replayed.events_per_second, 1),
        "batch_events": replayed.batch_events,
        "runs": [
            {
                "name": run.name,
                "config": run.config,
                "group_id": run.group,
                "alerts": [
                    {"position": f.position, "cloudevent": f.alert.cloudevent(run.group)}
                    for f in run.fired
                ],  # as they fired
                "model_events": [
                    {"position": p.position, "cloudevent": p.event.cloudevent(run.group)}
                    for p in run.placed
                ],  # deployments and comparisons of versions, as published
                "score": score.to_json() if (score := results.score(run)) is not None else None,
            }
            for run in replayed.runs
        ],
    }


def to_text(results: Results) -> str:
    replayed = results.replayed
    first = replayed.runs[0]
    topics = ", ".join(f"{n:,} on {topic}" for topic, n in _by_topic(first).items())
    lines = [
        f"replayed {replayed.messages:,} messages ({topics}) from {results.source} "
        f"in {replayed.seconds:.1f}s: {replayed.events_per_second:,.0f} events/s"
    ]
    if first.invalid:
        reasons = ", ".join(f"{reason} {n}" for (_, reason), n in first.invalid.most_common())
        lines.append(
            f"invalid messages (dead-lettered live): {sum(first.invalid.values()):,} ({reasons})"
        )
    for run in replayed.runs:
        lines += ["", f"== {title(run)} ==", *_alerts(run)]
        score = results.score(run)
        if score is not None:
            lines += _truth(score)
    if len(replayed.runs) > 1:
        lines += ["", *comparison(results)]
    return "\n".join(lines) + "\n"


def title(run: Run) -> str:
    return f"{run.name}: {run.config or 'defaults and environment'} (group {run.group})"


def alert_row(run: Run, fired: Fired) -> dict[str, str]:
    """One alert as display strings (shared by the text and the HTML report)."""
    alert, event = fired.alert, fired.alert.cloudevent(run.group)
    detected = alert.kind == "detected"
    return {
        "monitor": f"{alert.model}/{alert.monitor}",
        "alert": alert.kind.upper(),
        "at event": "-" if fired.position is None else str(fired.position),
        "source": f"{alert.topic}[{alert.partition}]@{alert.offset}",
        "time": event["time"],
        "severity": alert.severity,
        "statistic/detector": f"{alert.statistic}/{alert.detector}",
        "evidence": "; ".join(filter(None, (describe(event["data"]), moved(alert.evidence))))
        if detected
        else alert.reason,
        "id": event["id"],
    }


def moved(evidence: dict[str, Any]) -> str:
    """The categories a categorical drift moved, e.g. 'tablet 0% -> 9% (new), phone 70% -> 61%'
    (before the change, or the reference when nothing is known before it); '' for other drifts."""
    parts = []
    for change in evidence.get("top_changes", []):
        before = change["before"] if change["before"] is not None else change["reference"]
        start = "?" if before is None else f"{before:.0%}"
        parts.append(
            f"{change['category']} {start} -> {change['after']:.0%}"
            + (" (new)" if change["new"] else "")
        )
    return ", ".join(parts)


def _alerts(run: Run) -> list[str]:
    kinds = Counter(f.alert.kind for f in run.fired)
    lines = [f"alerts: {kinds['detected']} detected, {kinds['resolved']} resolved"]
    if run.fired:
        widths = {
            "monitor": 30,
            "alert": 8,
            "at event": 9,
            "source": 26,
            "time": 24,
            "severity": 8,
            "statistic/detector": 24,
            "evidence": 0,
        }
        lines.append(
            "  "
            + " ".join(
                _cell(name, width, name == "at event") for name, width in widths.items()
            ).rstrip()
        )
        for fired in ordered(run):
            row = alert_row(run, fired)
            lines.append(
                "  "
                + " ".join(
                    _cell(row[name], width, name == "at event") for name, width in widths.items()
                ).rstrip()
            )
    for placed in run.placed:
        event = placed.event
        at = "-" if placed.position is None else placed.position
        what = describe_model_event(event.type, event.cloudevent(run.group)["data"])
        lines.append(f"  {event.model}: at event {at}, {what}")
    return lines


def _signed(value: int | None) -> str:
    return "" if value is None else f"{value:+d}"


def start_error_text(score: Score) -> str:
    """How far the detections' estimates of where each change began fell from the truth."""
    quantiles = score.start_error_quantiles
    if quantiles is None:
        return ""
    return f", start estimated within {quantiles[0]:,.0f} events (median; 90%: {quantiles[1]:,.0f})"


def _truth(score: Score) -> list[str]:
    lines = [
        f"ground truth: {len(score.outcomes)} change(s); a detection counts from the start to the end of the change "
        f"(or its ramp) + {score.max_delay:,} events",
        f"  {'model':<10} {'change':<40} {'expected monitor':<28} {'detected at':>11} {'delay':>7} {'start err':>9}  by",
    ]
    for outcome in score.outcomes:
        change, detection = outcome.change, outcome.detection
        row = f"  {change.model:<10} {change.describe():<40} {change.monitor:<28}"
        if detection is None:
            lines.append(f"{row} {'MISSED':>11}")
        else:
            lines.append(
                f"{row} {detection.position:>11} {outcome.delay:>+7} {_signed(outcome.start_error):>9}  {detection.statistic}/{detection.detector}"
            )
    mean_delay = (
        f", mean delay {score.mean_delay:,.0f} events" if score.mean_delay is not None else ""
    ) + start_error_text(score)
    lines.append(
        f"  detected {score.detected} of {len(score.outcomes)}{mean_delay}; {_false_alarms(score)}"
    )
    for detection in score.false_alarms:
        lines.append(
            f"  false alarm: {detection.model}/{detection.monitor} at event {detection.position} ({detection.statistic}/{detection.detector})"
        )
    if score.consequences:
        effects = sorted({f"{d.model}/{d.monitor}" for d, _ in score.consequences})
        lines.append(f"  also alerted as consequences of a change: {', '.join(effects)}")
    if score.unscored:
        lines.append(
            f"  not scored (no ground truth for the model): {len(score.unscored)} detection(s)"
        )
    return lines


def _false_alarms(score: Score) -> str:
    between = score.mean_events_between_false_alarms
    if between is None:
        return f"no false alarm in {score.stationary_events:,} events outside the changes"
    return f"{len(score.false_alarms)} false alarm(s), one per {between:,.0f} events outside the changes"


def comparison(results: Results) -> list[str]:
    """The runs side by side (see `comparison_rows`)."""
    runs = results.replayed.runs
    width, label_width = 24, 44
    header = "".join(
        f"{run.name + ': ' + (run.config or 'defaults'):>{width}.{width}}" for run in runs
    )
    lines = ["== side by side ==", f"  {'':<{label_width}}{header}"]
    for label, values in comparison_rows(results):
        lines.append(
            f"  {label[:label_width]:<{label_width}}"
            + "".join(f"{value:>{width}}" for value in values)
        )
    return lines


def comparison_rows(results: Results) -> list[tuple[str, list[str]]]:
    """(label, one value per run): alerts; with ground truth, detections, delays and false
    alarms; then the detections of each monitor (shared by the text and the HTML report)."""
    runs = results.replayed.runs
    counts = [Counter(f.alert.kind for f in run.fired) for run in runs]
    rows = [("alerts detected / resolved", [f"{c['detected']} / {c['resolved']}" for c in counts])]
    scores = [score for run in runs if (score := results.score(run)) is not None]
    if len(scores) == len(runs):
        rows += [
            ("changes detected", [f"{s.detected} / {len(s.outcomes)}" for s in scores]),
            ("mean delay (events)", [_number(s.mean_delay) for s in scores]),
            ("false alarms", [str(len(s.false_alarms)) for s in scores]),
            ("mean events between false alarms", [_between(s) for s in scores]),
        ]
        for i, outcome in enumerate(scores[0].outcomes):
            delays = [s.outcomes[i].delay for s in scores]
            rows.append(
                (
                    f"delay: {outcome.change.model} {outcome.change.describe()}",
                    ["MISSED" if d is None else f"{d:+d}" for d in delays],
                )
            )
    per_monitor = [
        Counter(
            f"{f.alert.model}/{f.alert.monitor}" for f in run.fired if f.alert.kind == "detected"
        )
        for run in runs
    ]
    for monitor in sorted(set().union(*per_monitor)):
        rows.append((f"detections: {monitor}", [str(c[monitor]) for c in per_monitor]))
    return rows


def _between(score: Score) -> str:
    between = score.mean_events_between_false_alarms
    return f"none in {score.stationary_events:,}" if between is None else f"{between:,.0f}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _by_topic(run: Run) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (topic, _), n in run.events.items():
        counts[topic] += n
    for (topic, _), n in run.invalid.items():
        counts[topic] += n
    return dict(counts.most_common())


def _cell(text: str, width: int, right: bool) -> str:
    return f"{text:>{width}}" if right else f"{text:<{width}}"
