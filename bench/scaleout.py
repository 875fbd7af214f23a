"""End to end on several cores: `streamdrift run` processes with 1 and N workers, and N replicas
(separate `streamdrift run` processes in one group), against one consume+parse consumer.

A partition is the unit of parallelism (a model's events all land on one partition), so the
workload's predictions are spread over PARTITIONS models, model j on partition j: the standard
events otherwise, i-th prediction of model i % PARTITIONS.

Each run starts its processes on the empty topics of a fresh group and waits until the group has
spread the partitions over them and every one is ready; then the stream is produced, and the run is
timed from the end of producing (or from the first event processed, if later: the processes then
read behind the producer, without it on the cores) to the scrape of their /metrics that counts
every message processed. CPU is that of the
processes and their workers (from /proc), the broker and this process excluded.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from bench.report import progress, table
from bench.throughput import (
    BASELINE,
    BROKERS,
    GUARANTEES,
    WORKLOADS,
    Stream,
    broker_settings,
    consume_and_parse,
    generate,
    produce,
)
from detector.http.federation import fetch
from detector.kafka.embedded import free_loopback_port
from detector.kafka.topics import ensure_topics
from detector.settings import ProcessingGuarantee, Settings

PARTITIONS = 4
POLL_S = 0.2  # how often the processes' /metrics are read while timing
READY_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Layout:
    """How the group's members are run: `replicas` processes of `workers` workers each."""

    replicas: int
    workers: int

    @property
    def name(self) -> str:
        if self.replicas > 1:
            return f"{self.replicas} replicas"
        return "1 process" if self.workers == 1 else f"{self.workers} workers"


def layouts(workers: int) -> list[Layout]:
    """One process; `workers` workers under one supervisor; `workers` separate replicas."""
    return [Layout(1, 1), Layout(1, workers), Layout(workers, 1)]


def spread_key(key: bytes, value: bytes, index: int) -> tuple[bytes, bytes]:
    """Prediction `index` (of the one-model workload, model 'model-0') as model index % PARTITIONS."""
    model = f"model-{index % PARTITIONS}".encode()
    return model, value.replace(b'"model":"' + key + b'"', b'"model":"' + model + b'"', 1)


def spread_label(value: bytes) -> tuple[bytes, bytes]:
    """A label event moved to its prediction's model (its id is 'req-<index>')."""
    label = orjson.loads(value)
    label["model"] = f"model-{int(label['id'].removeprefix('req-')) % PARTITIONS}"
    return label["model"].encode(), orjson.dumps(label)


def partition_of(key: bytes) -> int:
    """Model j's partition: j."""
    return int(key.rsplit(b"-", 1)[1]) % PARTITIONS


def environment(settings: Settings, layout: Layout, replica: int, port: int) -> dict[str, str]:
    """A `streamdrift run` process's environment: the run's settings, its own metrics port and
    transactional id."""
    topics, kafka = settings.topics, settings.kafka
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMDRIFT_")},
        "STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STREAMDRIFT_KAFKA__GROUP_ID": kafka.group_id,
        "STREAMDRIFT_KAFKA__SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
        "STREAMDRIFT_KAFKA__TRANSACTIONAL_ID": f"{kafka.group_id}-{replica}",
        "STREAMDRIFT_TOPICS__PREDICTIONS": topics.predictions,
        "STREAMDRIFT_TOPICS__FEATURES": topics.features,
        "STREAMDRIFT_TOPICS__LABELS": topics.labels,
        "STREAMDRIFT_TOPICS__ALERTS": topics.alerts,
        "STREAMDRIFT_TOPICS__DLQ": topics.dlq,
        "STREAMDRIFT_TOPICS__PARTITIONS": str(topics.partitions),
        "STREAMDRIFT_PROCESSING_GUARANTEE": settings.processing_guarantee.value,
        "STREAMDRIFT_METRICS__HOST": "127.0.0.1",
        "STREAMDRIFT_METRICS__PORT": str(port),
        "STREAMDRIFT_WORKERS": str(layout.workers),
        "STREAMDRIFT_LOG_LEVEL": "WARNING",
    }


