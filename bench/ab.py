"""A/B of the detector core of two trees in one process: this tree's `Pipeline.process` against
another tree's (a checkout of the commit before a change, e.g. from `git worktree add` or
`git archive`), on the same messages.

Each round builds one pipeline from each tree and feeds them every batch in turn, the order
alternating from batch to batch, so that whatever else the machine does falls on both alike;
the first batch is not timed. Per round: events/s and events per CPU-second of each side, and
their ratio; alerts of both sides, encoded, must be byte-identical (the command fails if not).
The `shift` workload drifts (a feature shifted by 0.5 sd half way, ids, and labels for 30% of
the predictions), so that there are alerts to compare. With `models` above 1, the workload is
`bench models`' instead: that many models interleaved one by one, each model's events held
across batches as the service holds them (`process(batch, hold=True)`, `flush()` at the end),
every model's warm-up fed and flushed untimed first; what changes the monitors' cost per call.
"""

from __future__ import annotations

import gc
import importlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.models import interleaved
from bench.report import progress, table
from bench.throughput import BATCH, WORKLOADS, as_messages, generate
from bench.workload import Workload, standard_features
from detector.core.pipeline import GC_THRESHOLDS, Pipeline
from detector.settings import load_settings

_PACKAGE = "detector"


@dataclass
class Side:
    """One tree's pipeline in a round, and what it took."""

    pipeline: Any
    alerts: list[bytes] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0


def other_pipeline(tree: Path) -> Any:
    """The `Pipeline` class of the detector package in `tree`, imported beside this tree's (its
    modules are taken out of sys.modules again, so that each side keeps its own)."""
    own = {name: module for name, module in sys.modules.items() if _ours(name)}
    for name in own:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        pipeline: ModuleType = importlib.import_module(f"{_PACKAGE}.core.pipeline")
        settings: ModuleType = importlib.import_module(f"{_PACKAGE}.settings")
    finally:
        sys.path.remove(str(tree))
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(own)
    if Path(pipeline.__file__ or "").resolve().is_relative_to(Path(__file__).parents[1].resolve()):
        raise SystemExit(f"{tree} does not hold a detector package of its own")
    return lambda: pipeline.Pipeline(settings.load_settings(None))


def _ours(name: str) -> bool:
    return name == _PACKAGE or name.startswith(f"{_PACKAGE}.")


def run(base: Path, events: int, rounds: int, workload: str, models: int = 1) -> str:
    """Markdown: one row per round and side, then the medians of the ratios."""
    make_base = other_pipeline(base)
    settings = load_settings(None)
    if models > 1:
        warmup = -(-models * settings.detection.warmup_events // BATCH) * BATCH
        batches = list(interleaved(models, False, warmup + events, settings.topics.predictions))
        described = f"`bench models`' with {models:,} models, held; {events:,} events timed"
    else:
        chosen = (
            Workload(standard_features(), ids=True, labelled=0.3, shift=("n3", events // 2, 0.5))
            if workload == "shift"
            else WORKLOADS[workload]
        )
        merged = as_messages(generate(chosen, events), settings.topics)
        batches = [merged[i : i + BATCH] for i in range(0, len(merged), BATCH)]
        warmup = len(batches[0])
        described = f"`{workload}`, {events:,} predictions ({len(merged):,} messages)"
    timed = sum(map(len, batches)) - warmup
    gc.set_threshold(*GC_THRESHOLDS)
    rows, cpu_ratios, wall_ratios = [], [], []
    for round_ in range(1, rounds + 1):
        sides = {"A": Side(make_base()), "B": Side(Pipeline(load_settings(None)))}
        fed = 0
        for i, batch in enumerate([*batches, []]):  # [] stands for the final flush
            fed += len(batch)
            for label in "AB" if (i + round_) % 2 else "BA":
                side = sides[label]
                wall, cpu = time.perf_counter(), time.process_time()
                if batch:
                    result = side.pipeline.process(batch, hold=models > 1)
                else:
                    result = side.pipeline.flush()
                if fed > warmup or not batch:
                    side.wall += time.perf_counter() - wall
                    side.cpu += time.process_time() - cpu
                if models > 1 and fed == warmup:
                    result.alerts += side.pipeline.flush().alerts  # the warm-up's, untimed
                side.alerts += [alert.encode("ab") for alert in result.alerts]
        a, b = sides["A"], sides["B"]
        if a.alerts != b.alerts:
            raise SystemExit(f"round {round_}: the two trees' alerts differ")
        cpu_ratios.append(a.cpu / b.cpu)
        wall_ratios.append(a.wall / b.wall)
        for label, side in sides.items():
            rows.append(
                [
                    round_,
                    f"{label} ({'base' if label == 'A' else 'this tree'})",
                    round(timed / side.wall),
                    round(timed / side.cpu),
                    round(side.cpu / timed * 1e6, 2),
                    len(side.alerts),
                ]
            )
        progress(f"round {round_}: B÷A {cpu_ratios[-1]:.3f} per CPU-s, {wall_ratios[-1]:.3f} per s")
    note = (
        f"A: {base}; B: this tree. Workload {described}, batches of {BATCH:,}, {rounds} "
        "rounds; alerts identical in every round."
    )
    headers = ["round", "tree", "events/s", "events per CPU-s", "CPU µs/event", "alerts"]
    medians = (
        f"Median B ÷ A: events per CPU-s {statistics.median(cpu_ratios):.3f}× "
        f"({', '.join(f'{r:.3f}' for r in cpu_ratios)}); events/s "
        f"{statistics.median(wall_ratios):.3f}× ({', '.join(f'{r:.3f}' for r in wall_ratios)})."
    )
    return "\n\n".join([note, table(headers, rows), medians]) + "\n"
