"""History from JSON-lines files: one event per line, as `python -m producers simulate --out FILE
[--labels-out FILE]` writes them.

A message's partition is 0 and its offset is its line number - 1, so alert ids are
deterministic. Lines with a `label` field and neither `prediction` nor `score` are label events
(topic `topics.labels`); all others go to `topics.predictions`. A separate labels file is merged
with the events by event time (`ts`), as the labels would have arrived.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import islice, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET

from detector.backtest.sources import Batch, Peeker, Record, SourceError, is_label, new_record
from detector.core.events import MAX_TIMESTAMP_MS, parse_timestamp
from detector.settings import ConfigError, Settings

MODEL_OF, TS_OF, LABEL_OF = attrgetter("model"), attrgetter("ts"), attrgetter("label")


class FileSource:
    """Events (and optionally labels) from JSON-lines files."""

    def __init__(self, settings: Settings, events: Path, labels: Path | None = None) -> None:
        for role, path in (("events", events), ("labels", labels)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{role} file {path} does not exist or is not a file")
        self.settings = settings
        self.peeker = Peeker(settings)
        self.keys = _Keys()
        self.paths = [path for path in (events, labels) if path is not None]
        self.total_bytes = sum(path.stat().st_size for path in self.paths) or 1
        self.read_bytes = 0
        self.description = " + ".join(str(path) for path in self.paths)

    def batches(self, size: int) -> Iterator[Batch]:
        if len(self.paths) == 1:
            yield from (batch for batch in self._read(self.paths[0], None, size) if batch)
            return
        files = [
            self._read(self.paths[0], None, size),
            self._read(self.paths[1], self.settings.topics.labels, size),
        ]
        pairs = [
            (
                (message, model)
                for batch in file
                for message, model in zip(batch.messages, batch.models)
            )
            for file in files
        ]
        batch = Batch()
        for message, model in heapq.merge(*pairs, key=lambda pair: pair[0].timestamp_ms):
            batch.append(message, model)
            if len(batch) >= size:
                yield batch
                batch = Batch()
        if batch:
            yield batch

    def fraction_done(self) -> float:
        return min(self.read_bytes / self.total_bytes, 1.0)

    def _read(self, path: Path, topic: str | None, size: int) -> Iterator[Batch]:
        """The file in batches of `size` lines (fewer messages where lines are blank); `topic`:
        that of every message (None: predictions or labels by content)."""
        last_ts, number = 0, 0
        try:
            with path.open("rb") as handle:
                while lines := list(islice(handle, size)):
                    self.read_bytes += sum(map(len, lines))
                    batch = self._whole(lines, number, topic) or self._line_by_line(
                        lines, number, topic, last_ts
                    )
                    number += len(lines)
                    last_ts = batch.messages[-1].timestamp_ms if batch else last_ts
                    yield batch
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None

    def _whole(self, lines: list[bytes], first: int, topic: str | None) -> Batch | None:
        """The usual case in a few calls over all lines, or None if any line is unusual: blank,
        not one JSON object, ending in CRLF, naming no model or one with its own field names,
        or without a valid event time. (Every line starts with '{' and ends with '}', so no JSON
        value spans two lines, and one value per line means each line is one object.)"""
        text, count = b"".join(lines), len(lines)
        if not (
            text.startswith(b"{")
            and text.count(b"}\n{") == count - 1
            and text.endswith((b"}\n", b"}"))
        ):
            return None
        try:
            peeked = self.peeker.default.decode_lines(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        models = list(map(MODEL_OF, peeked))
        if len(peeked) != count or None in models or not self.peeker.own_fields.isdisjoint(models):
            return None
        stamps = _timestamps(list(map(TS_OF, peeked)))
        if stamps is None:
            return None
        topics = [topic] * count if topic is not None else self._topics(peeked)
        payloads = text.split(b"\n", count - 1)
        payloads[-1] = payloads[-1].rstrip(b"\n")
        keys = list(map(self.keys.__getitem__, models))
        offsets = range(first, first + count)
        records = list(
            map(
                new_record,
                repeat(Record, count),
                zip(topics, repeat(0, count), offsets, keys, payloads, stamps),
            )
        )
        return Batch(records, models)

    def _topics(self, peeked: list[Any]) -> list[str]:
        topics = self.settings.topics
        if list(map(LABEL_OF, peeked)).count(UNSET) == len(peeked):
            return [topics.predictions] * len(peeked)
        return [topics.labels if is_label(found) else topics.predictions for found in peeked]

    def _line_by_line(
        self, lines: list[bytes], first: int, topic: str | None, last_ts: int
    ) -> Batch:
        """Each non-blank line as a message on `topic` (None: predictions or labels by content),
        time-stamped with its event time (the previous line's when it has none)."""
        topics = self.settings.topics
        batch = Batch()
        for number, line in enumerate(lines, start=first):
            payload = line.rstrip(b"\r\n")
            if not payload or payload.isspace():
                continue
            model, ts, label = self.peeker.peek(payload)
            last_ts = parse_timestamp(ts) or last_ts
            where = topic or (topics.labels if label else topics.predictions)
            batch.append(
                new_record(Record, (where, 0, number, self.keys[model], payload, last_ts)), model
            )
        return batch


class _Keys(dict[str, bytes | None]):
    """Message keys by model name, encoded once."""

    def __missing__(self, model: str) -> bytes | None:
        key = self[model] = model.encode() or None
        return key


def _timestamps(values: list[Any]) -> list[int] | None:
    """Epoch milliseconds of every event time, or None if any is missing, invalid or 0 (which
    the line-by-line reading also takes for missing)."""
    if set(map(type, values)) == {int}:
        try:
            stamps = np.array(values, dtype=np.int64)
        except OverflowError:
            return None
        return values if stamps.min() > 0 and stamps.max() < MAX_TIMESTAMP_MS else None
    parsed = list(map(parse_timestamp, values))
    if any(stamp is None or stamp == 0 for stamp in parsed):
        return None
    return [stamp for stamp in parsed if stamp is not None]  # all of them; narrows the type
