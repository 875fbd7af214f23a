"""Which Kafka errors end the process at once, and what their message tells the operator (pure)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from detector.kafka.topics import REFUSALS, TOPIC_GONE, UNREACHABLE, refusal


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_refusals_say_what_and_what_to_do(code: int) -> None:
    message = refusal(KafkaError(code, "broker said no"))
    assert message is not None and "broker said no" in message
    assert any(hint in message for hint in ("ssl.ca.location", "sasl.password", "ACLs"))


@pytest.mark.parametrize(
    "code", sorted(UNREACHABLE | TOPIC_GONE | {KafkaError._TIMED_OUT, KafkaError.NOT_COORDINATOR})
)
def test_passing_troubles_are_not_refusals(code: int) -> None:
    assert refusal(KafkaError(code, "try again")) is None
