"""Resident memory of monitored models: RSS with M models × F features, all past warm-up, and
how it grows with models (at 20 features) and with features (at 100 models).

Each configuration runs in a fresh child process: RSS (VmRSS of /proc/self/status) is read
after the events are generated and decoded, and again after every model has observed them;
the difference divided by the models is the memory per monitored model. RSS understates it
when the models reuse pages the set-up freed (more so the fewer the models), so `--allocated`
measures each configuration again in another process, with the bytes Python and numpy allocate
for the models traced (tracemalloc: several times slower, and its traces would inflate RSS);
they leave out the allocator's overhead and fragmentation, which RSS includes. The same decoded
events are fed to every model (a model's memory does not depend on which values it saw, only
on their number and kinds), in batches of 500 through `ModelMonitor.observe`, the path
`Pipeline.process` takes after decoding. Of F features, about 15% are categorical; each model
also has a score, a predicted class and a latency. Events carry an id, so predictions wait in
the model's label join for a label that never comes: at the defaults its first
`limits.pending_labels_before_first`; in the worst case (the label join's budget before a first
label raised to `limits.max_pending_labels`, as for a model whose labels come hours late) every
one, up to the process's `limits.max_pending_labels_total`. The configurations without ids show
that buffer's share.
"""

from __future__ import annotations

import gc
import multiprocessing
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from bench.report import progress, table
from bench.workload import Workload, features, messages
from detector.core.events import Event
from detector.core.pipeline import Pipeline
from detector.core.state import StateCodec
from detector.settings import LimitSettings, load_settings

BATCH = 500
TARGET_BYTES = 1_000_000


@dataclass(frozen=True)
class Config:
    models: int
    features: int
    ids: bool
    all_pending: bool = True  # keep every prediction waiting (the worst case), not the defaults


@dataclass(frozen=True)
class Footprint:
    config: Config
    monitors: int  # signal monitors per model
    pending: int  # predictions waiting for a label, per model (mean)
    rss_before: int  # bytes
    rss_after: int  # (when `allocated` is measured: tracemalloc's own memory included)
    allocated: int | None  # bytes Python and numpy allocated for the models and still hold
    state_bytes: int  # encoded checkpoint record per model (mean)

    @property
    def per_model(self) -> float:
        return (self.rss_after - self.rss_before) / self.config.models


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def measure(config: Config, events_per_model: int, allocated: bool = False) -> Footprint:
    """In this (fresh) process: monitor `config.models` models of `config.features` features;
    with `allocated`, trace the allocations too (tracemalloc: slower, and its traces inflate RSS)."""
    categorical = max(1, round(config.features * 0.15))
    workload = Workload(features(config.features - categorical, categorical), ids=config.ids)
    limits = (
        {"pending_labels_before_first": LimitSettings().max_pending_labels}
        if config.all_pending
        else {}
    )
    settings = load_settings(None, limits=limits)
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
    if allocated:
        tracemalloc.start()
    monitors = {}
    for j in range(config.models):
        monitor = monitors[f"model-{j}"] = pipeline.new_monitor(f"model-{j}")
        for batch in batches:
            monitor.observe(batch)
        if (j + 1) % max(1, config.models // 5) == 0:
            progress(f"  {j + 1:,} of {config.models:,} models × {config.features} features")
    pipeline.install(0, monitors)
    gc.collect()
    after = rss_bytes()
    held = tracemalloc.get_traced_memory()[0] if allocated else None
    tracemalloc.stop()
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
    pending = sum(m.performance.pending for m in monitors.values()) // config.models
    return Footprint(config, signals, pending, before, after, held, int(state))


def run(quick: bool, events_per_model: int, allocated: bool = False) -> str:
    """Every configuration's RSS, each in a fresh process; with `allocated`, again in another
    one with its allocations traced."""
    configs = (
        [Config(10, 5, True), Config(10, 5, True, all_pending=False), Config(20, 5, False)]
        if quick
        else [
            Config(10, 20, True),
            Config(100, 20, True),
            Config(1000, 20, True),
            Config(100, 20, True, all_pending=False),
            Config(1000, 20, True, all_pending=False),
            Config(100, 5, True),
            Config(100, 50, True),
            Config(100, 20, False),
            Config(1000, 20, False),
        ]
    )
    results = []
    context = multiprocessing.get_context("spawn")
    for config in configs:
        progress(
            f"memory: {config.models:,} models × {config.features} features, "
            f"{events_per_model:,} events each, ids: {config.ids}, "
            f"pending kept: {'all' if config.all_pending else 'defaults'}"
        )
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            result = pool.submit(measure, config, events_per_model).result()
        if allocated:
            progress("  again, its allocations traced")
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                traced = pool.submit(measure, config, events_per_model, True).result()
            result = replace(result, allocated=traced.allocated)
        results.append(result)
    rows = [
        [
            r.config.models,
            r.config.features,
            ("all (worst case)" if r.config.all_pending else "defaults")
            if r.config.ids
            else "no ids",
            f"{r.pending:,}",
            r.monitors,
            round(r.rss_before / 2**20, 1),
            round(r.rss_after / 2**20, 1),
            round(r.per_model / 1024, 1),
            "" if r.allocated is None else round(r.allocated / r.config.models / 1024, 1),
            round(r.per_model / r.monitors / 1024, 2),
            round(r.state_bytes / 1024, 1),
        ]
        for r in results
    ]
    note = (
        f"Each model observed {events_per_model:,} events (warm-up of 1,000 included) in batches of {BATCH}; "
        f"target < {TARGET_BYTES / 1e6:.0f} MB per monitored model. Allocated (with --allocated): the bytes "
        "Python and numpy allocated for the models and still hold, traced in a second process (RSS understates "
        "a model when it reuses pages the set-up freed, more so the fewer the models). Predictions kept waiting "
        "for a label: "
        "at the defaults, a model's first `limits.pending_labels_before_first` until its first label; "
        "in the worst case every one (up to `limits.max_pending_labels_total` in the process)."
    )
    headers = [
        "models",
        "features",
        "predictions kept waiting",
        "waiting/model",
        "monitors/model",
        "RSS before (MiB)",
        "RSS after (MiB)",
        "per model (KiB)",
        "allocated per model (KiB)",
        "per monitor (KiB)",
        "encoded state/model (KiB)",
    ]
    return note + "\n\n" + table(headers, rows)
