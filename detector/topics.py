"""Start-up checks against the cluster: wait for a broker, create missing topics, and make sure
the input topics are co-partitioned (Kafka I/O, at the edge)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from detector.settings import Settings

log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """The cluster's topics do not fit the configuration (message says what to do)."""


def wait_for_cluster(
    admin: AdminClient, bootstrap: str, should_stop: Callable[[], bool], max_backoff_s: float = 30.0
) -> bool:
    """Block until the cluster answers a metadata request; retry with backoff and one log line
    per attempt. Returns False if asked to stop first."""
    backoff = 0.5
    while not should_stop():
        try:
            admin.list_topics(timeout=5)
            return True
        except KafkaException as exc:
            log.warning("kafka at %s is unreachable (%s); retrying in %.1fs", bootstrap, exc.args[0], backoff)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not should_stop():
            time.sleep(0.1)
        backoff = min(backoff * 2, max_backoff_s)
    return False


def partition_counts(admin: AdminClient, topics: list[str]) -> dict[str, int]:
    """Partition count of each existing topic among `topics`."""
    metadata = admin.list_topics(timeout=10)
    return {name: len(metadata.topics[name].partitions) for name in topics if name in metadata.topics and not metadata.topics[name].error}


def ensure_topics(admin: AdminClient, settings: Settings, inputs: list[str], outputs: list[str]) -> int:
    """Create missing topics if allowed, check co-partitioning; return the input partition count."""
    t = settings.topics
    state = settings.state_topic()
    wanted = inputs + outputs
    existing = partition_counts(admin, wanted)
    missing = [name for name in wanted if name not in existing]
    if missing and not t.create_missing:
        raise TopicError(f"topics {', '.join(missing)} do not exist; create them or set topics.create_missing = true")
    input_counts = {name: existing[name] for name in inputs if name in existing}
    partitions = max(input_counts.values(), default=t.partitions)
    if missing:
        compact = {"cleanup.policy": "compact"}
        new = [
            NewTopic(name, num_partitions=partitions if name in inputs or name == state else t.partitions,
                     replication_factor=t.replication_factor, config=compact if name == state else {})
            for name in missing
        ]
        for name, future in admin.create_topics(new, operation_timeout=10).items():
            try:
                future.result()
                log.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"cannot create topic {name}: {exc.args[0].str()}") from None
        existing = partition_counts(admin, wanted)
    counts = {name: existing.get(name, partitions) for name in inputs}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{name} has {count}" for name, count in counts.items())
        raise TopicError(f"input topics are not co-partitioned ({detail}); give them the same partition count")
    state_count = existing.get(state)
    if state in outputs and state_count is not None and state_count != partitions:
        raise TopicError(f"state topic {state} has {state_count} partitions but the inputs have {partitions}; they must match")
    return partitions
