"""Native security on Apache Kafka: a SASL_SSL listener (SCRAM-SHA-512 over TLS) and the standard
authorizer with no ACL meaning no access (tests/apache_kafka/security.py).

The detector runs with exactly the minimal ACL set of docs/security.md (tests/security/acls.py);
without any one of them, or with a wrong password, `streamdrift run` exits 1 with one line
naming what is missing; an ACL revoked while it runs stops it the same way instead of rewinding
forever."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from detector.kafka.topics import ClusterRefused
from detector.settings import Settings
from producers.simulate import Injection, Simulator
from producers.sinks import KafkaSink
from producers.stream import Batch
from tests.apache_kafka.broker import ApacheKafka
from tests.apache_kafka.security import BrokerSecurity
from tests.kafka_helpers import KafkaNames, ServiceThread, create_topics, start_cli, wait_until
from tests.security.acls import Grant, grant, minimal_grants, revoke
from tests.security.tls import make_certificates

pytestmark = pytest.mark.apache_kafka

USER = "detector"
PASSWORD = "detector-scram-password-never-logged"
EVENTS = 6000
DRIFT_AT = 4000
EXIT_WAIT_S = 120.0


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[tuple[ApacheKafka, BrokerSecurity]]:
    """One Apache Kafka node with SASL_SSL, SCRAM users `admin` and `detector`, and ACLs enforced."""
    with tempfile.TemporaryDirectory(prefix="secure-kafka-") as directory:
        certificates = make_certificates(Path(directory))
        keystore = Path(directory) / "keystore.pem"
        keystore.write_text(certificates.key.read_text() + certificates.server.read_text())
        security = BrokerSecurity(
            keystore, certificates.ca, {"admin": uuid.uuid4().hex, USER: PASSWORD}
        )
        try:
            cluster = ApacheKafka(security=security).start()
        except Exception as exc:
            pytest.fail(f"cannot start Apache Kafka with SASL_SSL: {exc}", pytrace=False)
        try:
            yield cluster, security
        finally:
            cluster.stop()


@dataclass
class Deployment:
    """Fresh topics and group on the secure broker, created by the super user."""

    cluster: ApacheKafka
    security: BrokerSecurity
    names: KafkaNames

    @property
    def admin_config(self) -> dict[str, Any]:
        return self.cluster.admin_config()

    def detector_settings(self, **overrides: Any) -> Settings:
        properties = self.security.client_properties(USER)
        password = properties.pop("sasl.password")
        return self.names.settings(
            kafka={"properties": properties, "secrets": {"sasl.password": password}},
            topics={"create_missing": False},
            **overrides,
        )

    def detector_env(self, password: str = PASSWORD, **extra: str) -> dict[str, str]:
        properties = self.security.client_properties(USER)
        del properties["sasl.password"]
        return self.names.env(
            **{
                "STREAMDRIFT_KAFKA__PROPERTIES": json.dumps(properties),
                "STREAMDRIFT_KAFKA__SECRETS": json.dumps({"sasl.password": password}),
                "STREAMDRIFT_TOPICS__CREATE_MISSING": "false",
                **extra,
            }
        )

    def create_topics(self) -> None:
        admin_settings = self.names.settings(
            kafka={
                "bootstrap_servers": self.admin_config["bootstrap.servers"],
                "properties": {
                    k: v for k, v in self.admin_config.items() if k != "bootstrap.servers"
                },
            }
        )
        create_topics(admin_settings)

    def produce_events(self) -> None:
        """A stream with a mean shift at DRIFT_AT, written by the super user."""
        events = Simulator(
            model="m", seed=1, injections=(Injection("mean_shift", "amount", start=DRIFT_AT),)
        ).events(EVENTS)
        sink = KafkaSink(self.admin_config, self.names.predictions, None)
        sink.write(Batch(events, []))
        sink.close()

    def grant(self, grants: list[Grant]) -> None:
        grant(AdminClient(self.admin_config), f"User:{USER}", grants)

    def alerts(self) -> list[dict[str, Any]]:
        """The committed alerts, read by the super user."""
        consumer = Consumer(
            {
                **self.admin_config,
                "group.id": "test-reader",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        try:
            topic = consumer.list_topics(self.names.alerts, timeout=10).topics[self.names.alerts]
            consumer.assign([TopicPartition(self.names.alerts, p, 0) for p in topic.partitions])
            found: list[dict[str, Any]] = []
            at_end: set[int | None] = set()
            while len(at_end) < len(topic.partitions):
                for message in consumer.consume(1000, 1.0):
                    error = message.error()
                    if error is None:
                        found.append(orjson.loads(message.value() or b"null"))
                    elif error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                    else:
                        raise KafkaException(error)
            return found
        finally:
            consumer.close()


@pytest.fixture
def deployment(secure_kafka: tuple[ApacheKafka, BrokerSecurity]) -> Deployment:
    cluster, security = secure_kafka
    deployed = Deployment(
        cluster, security, KafkaNames(cluster.bootstrap_servers, uuid.uuid4().hex[:10])
    )
    deployed.create_topics()
    return deployed


def stopped_run(env: dict[str, str]) -> tuple[int | None, list[str]]:
    """`streamdrift run` expected to stop on its own: exit code and stderr lines."""
    process = start_cli(["run"], env)
    try:
        _, stderr = process.communicate(timeout=EXIT_WAIT_S)
    except Exception:
        process.kill()
        _, stderr = process.communicate()
        return None, stderr.decode().splitlines()
    return process.returncode, stderr.decode().splitlines()


def error_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if " ERROR " in line or "Traceback" in line]


def test_the_minimal_acls_are_enough_under_exactly_once(deployment: Deployment) -> None:
    settings = deployment.detector_settings()
    deployment.grant(minimal_grants(settings))
    deployment.produce_events()
    detector = ServiceThread(settings)
    with detector:
        detector.wait_processed(EVENTS, timeout_s=120)
        wait_until(
            lambda: (
                (detector.service.registry.get_sample_value("streamdrift_commits_total") or 0) >= 1
            ),
            60,
            "a committed transaction",
        )
    detected = [a for a in deployment.alerts() if a["type"].endswith("detected")]
    assert "feature.amount" in {a["data"]["monitor"] for a in detected}


def _expected(grant: Grant) -> str:
    resource = grant.resource.name.lower().replace("_", " ")
    return f"not authorized to {grant.operation.name.capitalize()} {resource} '{grant.name}'"


MINIMAL_SET = [
    "READ on topic 'predictions",
    "READ on topic 'labels",
    "READ on group 'group",
    "DESCRIBE on group",
    "WRITE on topic 'alerts",
    "WRITE on topic 'dlq",
    "READ on topic 'state",
    "WRITE on topic 'state",
    "WRITE on transactional_id",
]


@pytest.mark.parametrize("removed", MINIMAL_SET)
def test_each_missing_acl_stops_the_process_with_one_line_naming_it(
    deployment: Deployment, removed: str
) -> None:
    grants = minimal_grants(deployment.detector_settings())
    missing = [g for g in grants if str(g).startswith(removed)]
    assert len(missing) == 1, (removed, [str(g) for g in grants])
    deployment.grant([g for g in grants if g is not missing[0]])
    code, lines = stopped_run(deployment.detector_env())
    errors = error_lines(lines)
    assert code == 1, lines
    assert len(errors) == 1 and _expected(missing[0]) in errors[0], lines
    assert f"--operation {missing[0].operation.name.capitalize()}" in errors[0]
    assert not [line for line in lines if line.startswith("%")], "librdkafka noise on stderr"


def test_a_wrong_password_is_one_clear_line(deployment: Deployment) -> None:
    wrong = "not-the-password-" + uuid.uuid4().hex
    code, lines = stopped_run(deployment.detector_env(password=wrong))
    errors = error_lines(lines)
    assert code == 1
    assert len(errors) == 1 and "authentication failed" in errors[0], lines
    assert "SCRAM-SHA-512" in errors[0] and "sasl.password" in errors[0], errors
    assert not [line for line in lines if wrong in line or PASSWORD in line]


def test_a_missing_create_acl_is_named_when_topics_are_created(deployment: Deployment) -> None:
    """create_missing: the detector may Write the dead-letter topic, so it sees that the topic
    does not exist, but it may not create it."""
    absent = f"absent-dlq-{deployment.names.suffix}"
    deployment.grant(minimal_grants(deployment.names.settings(topics={"dlq": absent})))
    env = deployment.detector_env(
        STREAMDRIFT_TOPICS__CREATE_MISSING="true", STREAMDRIFT_TOPICS__DLQ=absent
    )
    code, lines = stopped_run(env)
    errors = error_lines(lines)
    assert code == 1
    assert len(errors) == 1 and f"not authorized to Create topic '{absent}'" in errors[0], lines


def test_an_acl_revoked_while_running_stops_the_detector(deployment: Deployment) -> None:
    settings = deployment.detector_settings()
    grants = minimal_grants(settings)
    deployment.grant(grants)
    deployment.produce_events()
    detector = ServiceThread(settings).start()
    try:
        detector.wait_processed(EVENTS, timeout_s=120)
        state_write = next(g for g in grants if str(g).startswith("WRITE on topic 'state"))
        revoke(AdminClient(deployment.admin_config), f"User:{USER}", state_write)
        more = Simulator(model="m", seed=2).events(500)
        sink = KafkaSink(deployment.admin_config, deployment.names.predictions, None)
        sink.write(Batch(more, []))
        sink.close()
        detector.thread.join(timeout=EXIT_WAIT_S)
        assert not detector.thread.is_alive(), "the detector kept rewinding instead of stopping"
    finally:
        detector.service.request_stop()
        detector.thread.join(timeout=30)
    # The transaction names no topic when it is refused: the message names those it wrote.
    assert isinstance(detector.error, ClusterRefused), detector.error
    assert "not authorized" in str(detector.error)
    assert f"'{deployment.names.state}'" in str(detector.error)
