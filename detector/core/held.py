"""Each model's events held across batches until its monitors run on them (pure; no I/O).

With many models on one topic a 5,000-message batch holds a few events of each, and a monitor's
fixed cost per call (columns, version routing, the label join's bookkeeping, every signal's
update) outweighs its cost per event. So the pipeline can hold each model's routed events,
in arrival order (predictions, features and labels alike, so a label join sees them in the
order it would have), until the model has `model_batch_events` of them, or the events held in
total reach `total_events`, or the caller flushes (the service before every commit, the backtest
at the end). A monitor's decisions depend only on its events' order, never on where its
batches are cut, so holding changes when an alert is published, not which.
"""

from __future__ import annotations

from collections.abc import Iterable

from detector.core.events import Event
from detector.core.monitors.model import ModelMonitor


class Held:
    """Events routed to each model's monitor and not yet observed, in arrival order."""

    def __init__(self, model_batch_events: int, total_events: int) -> None:
        """`model_batch_events`: a monitor is due with this many events; `total_events`: every
        monitor is due once this many are held in total."""
        self.model_batch_events = model_batch_events
        self.total_events = total_events
        self.queued: dict[ModelMonitor, list[Event]] = {}  # in the order of their oldest held event
        self.count = 0  # events held

    def __len__(self) -> int:
        return self.count

    def add(self, monitor: ModelMonitor, run: list[Event]) -> int:
        """Hold a run of one monitor's events (the list is taken over); return how many it has."""
        queue = self.queued.get(monitor)
        self.count += len(run)
        if queue is None:
            self.queued[monitor] = run
            return len(run)
        queue += run
        return len(queue)

    def take(self, monitor: ModelMonitor) -> list[Event] | None:
        """A monitor's held events, no longer held (None: it has none)."""
        queue = self.queued.pop(monitor, None)
        if queue is not None:
            self.count -= len(queue)
        return queue

    def due(self, hold: bool) -> list[tuple[ModelMonitor, list[Event]]]:
        """Take the monitors that are due, oldest first: all of them unless `hold`, else those
        with model_batch_events or more (all once total_events are held)."""
        if not hold or self.count >= self.total_events:
            taken = list(self.queued.items())
            self.queued.clear()
        else:
            least = self.model_batch_events
            taken = [(m, queue) for m, queue in self.queued.items() if len(queue) >= least]
            for monitor, _ in taken:
                del self.queued[monitor]
        self.count -= sum(len(queue) for _, queue in taken)
        return taken

    def drop(self, monitors: Iterable[ModelMonitor]) -> None:
        """Forget these monitors' held events (their partition was revoked or lost: the next
        owner reads them again from the last commit)."""
        for monitor in monitors:
            self.take(monitor)
