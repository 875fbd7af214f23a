"""Backtest speed against the core's in-process speed, on the same simulated history.

The simulator writes the fraud model's predictions (a mean shift of `amount` at the middle) and
their labels as JSON lines. Then, in one run, on the predictions file and on both files:

* the core: `Pipeline.process` over the lines read beforehand, in the service's batches
  (the throughput benchmark's "detector core, in-process", on this history);
* the replay: `detector.backtest.replay` from the files, reading and decoding included;
* the whole `streamdrift backtest --file … [--labels-file …] --truth …` command as a user runs
  it (start-up, replay, scoring, output): wall and CPU time (its reader process included) and
  peak resident size.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.report import progress, table
from detector.backtest.files import FileSource
from detector.backtest.replay import Run, replay
from detector.core.pipeline import GC_THRESHOLDS, Pipeline
from detector.settings import load_settings
from producers.play import play
from producers.scenarios import Injection
from producers.simulate import Simulator
from producers.sinks import FileSink


@dataclass(frozen=True)
class Timed:
    what: str
    wall_s: float
    cpu_s: float | None = None
    peak_mib: float | None = None


def run(events: int) -> str:
    with tempfile.TemporaryDirectory(prefix="streamdrift-bench-") as folder:
        files = simulate(Path(folder), events)
        inputs = {
            "predictions file": [files["events"]],
            "predictions and labels files": [files["events"], files["labels"]],
        }
        # The commands first, while this process is small: a forked child's peak size counts its parent's pages.
        command = [
            sys.executable,
            "-m",
            "detector",
            "backtest",
            "--file",
            str(files["events"]),
            "--truth",
            str(files["truth"]),
            "--json",
        ]
        commands = {
            "predictions file": backtest_command(command),
            "predictions and labels files": backtest_command(
                [*command, "--labels-file", str(files["labels"])]
            ),
        }
        rows: list[tuple[object, ...]] = []
        for name, paths in inputs.items():
            timed = [core(paths), replayed(paths), commands[name][0]]
            rows += [
                (
                    f"{t.what}, {name}",
                    events,
                    t.wall_s,
                    events / t.wall_s,
                    f"{timed[0].wall_s / t.wall_s:.2f}×",
                    t.cpu_s,
                    t.peak_mib,
                )
                for t in timed
            ]
    headers = [
        "measurement",
        "predictions",
        "wall s",
        "predictions/s",
        "÷ core",
        "CPU s",
        "peak MiB",
    ]
    return intro(events, commands["predictions file"][1]) + "\n" + table(headers, rows) + "\n"


def simulate(folder: Path, events: int) -> dict[str, Path]:
    files = {name: folder / f"{name}.jsonl" for name in ("events", "labels")} | {
        "truth": folder / "truth.json"
    }
    progress(f"simulating {events:,} predictions and their labels")
    stream = Simulator(
        model="fraud", seed=1, injections=(Injection("mean_shift", "amount", events // 2),)
    )
    sink = FileSink(str(files["events"]), str(files["labels"]))
    play([stream], sink, events, rate=0.0)
    sink.close()
    files["truth"].write_bytes(
        orjson.dumps({"model": stream.model, "injections": stream.ground_truth()})
    )
    return files


def core(paths: list[Path]) -> Timed:
    settings = load_settings(None)
    batches = [
        batch.messages for batch in FileSource(settings, *paths).batches(settings.batch_max_events)
    ]
    progress(
        f"core: Pipeline.process over the {sum(map(len, batches)):,} lines of {', '.join(path.name for path in paths)}, read beforehand"
    )
    gc.set_threshold(*GC_THRESHOLDS)
    pipeline = Pipeline(settings)
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        pipeline.process(batch)
    return Timed(
        "detector core, in-process", time.perf_counter() - started, time.process_time() - cpu
    )


def replayed(paths: list[Path]) -> Timed:
    settings = load_settings(None)
    progress(f"replay: reading, decoding and monitoring {', '.join(path.name for path in paths)}")
    return Timed(
        "backtest replay", replay(FileSource(settings, *paths), [Run("A", None, settings)]).seconds
    )


def backtest_command(command: list[str]) -> tuple[Timed, dict[str, Any]]:
    """Run the command; its wall and CPU time and peak resident size (its reader's included:
    `os.wait4` reports a child with the children it waited for)."""
    progress(f"`streamdrift {' '.join(command[3:])}`")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(command)}` failed (exit {child.returncode}): {err.read().decode()[-2000:]}"
            )
        result = orjson.loads(out.read())
    return Timed(
        "backtest command", wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    ), result


def intro(events: int, result: dict[str, Any]) -> str:
    score = result["runs"][0]["score"]
    found = ", ".join(
        f"{name.replace('_', ' ')} {score[name]}"
        for name in ("changes", "detected", "mean_delay_events", "false_alarms")
    )
    return (
        f"History: `python -m producers simulate --events {events} --seed 1 --inject mean_shift:amount@{events // 2}` "
        f"(the fraud model: 4 numeric and 2 categorical features, score, prediction, latency; labels in a second file). "
        f"The backtest of the predictions file found: {found}. "
        "Wall time, one run after another. The commands' CPU time includes their reader process; peak MiB is the "
        "largest resident size of the command or its reader.\n"
    )
