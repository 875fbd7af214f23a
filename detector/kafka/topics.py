"""Checks against the cluster (Kafka I/O, at the edge): wait for a broker, tell failures that no
retry can fix (TLS, authentication, authorization, the wrong security protocol) from an
unreachable broker, create missing topics, and make sure the input topics are co-partitioned."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from detector.settings import Settings

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 5.0
TLS_PROBE_TIMEOUT_S = 3.0
TLS_PROTOCOLS = ("ssl", "sasl_ssl")

_TLS_HINT = (
    "check kafka.properties ssl.ca.location (the CA that signed the broker's certificate) and that the "
    "certificate names the host in bootstrap_servers (ssl.endpoint.identification.algorithm=https checks it)"
)
_LOGIN_HINT = "check kafka.properties sasl.mechanism and sasl.username, and the sasl.password in kafka.secrets"
_ACL_HINT = "grant the detector's principal the ACLs listed in docs/security.md"

# Errors that retrying cannot fix, with what to do about them.
REFUSALS: dict[int, tuple[str, str]] = {
    KafkaError._SSL: ("TLS handshake failed", _TLS_HINT),
    KafkaError._AUTHENTICATION: ("authentication failed", _LOGIN_HINT),
    KafkaError.SASL_AUTHENTICATION_FAILED: ("authentication failed", _LOGIN_HINT),
    KafkaError.TOPIC_AUTHORIZATION_FAILED: ("not authorized for a topic", _ACL_HINT),
    KafkaError.GROUP_AUTHORIZATION_FAILED: ("not authorized for the consumer group", _ACL_HINT),
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: (
        "not authorized for the transactional id",
        _ACL_HINT,
    ),
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: ("not authorized on the cluster", _ACL_HINT),
}


# Errors that pass once the cluster is reachable again, or once the topic exists again.
UNREACHABLE = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE})
TOPIC_GONE = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)


class TopicError(RuntimeError):
    """The cluster's topics do not fit the configuration (message says what to do)."""


class ClusterRefused(ConnectionError):
    """The cluster answered but will not serve this client as configured: retrying cannot help."""


AUTHORIZATION_FAILURES = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)


@dataclass(frozen=True)
class Acl:
    """One operation on one resource, as kafka-acls.sh spells them (resource: topic, group,
    transactional-id; operation: Read, Write, Describe, Create)."""

    operation: str
    resource: str
    name: str

    def __str__(self) -> str:
        return f"{self.operation} {self.resource.replace('-', ' ')} '{self.name}'"

    def flags(self) -> str:
        return f"--operation {self.operation} --{self.resource} '{self.name}'"


class NotAuthorized(ClusterRefused):
    """The broker refuses the detector's principal an operation it needs: no retry can help."""

    def __init__(self, acl: Acl, reason: str) -> None:
        self.acl = acl
        super().__init__(
            f"not authorized to {acl} ({reason}): grant it with kafka-acls.sh --add "
            f"--allow-principal <the detector's principal> {acl.flags()}; "
            "docs/security.md lists every ACL the detector needs"
        )


def refusal(error: KafkaError) -> str | None:
    """What is wrong and what to do, if `error` is one that no retry can fix; else None."""
    known = REFUSALS.get(error.code())
    if known is None:
        return None
    what, hint = known
    return f"{what} ({error.str()}); {hint}"


def protocol_mismatch(config: dict[str, Any], timeout_s: float = TLS_PROBE_TIMEOUT_S) -> str | None:
    """Whether the first bootstrap server speaks TLS when security.protocol says it does not,
    or the other way round; None when it fits or the server cannot be reached at all.

    The probe is a TLS handshake that checks no certificate and sends no data."""
    address = str(config["bootstrap.servers"]).split(",")[0].strip()
    host, _, port = address.rpartition(":")
    protocol = str(config.get("security.protocol", "plaintext")).lower()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    except (OSError, ValueError):
        return None  # unreachable: a question for the retry loop
    with sock:
        try:
            context.wrap_socket(sock, server_hostname=host.strip("[]")).close()
            speaks_tls = True
        except ssl.SSLError as exc:
            # answered in TLS, if only to refuse (e.g. no client certificate)
            speaks_tls = "ALERT" in (exc.reason or "")
        except OSError:  # closed, reset or silent: not a TLS listener
            speaks_tls = False
    if speaks_tls and protocol not in TLS_PROTOCOLS:
        return f"{address} speaks TLS but security.protocol is {protocol}: set kafka.properties security.protocol = SSL (or SASL_SSL) and ssl.ca.location"
    if not speaks_tls and protocol in TLS_PROTOCOLS:
        return f"{address} does not speak TLS but security.protocol is {protocol}: use the broker's TLS listener, or security.protocol = PLAINTEXT (or SASL_PLAINTEXT)"
    return None


