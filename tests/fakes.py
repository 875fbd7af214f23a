"""In-memory stand-ins for confluent_kafka messages, for pure unit tests of the pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class FakeMessage:
    topic_name: str
    partition_number: int
    offset_number: int
    payload: bytes | None
    key_bytes: bytes | None = None
    timestamp_ms: int = 1_764_064_800_000

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.payload

    def timestamp(self) -> tuple[int, int]:
        return (1, self.timestamp_ms)

    def error(self) -> None:
        return None


def messages(values: Iterable[dict[str, Any] | bytes | None], topic: str = "predictions", partition: int = 0, first_offset: int = 0) -> list[FakeMessage]:
    out = []
    for offset, value in enumerate(values, start=first_offset):
        payload = orjson.dumps(value) if isinstance(value, dict) else value
        key = value["model"].encode() if isinstance(value, dict) and isinstance(value.get("model"), str) else None
        out.append(FakeMessage(topic, partition, offset, payload, key))
    return out
