"""The replay's progress bar on stderr: rewritten in place on a terminal, a plain line every few
seconds otherwise (logs, CI)."""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
TERMINAL_INTERVAL_S, PLAIN_INTERVAL_S = 0.2, 5.0


class ProgressBar:
    def __init__(self, out: TextIO, label: str = "backtest") -> None:
        self.out = out
        self.label = label
        self.terminal = out.isatty()
        self.started = self.shown = time.monotonic()

    def __call__(self, messages: int, fraction: float | None) -> None:
        now = time.monotonic()
        if now - self.shown < (TERMINAL_INTERVAL_S if self.terminal else PLAIN_INTERVAL_S):
            return
        self.shown = now
        self._show(self._format(messages, fraction, now - self.started))

    def finish(self, messages: int) -> None:
        self._show(self._format(messages, 1.0, time.monotonic() - self.started))
        self.out.write("\n" if self.terminal else "")
        self.out.flush()

    def clear(self) -> None:
        """Make way for a message (the status line of a terminal is wiped)."""
        if self.terminal:
            self.out.write("\r\033[K")
            self.out.flush()

    def _format(self, messages: int, fraction: float | None, seconds: float) -> str:
        rate = messages / seconds if seconds > 0 else 0.0
        counts = f"{messages:>11,} events  {rate:>9,.0f}/s  {seconds:6.1f}s"
        if fraction is None:
            return f"{self.label}  {counts}"
        filled = int(fraction * WIDTH)
        eta = seconds * (1 - fraction) / fraction if fraction > 0 else 0.0
        return f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%}  {counts}  ETA {eta:4.0f}s"

    def _show(self, line: str) -> None:
        if self.terminal:
            self.out.write("\r\033[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()
