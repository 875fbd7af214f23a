"""The broker killed and restarted under a running detector (a broker of its own, on the same
port; it keeps everything in memory, so every topic and offset is lost).

The detector reports not ready while the broker is gone, reconnects, logs each lost topic once
and counts it (`streamdrift_topic_losses_total`, `streamdrift_topic_missing`), and resumes:
with topics.create_missing it re-creates the topics itself, without it it waits, not ready,
until someone else does. The broker is killed between checkpoints (no transaction open) and
stays down past the session timeout, so the group has given the partitions up."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.kafka.embedded import EmbeddedBroker, free_loopback_port
from producers.simulate import Injection, Simulator
from tests.kafka_helpers import (
    KafkaNames,
    alerts_of,
    committed_total,
    create_topics,
    produce,
    read_topic,
    start_cli,
    stop_gracefully,
    wait_until,
)
from tests.security.load import scrape_or_empty, total

pytestmark = pytest.mark.broker

# The embedded broker creates a missing topic, with 4 partitions, when a client asks for its
# metadata (as Apache Kafka does with auto.create.topics.enable): the detector's producer can so
# re-create an output topic before the detector does. Using that count keeps the race benign.
AUTO_CREATED_PARTITIONS = 4


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    own = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        yield own
    finally:
        own.stop()


def readiness(port: int) -> tuple[int, dict[str, Any]]:
    """/readyz: status and details ({} when not answering)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())
    except urllib.error.URLError:
        return 0, {}


def ready_status(port: int) -> int:
    return readiness(port)[0]


@pytest.mark.parametrize(
    "create_missing, guarantee", [(True, "exactly_once"), (False, "at_least_once")]
)
def test_a_broker_restart_is_survived(
    broker: EmbeddedBroker, create_missing: bool, guarantee: str
) -> None:
    names = KafkaNames(broker.bootstrap_servers, uuid.uuid4().hex[:10])
    settings = names.settings(topics={"partitions": AUTO_CREATED_PARTITIONS})
    create_topics(settings)
    port = free_loopback_port()
    env = names.env(
        STREAMDRIFT_METRICS__PORT=str(port),
        STREAMDRIFT_TOPICS__CREATE_MISSING=str(create_missing).lower(),
        STREAMDRIFT_TOPICS__PARTITIONS=str(AUTO_CREATED_PARTITIONS),
        STREAMDRIFT_PROCESSING_GUARANTEE=guarantee,
        STREAMDRIFT_COMMIT_INTERVAL_MS="300",
    )
    process = start_cli(["run"], env)
    try:
        produce(names.bootstrap, names.predictions, Simulator(model="m", seed=3).events(3000))
        wait_until(
            lambda: committed_total(names.bootstrap, names.group, names.predictions) >= 3000,
            60,
            "the first events committed",
        )
        assert ready_status(port) == 200

        broker.kill()
        wait_until(lambda: ready_status(port) == 503, 30, "not ready while the broker is down")
        wait_until(
            lambda: readiness(port)[1].get("partitions") == [],
            30,
            "the partitions given up (session timeout)",
        )
        broker.start()  # same port, empty
        wait_until(
            lambda: total(scrape_or_empty(port), "streamdrift_topic_losses_total") >= 6,
            60,
            "the lost topics counted",
        )
        if not create_missing:
            assert (
                ready_status(port) == 503
                and total(scrape_or_empty(port), "streamdrift_topic_missing") == 6
            )
            create_topics(settings)  # what an operator would do
        wait_until(lambda: ready_status(port) == 200, 60, "ready again")

        events = Simulator(
            model="m", seed=4, injections=(Injection("mean_shift", "amount", start=4000),)
        ).events(6000)
        produce(names.bootstrap, names.predictions, events)
        alerts = alerts_of(read_topic(names.bootstrap, names.alerts, expect=1, timeout_s=60))
        wait_until(
            lambda: total(scrape_or_empty(port), "streamdrift_events_total") >= len(events),
            60,
            "every new event processed",
        )
        # type: ignore[union-attr]
        assert process.poll() is None, (
            "the detector exited:\n" + process.stderr.read().decode()[-3000:]
        )
        metrics = scrape_or_empty(port)
    except BaseException:
        process.kill()
        raise
    stderr = stop_gracefully(process, 60).splitlines()
    amount = [a for a in alerts if a["data"]["monitor"] == "feature.amount"]
    assert amount and 4000 <= amount[0]["data"]["source"]["offset"] < 4300, alerts
    # the lost partitions' series went with them
    assert total(metrics, "streamdrift_events_total") == len(events)
    assert total(metrics, "streamdrift_topic_losses_total", topic=names.predictions) == 1
    assert total(metrics, "streamdrift_topic_missing") == 0
    gone = [line for line in stderr if "is gone from the cluster" in line]
    assert len(gone) == 6 and all(
        ("re-creating it" if create_missing else "not ready until it exists again") in line
        for line in gone
    ), gone
    assert "Traceback" not in "\n".join(stderr)
    warnings = [line for line in stderr if " WARNING " in line]
    assert len(warnings) < 20, "\n".join(warnings)  # a few lines per outage, not one per retry
