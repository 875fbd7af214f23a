"""Several detector processes in one pod (`workers` above 1), to use more than one core.

Each worker is a whole `Service`, a member of the pod's consumer group like a replica in another
pod: the group spreads the input partitions over the workers, each partition's state moves with
it, and each worker commits its own transactions under its own transactional id
('<transactional_id>-<n>', the same n after a restart, so that a new worker fences the open
transaction of the one it replaces). Nothing is shared between workers but the group: this is
the design's scale-out by replicas, inside one pod.

The supervising process owns no Kafka client. It serves the pod's one /metrics (the workers'
metrics, each sample labelled with its worker: detector/http/federation.py), /healthz and
/readyz (ready when every worker is; details per worker), restarts a worker that exits unasked
(with a back-off), and on SIGTERM asks every worker to stop (each finishes its batch and
commits) and waits for them. Workers are spawned (not forked: the supervisor runs threads) and
stop by themselves when the supervisor dies.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from detector.http.endpoints import HealthServer
from detector.http.federation import WorkerMetrics, fetch
from detector.kafka.embedded import free_loopback_port
from detector.settings import Settings

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.2  # how often the supervisor looks at its workers
RESTART_BACKOFF_S = (1.0, 30.0)  # first and longest wait before restarting a worker that died
STEADY_AFTER_S = 60.0  # a worker that ran this long restarts without waiting


def worker_settings(settings: Settings, index: int, port: int) -> Settings:
    """Worker `index`'s settings: the pod's, with its own transactional id and a loopback metrics
    port, as a single process."""
    kafka = settings.kafka.model_copy(
        update={"transactional_id": f"{settings.kafka.effective_transactional_id()}-{index}"}
    )
    metrics = settings.metrics.model_copy(update={"host": "127.0.0.1", "port": port})
    return settings.model_copy(update={"kafka": kafka, "metrics": metrics, "workers": 1})


@dataclass
class Worker:
    """One worker process and what the supervisor knows of it."""

    index: int
    process: BaseProcess | None = None
    port: int = 0
    started: float = 0.0  # monotonic time of the last start
    restart_at: float = 0.0  # when a dead worker is started again
    backoff_s: float = RESTART_BACKOFF_S[0]
    link: Connection | None = field(default=None, repr=False)  # closed, or lost, when we die

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Workers:
    """The supervisor of `settings.workers` worker processes."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.workers = [Worker(index) for index in range(settings.workers)]
        self.stop_requested = threading.Event()
        self.http: HealthServer | None = None
        self.restarts = Counter(
            "streamdrift_worker_restarts",
            "Worker processes started again after they exited unasked.",
            registry=self.registry,
        )
        self.running = Gauge(
            "streamdrift_workers_running", "Worker processes alive.", registry=self.registry
        )
        self.running.set_function(lambda: sum(w.alive for w in self.workers))
        self.registry.register(WorkerMetrics(self.targets))

    def request_stop(self) -> None:
        """Ask every worker to finish its batch, commit and stop; safe from a signal handler."""
        self.stop_requested.set()

    def targets(self) -> list[tuple[str, int]]:
        """(worker name, metrics port) of the workers alive."""
        return [(str(w.index), w.port) for w in self.workers if w.alive]

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process and w.process.pid]

    @property
    def metrics_port(self) -> int | None:
        return self.http.port if self.http else None

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready when every worker is; the details of each, and every partition the pod owns."""
        details: list[dict[str, Any]] = []
        partitions: set[int] = set()
        for worker in self.workers:
            _, body = fetch(worker.port, "/readyz") if worker.alive else (0, b"")
            answer: dict[str, Any] = orjson.loads(body) if body else {"ready": False}
            partitions.update(answer.get("partitions", []))
            pid = worker.process.pid if worker.process else None
            details.append(
                {"worker": worker.index, "pid": pid, "port": worker.port, "alive": worker.alive}
                | answer
            )
        ready = all(d["ready"] for d in details)
        return ready, {"workers": details, "partitions": sorted(partitions)}

    def liveness(self) -> tuple[bool, str]:
        """Alive unless a worker reports its loop stalled (a restart of the pod helps; a dead
        worker is restarted here)."""
        for worker in self.workers:
            status, body = fetch(worker.port, "/healthz") if worker.alive else (200, b"")
            if status == 503:
                return False, f"worker {worker.index}: {body.decode().strip()}"
        return True, ""

    def run(self, until: Callable[[Workers], bool] | None = None) -> bool:
        """Supervise the workers until a stop is requested (or `until(self)` is true); then stop
        them. True when every worker stopped cleanly."""
        settings = self.settings
        self.http = HealthServer(
            settings.metrics.host,
            settings.metrics.port,
            self.registry,
            self.readiness,
            self.liveness,
        ).start()
        log.info(
            "%d workers; metrics, health and readiness on http://%s:%d/metrics",
            len(self.workers),
            settings.metrics.host,
            self.http.port,
        )
        try:
            for worker in self.workers:
                self._start(worker)
            while not self.stop_requested.is_set() and not (until and until(self)):
                self._check(time.monotonic())
                self.stop_requested.wait(CHECK_INTERVAL_S)
            return self._stop()
        finally:
            for worker in self.workers:  # only after a failure here is any still alive
                if worker.alive:
                    assert worker.process is not None
                    worker.process.kill()
            self.http.stop()

    def _check(self, now: float) -> None:
        """Restart the workers that exited, each after its back-off."""
        for worker in self.workers:
            if worker.alive:
                continue
            if worker.restart_at == 0.0:
                assert worker.process is not None
                ran_s = now - worker.started
                if ran_s >= STEADY_AFTER_S:
                    worker.backoff_s = RESTART_BACKOFF_S[0]
                worker.restart_at = now + (0.0 if ran_s >= STEADY_AFTER_S else worker.backoff_s)
                log.error(
                    "worker %d (process %d) exited with code %s after %.0fs; restarting it in %.0fs",
                    worker.index,
                    worker.process.pid,
                    worker.process.exitcode,
                    ran_s,
                    worker.restart_at - now,
                )
            elif now >= worker.restart_at:
                worker.backoff_s = min(worker.backoff_s * 2, RESTART_BACKOFF_S[1])
                self.restarts.inc()
                self._start(worker)

    def _start(self, worker: Worker) -> None:
        if worker.link is not None:
            worker.link.close()
        listen, worker.link = multiprocessing.Pipe(duplex=False)
        worker.port = free_loopback_port()
        worker.process = multiprocessing.get_context("spawn").Process(
            target=_work,
            args=(worker_settings(self.settings, worker.index, worker.port), worker.index, listen),
            name=f"streamdrift-worker-{worker.index}",
        )
        worker.process.start()
        listen.close()
        worker.started, worker.restart_at = time.monotonic(), 0.0
        log.info("started worker %d (process %d)", worker.index, worker.process.pid)

    def _stop(self) -> bool:
        """SIGTERM to every worker, then wait for each (as long as it takes: the orchestrator's
        grace period bounds it)."""
        for worker in self.workers:
            if worker.alive:
                assert worker.process is not None and worker.process.pid is not None
                worker.process.terminate()
        clean = True
        for worker in self.workers:
            if worker.process is not None:
                worker.process.join()
                # -SIGTERM: stopped before it set its handler (still starting: nothing to commit)
                clean &= worker.process.exitcode in (0, -signal.SIGTERM) or worker.restart_at != 0.0
            if worker.link is not None:
                worker.link.close()
        log.info("workers stopped%s", "" if clean else " (some with an error)")
        return clean


def _work(settings: Settings, index: int, supervisor: Connection) -> None:
    """A worker process: one Service until SIGTERM, or until the supervisor is gone."""
    from detector.service.service import Service  # imported in the worker only

    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s",
    )
    service = Service(settings)
    signal.signal(signal.SIGTERM, lambda *_: service.request_stop())
    signal.signal(signal.SIGINT, lambda *_: service.request_stop())
    threading.Thread(
        target=_stop_when_gone, args=(supervisor, service.request_stop), daemon=True
    ).start()
    try:
        service.run()
    except Exception as exc:
        log.error("stopped on error: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        raise SystemExit(1) from None


def _stop_when_gone(supervisor: Connection, stop: Callable[[], Any]) -> None:
    """Block until the supervisor's end of the link closes (it exited or was killed), then stop."""
    with contextlib.suppress(EOFError, OSError):
        supervisor.recv_bytes()
    log.warning("the supervisor is gone: stopping")
    stop()
