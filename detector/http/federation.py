"""One /metrics for a pod that runs several worker processes: at each scrape, every worker's own
/metrics (served on loopback) is read and re-exposed with a `worker` label.

The label keeps each series the series of one process, as Prometheus would see separate pods:
a worker that restarts resets only its own counters (summing them across workers would turn
one worker's restart into a drop of the sum, which rate() takes for a reset and over-counts),
gauges such as `streamdrift_ready` keep their meaning per process, and a model's series come
from the worker that owns its partition. Queries aggregate with `sum without (worker)`.
prometheus_client's multiprocess mode was the alternative; it supports no callback gauges
(`ready`, `last_progress`), no Info and no removal of a revoked model's series.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

WORKER_LABEL = "worker"
FETCH_TIMEOUT_S = 3.0


def fetch(port: int, path: str, timeout_s: float = FETCH_TIMEOUT_S) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path: the status and body (an error status's body too);
    (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class WorkerMetrics(Collector):
    """Collects the metrics of the workers `targets()` names, as (worker name, loopback port)."""

    def __init__(self, targets: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self.targets = targets

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for worker, port in self.targets():
            status, body = fetch(port, "/metrics")
            if status != 200:
                log.debug("worker %s gave no metrics (status %d)", worker, status)
                continue
            for family in text_string_to_metric_families(body.decode()):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                merged.samples.extend(
                    sample._replace(labels={**sample.labels, WORKER_LABEL: worker})
                    for sample in family.samples
                )
        return families.values()
