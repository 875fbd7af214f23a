"""The ACLs the detector needs, and a check at start that its principal holds them (Kafka I/O at
the edge; `missing` is pure). A missing ACL becomes `NotAuthorized`: one line naming the
operation and the resource, and the kafka-acls.sh flags that grant it.

The check asks the broker which operations the principal may perform on each topic and group
(KIP-430's authorized operations); brokers that do not say (no authorizer, or not implemented)
are not checked, and what they refuse later is reported by the clients."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from detector.kafka.checkpoint import restore_group
from detector.kafka.topics import AUTHORIZATION_FAILURES, Acl, NotAuthorized, output_topics
from detector.settings import Settings

TIMEOUT_S = 10.0


def needed(settings: Settings) -> list[Acl]:
    """The ACLs the detector needs on its topics and groups, inputs first. Describe, which
    fetching offsets and metadata need, comes with Read and with Write. The transactional id
    (exactly_once: Write) and, with topics.create_missing, Create on missing topics are
    checked where they are used."""
    t = settings.topics
    acls = [Acl("Read", "topic", name) for name in t.inputs()]
    acls.append(Acl("Read", "group", settings.kafka.group_id))
    acls += [Acl("Write", "topic", name) for name in output_topics(settings)]
    if settings.state.enabled:
        acls.insert(len(t.inputs()), Acl("Read", "topic", settings.state_topic()))
        acls.append(Acl("Describe", "group", restore_group(settings.kafka.group_id)))
    return acls


def missing(acls: Iterable[Acl], allowed: dict[tuple[str, str], set[str] | None]) -> Acl | None:
    """The first ACL whose operation is not among those allowed on its resource, keyed by
    (resource, name); None (the broker did not say) counts as allowed."""
    for acl in acls:
        operations = allowed.get((acl.resource, acl.name))
        if operations is not None and acl.operation.upper() not in operations:
            return acl
    return None


def check_permissions(admin: AdminClient, settings: Settings) -> None:
    """Raise NotAuthorized for the first ACL of `needed` the principal lacks. A topic hidden
    from it (no Describe) is reported with the operation the detector needs on it; a topic
    that does not exist yet is left to ensure_topics."""
    acls = needed(settings)
    allowed: dict[tuple[str, str], set[str] | None] = {}
    hidden: dict[tuple[str, str], str] = {}
    topics = [acl.name for acl in acls if acl.resource == "topic"]
    groups = [acl.name for acl in acls if acl.resource == "group"]
    described = [
        *(
            (("topic", name), future)
            for name, future in admin.describe_topics(
                TopicCollection(list(dict.fromkeys(topics))),
                include_authorized_operations=True,
                request_timeout=TIMEOUT_S,
            ).items()
        ),
        *(
            (("group", name), future)
            for name, future in admin.describe_consumer_groups(
                groups, include_authorized_operations=True, request_timeout=TIMEOUT_S
            ).items()
        ),
    ]
    for key, future in described:
        try:
            operations = future.result().authorized_operations
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in AUTHORIZATION_FAILURES:
                hidden[key] = error.name()
            continue  # unknown topic, or a broker without the API: not ours to judge here
        allowed[key] = None if operations is None else {op.name for op in operations}
    for acl in acls:
        if (acl.resource, acl.name) in hidden:
            raise NotAuthorized(acl, hidden[acl.resource, acl.name])
    lacking = missing(acls, allowed)
    if lacking is not None:
        raise NotAuthorized(lacking, "the broker's ACLs allow " + _listed(allowed, lacking))


def _listed(allowed: dict[tuple[str, str], set[str] | None], acl: Acl) -> str:
    operations = sorted(allowed.get((acl.resource, acl.name)) or ())
    return ", ".join(op.capitalize() for op in operations) or "nothing"
