"""In-memory stand-ins for confluent_kafka messages, for pure unit tests of the pipeline.

The accessors are C callables (like confluent_kafka.Message's), so that measurements over fake
messages do not charge the pipeline for Python method calls the real messages do not cost."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

import orjson
import pytest


class FakeMessage:
    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        payload: bytes | None,
        key: bytes | None = None,
        timestamp_ms: int = 1_764_064_800_000,
    ) -> None:
        self.payload = payload
        self.topic: Callable[[], str] = repeat(topic).__next__
        self.partition: Callable[[], int] = repeat(partition).__next__
        self.offset: Callable[[], int] = repeat(offset).__next__
        self.key: Callable[[], bytes | None] = repeat(key).__next__
        self.value: Callable[[], bytes | None] = repeat(payload).__next__
        self.timestamp: Callable[[], tuple[int, int]] = repeat((1, timestamp_ms)).__next__
        self.error: Callable[[], None] = repeat(None).__next__


def messages(
    values: Iterable[dict[str, Any] | bytes | None],
    topic: str = "predictions",
    partition: int = 0,
    first_offset: int = 0,
) -> list[FakeMessage]:
    out = []
    for offset, value in enumerate(values, start=first_offset):
        payload = orjson.dumps(value) if isinstance(value, dict) else value
        key = (
            value["model"].encode()
            if isinstance(value, dict) and isinstance(value.get("model"), str)
            else None
        )
        out.append(FakeMessage(topic, partition, offset, payload, key))
    return out


def failing_observe(
    monkeypatch: pytest.MonkeyPatch, model: str, error: Exception, after_events: int = 0
) -> None:
    """Make `model`'s monitors raise `error` when they observe, once they have seen
    `after_events` events (a corrupt state, a bug in a monitor); other models are untouched."""
    from detector.core.monitors.model import ModelMonitor

    original = ModelMonitor.observe

    def observe(self: ModelMonitor, events: Any) -> Any:
        if self.name == model and self.events_seen >= after_events:
            raise error
        return original(self, events)

    monkeypatch.setattr(ModelMonitor, "observe", observe)
