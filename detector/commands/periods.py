"""`streamdrift periods`: two periods of history → the live monitors' values → their comparison
as text, JSON and an HTML page.

Usage errors (bad, reversed, empty or overlapping periods, a period without events) exit 2 with
one line; history that cannot be read and outputs that cannot be written exit 1 with one line.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import orjson

from detector.backtest.compare import Fit, compare
from detector.backtest.files import FileSource
from detector.backtest.period_summary import PeriodsResult, to_json, to_text
from detector.backtest.periods import Collected, Period, Within, collect, label_grace_ms
from detector.backtest.progress import ProgressBar
from detector.backtest.sources import Source
from detector.backtest.topics import Range, TopicSource
from detector.commands.backtest import configured
from detector.commands.backtest_arguments import time_argument
from detector.commands.history import (
    EXIT_FAILURE,
    EXIT_OK,
    Unreadable,
    cannot_write,
    read_with_progress,
)
from detector.settings import ConfigError, Settings


def run(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, not {args.alpha}")
    reference, current = period("reference", args.reference), period("current", args.current)
    if reference.overlaps(current):
        raise ConfigError(
            f"--reference {reference.describe()} and --current {current.describe()} overlap"
        )
    settings = configured(args.config, args.bootstrap_servers)
    collected: list[tuple[Period, Collected]] = []
    description = ""
    for which in (reference, current):
        source = _source(args, settings, which)
        description = source.description
        try:
            found = read_with_progress(
                "periods", which.name, partial(_collect, source, settings, which), _messages
            )
        except Unreadable:
            return EXIT_FAILURE
        collected.append((which, found))
    models = {model for _, found in collected for model, _ in found.values}
    fits = {
        model: Fit(
            settings.detection_for(model).reference_bins,
            settings.detection_for(model).max_categories,
        )
        for model in models
    }
    comparison = compare(collected[0][1].values, collected[1][1].values, fits, args.alpha)
    result = PeriodsResult(description, collected, settings.topics.predictions, comparison)
    if args.report:
        from detector.backtest.report import periods_report

        try:
            Path(args.report).write_text(periods_report(result), encoding="utf-8")
        except OSError as exc:
            return cannot_write("periods", exc)
        print(f"report written to {args.report}", file=sys.stderr)
    sys.stdout.write(
        orjson.dumps(to_json(result), option=orjson.OPT_INDENT_2).decode() + "\n"
        if args.json
        else to_text(result)
    )
    return EXIT_OK


def _collect(source: Source, settings: Settings, which: Period, progress: ProgressBar) -> Collected:
    """The period's monitored values; a period without events is a usage error."""
    found = collect(source, settings, progress)
    if not found.events:
        raise ConfigError(
            f"no events in the {which.name} period {which.describe()} of {source.description}"
        )
    return found


def _messages(found: Collected) -> int:
    return found.messages


def period(name: str, text: str) -> Period:
    """A period from FROM..TO (FROM included, TO excluded)."""
    start, dots, end = text.partition("..")
    if not dots:
        raise ConfigError(
            f"--{name} {text!r}: expected FROM..TO, e.g. 2025-11-01T00:00:00Z..2025-12-01T00:00:00Z"
        )
    try:
        bounds = Period(name, time_argument(start.strip()), time_argument(end.strip()))
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"--{name}: {exc}") from None
    if bounds.to_ms <= bounds.from_ms:
        raise ConfigError(
            f"--{name} {text}: its end must be after its start (FROM is included, TO excluded)"
        )
    return bounds


def _source(args: argparse.Namespace, settings: Settings, which: Period) -> Source:
    """The period's history (and its labels' grace after it)."""
    grace = label_grace_ms(settings)
    if args.file:
        for option, value in (
            ("--partitions", args.partitions),
            ("--bootstrap-servers", args.bootstrap_servers),
        ):
            if value is not None:
                raise ConfigError(f"{option} applies to topics, not to --file")
        events = FileSource(
            settings, Path(args.file), Path(args.labels_file) if args.labels_file else None
        )
        return Within(events, which, settings.topics.labels, grace)
    if args.labels_file:
        raise ConfigError("--labels-file needs --file (topics bring their own labels topic)")
    # The reader seeks to the period by message time; Within drops messages stamped out of order,
    # and the predictions and features of the labels' grace.
    bounds = Range(
        from_time_ms=which.from_ms, to_time_ms=which.to_ms + grace, partitions=args.partitions
    )
    return Within(TopicSource(settings, bounds), which, settings.topics.labels, grace)
