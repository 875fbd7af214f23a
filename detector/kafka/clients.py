"""The librdkafka configurations of the service's producer and consumer, built from the settings
(pure), and a check that librdkafka accepts them, made before anything connects."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from detector.settings import ConfigError, ProcessingGuarantee, Settings

Client = type[Producer] | type[Consumer]

# librdkafka's own log lines (a line per failed reconnect) go here, not to stderr; the service
# shows them at DEBUG only: its errors reach it through error_cb, which logs each outage once.
LIBRDKAFKA_LOG = logging.getLogger("detector.librdkafka")


def admin_config(settings: Settings) -> dict[str, Any]:
    """An admin client's configuration: the passthrough properties, its log to LIBRDKAFKA_LOG."""
    return {**settings.kafka.client_config(), "logger": LIBRDKAFKA_LOG}


def consumer_config(settings: Settings) -> dict[str, Any]:
    """The input consumer's configuration, callbacks aside: the passthrough properties, then what
    the detector's delivery depends on (manual offsets, read_committed, the range assignor, which
    keeps partition p of every input topic on one member). Under the consumer group protocol
    (KIP-848) the broker assigns and times sessions out, so the assignor is named to it and the
    session timeout is the broker's."""
    kafka = settings.kafka
    group: dict[str, Any] = (
        {"group.protocol": "consumer", "group.remote.assignor": "range"}
        if kafka.group_protocol == "consumer"
        else {
            "partition.assignment.strategy": "range",
            "session.timeout.ms": kafka.session_timeout_ms,
        }
    )
    return {
        "auto.offset.reset": "earliest",
        **kafka.client_config(),
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        **group,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """The output producer's configuration, callbacks aside: idempotent, and transactional under
    exactly_once."""
    kafka = settings.kafka
    config: dict[str, Any] = {
        "linger.ms": 5,
        **kafka.client_config(),
        "enable.idempotence": True,
        "allow.auto.create.topics": False,  # a lost topic is re-created by ensure_topics, with the right partitions
    }
    if settings.processing_guarantee is ProcessingGuarantee.exactly_once:
        config["transactional.id"] = kafka.effective_transactional_id()
    return config


def check_client_configs(settings: Settings) -> None:
    """Have librdkafka build the producer and the consumer the service would use; raise ConfigError
    naming the property it refuses (unknown, a bad value, a conflict with what the detector sets)."""
    passthrough = {key: f"kafka.properties.{key}" for key in settings.kafka.properties}
    passthrough |= {key: f"kafka.secrets.{key}" for key in settings.kafka.secrets}
    for client, config in (
        (Producer, producer_config(settings)),
        (Consumer, consumer_config(settings)),
    ):
        problem = _refusal(client, config)
        if problem is None:
            continue
        culprit = _culprit(client, config, passthrough)
        for secret in settings.kafka.secrets.values():
            if secret.get_secret_value():
                problem = problem.replace(secret.get_secret_value(), "**********")
        what = f"setting {passthrough[culprit]}" if culprit else "kafka settings"
        raise ConfigError(
            f"invalid {what}: librdkafka refuses the {client.__name__.lower()} configuration: {problem}"
        )


def _refusal(client: Client, config: dict[str, Any]) -> str | None:
    """librdkafka's objection to a client configuration, or None. The client is built without
    bootstrap servers and its logs silenced, so nothing connects and nothing is printed."""
    try:
        client({**config, "bootstrap.servers": "", "log_level": 0}).close()
    except KafkaException as exc:
        return exc.args[0].str()
    return None


def _culprit(client: Client, config: dict[str, Any], passthrough: dict[str, str]) -> str | None:
    """The first passthrough property that librdkafka refuses on its own, next to the properties
    the detector sets; None when only a combination is refused. Exact where librdkafka's message
    names another property (an alias such as linger.ms is reported as queue.buffering.max.ms)."""
    own = {key: value for key, value in config.items() if key not in passthrough}
    if _refusal(client, own) is not None:
        return None
    return next(
        (key for key in passthrough if _refusal(client, {**own, key: config[key]}) is not None),
        None,
    )
