"""A signal's drift lifecycle: detector hits and block-end band checks, walked in signal order,
open a drift (`detected`) and close it (`resolved`), with a cooldown after each resolution.

* watching: a hit outside the cooldown opens a drift.
* drifting: further hits are absorbed (one change, one alert). The drift is resolved at a block
  end where a full resolve window, all of it after the detection, is within the band.
* cooldown: a hit within it is deferred to its end, and opens a drift then if the signal is
  still out of its band (a real new change is not lost); else it is dropped.

Positions count the signal's values; nothing here depends on batch boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detector.core.monitors.batch_detector import Hit


@dataclass(frozen=True)
class EstimatedStart:
    """Where a detected change began, by the detector's own estimate: the first value of the block
    the change's first value falls in (`clipped`: the change is older than the kept history, and
    this is its oldest block)."""

    topic: str
    offset: int
    time_ms: float  # event time, epoch ms; NaN when not known
    clipped: bool = False


@dataclass(frozen=True)
class Transition:
    """A lifecycle edge at `index` of the values passed to a monitor's `update`: an alert."""

    kind: str  # the alert's kind: "detected" or "resolved"
    index: int
    statistic: str
    detector: str
    reason: str
    observations: int
    evidence: dict[str, Any]
    estimated_start: EstimatedStart | None = None  # of a detected change, when estimated


@dataclass
class Drift:
    """An open drift."""

    started_at: int  # signal position of the detection
    statistic: str
    detector: str


@dataclass
class Deferred:
    """A detector hit inside the cooldown, decided when the cooldown ends."""

    statistic: str
    detector: str
    change_start: int  # signal position where the change was estimated to begin


@dataclass(frozen=True)
class StatisticHit:
    """A detector's hit on one statistic of the signal."""

    statistic: str
    hit: Hit

    @property
    def index(self) -> int:
        return self.hit.index


@dataclass(frozen=True)
class BlockCheck:
    """At the end of a block: does a full resolve window end there, and is every statistic's
    mean over it within its band around the reference level?"""

    index: int
    window_full: bool
    in_band: bool


@dataclass(frozen=True)
class Detected:
    """A drift opened at `index` of the values decided (signal position `position`)."""

    index: int
    position: int
    statistic: str
    hit: Hit  # its change age counts back from `position`


@dataclass(frozen=True)
class Resolved:
    """`drift` closed at `index` of the values decided (signal position `position`)."""

    index: int
    position: int
    drift: Drift
    reason: str  # "returned_to_reference" or "rebaselined"


class Lifecycle:
    """Open drift, deferred hit and cooldown of one signal."""

    def __init__(self, cooldown_events: int, resolve_window_events: int) -> None:
        self.cooldown_events = cooldown_events
        self.resolve_window_events = resolve_window_events
        self.drift: Drift | None = None
        self.deferred: Deferred | None = None
        self.cooldown_until = 0

    @property
    def settled(self) -> bool:
        """No drift open and no hit deferred: only a hit can change anything."""
        return self.drift is None and self.deferred is None

    def decide(
        self, hits: list[StatisticHit], checks: list[BlockCheck], seen: int, held: bool = False
    ) -> list[Detected | Resolved]:
        """Walk hits and block checks of values whose first is at signal position `seen`, in
        order (a hit first at equal indices). `held`: an open drift stays open (its signal is
        judged against a reference it is known to move away from and back to)."""
        steps: list[StatisticHit | BlockCheck] = [*hits, *checks]
        steps.sort(key=lambda step: (step.index, isinstance(step, BlockCheck)))
        edges: list[Detected | Resolved] = []
        for step in steps:
            position = seen + step.index
            edge = (
                self._on_hit(step, position)
                if isinstance(step, StatisticHit)
                else self._on_block_end(step, position, held)
            )
            if edge is not None:
                edges.append(edge)
        return edges

    def resolve(self, index: int, position: int, reason: str) -> Resolved:
        """Close the open drift at signal position `position`; the cooldown starts."""
        assert self.drift is not None
        drift, self.drift = self.drift, None
        self.cooldown_until = position + 1 + self.cooldown_events
        return Resolved(index, position, drift, reason)

    def _on_hit(self, step: StatisticHit, position: int) -> Detected | None:
        hit = step.hit
        if self.drift is not None:
            return None  # one change, one alert
        if position >= self.cooldown_until:
            self.drift = Drift(position, step.statistic, hit.detector)
            return Detected(step.index, position, step.statistic, hit)
        if self.deferred is None:
            self.deferred = Deferred(
                step.statistic, hit.detector, position - max(hit.change_age, 1)
            )
        return None

    def _on_block_end(
        self, check: BlockCheck, position: int, held: bool
    ) -> Detected | Resolved | None:
        if self.drift is not None:
            if (
                not held
                and check.window_full
                and check.in_band
                and position - self.drift.started_at >= self.resolve_window_events
            ):
                return self.resolve(check.index, position, "returned_to_reference")
            return None
        if self.deferred is None or position < self.cooldown_until or not check.window_full:
            return None
        deferred, self.deferred = self.deferred, None
        if check.in_band:
            return None
        self.drift = Drift(position, deferred.statistic, deferred.detector)
        late = Hit(check.index, deferred.detector, position - deferred.change_start)
        return Detected(check.index, position, deferred.statistic, late)

    # -- checkpoint state (keys of the signal's state) --------------------------------------

    def to_state(self) -> dict[str, Any]:
        drift, deferred = self.drift, self.deferred
        return {
            "drift": [drift.started_at, drift.statistic, drift.detector] if drift else None,
            "cooldown_until": self.cooldown_until,
            "deferred": [deferred.statistic, deferred.detector, deferred.change_start]
            if deferred
            else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state["drift"] is not None:
            started_at, statistic, detector = state["drift"]
            self.drift = Drift(int(started_at), str(statistic), str(detector))
        self.cooldown_until = int(state["cooldown_until"])
        if state["deferred"] is not None:
            statistic, detector, change_start = state["deferred"]
            self.deferred = Deferred(str(statistic), str(detector), int(change_start))
