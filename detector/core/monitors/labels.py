"""Joining delayed labels to earlier predictions of one model (pure; no I/O).

A prediction with an `id` waits for its label for `ttl` of event time; a label that arrives
first waits `wait` for its prediction. Both buffers are bounded by count; the oldest entry
goes first when full. The clock is the newest prediction `ts` seen for the model (the
watermark): predictions keep flowing when labels stop, and a labels topic read ahead of the
predictions topic (as in a catch-up) cannot expire labels whose predictions are still unread.

Labels going missing is the failure this product exists to catch, so every waiting prediction
also yields one *maturity* outcome: 1 if its label came within the maturity age, 0 if it did
not. The maturity age is learned from the first `warmup` label delays (three times their 95th
percentile, at least `min_maturity`) unless configured. The `quality.labels` monitor watches
that 0/1 stream: when labels stop, it turns to zeros one maturity age later.

`sample_rate` < 1 keeps only predictions whose id hashes below the rate (labels are matched
the same way), which bounds memory for long label delays at high traffic. Memory is bounded
per model (`max_pending`) and per process (a `PendingBudget` shared by all models' joins).

Ids alone do not mean labels will come. Until a model's first label arrives, its join keeps only
its first `before_first_label` predictions (so that first label, however late, can still join
its prediction) and lets later ones pass: nothing is evicted, nothing expired is counted and no
maturity outcome is produced, since labels that never came to a model that never had any have
not stopped. Such a batch only moves the watermark, as fast as a batch without ids.
"""

from __future__ import annotations

import sys
import zlib
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import numpy as np

from detector.core.events import ID_OF, SOURCE_OF, TS_OF, Event, InputTopic

_SAMPLE_BUCKETS = 10_000


@dataclass(frozen=True)
class Joined:
    """A prediction and its label, completed by the event at `row` of the batch."""

    row: int
    prediction: Any
    score: float | None
    confidence: float | None
    label: Any
    delay_ms: int
    version: str | None  # the model version that made the prediction


@dataclass
class JoinOutcome:
    """What one batch did to the join."""

    joined: list[Joined] = field(default_factory=list)
    matured: list[tuple[int, float]] = field(
        default_factory=list
    )  # (row, 1 labelled in time / 0 not)
    expired: int = 0  # predictions given up after the TTL
    evicted: int = 0  # predictions dropped because the buffer was full
    unmatched: int = 0  # labels whose prediction never came (or was not kept)
    late: int = 0  # labels whose prediction had already expired


