"""Scale-out: two detector processes in one group share the partitions; each model is watched by
exactly one of them at a time; when one dies its partitions and state move to the other, and
the alerts are those one uninterrupted process would publish."""

from __future__ import annotations

import re
import signal
import urllib.request
from collections import Counter

import orjson
import pytest

from detector.kafka.embedded import free_loopback_port
from producers.simulate import Injection, Simulator
from tests.kafka_helpers import (
    KafkaNames,
    alerts_of,
    committed_offsets,
    committed_total,
    create_topics,
    expected_alert_ids,
    interleaved,
    produce,
    read_topic,
    start_cli,
    wait_until,
)

pytestmark = pytest.mark.broker

PARTITIONS = 4
MODELS = 16
EVENTS_PER_MODEL = 6000
# A model's gauges are on the replica that owns it: restored ones too, from the assignment on.
MODEL_LINE = re.compile(r'^streamdrift_drift_active\{model="([^"]+)"', re.MULTILINE)


def scrape(port: int, path: str) -> bytes:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.read()
    except OSError as error:
        return getattr(error, "read", lambda: b"")()


def models_on(port: int) -> set[str]:
    return set(MODEL_LINE.findall(scrape(port, "/metrics").decode()))


def partitions_of(port: int) -> set[int]:
    body = scrape(port, "/readyz")
    return set(orjson.loads(body)["partitions"]) if body else set()


def test_two_replicas_share_partitions_and_take_over_state(topics: KafkaNames) -> None:
    settings = topics.settings(topics={"partitions": PARTITIONS})
    assert create_topics(settings) == PARTITIONS
    streams = [
        Simulator(
            model=f"m{i:02d}",
            seed=i,
            injections=(Injection("mean_shift", "amount", start=1500 + 150 * i, length=2500),),
        ).events(EVENTS_PER_MODEL)
        for i in range(MODELS)
    ]
    events = interleaved(streams)
    half = len(events) // 2
    produce(topics.bootstrap, topics.predictions, events[:half])

    ports = {"a": free_loopback_port(), "b": free_loopback_port()}
    replicas = {
        name: start_cli(
            ["run"],
            topics.env(
                STREAMDRIFT_TOPICS__PARTITIONS=str(PARTITIONS),
                STREAMDRIFT_METRICS__PORT=str(port),
                STREAMDRIFT_KAFKA__TRANSACTIONAL_ID=f"tx-{topics.suffix}-{name}",
                STREAMDRIFT_COMMIT_INTERVAL_MS="300",
            ),
        )
        for name, port in ports.items()
    }
    try:
        overlaps: list[set[str]] = []

        def settled() -> bool:
            overlaps.append(models_on(ports["a"]) & models_on(ports["b"]))
            return committed_total(topics.bootstrap, topics.group, topics.predictions) >= half

        wait_until(settled, 120, "both replicas to process the first half")

        def shared() -> (
            bool
        ):  # one replica may take the whole first half before the other has joined
            on_a, on_b = partitions_of(ports["a"]), partitions_of(ports["b"])
            return bool(on_a and on_b) and on_a | on_b == set(range(PARTITIONS))

        wait_until(shared, 60, "both replicas to share the partitions")
        on_a, on_b = partitions_of(ports["a"]), partitions_of(ports["b"])
        assert on_a and on_b and not on_a & on_b, f"partitions a={on_a} b={on_b}"
        models_a, models_b = models_on(ports["a"]), models_on(ports["b"])
        assert models_a and models_b and not models_a & models_b
        assert not any(overlaps), (
            f"a model was monitored by both replicas at once: {[o for o in overlaps if o][:3]}"
        )

        handover = committed_offsets(topics.bootstrap, topics.group, topics.predictions)
        replicas["a"].send_signal(signal.SIGKILL)  # idle: its last transaction is committed
        replicas["a"].wait()
        produce(topics.bootstrap, topics.predictions, events[half:])
        wait_until(
            lambda: partitions_of(ports["b"]) == set(range(PARTITIONS)),
            60,
            "the survivor to own every partition",
        )
        wait_until(
            lambda: (
                committed_total(topics.bootstrap, topics.group, topics.predictions) >= len(events)
            ),
            120,
            "the survivor to finish",
        )
        assert models_a <= models_on(ports["b"]), (
            "the survivor does not monitor the dead replica's models"
        )
        replicas["b"].send_signal(signal.SIGTERM)
        assert replicas["b"].wait(timeout=30) == 0
    finally:
        for process in replicas.values():
            if process.poll() is None:
                process.kill()

    expected = expected_alert_ids(
        settings, read_topic(topics.bootstrap, topics.predictions, expect=len(events))
    )
    seen = Counter(
        a["id"] for a in alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=3))
    )
    assert set(seen) == set(expected), (
        f"missing {len(set(expected) - set(seen))}, unexpected {len(set(seen) - set(expected))}"
    )
    assert max(seen.values()) == 1
    # State moved with the partitions: the dead replica's models raised alerts after the handover
    # at the same events as one process would (with lost state, warm-up would restart and shift them).
    late = [
        a
        for a in alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=1))
        if a["data"]["model"] in models_a
        and a["data"]["source"]["offset"] >= handover[a["data"]["source"]["partition"]]
    ]
    assert late, "no alert of the dead replica's models after the handover"
