"""The tests' Apache Kafka and the docker-compose one are the same version."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.apache_kafka.broker import kafka_version

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_the_compose_kafka_is_the_version_the_tests_run() -> None:
    image = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{kafka_version()}"
