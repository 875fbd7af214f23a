"""`workers = 2`: two worker processes under one `streamdrift run` share the partitions like two
replicas; the pod's one /metrics shows both; a worker killed with SIGKILL is restarted under its
transactional id and no alert is lost or doubled; SIGTERM stops both after they commit."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter

import orjson
import pytest

from detector.kafka.embedded import free_loopback_port
from tests.integration.test_replicas import scrape, traffic
from tests.kafka_helpers import (
    KafkaNames,
    alerts_of,
    committed_total,
    create_topics,
    expected_alert_ids,
    produce,
    read_topic,
    start_cli,
    wait_until,
)

PARTITIONS = 4
EVENTS_LINE = re.compile(
    r'^streamdrift_events_total\{[^}]*worker="(\d)"[^}]*\} (\S+)$', re.MULTILINE
)
RESTARTS_LINE = re.compile(r"^streamdrift_worker_restarts_total (\S+)$", re.MULTILINE)


def readiness(port: int) -> dict:
    body = scrape(port, "/readyz")
    return orjson.loads(body) if body else {}


def events_by_worker(port: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for worker, value in EVENTS_LINE.findall(scrape(port, "/metrics").decode()):
        counts[worker] += int(float(value))
    return counts


def split(port: int) -> bool:
    """Both workers ready, each with partitions, together all of them."""
    ready = readiness(port)
    owned = [set(w.get("partitions", [])) for w in ready.get("workers", [])]
    return (
        bool(ready.get("ready"))
        and len(owned) == 2
        and all(owned)
        and owned[0] | owned[1] == set(range(PARTITIONS))
    )


@pytest.mark.apache_kafka  # exactly-once across a kill needs a broker that aborts the dead transaction
def test_two_workers_share_partitions_survive_a_kill_and_drain_on_sigterm(
    topics: KafkaNames, tmp_path: os.PathLike[str]
) -> None:
    settings = topics.settings(topics={"partitions": PARTITIONS})
    assert create_topics(settings) == PARTITIONS
    events = traffic(16, 6000, first_drift=1500, stagger=150, length=2500)
    half = len(events) // 2
    produce(topics.bootstrap, topics.predictions, events[:half])

    port = free_loopback_port()
    log_path = os.path.join(tmp_path, "run.log")
    with open(log_path, "wb") as log_file:
        pod = start_cli(
            ["run"],
            topics.env(
                STREAMDRIFT_WORKERS="2",
                STREAMDRIFT_TOPICS__PARTITIONS=str(PARTITIONS),
                STREAMDRIFT_METRICS__PORT=str(port),
                STREAMDRIFT_KAFKA__TRANSACTIONAL_ID=f"tx-{topics.suffix}",
                STREAMDRIFT_COMMIT_INTERVAL_MS="300",
            ),
            stderr=log_file,
        )
    try:
        wait_until(
            lambda: committed_total(topics.bootstrap, topics.group, topics.predictions) >= half,
            120,
            "the workers to process the first half",
        )
        wait_until(lambda: split(port), 60, "both workers to share the partitions")
        workers = readiness(port)["workers"]
        on_0, on_1 = (set(w["partitions"]) for w in workers)
        assert not on_0 & on_1, f"partitions 0={on_0} 1={on_1}"
        # The third quarter once both share the partitions: each counts its own partitions'
        # events (the first half's may have been counted by a worker that gave those partitions
        # up when the other joined, and a model's series go with its partition).
        three_quarters = half + half // 2
        produce(topics.bootstrap, topics.predictions, events[half:three_quarters])
        wait_until(
            lambda: (
                committed_total(topics.bootstrap, topics.group, topics.predictions)
                >= three_quarters
            ),
            120,
            "the workers to process the third quarter",
        )
        counts = events_by_worker(port)
        assert counts["0"] > 0 and counts["1"] > 0, f"events by worker: {counts}"

        # kill a worker while the last quarter is being processed
        produce(topics.bootstrap, topics.predictions, events[three_quarters:])
        victim = workers[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: (
                readiness(port).get("workers", [{}])[0].get("pid") not in (None, victim)
                and split(port)
            ),
            90,
            "the supervisor to restart the killed worker and the group to settle",
        )
        restarts = RESTARTS_LINE.findall(scrape(port, "/metrics").decode())
        assert restarts == ["1.0"], f"worker restarts: {restarts}"
        wait_until(
            lambda: (
                committed_total(topics.bootstrap, topics.group, topics.predictions) >= len(events)
            ),
            120,
            "the workers to finish",
        )
        pids = [w["pid"] for w in readiness(port)["workers"]]
        pod.send_signal(signal.SIGTERM)
        assert pod.wait(timeout=60) == 0
        assert not any(os.path.exists(f"/proc/{pid}") for pid in pids), "a worker outlived the pod"
    finally:
        if pod.poll() is None:
            pod.kill()

    with open(log_path, encoding="utf-8", errors="replace") as log_file:
        log_text = log_file.read()
    drained = re.findall(r"worker-(\d) \S+: stopped after \d+ events; offsets committed", log_text)
    assert sorted(drained) == ["0", "1"], f"workers that committed on SIGTERM: {drained}"

    expected = expected_alert_ids(
        settings, read_topic(topics.bootstrap, topics.predictions, expect=len(events))
    )
    seen = Counter(
        a["id"] for a in alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=3))
    )
    assert set(seen) == set(expected), (
        f"missing {len(set(expected) - set(seen))}, unexpected {len(set(seen) - set(expected))}"
    )
    assert max(seen.values()) == 1, "an alert was published twice"
