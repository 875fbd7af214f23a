"""Decoding: msgspec against orjson on the throughput workload's messages.

The issue asked for a faster decoding library to be measured against orjson before it is
used. Four ways to read the same pre-serialized messages, timed in one run:

* orjson.loads alone (parsing, nothing checked: the consume+parse baseline's work);
* msgspec alone, into the event struct (parsing and every type and range check, in C);
* streamdrift's orjson path: orjson.loads, then the checks in Python, into an `Event`;
* streamdrift's decoder: msgspec, then the `Event` (what the service runs for valid input).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from bench.report import progress, table
from bench.throughput import WORKLOADS, generate
from detector.core.events import Decoder, Event, InputTopic
from detector.settings import load_settings

REPEATS = 5  # the best of these is reported: the machine's noise only ever adds time


def run(events: int) -> str:
    values = [value for _, value in generate(WORKLOADS["plain"], events).predictions]
    settings = load_settings(None)
    limits = settings.limits
    decoder = Decoder(settings.fields, limits.max_message_bytes, limits.max_model_name_length)
    check_same_events(decoder, values)
    ways: list[tuple[str, Callable[[bytes], object]]] = [
        ("orjson.loads alone (no checks)", orjson.loads),
        ("msgspec alone, into the event struct (all checks)", decoder._fast.decode),
        (
            "streamdrift, orjson path: orjson + checks in Python → Event",
            lambda raw: decoder._decode_slowly(raw, InputTopic.prediction, 0, 0, 0),
        ),
        (
            "streamdrift, msgspec path: msgspec → Event (the service's)",
            lambda raw: decoder.decode(raw, InputTopic.prediction, 0, 0, 0),
        ),
    ]
    seconds = {what: best_time(what, decode, values) for what, decode in ways}
    baseline = seconds[ways[0][0]]
    rows = [
        (what, len(values), 1e6 * s / len(values), len(values) / s, f"{s / baseline:.2f}×")
        for what, s in seconds.items()
    ]
    mean_bytes = sum(map(len, values)) / len(values)
    intro = (
        f"Messages: {len(values):,} prediction events of the throughput workload (23 features, score, prediction, "
        f"latency; {mean_bytes:.0f} bytes on average); best of {REPEATS} passes each. Both streamdrift paths "
        "give equal events on every message (checked before timing).\n"
    )
    return (
        intro
        + "\n"
        + table(
            ["decoding", "messages", "µs per message", "messages/s", "time ÷ orjson.loads"], rows
        )
        + "\n"
    )


def check_same_events(decoder: Decoder, values: list[bytes]) -> None:
    """Both of the decoder's paths must agree, or the comparison means nothing."""
    for raw in values:
        fast, slow = (
            decoder.decode(raw, InputTopic.prediction, 0, 0, 0),
            decoder._decode_slowly(raw, InputTopic.prediction, 0, 0, 0),
        )
        if not isinstance(fast, Event) or fast != slow:
            raise AssertionError(
                f"the decoder's paths disagree on {raw[:200]!r}: {fast!r} against {slow!r}"
            )


def best_time(what: str, decode: Callable[[bytes], object], values: list[bytes]) -> float:
    """The fastest of REPEATS passes over values, in seconds."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for raw in values:
            decode(raw)
        best = min(best, time.perf_counter() - started)
    progress(f"{what}: {1e6 * best / len(values):.2f} µs per message")
    return best
