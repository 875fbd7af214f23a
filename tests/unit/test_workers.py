"""Workers without a broker: each worker's settings, and the pod's /metrics built from the
workers' own (served here by two HealthServers on loopback)."""

from __future__ import annotations

import runpy
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.http.endpoints import HealthServer
from detector.http.federation import WorkerMetrics, fetch
from detector.kafka.embedded import free_loopback_port
from detector.service.workers import Worker, Workers, worker_settings
from detector.settings import load_settings


def test_each_worker_has_its_own_transactional_id_and_a_loopback_port() -> None:
    pod = load_settings(
        None,
        kafka={"bootstrap_servers": "k:9092", "group_id": "g", "transactional_id": "tx"},
        metrics={"host": "0.0.0.0", "port": 9477},
        workers=3,
    )
    worker = worker_settings(pod, 2, 4321)
    assert worker.kafka.transactional_id == "tx-2"
    assert (worker.metrics.host, worker.metrics.port, worker.workers) == ("127.0.0.1", 4321, 1)
    assert (worker.kafka.group_id, worker.topics, pod.workers) == ("g", pod.topics, 3)
    # without a configured id, the worker's derives from the pod's default (group and host name)
    default = load_settings(None, kafka={"bootstrap_servers": "k:9092", "group_id": "g"})
    assert worker_settings(default, 0, 1).kafka.transactional_id == (
        default.kafka.effective_transactional_id() + "-0"
    )


def worker_registry(events: int, ready: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("streamdrift_events", "Valid input events.", ["model"], registry=registry).labels(
        f"m{events}"
    ).inc(events)
    Gauge("streamdrift_ready", "Ready.", registry=registry).set(ready)
    Histogram("streamdrift_batch_processing_seconds", "Batch.", registry=registry).observe(0.2)
    return registry


@pytest.fixture
def two_workers() -> Iterator[list[tuple[str, int]]]:
    servers = [
        HealthServer("127.0.0.1", 0, worker_registry(events, ready), lambda: (True, {})).start()
        for events, ready in ((5, 1.0), (7, 0.0))
    ]
    try:
        yield [(str(i), server.port) for i, server in enumerate(servers)]
    finally:
        for server in servers:
            server.stop()


def test_the_pod_metrics_carry_every_workers_series_labelled_with_its_worker(
    two_workers: list[tuple[str, int]],
) -> None:
    targets = [*two_workers, ("2", free_loopback_port())]  # a worker that does not answer yet
    registry = CollectorRegistry()
    registry.register(WorkerMetrics(lambda: targets))
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.count("# TYPE streamdrift_events_total counter") == 1
    events = {
        (s.labels["worker"], s.labels["model"]): s.value
        for s in families["streamdrift_events"].samples
        if s.name == "streamdrift_events_total"
    }
    assert events == {("0", "m5"): 5.0, ("1", "m7"): 7.0}
    ready = {s.labels["worker"]: s.value for s in families["streamdrift_ready"].samples}
    assert ready == {"0": 1.0, "1": 0.0}
    counts = {
        s.labels["worker"]: s.value
        for s in families["streamdrift_batch_processing_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts == {"0": 1.0, "1": 1.0}


def test_fetch_returns_an_error_status_with_its_body_and_nothing_when_no_one_answers() -> None:
    server = HealthServer(
        "127.0.0.1", 0, CollectorRegistry(), lambda: (False, {"why": "restoring"})
    ).start()
    try:
        status, body = fetch(server.port, "/readyz")
    finally:
        server.stop()
    assert status == 503 and b'"why":"restoring"' in body
    assert fetch(free_loopback_port(), "/readyz", timeout_s=1) == (0, b"")


def test_a_spawned_worker_does_not_run_the_command_again() -> None:
    """A spawned worker imports the parent's main module under another name; `python -m detector`
    must then do nothing (else every worker would start a supervisor of its own)."""
    runpy.run_module("detector.__main__", run_name="__mp_main__")


class DeadProcess:
    """A worker process that has exited."""

    pid = 4242
    exitcode = -9

    def is_alive(self) -> bool:
        return False


def test_a_dead_worker_restarts_after_a_backoff_that_doubles_while_it_keeps_failing() -> None:
    settings = load_settings(None, kafka={"bootstrap_servers": "k:9092"}, workers=2)
    workers = Workers(settings, CollectorRegistry())
    started: list[tuple[int, float]] = []

    def start(worker: Worker) -> None:  # instead of spawning: the new process dies at once too
        started.append((worker.index, now))
        worker.process, worker.started, worker.restart_at = DeadProcess(), now, 0.0  # type: ignore[assignment]

    workers._start = start  # type: ignore[method-assign]
    flaky, steady = workers.workers
    flaky.process, flaky.started = DeadProcess(), 0.0  # type: ignore[assignment]
    steady.process, steady.started = DeadProcess(), -100.0  # type: ignore[assignment]
    for now in (10.0, 10.5, 11.0, 12.0, 13.0, 14.0):
        workers._check(now)
    # worker 1 ran 110 s: restarted at the next check; worker 0 ran 10 s: after 1 s. Each dies
    # again at once and is seen at the next check: then each waits 2 s.
    assert started == [(1, 10.5), (0, 11.0), (1, 13.0), (0, 14.0)]
    assert workers.restarts._value.get() == 4