def _answer_wait(backoff_s: float) -> float:
    """How long an attempt of `wait_for_cluster` waits for an answer (a refusal shows within the first second)."""
    return min(2 * backoff_s, METADATA_TIMEOUT_S)


def wait_for_cluster(
    config: dict[str, Any], should_stop: Callable[[], bool], max_backoff_s: float = 30.0
) -> bool:
    """Block until the cluster answers a metadata request; retry with backoff and one log line
    per attempt while it is unreachable. Returns False if asked to stop first.

    Raises ClusterRefused at once for what no retry can fix: a failed TLS handshake, rejected
    credentials, a missing ACL, or a security.protocol that does not fit the listener."""
    errors: list[KafkaError] = []
    # librdkafka would log every reconnect on stderr; its errors come through error_cb instead.
    probe_config: dict[str, Any] = {**config, "error_cb": errors.append, "log_level": 0}
    probe = AdminClient(probe_config)
    bootstrap = config["bootstrap.servers"]
    backoff = 0.5
    while not should_stop():
        next_backoff = min(backoff * 2, max_backoff_s)
        try:
            probe.list_topics(timeout=_answer_wait(backoff))
            return True
        except KafkaException as exc:
            probe.poll(0)  # serves error_cb
            problem = next(filter(None, map(refusal, errors)), None) or protocol_mismatch(config)
            if problem:
                raise ClusterRefused(f"cannot use kafka at {bootstrap}: {problem}") from None
            cause = errors[0].str() if errors else exc.args[0].str()
            log.warning(
                "kafka at %s is unreachable (%s); retrying in %.1fs, then waiting up to %.1fs for an answer",
                bootstrap,
                cause,
                backoff,
                _answer_wait(next_backoff),
            )
            errors.clear()
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not should_stop():
            time.sleep(0.1)
        backoff = next_backoff
    return False


def output_topics(settings: Settings) -> list[str]:
    """The topics the detector writes: alerts, dead letters and (when enabled) state."""
    return [settings.topics.alerts, settings.topics.dlq] + (
        [settings.state_topic()] if settings.state.enabled else []
    )


def partition_counts(
    client: AdminClient | Consumer, topics: list[str], timeout_s: float = 10.0
) -> dict[str, int]:
    """Partition count of each existing topic among `topics`."""
    metadata = client.list_topics(timeout=timeout_s)
    return {
        name: len(metadata.topics[name].partitions)
        for name in topics
        if name in metadata.topics and not metadata.topics[name].error
    }


def wait_listed(
    admin: AdminClient, topics: list[str], timeout_s: float = 2 * METADATA_TIMEOUT_S
) -> dict[str, int]:
    """Partition counts once every topic is listed, or at timeout_s: Apache Kafka answers
    CreateTopics before every broker's metadata lists the new topics."""
    deadline = time.monotonic() + timeout_s
    counts = partition_counts(admin, topics)
    while len(counts) < len(topics) and time.monotonic() < deadline:
        time.sleep(0.1)
        counts = partition_counts(admin, topics)
    return counts


def ensure_topics(
    admin: AdminClient, settings: Settings, inputs: list[str], outputs: list[str]
) -> int:
    """Create missing topics if allowed, check co-partitioning; return the input partition count."""
    t = settings.topics
    state = settings.state_topic()
    wanted = inputs + outputs
    existing = partition_counts(admin, wanted)
    missing = [name for name in wanted if name not in existing]
    if missing and not t.create_missing:
        raise TopicError(
            f"topics {', '.join(missing)} do not exist; create them or set topics.create_missing = true"
        )
    input_counts = {name: existing[name] for name in inputs if name in existing}
    partitions = max(input_counts.values(), default=t.partitions)
    if missing:
        compact = {"cleanup.policy": "compact"}
        new = [
            NewTopic(
                name,
                num_partitions=partitions if name in inputs or name == state else t.partitions,
                replication_factor=t.replication_factor,
                config=compact if name == state else {},
            )
            for name in missing
        ]
        for name, future in admin.create_topics(new, operation_timeout=10).items():
            try:
                future.result()
                log.info("created topic %s", name)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in AUTHORIZATION_FAILURES:
                    raise NotAuthorized(Acl("Create", "topic", name), error.name()) from None
                if error.code() != error.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"cannot create topic {name}: {error.str()}") from None
        existing = wait_listed(admin, wanted)
    counts = {name: existing.get(name, partitions) for name in inputs}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{name} has {count}" for name, count in counts.items())
        raise TopicError(
            f"input topics are not co-partitioned ({detail}); give them the same partition count"
        )
    state_count = existing.get(state)
    if state in outputs and state_count is not None and state_count != partitions:
        raise TopicError(
            f"state topic {state} has {state_count} partitions but the inputs have {partitions}; they must match"
        )
    return partitions
