"""`traffic.rate`: a model's prediction rate against its usual rate for the hour of the week
(event time), so that an outage (the rate falling to a fraction of usual) alerts and the
night-time dip does not (pure; no I/O).

Events are counted in bins of BIN_MS of the model's event-time clock (the running maximum of
its `ts`, so a late event counts in the current bin). A bin closes at the first event of a
later bin; bins without events in between close with a count of 0. Learning: after the first
`warmup_events` predictions, the same plan as a seasonal signal's (detector.core.monitors.
seasonal.plan: a week of event time, or a day when only that fits in season_max_warmup_events),
the mean count of a bin is learned per hour of the week (or day). Without a plan (no moving
event times, or season_max_warmup_events = 0) the monitor stays off.

Watching: a one-sided Poisson CUSUM for a drop to DROP_RATIO of the expected count, on the
closed bins: S = max(0, S + c log ρ + λ (1 - ρ)) for a bin of count c and expected count λ;
`detected` when S exceeds THRESHOLD, `resolved` when it is back at 0 (from then on S is capped
at THRESHOLD, so that the first bins back at the usual rate resolve it). A bin at its usual count
lowers S by λ (ρ - 1 - log ρ) ≈ 0.5 λ (a bin counts against a drop above 58% of usual), so
normal traffic, the night-time dip included, keeps S at 0; a bin without any event raises it
by 0.7 λ: an outage of one bin alerts at a usual rate of 30 events a bin (6 a minute) or more,
in a few bins below. The alert comes with the first event after the drop's
bins closed: a complete outage is seen when traffic resumes (or from another clock: not here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.monitors.lifecycle import Transition
from detector.core.monitors.seasonal import DAY_HOURS, WEEK_HOURS, Plan, hour_of_week, plan

MONITOR = "traffic.rate"
BIN_MS = 5 * 60_000
DROP_RATIO = 0.3  # the CUSUM is tuned to a drop to this fraction of the usual rate
THRESHOLD = 20.0  # log-likelihood ratio at which a drop is detected
LOG_RATIO = float(np.log(DROP_RATIO))


@dataclass
class Drop:
    """The drop being accumulated (or alerted): its first bin, events seen and expected."""

    first_bin: int
    observed: int = 0
    expected: float = 0.0


class TrafficMonitor:
    """The prediction rate of one model, against its usual rate for the hour."""

    def __init__(self, warmup_events: int, max_events: int) -> None:
        self.warmup_events = warmup_events
        self.max_events = max_events
        self.warmup_ts: list[int] = []
        self.plan: Plan | None = None
        self.off = False  # no plan could be made: never watches
        self.clock = -1  # running maximum of ts
        self.open_bin = -1  # bin of the clock; its count so far
        self.open_count = 0
        self.first_bin = -1  # the model's first bin, partial: not learned from
        self.bin_events = np.zeros(WEEK_HOURS, dtype=np.int64)  # per hour of the week
        self.bins = np.zeros(WEEK_HOURS, dtype=np.int64)
        self.expected: np.ndarray | None = None  # mean count of a bin per bucket (24 or 168)
        self.cusum = 0.0
        self.drop: Drop | None = None
        self.alerted = False
        self.events = 0

    def observe(self, ts_ms: np.ndarray) -> list[Transition]:
        """Count predictions at event times ts_ms (in order); index of a transition: into ts_ms."""
        transitions: list[Transition] = []
        if self.off or not len(ts_ms):
            return transitions
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        if self.plan is None:
            self._plan(ts_ms)
            if self.off:
                return transitions
        clock = np.maximum.accumulate(np.maximum(ts_ms, self.clock))
        bins = clock // BIN_MS
        if self.open_bin < 0:
            self.open_bin = self.first_bin = int(bins[0])
        # Positions where a new bin begins: the bins before it close there.
        changes = np.flatnonzero(np.diff(np.concatenate(([self.open_bin], bins))) > 0)
        start = 0
        for index in changes.tolist():
            self.open_count += index - start
            transitions += self._close_until(int(bins[index]), index)
            start = index
        self.open_count += len(ts_ms) - start
        self.clock = int(clock[-1])
        self.events += len(ts_ms)
        return transitions

    def _plan(self, ts_ms: np.ndarray) -> None:
        """Keep the first warmup_events times; then plan the learning as a seasonal signal does
        (bins are counted from the model's first full bin on, the warm-up's included)."""
        self.warmup_ts += ts_ms[: self.warmup_events - len(self.warmup_ts)].tolist()
        if len(self.warmup_ts) < self.warmup_events:
            return
        self.plan = plan(np.asarray(self.warmup_ts, dtype=np.int64), self.max_events)
        self.warmup_ts = []
        self.off = self.plan is None

    def _close_until(self, new_bin: int, index: int) -> list[Transition]:
        """Close the open bin and the empty ones up to `new_bin`; the event at `index` opened it."""
        transitions: list[Transition] = []
        counts = [self.open_count] + [0] * (new_bin - self.open_bin - 1)
        for offset, count in enumerate(counts):
            transition = self._closed(self.open_bin + offset, count, index)
            if transition is not None:
                transitions.append(transition)
        self.open_bin, self.open_count = new_bin, 0
        return transitions

    def _closed(self, bin_index: int, count: int, index: int) -> Transition | None:
        start_ms = bin_index * BIN_MS
        if self.expected is None:
            if bin_index == self.first_bin:
                return None
            if self.plan is None or start_ms < self.plan.end_ms:
                bucket = int(hour_of_week(np.array([start_ms]))[0])
                self.bin_events[bucket] += count
                self.bins[bucket] += 1
                return None
            self.expected = self._expected_counts(self.plan.hours)
        expected = float(
            self.expected[int(hour_of_week(np.array([start_ms]))[0]) % len(self.expected)]
        )
        return self._watch(bin_index, count, expected, index)

    def _expected_counts(self, hours: int) -> np.ndarray:
        """Mean count of a bin per hour of the week (or of the day); an hour of the week without
        a learned bin takes its hour of the day's, and that without one the mean of all."""
        day_events = self.bin_events.reshape(-1, DAY_HOURS).sum(axis=0)
        day_bins = self.bins.reshape(-1, DAY_HOURS).sum(axis=0)
        overall = day_events.sum() / max(day_bins.sum(), 1)
        daily = np.where(day_bins > 0, day_events / np.maximum(day_bins, 1), overall)
        if hours == DAY_HOURS:
            return daily.astype(np.float64)
        weekly = self.bin_events / np.maximum(self.bins, 1)
        return np.where(self.bins > 0, weekly, np.tile(daily, WEEK_HOURS // DAY_HOURS))

    def _watch(self, bin_index: int, count: int, expected: float, index: int) -> Transition | None:
        self.cusum = max(0.0, self.cusum + count * LOG_RATIO + expected * (1.0 - DROP_RATIO))
        if self.alerted:  # capped, so that the first bins back at the usual rate resolve it
            self.cusum = min(self.cusum, THRESHOLD)
        if self.cusum == 0.0:
            if self.alerted:
                return self._resolved(index)
            self.drop = None
            return None
        if self.drop is None:
            self.drop = Drop(bin_index)
        self.drop.observed += count
        self.drop.expected += expected
        if self.cusum > THRESHOLD and not self.alerted:
            self.alerted = True
            return Transition(
                "detected", index, "rate", "cusum", "", self.events + index + 1, self._evidence()
            )
        return None

    def _resolved(self, index: int) -> Transition:
        evidence = self._evidence()
        self.alerted, self.drop = False, None
        return Transition(
            "resolved",
            index,
            "rate",
            "cusum",
            "returned_to_reference",
            self.events + index + 1,
            evidence,
        )

    def _evidence(self) -> dict[str, Any]:
        assert self.drop is not None
        minutes = max(self.open_bin - self.drop.first_bin, 1) * BIN_MS / 60_000
        return {
            "window": {"from_ms": self.drop.first_bin * BIN_MS, "to_ms": self.open_bin * BIN_MS},
            "reference": {"events_expected": round(self.drop.expected, 1)},
            # rate: relative to the usual rate for those hours (1: as usual)
            "before": {"rate": 1.0, "per_minute": round(self.drop.expected / minutes, 3)},
            "after": {
                "rate": round(self.drop.observed / max(self.drop.expected, 1e-9), 4),
                "events": self.drop.observed,
                "per_minute": round(self.drop.observed / minutes, 3),
            },
            "thresholds": {"drop_ratio": DROP_RATIO, "cusum": THRESHOLD, "bin_ms": BIN_MS},
            "seasonal_buckets": 0 if self.expected is None else len(self.expected),
        }

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "warmup_ts": self.warmup_ts,
            "plan": None if self.plan is None else self.plan.to_state(),
            "off": self.off,
            "clock": self.clock,
            "open": [self.open_bin, self.open_count, self.first_bin],
            "bin_events": self.bin_events,
            "bins": self.bins,
            "expected": self.expected,
            "cusum": self.cusum,
            "drop": None
            if self.drop is None
            else [self.drop.first_bin, self.drop.observed, self.drop.expected],
            "alerted": self.alerted,
            "events": self.events,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.warmup_ts = [int(t) for t in state["warmup_ts"]]
        if state["plan"] is not None:
            self.plan = Plan.from_state(state["plan"])
        self.off = bool(state["off"])
        self.clock = int(state["clock"])
        self.open_bin, self.open_count, self.first_bin = (int(v) for v in state["open"])
        self.bin_events = np.asarray(state["bin_events"], dtype=np.int64)
        self.bins = np.asarray(state["bins"], dtype=np.int64)
        if state["expected"] is not None:
            self.expected = np.asarray(state["expected"], dtype=np.float64)
        self.cusum = float(state["cusum"])
        if state["drop"] is not None:
            first, observed, expected = state["drop"]
            self.drop = Drop(int(first), int(observed), float(expected))
        self.alerted = bool(state["alerted"])
        self.events = int(state["events"])
