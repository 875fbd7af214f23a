"""What the detector knows of the cluster's health, as explicit state: connected or not, which
topics it found missing, and whether the cluster refused it for good.

librdkafka reports trouble through its error callback (`on_client_error`); recovery has no
callback, so while disconnected `check` asks for metadata every few seconds. A topic that is
gone (deleted, or lost by a broker that keeps no data) is logged and counted once per loss; it
is re-created when topics.create_missing allows, else the detector stays not ready until it
exists again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from detector.http.metrics import Metrics
from detector.kafka.clients import admin_config
from detector.kafka.topics import (
    TOPIC_GONE,
    UNREACHABLE,
    ensure_topics,
    output_topics,
    partition_counts,
    refusal,
)
from detector.settings import Settings

log = logging.getLogger(__name__)

CONNECTION_CHECK_S = 2.0


class ClusterWatch:
    """Connection and topic health of the cluster, from client errors and metadata checks."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        on_fatal: Callable[[], None],
        on_topics_lost: Callable[[], None],
    ) -> None:
        """`on_fatal`: the cluster refused the detector (stop). `on_topics_lost`: topics vanished
        with whatever lost them (a broker without storage), the producer's idempotence and
        transaction state included: the producer is to be replaced."""
        self.settings = settings
        self.metrics = metrics
        self.on_fatal = on_fatal
        self.on_topics_lost = on_topics_lost
        self.wanted = settings.topics.inputs() + output_topics(settings)
        self.connected = False
        self.missing: set[str] = set()  # topics found gone, until they are back
        self.fatal_error: KafkaError | None = None
        self.last_check = 0.0

    def on_client_error(self, error: KafkaError) -> None:
        """librdkafka's error callback. Fatal errors and refusals (TLS, credentials, ACLs) stop the
        process. An unreachable broker or a vanished topic makes it not ready: logged once per
        outage (repeats at DEBUG) until `check` finds the cluster whole again."""
        problem = refusal(error)
        if error.fatal() or problem:
            log.error("kafka client fatal error: %s", problem or error.str())
            self.fatal_error = error
            self.on_fatal()
            return
        if error.code() in UNREACHABLE or error.code() in TOPIC_GONE:
            log.log(
                logging.WARNING if self.connected else logging.DEBUG,
                "kafka: %s (not ready until this passes)",
                error.str(),
            )
            if self.connected:
                self.metrics.kafka_outages.inc()
            self.connected = False
            return
        log.warning("kafka: %s", error.str())

    def check(self, consumer: Consumer) -> None:
        """While disconnected, every CONNECTION_CHECK_S: ask for the topics' metadata; note the
        topics newly gone; re-create missing ones if allowed; connected once all are there."""
        if self.connected or time.monotonic() - self.last_check < CONNECTION_CHECK_S:
            return
        self.last_check = time.monotonic()
        try:
            present = partition_counts(consumer, self.wanted, timeout_s=1.0)
        except KafkaException:
            return
        missing = {name for name in self.wanted if name not in present}
        lost = sorted(missing - self.missing)
        self.missing |= missing
        create = self.settings.topics.create_missing
        for name in lost:
            self.metrics.topic_losses.labels(name).inc()
            self.metrics.topic_missing.labels(name).set(1)
            log.warning(
                "topic %s is gone from the cluster (deleted, or lost by a broker that keeps no data): %s",
                name,
                "re-creating it (topics.create_missing); its partitions are read again from the start and their models re-learned"
                if create
                else "not ready until it exists again (topics.create_missing is off)",
            )
        if lost:
            self.on_topics_lost()
        if missing and not create:
            return
        if missing:
            ensure_topics(
                AdminClient(admin_config(self.settings)),
                self.settings,
                self.settings.topics.inputs(),
                output_topics(self.settings),
            )
        for name in self.wanted:
            self.metrics.topic_missing.labels(name).set(0)
        self.missing.clear()
        log.info("kafka is reachable again")
        self.connected = True
