"""The ACLs the detector needs, and how a missing one is reported (pure; no broker: the broker
tests are in test_kafka_acls.py)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from detector.kafka.delivery import AtLeastOnceOutputs, ExactlyOnceOutputs
from detector.kafka.permissions import missing, needed
from detector.kafka.topics import Acl, NotAuthorized
from detector.settings import load_settings
from tests.unit.test_dead_letters import FakeRecord


def test_the_needed_acls_follow_the_settings() -> None:
    settings = load_settings(None, kafka={"group_id": "fraud"})
    assert [str(acl) for acl in needed(settings)] == [
        "Read topic 'predictions'",
        "Read topic 'features'",
        "Read topic 'labels'",
        "Read topic 'fraud-state'",
        "Read group 'fraud'",
        "Write topic 'drift-alerts'",
        "Write topic 'drift-dlq'",
        "Write topic 'fraud-state'",
        "Describe group 'fraud-restore'",
    ]
    stateless = load_settings(None, state={"enabled": False})
    assert not [acl for acl in needed(stateless) if "state" in acl.name or "restore" in acl.name]


def test_the_first_operation_not_allowed_is_missing() -> None:
    acls = [Acl("Read", "topic", "in"), Acl("Write", "topic", "out")]
    assert missing(acls, {("topic", "in"): {"READ", "DESCRIBE"}, ("topic", "out"): {"READ"}}) == (
        Acl("Write", "topic", "out")
    )
    assert missing(acls, {("topic", "in"): None}) is None  # the broker did not say


def test_a_missing_acl_is_one_line_naming_it_and_how_to_grant_it() -> None:
    message = str(NotAuthorized(Acl("Write", "transactional-id", "fraud-host"), "DENIED"))
    assert message.startswith("not authorized to Write transactional id 'fraud-host' (DENIED): ")
    assert "--operation Write --transactional-id 'fraud-host'" in message
    assert "\n" not in message


class RefusingProducer:
    """Refuses every record with `code`; under transactions, refuses the commit with it too."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.queued: list[tuple[str, Any]] = []

    def produce(self, topic: str, on_delivery: Any, **_: Any) -> None:
        self.queued.append((topic, on_delivery))

    def flush(self, timeout: float) -> int:
        for topic, on_delivery in self.queued:
            on_delivery(KafkaError(self.code), FakeRecord(topic))
        self.queued = []
        return 0

    def commit_transaction(self, timeout: float) -> None:
        raise KafkaException(
            KafkaError(self.code, "add partitions failed", txn_requires_abort=True)
        )

    def init_transactions(self, timeout: float) -> None:
        pass

    def begin_transaction(self) -> None:
        pass

    def abort_transaction(self, timeout: float) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0


def test_a_record_refused_for_a_missing_acl_names_its_topic() -> None:
    outputs = AtLeastOnceOutputs(RefusingProducer(KafkaError.TOPIC_AUTHORIZATION_FAILED))  # type: ignore[arg-type]
    outputs.send("drift-alerts", None, b"alert")
    with pytest.raises(NotAuthorized, match="not authorized to Write topic 'drift-alerts'"):
        outputs.settle()


def test_a_transaction_refused_for_a_missing_acl_stops_instead_of_rewinding() -> None:
    """Under exactly_once the refusal is abortable: rewinding would replay into it forever."""
    producer = RefusingProducer(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    outputs = ExactlyOnceOutputs(producer, "fraud-host")  # type: ignore[arg-type]
    outputs.send("fraud-state", None, b"checkpoint")
    producer.queued = []  # refused at commit, as AddPartitionsToTxn is
    with pytest.raises(NotAuthorized, match="not authorized to Write topic 'fraud-state'"):
        outputs.commit(None, [])  # type: ignore[arg-type]
    assert not outputs.in_transaction
