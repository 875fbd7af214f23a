"""Shared fixtures: one broker per test session, fresh topic names and group per test.

Integration tests run against the embedded Tansu broker started here as a separate process
on a free loopback port, or unchanged against any cluster named by STREAMDRIFT_TEST_BOOTSTRAP
(e.g. the docker-compose Kafka: STREAMDRIFT_TEST_BOOTSTRAP=localhost:9092).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.kafka.embedded import EmbeddedBroker
from tests.kafka_helpers import KafkaNames

EXTERNAL_BOOTSTRAP = "STREAMDRIFT_TEST_BOOTSTRAP"


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of the session's broker."""
    external = os.environ.get(EXTERNAL_BOOTSTRAP)
    if external:
        yield external
        return
    log_path = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    broker = EmbeddedBroker(log_path=log_path).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topics(bootstrap: str) -> KafkaNames:
    """Unique topic names and group id for one test (topics are created by the code under test)."""
    return KafkaNames(bootstrap=bootstrap, suffix=uuid.uuid4().hex[:10])
