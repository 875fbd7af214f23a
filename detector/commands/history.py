"""What `streamdrift backtest` and `streamdrift periods` share around reading history and writing
their outputs: a progress bar on stderr, and one line (exit 1) when history cannot be read or an
output cannot be written."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from detector.backtest.progress import ProgressBar
from detector.backtest.sources import SourceError

EXIT_OK, EXIT_FAILURE = 0, 1

Read = TypeVar("Read")


class Unreadable(Exception):
    """History could not be read; the line saying why has been printed."""


def read_with_progress(
    command: str, label: str, read: Callable[[ProgressBar], Read], messages: Callable[[Read], int]
) -> Read:
    """`read(progress)` under a progress bar labelled `label`, finished with the count
    `messages(result)`; raises Unreadable after printing `streamdrift <command>: <reason>`. Any
    error clears the bar first, so that its line stands alone."""
    progress = ProgressBar(sys.stderr, label)
    try:
        result = read(progress)
    except BaseException as exc:
        progress.clear()
        if not isinstance(exc, SourceError):
            raise
        print(f"streamdrift {command}: {exc}", file=sys.stderr)
        raise Unreadable from exc
    progress.finish(messages(result))
    return result


def cannot_write(command: str, exc: OSError) -> int:
    """Say which output could not be written, and why; the exit status for it."""
    print(f"streamdrift {command}: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
    return EXIT_FAILURE
