"""Start-up checks against the cluster: co-partitioned inputs, missing topics."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from detector.kafka.topics import TopicError
from tests.kafka_helpers import KafkaNames, ServiceThread, create_topics

pytestmark = pytest.mark.broker


def make(bootstrap: str, counts: dict[str, int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(name, n, 1) for name, n in counts.items()]
    ).values():
        future.result()


def test_inputs_that_are_not_co_partitioned_are_a_clear_error(topics: KafkaNames) -> None:
    make(topics.bootstrap, {topics.predictions: 3, topics.features: 2})
    detector = ServiceThread(topics.settings()).start()
    detector.thread.join(timeout=60)
    assert isinstance(detector.error, TopicError)
    assert (
        f"not co-partitioned ({topics.predictions} has 3, {topics.features} has 2, {topics.labels} has 3)"
        in str(detector.error)
    )


def test_a_state_topic_with_another_partition_count_is_a_clear_error(topics: KafkaNames) -> None:
    make(topics.bootstrap, {topics.predictions: 2, topics.features: 2, topics.state: 5})
    with pytest.raises(
        TopicError, match=f"state topic {topics.state} has 5 partitions but the inputs have 2"
    ):
        create_topics(topics.settings())


def test_missing_topics_are_created_only_when_allowed(topics: KafkaNames) -> None:
    with pytest.raises(TopicError, match=r"do not exist.*create_missing"):
        create_topics(topics.settings(topics={"create_missing": False}))
    assert create_topics(topics.settings(topics={"partitions": 2})) == 2
    metadata = AdminClient({"bootstrap.servers": topics.bootstrap}).list_topics(timeout=10).topics
    assert len(metadata[topics.state].partitions) == 2
    assert {topics.predictions, topics.features, topics.alerts, topics.dlq} <= set(metadata)
