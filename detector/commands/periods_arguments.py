"""The `streamdrift periods` options (argparse only: cheap to import for `--help`)."""

from __future__ import annotations

import argparse

from detector.commands.backtest_arguments import add_history_arguments

DEFAULT_ALPHA = 0.01

DESCRIPTION = """Compare two periods of the same history, for example last month (the reference) with this
week (the current period), with the live detector's own code and monitor names: per monitor,
the shift of each PIT statistic in standard errors with its p-value (adjusted over all monitors,
Holm), raw summaries and category shares of each period, and with labels each period's accuracy
(classifiers) or MAE and RMSE (regressions). History is a file of events filtered by event time
(`ts`), or the configured input topics between two message times, read by a throwaway consumer
that never joins the live group and commits nothing. A period is FROM..TO, from FROM (included)
to TO (excluded), each RFC 3339 with a zone or epoch milliseconds."""

EPILOG = """examples:
  streamdrift periods --config live.toml --reference 2025-11-01T00:00:00Z..2025-12-01T00:00:00Z --current 2025-12-01T00:00:00Z..2025-12-08T00:00:00Z
  streamdrift periods --file events.jsonl --labels-file labels.jsonl --reference 1764064800000..1764064900000 --current 1764064900000..1764065000000 --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the sub-command (`--config` is added with the other commands')."""
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    periods = parser.add_argument_group("periods")
    periods.add_argument(
        "--reference", required=True, metavar="FROM..TO", help="the period compared against"
    )
    periods.add_argument(
        "--current", required=True, metavar="FROM..TO", help="the period compared with it"
    )
    add_history_arguments(parser)
    output = parser.add_argument_group("output (a text table on stdout by default)")
    output.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        metavar="P",
        help="flag monitors whose Holm-adjusted p-value is below P (default: %(default)s)",
    )
    output.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of text"
    )
    output.add_argument(
        "--report", metavar="FILE", help="write the comparison as one self-contained HTML page"
    )