@dataclass
class Member:
    """One `streamdrift run` process of a run."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def readiness(self) -> dict:
        status, body = fetch(self.port, "/readyz")
        return orjson.loads(body) if status == 200 else {}

    def counters(self) -> list[int]:
        """The loopback ports whose /metrics count this member's events: its own, or its workers'
        (read directly, so that the supervisor does not gather them at every poll)."""
        workers = self.readiness().get("workers")
        return [w["port"] for w in workers] if workers else [self.port]

    def failure(self) -> str | None:
        if self.process.poll() is None:
            return None
        tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
        return f"streamdrift run exited with {self.process.returncode}: {' | '.join(tail)}"


def events(ports: list[int]) -> int:
    """Messages processed so far by the processes on these ports: the sum of their
    streamdrift_events_total (every bench message is valid)."""
    total = 0.0
    for port in ports:
        _, body = fetch(port, "/metrics")
        total += sum(
            sample.value
            for family in text_string_to_metric_families(body.decode())
            if family.name == "streamdrift_events"
            for sample in family.samples
            if sample.name == "streamdrift_events_total"
        )
    return int(total)


def tree_cpu_s(roots: list[int]) -> float:
    """User + system CPU seconds of these processes and all their descendants alive now."""
    parent_of: dict[int, int] = {}
    cpu_of: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()
        parent_of[int(entry)] = int(fields[1])
        cpu_of[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = set(roots), set(roots)
    while frontier:
        frontier = {pid for pid, parent in parent_of.items() if parent in frontier} - tree
        tree |= frontier
    return sum(cpu_of.get(pid, 0.0) for pid in tree)


def run_members(
    settings: Settings, layout: Layout, target: int, produce: Callable[[], None], workdir: Path
) -> tuple[int, float, float]:
    """Start the layout's processes, wait until they share the partitions and are ready, produce,
    and time them to `target` messages: (messages timed, wall seconds, CPU seconds)."""
    members = []
    for replica in range(layout.replicas):
        port = free_loopback_port()
        log = workdir / f"{settings.kafka.group_id}-{replica}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "detector", "run"],
                env=environment(settings, layout, replica, port),
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        members.append(Member(process, port, log))
    try:
        _wait(lambda: _shared(members), READY_TIMEOUT_S, "the members to share the partitions")
        ports = [port for m in members for port in m.counters()]
        produce()
        _wait(lambda: events(ports) > 0, READY_TIMEOUT_S, "the first events processed")
        roots = [m.process.pid for m in members]
        start = (time.perf_counter(), tree_cpu_s(roots), events(ports))
        deadline = start[0] + RUN_TIMEOUT_S
        while (done := events(ports)) < target:
            problems = [problem for m in members if (problem := m.failure())]
            if problems or time.perf_counter() > deadline:
                raise RuntimeError(problems[0] if problems else f"{done:,} of {target:,} in time")
            time.sleep(POLL_S)
        wall, cpu = time.perf_counter() - start[0], tree_cpu_s(roots) - start[1]
        return done - start[2], wall, cpu
    finally:
        for member in members:
            member.process.terminate()
        for member in members:
            member.process.wait()


def _shared(members: list[Member]) -> bool:
    """Every member ready with partitions of its own, all of them owned."""
    owned = [set(m.readiness().get("partitions", [])) for m in members]
    if failures := [f for m in members if (f := m.failure())]:
        raise RuntimeError(failures[0])
    return all(owned) and set().union(*owned) == set(range(PARTITIONS))


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(POLL_S)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="streamdrift-bench-"))


def spread(stream: Stream) -> Stream:
    """The stream over PARTITIONS models (the same events and times)."""
    return Stream(
        [spread_key(key, value, i) for i, (key, value) in enumerate(stream.predictions)],
        [(ts, *spread_label(value)) for ts, _, value in stream.labels],
    )


def run(events: int, workloads: Sequence[str], brokers: Sequence[str], workers: int) -> str:
    """The scale-out table: per broker and workload, the baseline, then each guarantee with one
    process, `workers` workers and `workers` replicas."""
    streams = {w: spread(generate(WORKLOADS[w], events)) for w in workloads}
    rows: list[Row] = []
    for broker in brokers:
        name, start = BROKERS[broker]
        progress(f"scale-out: starting {name}")
        with start() as running:
            for workload, stream in streams.items():
                rows += _runs(running.bootstrap_servers, name, workload, stream, workers)
    note = (
        f"Scale-out: the workload's predictions spread over {PARTITIONS} models on {PARTITIONS} partitions "
        f"(model j on partition j); `streamdrift run` processes started on empty topics, timed from the end "
        "of producing (or the first event processed) to the last message processed; CPU µs per event: those processes and their workers "
        "(the baseline: this process), the broker excluded."
    )
    return note + "\n\n" + _table(rows)


# (workload, broker, guarantee ('' for the baseline), layout, events timed, wall s, CPU s)
Row = tuple[str, str, str, str, int, float, float]


def _runs(bootstrap: str, broker: str, workload: str, stream: Stream, workers: int) -> list[Row]:
    rows: list[Row] = []
    directory = workdir()
    last: Settings | None = None
    for guarantee in GUARANTEES:
        for layout in layouts(workers):
            run = f"{workload}-{guarantee.value}-{layout.replicas}x{layout.workers}-{uuid.uuid4().hex[:6]}"
            settings = broker_settings(bootstrap, run, run, guarantee)
            settings.topics.partitions = PARTITIONS
            ensure_topics(
                AdminClient(settings.kafka.client_config()),
                settings,
                settings.topics.inputs(),
                [settings.topics.alerts, settings.topics.dlq],
            )
            progress(f"{broker}: {run}")
            timed = run_members(
                settings,
                layout,
                len(stream),
                partial(produce, bootstrap, settings.topics, stream, partition_of),
                directory,
            )
            rows.append((workload, broker, guarantee.value, layout.name, *timed))
            progress(f"  {layout.name}: {timed[0]:,} messages in {timed[1]:.2f}s")
            last = settings
    assert last is not None
    # the baseline reads the last run's input topics (the whole stream) in a group of its own
    baseline = broker_settings(
        bootstrap, "", f"baseline-{uuid.uuid4().hex[:6]}", ProcessingGuarantee.at_least_once
    ).model_copy(update={"topics": last.topics})
    rate = consume_and_parse(baseline, workload, broker, len(stream))
    rows.append((workload, broker, "", "1 consumer", rate.events, rate.seconds, rate.cpu_seconds))
    return rows


def _table(rows: list[Row]) -> str:
    """Per (workload, broker, guarantee) each layout's events/s and CPU µs per event, against the
    baseline and against one process."""
    baseline = {(w, b): e / s for w, b, g, _, e, s, _ in rows if not g}
    single = {
        (w, b, g): e / s for w, b, g, name, e, s, _ in rows if g and name == "1 process" and e
    }
    out = []
    for workload, broker, guarantee, name, events, seconds, cpu in rows:
        rate = (
            events / seconds if events else math.nan
        )  # nothing left after producing: too few events
        one = single.get((workload, broker, guarantee))
        out.append(
            [
                workload,
                broker,
                guarantee or BASELINE,
                name,
                events,
                seconds,
                rate,
                cpu / events * 1e6 if events else math.nan,
                f"{rate / baseline[workload, broker]:.2f}×" if guarantee else "",
                f"{rate / one:.2f}×" if guarantee and one else "",
            ]
        )
    headers = ["workload", "broker", "guarantee", "layout", "events timed", "seconds", "events/s"]
    return table([*headers, "CPU µs per event", "÷ baseline", "÷ 1 process"], out)
