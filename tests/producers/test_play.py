"""Playing streams into a sink: counts, turns, pacing, stopping, labels at the end."""

from __future__ import annotations

import time

from producers.play import play
from producers.simulate import Simulator
from producers.stream import Batch


class ListSink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def write(self, batch: Batch) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        pass


def test_every_stream_plays_its_events_and_every_label_follows() -> None:
    sink = ListSink()
    streams = [Simulator(model="a", label_delay_ms=1000), Simulator(model="b", label_delay_ms=1000)]
    played = play(streams, sink, events=2500, rate=0)
    predictions = [e for b in sink.batches for e in b.predictions]
    labels = [e for b in sink.batches for e in b.labels]
    assert played.predictions == 5000 and played.labels == 5000
    assert sorted(e["id"] for e in predictions) == sorted(e["id"] for e in labels)
    assert {e["model"] for e in predictions[:2000]} == {"a", "b"}  # the models take turns


def test_the_rate_paces_the_events() -> None:
    started = time.monotonic()
    played = play([Simulator()], ListSink(), events=300, rate=1000)
    assert played.predictions == 300
    assert time.monotonic() - started >= 0.25  # 300 events at 1000/s cannot go out faster


def test_an_endless_run_stops_when_asked() -> None:
    sink = ListSink()
    played = play([Simulator()], sink, events=0, rate=0, should_stop=lambda: len(sink.batches) >= 3)
    assert played.predictions == 3000
