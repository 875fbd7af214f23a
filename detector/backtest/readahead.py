"""Reading and decoding history in a child process, so that it overlaps with the replay on a
second core.

The child reads the source (file lines or a throwaway consumer), places every message in the
timeline, and decodes each batch with the pipelines' own `Pipeline.decode` (once per distinct
decoding: `Pipeline.decodes_like`). It sends the events as MessagePack, which the parent
reads back in half the time of decoding JSON with every check, and the invalid messages as
counts. The parent only runs the monitors (`Pipeline.process_events`). At the end the child
sends the timeline. Errors in the child come back as the same exception in the parent.

The child is forked (Linux, like the service), so the source needs no pickling and starts at
once. The pipe holds about one batch, so the child reads about one batch ahead.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import pickle
import signal
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import NamedTuple

import msgspec

from detector.backtest.sources import Source, SourceError
from detector.backtest.timeline import Timeline
from detector.core.events import Event
from detector.core.pipeline import BatchResult, Pipeline
from detector.settings import ConfigError

PIPE_BYTES = 4 << 20  # the most the pipe is asked to hold


class Decoded(NamedTuple):
    """One batch as one pipeline decodes it."""

    events: list[Event]
    invalid: Counter[tuple[str, str]]  # (topic, reason) -> messages


class _Sent(NamedTuple):
    decoded: list[
        tuple[bytes, Counter[tuple[str, str]]]
    ]  # per distinct decoding: events as MessagePack, invalid
    fraction_done: float | None


class _Ended(NamedTuple):
    timeline: Timeline


class _Failed(NamedTuple):
    error: BaseException


class ReadAhead:
    """`source` read and decoded for `pipelines` by a child process; `timeline` is complete once
    `batches` is exhausted."""

    def __init__(self, source: Source, pipelines: list[Pipeline]) -> None:
        self.source = source
        self.pipelines = pipelines
        firsts = [
            next(j for j, earlier in enumerate(pipelines) if earlier.decodes_like(pipeline))
            for pipeline in pipelines
        ]
        self.distinct = sorted(set(firsts))  # the pipelines whose decoding the child runs
        self.decoding_of = [
            self.distinct.index(first) for first in firsts
        ]  # each pipeline's, in `distinct`
        self.timeline = Timeline(pipelines[0].settings.topics.predictions)
        self.fraction: float | None = None

    def batches(self, size: int) -> Iterator[list[Decoded]]:
        """Each batch of the source, decoded for each pipeline."""
        receiving, sending = multiprocessing.Pipe(duplex=False)
        _widen(sending)
        child = multiprocessing.get_context("fork").Process(
            target=self._read, args=(sending, size), name="streamdrift-backtest-reader", daemon=True
        )
        child.start()
        sending.close()  # the child's end: the parent sees EOF if the child dies
        events_of = msgspec.msgpack.Decoder(list[Event])
        try:
            while True:
                item = _receive(receiving, child)
                if isinstance(item, _Ended):
                    self.timeline = item.timeline
                    return
                if isinstance(item, _Failed):
                    raise item.error
                self.fraction = item.fraction_done
                decoded = [
                    Decoded(events_of.decode(events), invalid) for events, invalid in item.decoded
                ]
                yield [decoded[index] for index in self.decoding_of]
        finally:
            receiving.close()
            child.terminate()
            child.join()

    def fraction_done(self) -> float | None:
        return self.fraction

    def _read(self, sending: Connection, size: int) -> None:
        """The child: read, place, decode and send every batch, then the timeline (or the error)."""
        # Ctrl-C is the parent's to handle: it stops the child
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        encode = msgspec.msgpack.Encoder().encode
        try:
            for batch in self.source.batches(size):
                self.timeline.add(batch)
                decoded = []
                for index in self.distinct:
                    result = BatchResult()
                    events = self.pipelines[index].decode(batch.messages, result)
                    decoded.append((encode(events), result.invalid))
                sending.send_bytes(
                    pickle.dumps(
                        _Sent(decoded, self.source.fraction_done()), pickle.HIGHEST_PROTOCOL
                    )
                )
            sending.send_bytes(pickle.dumps(_Ended(self.timeline), pickle.HIGHEST_PROTOCOL))
        except (SourceError, ConfigError) as exc:
            sending.send_bytes(pickle.dumps(_Failed(exc)))
        except Exception as exc:  # anything else: the parent reports it, with where it happened
            sending.send_bytes(
                pickle.dumps(
                    _Failed(SourceError(f"reading {self.source.description} failed: {exc!r}"))
                )
            )
        finally:
            sending.close()


def _widen(pipe: Connection) -> None:
    """Let the pipe hold a whole batch where the system allows (a 5,000-event batch of the
    simulator is 1.3 MB): else the parent waits while the child writes 64 KiB at a time
    (measured on 1 M events: 0.79 s of receiving, against 0.26 s with 1 MiB)."""
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, min(limit, PIPE_BYTES))
    except (OSError, ValueError):
        pass  # not Linux, or not allowed: the default size only costs speed


def _receive(receiving: Connection, child: BaseProcess) -> _Sent | _Ended | _Failed:
    try:
        item: _Sent | _Ended | _Failed = pickle.loads(receiving.recv_bytes())
    except EOFError:
        child.join(timeout=5)
        raise SourceError(
            f"the history reader (process {child.pid}) stopped without a word (exit code {child.exitcode}); is memory short?"
        ) from None
    return item
