"""`quality.schema`: a rule, not a statistic. After a model's first `warmup_events`
feature-carrying events its schema counts as known; then the first event with a new feature
name, or a value whose type contradicts its feature, opens a schema drift at once. The drift
resolves (reason `rebaselined`: the new schema is accepted) after `quiet_events` events with
no further change; a cooldown follows, as for the statistical monitors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detector.core.monitors.lifecycle import Transition

MAX_LISTED_CHANGES = 20


@dataclass
class SchemaDrift:
    started_at: int
    last_change_at: int
    changes: list[str] = field(default_factory=list)


class SchemaMonitor:
    def __init__(self, warmup_events: int, quiet_events: int, cooldown_events: int) -> None:
        self.warmup_events = warmup_events
        self.quiet_events = quiet_events
        self.cooldown_events = cooldown_events
        self.seen = 0
        self.drift: SchemaDrift | None = None
        self.cooldown_until = 0

    @property
    def drifting(self) -> bool:
        return self.drift is not None

    def update(self, changes: list[tuple[int, str]], count: int) -> list[Transition]:
        """`changes` are (index, description) among `count` feature-carrying events, in order."""
        transitions: list[Transition] = []
        end = self.seen + count
        for index, text in [*changes, (count, None)]:
            position = self.seen + index
            drift = self.drift
            if drift is not None:
                quiet_at = drift.last_change_at + self.quiet_events
                if quiet_at < min(position, end):
                    transitions.append(self._resolved(quiet_at - self.seen, quiet_at))
            if text is None or position < self.warmup_events:
                continue
            if self.drift is not None:
                self.drift.last_change_at = position
                if len(self.drift.changes) < MAX_LISTED_CHANGES:
                    self.drift.changes.append(text)
            elif position >= self.cooldown_until:
                self.drift = SchemaDrift(position, position, [text])
                evidence = {"changes": [text], "schema_known_after_events": self.warmup_events}
                transitions.append(
                    Transition("detected", index, "schema", "rule", "", position + 1, evidence)
                )
        self.seen = end
        return transitions

    def _resolved(self, index: int, position: int) -> Transition:
        assert self.drift is not None
        drift, self.drift = self.drift, None
        self.cooldown_until = position + 1 + self.cooldown_events
        evidence = {
            "changes": drift.changes,
            "quiet_events": self.quiet_events,
            "drift_started_at_events": drift.started_at + 1,
        }
        return Transition(
            "resolved", index, "schema", "rule", "rebaselined", position + 1, evidence
        )

    def to_state(self) -> dict[str, Any]:
        drift = self.drift
        return {
            "seen": self.seen,
            "cooldown_until": self.cooldown_until,
            "drift": [drift.started_at, drift.last_change_at, drift.changes] if drift else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.seen = int(state["seen"])
        self.cooldown_until = int(state["cooldown_until"])
        drift = state["drift"]
        if drift is not None:
            started_at, last_change_at, changes = drift
            self.drift = SchemaDrift(
                int(started_at), int(last_change_at), [str(c) for c in changes]
            )
