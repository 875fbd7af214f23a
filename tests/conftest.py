"""Shared fixtures: one broker per test session, fresh topic names and group per test.

Integration tests run against the embedded Tansu broker started here as a separate process
on a free loopback port, or unchanged against any cluster named by STREAMDRIFT_TEST_BOOTSTRAP
(e.g. the docker-compose Kafka: STREAMDRIFT_TEST_BOOTSTRAP=localhost:9092), or against the
session's own Apache Kafka with STREAMDRIFT_TEST_BROKER=apache-kafka (`make test-kafka`).

Tests marked `apache_kafka` get their `topics` on Apache Kafka whatever the default: a KRaft
node started from the jars `make kafka` fetched (tests/apache_kafka), once per session and
only if such a test runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.broker import EmbeddedBroker
from tests.apache_kafka.broker import ApacheKafka
from tests.kafka_helpers import KafkaNames

EXTERNAL_BOOTSTRAP = "STREAMDRIFT_TEST_BOOTSTRAP"
DEFAULT_BROKER = "STREAMDRIFT_TEST_BROKER"  # "tansu" (default) or "apache-kafka"


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[ApacheKafka]:
    """A one-node Apache Kafka cluster (KRaft, broker and controller in one JVM) on loopback."""
    try:
        cluster = ApacheKafka().start()
    except Exception as exc:  # noqa: BLE001 - a missing JDK or Maven is one clear failure
        pytest.fail(f"cannot start Apache Kafka: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of the session's default broker."""
    external = os.environ.get(EXTERNAL_BOOTSTRAP)
    if external:
        yield external
        return
    if os.environ.get(DEFAULT_BROKER, "tansu") == "apache-kafka":
        yield request.getfixturevalue("apache_kafka").bootstrap_servers
        return
    log_path = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    broker = EmbeddedBroker(log_path=log_path).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def default_aborts_dead_transactions() -> bool:
    """Whether the default broker aborts a transaction left open by a killed producer (Apache
    Kafka and any external cluster do; the embedded Tansu does not, see design.md)."""
    return bool(os.environ.get(EXTERNAL_BOOTSTRAP)) or os.environ.get(DEFAULT_BROKER) == "apache-kafka"


@pytest.fixture
def topics(request: pytest.FixtureRequest) -> KafkaNames:
    """Unique topic names and group id for one test (topics are created by the code under test),
    on Apache Kafka for tests marked `apache_kafka`, else on the default broker."""
    suffix = uuid.uuid4().hex[:10]
    if request.node.get_closest_marker("apache_kafka"):
        cluster: ApacheKafka = request.getfixturevalue("apache_kafka")
        return KafkaNames(bootstrap=cluster.bootstrap_servers, suffix=suffix, aborts_dead_transactions=True)
    bootstrap: str = request.getfixturevalue("bootstrap")
    return KafkaNames(bootstrap=bootstrap, suffix=suffix, aborts_dead_transactions=default_aborts_dead_transactions())