class PendingBudget:
    """How many predictions all the models of a process may keep waiting for labels."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self, count: int = 1) -> None:
        self.used -= count


@dataclass(slots=True, eq=False)
class Pending:
    """A prediction waiting for its label; also its own entry in the join's two queues (one
    object a prediction: with its id, about 130 bytes; BENCHMARKS.md, Memory)."""

    identifier: str
    prediction: Any
    score: float | None
    confidence: float | None
    ts_ms: int
    version: str | None  # interned: the pending predictions of a version share one string
    matured: bool = False


class LabelJoin:
    def __init__(
        self,
        ttl_ms: int,
        wait_ms: int,
        max_pending: int,
        max_waiting: int,
        sample_rate: float,
        warmup: int,
        maturity_ms: int | None,
        min_maturity_ms: int,
        before_first_label: int,
        budget: PendingBudget | None = None,
    ) -> None:
        self.budget = budget or PendingBudget(max_pending)
        self.ttl_ms, self.wait_ms = ttl_ms, wait_ms
        self.max_pending, self.max_waiting = max_pending, max_waiting
        self.max_before_first_label = min(before_first_label, max_pending)
        self.labelled = False  # a label has arrived for this model (ever: kept in the checkpoint)
        self.sample_threshold = int(sample_rate * _SAMPLE_BUCKETS)
        self.warmup = warmup
        self.maturity_ms = maturity_ms
        self.min_maturity_ms = min_maturity_ms
        self.watermark = 0
        self.pending: dict[str, Pending] = {}  # id -> prediction, in arrival order
        self.waiting: OrderedDict[str, tuple[Any, int]] = (
            OrderedDict()
        )  # labels before their prediction: id -> (label, ts)
        # Predictions in arrival order, which is nearly time order: one that arrives out of order
        # matures and expires when those ahead of it do, not earlier. Entries no longer pending
        # (joined, evicted, or replaced) are skipped when they reach the front. The front of
        # `to_expire` is also the oldest pending prediction, the one evicted when the join is full
        # (a dict finds its oldest entry by scanning the holes its deletions left).
        self.to_mature: deque[Pending] = deque()
        self.to_expire: deque[Pending] = deque()
        self.early_delays: list[int] = []  # delays collected to learn the maturity age
        self.expired_ids: OrderedDict[str, None] = (
            OrderedDict()
        )  # recently expired ids: late labels vs unknown ones

    # -- one batch ------------------------------------------------------------------------

    def observe(self, events: Sequence[Event]) -> JoinOutcome:
        outcome = JoinOutcome()
        if self._idle() and set(map(ID_OF, events)) == {None}:  # no labels either: they carry ids
            self.watermark = self._newest(events)  # nothing waits that it could mature or expire
            return outcome
        if self._full_before_first_label() and InputTopic.label not in set(map(SOURCE_OF, events)):
            newest = self._newest(events)
            if not self._expires_at(newest):  # nothing is kept, and nothing kept leaves
                self.watermark = newest
                return outcome
        for row, event in enumerate(events):
            if event.source is not InputTopic.prediction:
                if event.source is InputTopic.label and event.id is not None:
                    self.labelled = True
                    if self._sampled(event.id):
                        self._on_label(row, event, outcome)
                continue
            if event.ts_ms > self.watermark:
                self.watermark = event.ts_ms
                self._advance(row, outcome)
            if event.id is not None and self._sampled(event.id):
                self._on_prediction(row, event, outcome)
        return outcome

    def _idle(self) -> bool:
        """Nothing is waiting: no prediction for its label, no label for its prediction."""
        return not (self.pending or self.waiting or self.to_mature or self.to_expire)

    def _newest(self, events: Sequence[Event]) -> int:
        """The watermark after this batch's predictions."""
        newest = max(
            compress(map(TS_OF, events), map(InputTopic.prediction.__eq__, map(SOURCE_OF, events))),
            default=self.watermark,
        )
        return max(self.watermark, newest)

    def _full_before_first_label(self) -> bool:
        """No label yet, and no room for another prediction: the next ones pass unkept."""
        full = (
            len(self.pending) >= self.max_before_first_label
            or self.budget.used >= self.budget.limit
        )
        return not self.labelled and not self.waiting and full

    def _expires_at(self, watermark: int) -> bool:
        """Would the oldest waiting prediction expire (or is the front of the queue stale)?"""
        return bool(self.to_expire) and (
            not self._waits(self.to_expire[0]) or watermark - self.to_expire[0].ts_ms > self.ttl_ms
        )

    def _sampled(self, identifier: str) -> bool:
        return (
            self.sample_threshold >= _SAMPLE_BUCKETS
            or zlib.crc32(identifier.encode()) % _SAMPLE_BUCKETS < self.sample_threshold
        )

    def _on_prediction(self, row: int, event: Event, outcome: JoinOutcome) -> None:
        identifier = event.id
        assert identifier is not None
        waiting = self.waiting.pop(identifier, None)
        if waiting is not None:
            label, label_ts = waiting
            self._join(row, _pending(identifier, event), label, label_ts, outcome)
            return
        if identifier in self.pending:
            return  # a duplicate prediction: the first one stands
        if not self.labelled:
            if len(self.pending) >= self.max_before_first_label or not self.budget.take():
                return  # passes unkept, and uncounted: no label may ever come
        elif len(self.pending) >= self.max_pending:
            self._evict_oldest()  # the budget's count is unchanged
            outcome.evicted += 1
        elif not self.budget.take():
            outcome.evicted += 1  # the process's budget is spent: not kept
            return
        pending = self.pending[identifier] = _pending(identifier, event)
        self.to_mature.append(pending)
        self.to_expire.append(pending)

    def _evict_oldest(self) -> None:
        while not self._waits(oldest := self.to_expire.popleft()):
            pass
        del self.pending[oldest.identifier]

    def _on_label(self, row: int, event: Event, outcome: JoinOutcome) -> None:
        identifier = event.id
        assert identifier is not None
        pending = self.pending.pop(identifier, None)
        if pending is not None:
            self.budget.give()
            self._join(row, pending, event.label, event.ts_ms, outcome)
        elif identifier in self.expired_ids:
            del self.expired_ids[identifier]
            outcome.late += 1
        else:
            if len(self.waiting) >= self.max_waiting:
                self.waiting.popitem(last=False)
                outcome.unmatched += 1
            self.waiting[identifier] = (event.label, event.ts_ms)

    def _join(
        self, row: int, pending: Pending, label: Any, label_ts: int, outcome: JoinOutcome
    ) -> None:
        delay = max(0, label_ts - pending.ts_ms)
        outcome.joined.append(
            Joined(
                row,
                pending.prediction,
                pending.score,
                pending.confidence,
                label,
                delay,
                pending.version,
            )
        )
        if self.maturity_ms is None:
            self._learn_maturity(delay)
        elif not pending.matured:
            outcome.matured.append((row, 1.0 if delay <= self.maturity_ms else 0.0))

    def _learn_maturity(self, delay: int) -> None:
        self.early_delays.append(delay)
        if len(self.early_delays) >= self.warmup:
            p95 = float(np.quantile(self.early_delays, 0.95))
            self.maturity_ms = max(self.min_maturity_ms, int(3 * p95))
            self.early_delays = []

    def _advance(self, row: int, outcome: JoinOutcome) -> None:
        """The watermark moved: mature, then expire, the predictions it passed."""
        for queue in (self.to_mature, self.to_expire):
            # Entries that no longer wait go at once, not when their age passes (never, for the
            # maturity queue while no label has come): they hold their prediction's memory.
            while queue and not self._waits(queue[0]):
                queue.popleft()
        if self.maturity_ms is not None and self.labelled:
            for pending in self._passed(self.to_mature, self.maturity_ms):
                pending.matured = True
                outcome.matured.append((row, 0.0))
        for pending in self._passed(self.to_expire, self.ttl_ms):
            del self.pending[pending.identifier]
            self.budget.give()
            if self.labelled:
                outcome.expired += 1
            self._remember_expired(pending.identifier)
        while self.waiting:
            _, ts = next(iter(self.waiting.values()))
            if self.watermark - ts <= self.wait_ms:
                break
            self.waiting.popitem(last=False)
            outcome.unmatched += 1

    def _passed(self, queue: deque[Pending], age_ms: int) -> list[Pending]:
        """Pop the still-pending predictions older than `age_ms` from the front of a queue."""
        passed = []
        while queue and self.watermark - queue[0].ts_ms > age_ms:
            pending = queue.popleft()
            if self._waits(pending):
                passed.append(pending)
        return passed

    def _waits(self, pending: Pending) -> bool:
        """Is this entry of a queue still waiting (not joined, evicted, expired or replaced)?"""
        return self.pending.get(pending.identifier) is pending

    def release(self) -> None:
        """Give this join's waiting predictions back to the process budget (its model leaves)."""
        self.budget.give(len(self.pending))
        self.pending.clear()

    def _remember_expired(self, identifier: str) -> None:
        self.expired_ids[identifier] = None
        if len(self.expired_ids) > self.max_waiting:
            self.expired_ids.popitem(last=False)

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        ids = list(self.pending)
        entries = [self.pending[i] for i in ids]
        return {
            "watermark": self.watermark,
            "labelled": self.labelled,
            "maturity_ms": self.maturity_ms,
            "early_delays": self.early_delays,
            "pending": {
                "ids": ids,
                "predictions": [e.prediction for e in entries],
                "scores": [e.score for e in entries],
                "confidences": [e.confidence for e in entries],
                "ts": [e.ts_ms for e in entries],
                "versions": [e.version for e in entries],
                "matured": [e.matured for e in entries],
            },
            "waiting": [[i, label, ts] for i, (label, ts) in self.waiting.items()],
            "expired_ids": list(self.expired_ids),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.watermark = int(state["watermark"])
        self.labelled = bool(state["labelled"])
        self.maturity_ms = None if state["maturity_ms"] is None else int(state["maturity_ms"])
        self.early_delays = [int(d) for d in state["early_delays"]]
        p = state["pending"]
        self.budget.give(len(self.pending))
        restored = (
            Pending(str(i), pred, score, confidence, int(ts), _interned(version), bool(matured))
            for i, pred, score, confidence, ts, version, matured in zip(
                p["ids"],
                p["predictions"],
                p["scores"],
                p["confidences"],
                p["ts"],
                p["versions"],
                p["matured"],
            )
        )
        self.pending = {entry.identifier: entry for entry in restored}
        self.budget.used += len(self.pending)  # restored as they were, even past the limit
        self.to_expire = deque(self.pending.values())
        self.to_mature = deque(entry for entry in self.pending.values() if not entry.matured)
        self.waiting = OrderedDict((str(i), (label, int(ts))) for i, label, ts in state["waiting"])
        self.expired_ids = OrderedDict.fromkeys(str(i) for i in state["expired_ids"])


def _pending(identifier: str, event: Event) -> Pending:
    return Pending(
        identifier,
        event.prediction,
        event.score,
        event.confidence,
        event.ts_ms,
        _interned(event.version),
    )


def _interned(version: str | None) -> str | None:
    return None if version is None else sys.intern(version)
