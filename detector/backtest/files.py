"""History from JSON-lines files: one event per line, as `python -m producers simulate --out FILE
[--labels-out FILE]` writes them.

A message's partition is 0 and its offset is its line number - 1, so alert ids are
deterministic. Lines with a `label` field and neither `prediction` nor `score` are label events
(topic `topics.labels`); all others go to `topics.predictions`. A separate labels file is merged
with the events by event time (`ts`), as the labels would have arrived.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from detector.backtest.sources import Batch, Peeker, SourceError
from detector.events import parse_timestamp
from detector.settings import ConfigError, Settings

new_message = tuple.__new__  # FileMessage without its Python-level __new__ (a third of the reading time)


class FileMessage(NamedTuple):
    """One line of an events file, shaped like the part of a Kafka message the pipeline reads
    (a named tuple: cheap to make a million of, with `new_message`)."""

    topic_name: str
    offset_number: int
    key_bytes: bytes | None
    payload: bytes
    timestamp_ms: int

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.offset_number

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes:
        return self.payload

    def timestamp(self) -> tuple[int, int]:
        return (1, self.timestamp_ms)  # 1: CreateTime


class FileSource:
    """Events (and optionally labels) from JSON-lines files."""

    def __init__(self, settings: Settings, events: Path, labels: Path | None = None) -> None:
        for role, path in (("events", events), ("labels", labels)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{role} file {path} does not exist or is not a file")
        self.settings = settings
        self.peeker = Peeker(settings)
        self.paths = [path for path in (events, labels) if path is not None]
        self.total_bytes = sum(path.stat().st_size for path in self.paths) or 1
        self.read_bytes = 0
        self.description = " + ".join(str(path) for path in self.paths)

    def batches(self, size: int) -> Iterator[Batch]:
        topics = self.settings.topics
        lines = [self._messages(self.paths[0], None)]
        if len(self.paths) > 1:
            lines.append(self._messages(self.paths[1], topics.labels))
        merged: Iterable[tuple[FileMessage, str]] = heapq.merge(*lines, key=lambda item: item[0].timestamp_ms) if len(lines) > 1 else lines[0]
        batch = Batch([], [])
        for message, model in merged:
            batch.messages.append(message)
            batch.models.append(model)
            if len(batch.messages) >= size:
                yield batch
                batch = Batch([], [])
        if batch.messages:
            yield batch

    def fraction_done(self) -> float:
        return min(self.read_bytes / self.total_bytes, 1.0)

    def _messages(self, path: Path, topic: str | None) -> Iterator[tuple[FileMessage, str]]:
        """Each non-blank line as a message on `topic` (None: predictions or labels by content),
        time-stamped with its event time (the previous line's when it has none)."""
        topics = self.settings.topics
        last_ts = 0
        try:
            with path.open("rb") as handle:
                for number, line in enumerate(handle):
                    self.read_bytes += len(line)
                    payload = line.rstrip(b"\r\n")
                    if not payload or payload.isspace():
                        continue
                    model, ts, is_label = self.peeker.peek(payload)
                    last_ts = parse_timestamp(ts) or last_ts
                    where = topic or (topics.labels if is_label else topics.predictions)
                    yield new_message(FileMessage, (where, number, model.encode() or None, payload, last_ts)), model
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
