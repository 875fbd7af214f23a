"""The cluster watch on its own (Kafka faked): connection and missing topics are its own state,
not read back from the metrics it exports."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from detector.http.metrics import Metrics
from detector.service import cluster_watch
from detector.service.cluster_watch import ClusterWatch
from detector.settings import load_settings


class Metadata:
    """A consumer's list_topics: the topics in `present`, 3 partitions each."""

    def __init__(self, present: set[str]) -> None:
        self.present = present

    def list_topics(self, timeout: float) -> SimpleNamespace:
        topic = SimpleNamespace(partitions={0: None, 1: None, 2: None}, error=None)
        return SimpleNamespace(topics=dict.fromkeys(self.present, topic))


def watch(create_missing: bool = False) -> tuple[ClusterWatch, list[str]]:
    settings = load_settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"}, topics={"create_missing": create_missing}
    )
    events: list[str] = []
    part = ClusterWatch(
        settings,
        Metrics(CollectorRegistry()),
        on_fatal=lambda: events.append("fatal"),
        on_topics_lost=lambda: events.append("topics lost"),
    )
    part.connected = True
    return part, events


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_watch, "CONNECTION_CHECK_S", 0.0)


def gauge(part: ClusterWatch, name: str, topic: str) -> float | None:
    return part.metrics.registry.get_sample_value(name, {"topic": topic})


def test_an_unreachable_broker_disconnects_and_a_refusal_is_fatal() -> None:
    part, events = watch()
    part.on_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert not part.connected and events == []
    part.on_client_error(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED))
    assert events == ["fatal"] and part.fatal_error is not None


def test_a_lost_topic_is_counted_once_and_waited_for_unless_it_may_be_created() -> None:
    part, events = watch()
    everything = set(part.wanted)
    part.connected = False
    part.check(Metadata(everything - {"drift-alerts"}))  # type: ignore[arg-type]
    part.check(Metadata(everything - {"drift-alerts"}))  # type: ignore[arg-type]
    assert not part.connected and part.missing == {"drift-alerts"}
    assert events == ["topics lost"]
    assert gauge(part, "streamdrift_topic_losses_total", "drift-alerts") == 1
    assert gauge(part, "streamdrift_topic_missing", "drift-alerts") == 1
    part.check(Metadata(everything))  # type: ignore[arg-type]
    assert part.connected and not part.missing and events == ["topics lost"]


def test_checks_only_while_disconnected() -> None:
    part, events = watch()
    part.check(Metadata(set()))  # type: ignore[arg-type]
    assert part.connected and not part.missing and events == []
