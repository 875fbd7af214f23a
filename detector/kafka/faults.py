"""Fault injection for crash tests: exit abruptly at a named point of the loop, or slow the
restore down (settings.fault_injection)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from detector.settings import FaultPoint, FaultSettings

log = logging.getLogger(__name__)

FAULT_EXIT_CODE = 86


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self.point = settings.point
        self.after = settings.after
        self.restore_delay_s = settings.restore_delay_ms / 1000
        self.reached_count = 0

    def restore_record_read(self) -> None:
        """Called after each state record read on restore: waits restore_delay_ms (0 by default)."""
        if self.restore_delay_s:
            time.sleep(self.restore_delay_s)

    def reached(self, point: FaultPoint, before_exit: Callable[[], object] | None = None) -> None:
        """Exit now (os._exit: no cleanup, like a kill) if this is the configured point's N-th time."""
        if point != self.point:
            return
        self.reached_count += 1
        if self.reached_count < self.after:
            return
        if before_exit is not None:
            before_exit()
        log.error("fault injection: exiting at %s (occurrence %d)", point, self.reached_count)
        logging.shutdown()
        os._exit(FAULT_EXIT_CODE)
