"""The detector's minimal ACL set (docs/security.md), as bindings for the test broker's authorizer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from detector.kafka.checkpoint import restore_group
from detector.settings import Settings

LISTED_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Grant:
    """One ACL: `operation` allowed to the principal on a literal resource."""

    resource: ResourceType
    name: str
    operation: AclOperation

    def binding(self, principal: str) -> AclBinding:
        return AclBinding(*self._pattern(principal))

    def binding_filter(self, principal: str) -> AclBindingFilter:
        return AclBindingFilter(*self._pattern(principal))

    def _pattern(self, principal: str) -> tuple[Any, ...]:
        return (
            self.resource,
            self.name,
            ResourcePatternType.LITERAL,
            principal,
            "*",
            self.operation,
            AclPermissionType.ALLOW,
        )

    def __str__(self) -> str:
        return f"{self.operation.name} on {self.resource.name.lower()} {self.name!r}"


def minimal_grants(settings: Settings) -> list[Grant]:
    """What the detector needs with topics created beforehand (topics.create_missing = false),
    under either guarantee: exactly_once adds the transactional id."""
    t, topic, group = settings.topics, ResourceType.TOPIC, ResourceType.GROUP
    grants = [Grant(topic, name, AclOperation.READ) for name in t.inputs()]
    grants.append(Grant(group, settings.kafka.group_id, AclOperation.READ))
    grants += [Grant(topic, name, AclOperation.WRITE) for name in (t.alerts, t.dlq)]
    if settings.state.enabled:
        state = settings.state_topic()
        grants += [Grant(topic, state, AclOperation.READ), Grant(topic, state, AclOperation.WRITE)]
        grants.append(Grant(group, restore_group(settings.kafka.group_id), AclOperation.DESCRIBE))
    if settings.processing_guarantee.value == "exactly_once":
        grants.append(
            Grant(
                ResourceType.TRANSACTIONAL_ID,
                settings.kafka.effective_transactional_id(),
                AclOperation.WRITE,
            )
        )
    return grants


def grant(admin: AdminClient, principal: str, grants: list[Grant]) -> None:
    """Create the ACLs; return once the broker's authorizer lists each of them."""
    for future in admin.create_acls([g.binding(principal) for g in grants]).values():
        future.result()
    deadline = time.monotonic() + LISTED_TIMEOUT_S
    for g in grants:
        while not admin.describe_acls(g.binding_filter(principal)).result():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker does not list the ACL {g} for {principal}")
            time.sleep(0.1)


def revoke(admin: AdminClient, principal: str, g: Grant) -> None:
    """Delete one ACL; return once the broker's authorizer no longer lists it."""
    for future in admin.delete_acls([g.binding_filter(principal)]).values():
        future.result()
    deadline = time.monotonic() + LISTED_TIMEOUT_S
    while admin.describe_acls(g.binding_filter(principal)).result():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker still lists the ACL {g} for {principal}")
        time.sleep(0.1)
