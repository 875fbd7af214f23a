"""Resident memory of monitored models: RSS with M models × F features, all past warm-up, and
how it grows with models (at 20 features) and with features (at 100 models).

Each configuration runs in a fresh child process: RSS (VmRSS of /proc/self/status) is read
after the events are generated and decoded, and again after every model has observed them;
the difference divided by the models is the memory per monitored model. The same decoded
events are fed to every model (a model's memory does not depend on which values it saw, only
on their number and kinds), in batches of 500 through `ModelMonitor.observe`, the path
`Pipeline.process` takes after decoding. Of F features, about 15% are categorical; each model
also has a score, a predicted class and a latency. Events carry an id, so every prediction
waits in the model's label join for a label that never comes (up to `limits.max_pending_labels`:
the budget before a model's first label is raised to it, the worst case of a model whose labels
come late); the configurations without ids show that buffer's share.
"""

from __future__ import annotations

import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from bench.report import progress, table
from bench.workload import Workload, features, messages
from detector.core.events import Event
from detector.core.pipeline import Pipeline
from detector.core.state import StateCodec
from detector.settings import LimitSettings, load_settings

BATCH = 500
TARGET_BYTES = 1_000_000


@dataclass(frozen=True)
class Footprint:
    models: int
    features: int
    ids: bool
    monitors: int  # signal monitors per model
    rss_before: int  # bytes
    rss_after: int
    state_bytes: int  # encoded checkpoint record per model (mean)

    @property
    def per_model(self) -> float:
        return (self.rss_after - self.rss_before) / self.models


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def measure(models: int, feature_count: int, ids: bool, events_per_model: int) -> Footprint:
    """In this (fresh) process: monitor `models` models of `feature_count` features."""
    categorical = max(1, round(feature_count * 0.15))
    workload = Workload(features(feature_count - categorical, categorical), ids=ids)
    settings = load_settings(
        None, limits={"pending_labels_before_first": LimitSettings().max_pending_labels}
    )
    pipeline = Pipeline(settings)
    decoded: list[Event] = []
    for m in messages(workload.records(0, events_per_model), settings.topics.predictions):
        event = pipeline.decoder.decode(
            m.value(), pipeline.sources[m.topic() or ""], 0, m.offset() or 0, m.timestamp()[1]
        )
        assert isinstance(event, Event), event
        decoded.append(event)
    batches = [decoded[i : i + BATCH] for i in range(0, len(decoded), BATCH)]
    gc.collect()
    before = rss_bytes()
    monitors = {}
    for j in range(models):
        monitor = monitors[f"model-{j}"] = pipeline.new_monitor(f"model-{j}")
        for batch in batches:
            monitor.observe(batch)
        if (j + 1) % max(1, models // 5) == 0:
            progress(f"  {j + 1:,} of {models:,} models × {feature_count} features")
    pipeline.install(0, monitors)
    gc.collect()
    after = rss_bytes()
    sample = list(monitors.values())[:10]
    codec = StateCodec("bench")
    state = sum(
        len(value)
        for m in sample
        for _, value in codec.model_records(0, {"predictions": 0}, m.name, m.to_state())
    ) / len(sample)
    assert all(not s.learning for m in sample for _, _, s in m.every_signal()), (
        "a monitor is still in warm-up"
    )
    signals = sum(1 for _ in sample[0].every_signal())
    return Footprint(models, feature_count, ids, signals, before, after, int(state))


def run(quick: bool, events_per_model: int) -> str:
    configs = (
        [(10, 5, True), (20, 5, False)]
        if quick
        else [
            (10, 20, True),
            (100, 20, True),
            (1000, 20, True),
            (100, 5, True),
            (100, 50, True),
            (100, 20, False),
            (1000, 20, False),
        ]
    )
    results = []
    context = multiprocessing.get_context("spawn")
    for models, feature_count, ids in configs:
        progress(
            f"memory: {models:,} models × {feature_count} features, {events_per_model:,} events each, ids: {ids}"
        )
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results.append(
                pool.submit(measure, models, feature_count, ids, events_per_model).result()
            )
    rows = [
        [
            r.models,
            r.features,
            "yes" if r.ids else "no",
            r.monitors,
            round(r.rss_before / 2**20, 1),
            round(r.rss_after / 2**20, 1),
            round(r.per_model / 1024, 1),
            round(r.per_model / r.monitors / 1024, 2),
            round(r.state_bytes / 1024, 1),
        ]
        for r in results
    ]
    note = (
        f"Each model observed {events_per_model:,} events (warm-up of 1,000 included) in batches of {BATCH}; "
        f"target < {TARGET_BYTES / 1e6:.0f} MB per monitored model."
    )
    headers = [
        "models",
        "features",
        "ids (label join)",
        "monitors/model",
        "RSS before (MiB)",
        "RSS after (MiB)",
        "per model (KiB)",
        "per monitor (KiB)",
        "encoded state/model (KiB)",
    ]
    return note + "\n\n" + table(headers, rows)
