"""The `streamdrift backtest` options (argparse only: cheap to import for `--help`)."""

from __future__ import annotations

import argparse

from detector.core.events import parse_timestamp

DEFAULT_MAX_DELAY = 5000

DESCRIPTION = """Replay history through a candidate configuration with the live detector's own code, and
report every alert that would have fired, per monitor, with its evidence. History is a file of
events (JSON lines, as `python -m producers simulate --out` writes) or the configured input topics,
read by a throwaway consumer that never joins the live group and commits nothing. With ground
truth (--truth), detection delays, missed changes and false alarms are scored."""

EPILOG = """examples:
  streamdrift backtest --file events.jsonl --labels-file labels.jsonl --truth truth.json --config candidate.toml
  streamdrift backtest --config live.toml --from-time 2025-11-01T00:00:00Z --to-time 2025-12-01T00:00:00Z --report month.html
  streamdrift backtest --file events.jsonl --config a.toml --compare b.toml --truth truth.json --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the sub-command (`--config` is added with the other commands')."""
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--compare",
        metavar="FILE",
        help="a second TOML config replayed over the same events, side by side",
    )
    source = add_history_arguments(parser)
    start = source.add_mutually_exclusive_group()
    start.add_argument(
        "--from-offset",
        type=_offset,
        metavar="N",
        help="start every partition at offset N (default: the beginning)",
    )
    start.add_argument(
        "--from-time",
        type=time_argument,
        metavar="T",
        help="start at the first message at or after T (RFC 3339 or epoch ms)",
    )
    end = source.add_mutually_exclusive_group()
    end.add_argument(
        "--to-offset",
        type=_offset,
        metavar="N",
        help="stop every partition before offset N (default: its end when reached)",
    )
    end.add_argument(
        "--to-time",
        type=time_argument,
        metavar="T",
        help="stop at the first message at or after T (RFC 3339 or epoch ms)",
    )
    truth = parser.add_argument_group("ground truth")
    truth.add_argument(
        "--truth",
        action="append",
        default=[],
        metavar="FILE",
        help="known change points, as the simulator's --truth writes them (repeatable)",
    )
    truth.add_argument(
        "--max-delay",
        type=_offset,
        default=DEFAULT_MAX_DELAY,
        metavar="EVENTS",
        help="a detection counts up to this many events after a change ends, or its ramp (default: %(default)s)",
    )
    output = parser.add_argument_group("output (a text summary on stdout by default)")
    output.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of text"
    )
    output.add_argument(
        "--alerts-out",
        metavar="FILE",
        help="write the alerts as JSON lines of CloudEvents (with --compare, FILE-B too)",
    )
    output.add_argument(
        "--report",
        metavar="FILE",
        help="write one self-contained HTML report with pictures (needs streamdrift[report])",
    )
    output.add_argument(
        "--png",
        metavar="DIR",
        help="write each picture as a PNG file into DIR (needs streamdrift[report])",
    )


def add_history_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Where history comes from (a file, else the topics), as backtest and periods read it."""
    source = parser.add_argument_group("history (a file, else the configured topics)")
    source.add_argument(
        "--file",
        metavar="FILE",
        help="events as JSON lines (label events, with a 'label' field, may be among them)",
    )
    source.add_argument(
        "--labels-file",
        metavar="FILE",
        help="label events as JSON lines, merged with --file by event time",
    )
    source.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="the cluster (default: $STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS)",
    )
    source.add_argument(
        "--partitions",
        type=partitions_argument,
        metavar="LIST",
        help="only these partitions, e.g. 0,2 (default: all)",
    )
    return source


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def time_argument(text: str) -> int:
    """RFC 3339 with a zone, or epoch milliseconds, as epoch milliseconds."""
    moment = parse_timestamp(int(text) if text.isdigit() else text)
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither RFC 3339 with a zone (2025-11-25T10:00:00Z) nor epoch milliseconds"
        )
    return moment


def partitions_argument(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected partition numbers separated by commas, e.g. 0,2, not {text!r}"
        ) from None
