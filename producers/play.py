"""Play event streams into a sink at a steady rate (wall-clock pacing; the I/O is the sink's)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from producers.sinks import Sink
from producers.stream import Batch, EventStream

TICKS_PER_S = 20  # events go out in this many chunks per second


@dataclass
class Played:
    """Counts so far, across streams."""

    predictions: int = 0
    labels: int = 0
    seconds: float = 0.0


def play(
    streams: Sequence[EventStream],
    sink: Sink,
    events: int,
    rate: float,
    on_progress: Callable[[Played], None] = lambda played: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Played:
    """Write `events` predictions of every stream (0: until should_stop()), `rate` predictions
    per second in all (0: as fast as possible), with the labels that fall due; the labels still
    pending at the end follow. Streams take turns chunk by chunk."""
    played = Played()
    ends = [stream.produced + events for stream in streams]
    started = time.monotonic()
    chunk = max(1, int(rate / TICKS_PER_S / len(streams))) if rate else 1000
    while not should_stop() and (not events or played.predictions < events * len(streams)):
        for stream, end in zip(streams, ends):
            size = chunk if not events else min(chunk, end - stream.produced)
            if size > 0:
                batch = stream.batch(size)
                sink.write(batch)
                played.predictions += len(batch.predictions)
                played.labels += len(batch.labels)
        played.seconds = time.monotonic() - started
        on_progress(played)
        ahead = played.predictions / rate - played.seconds if rate else 0.0
        if ahead > 0:
            time.sleep(ahead)
    for stream in streams:
        labels = stream.drain()
        sink.write(Batch([], labels))
        played.labels += len(labels)
    played.seconds = time.monotonic() - started
    return played
