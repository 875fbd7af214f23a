"""Native security for the test Apache Kafka: a SASL_SSL listener (SCRAM-SHA-512 over TLS, the
certificate signed by a throwaway CA) for clients, the standard KRaft authorizer with no ACL
meaning no access, and an ADMIN listener (SASL_PLAINTEXT, SCRAM-SHA-512) for the super user
`admin`, who also carries inter-broker traffic and grants the ACLs in tests.

The controller listener stays PLAINTEXT on loopback: KRaft controllers cannot authenticate with
SCRAM (its credentials live in the metadata they serve), so its anonymous principal is a super
user too, as Kafka's documentation does for PLAINTEXT controller listeners.

Users are created at format time (`kafka-storage format --add-scram`), before the broker starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.kafka.embedded import free_loopback_port

MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclass
class BrokerSecurity:
    """Listener, JAAS and authorizer settings of every node, and the users to create.

    `keystore` is one PEM file holding the broker's unencrypted PKCS#8 key and its certificate;
    `ca` is the certificate that signed it (what clients trust). `users` maps name to password
    and must include `admin`."""

    keystore: Path
    ca: Path
    users: dict[str, str]
    admin_ports: dict[int, int] = field(default_factory=dict)  # node id -> ADMIN listener port

    def properties(self, node_id: int, port: int, controller_port: int) -> dict[str, str]:
        """Server properties of one node whose SASL_SSL listener is `port`."""
        admin_port = self.admin_ports.setdefault(node_id, free_loopback_port())
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.users[ADMIN]}";'
        )
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{port},ADMIN://127.0.0.1:{admin_port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port},ADMIN://127.0.0.1:{admin_port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,ADMIN:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "ADMIN",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.admin.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "authorizer.class.name": AUTHORIZER,
            "super.users": f"User:{ADMIN};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }

    def format_arguments(self) -> list[str]:
        """`kafka-storage format` arguments that create every user's SCRAM credentials."""
        arguments: list[str] = []
        for name, password in self.users.items():
            arguments += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return arguments

    def admin_config(self) -> dict[str, Any]:
        """librdkafka properties of the super user, on the ADMIN listeners."""
        return {
            "bootstrap.servers": ",".join(
                f"127.0.0.1:{port}" for port in self.admin_ports.values()
            ),
            "security.protocol": "SASL_PLAINTEXT",
            **self.login(ADMIN),
        }

    def client_properties(self, user: str, password: str | None = None) -> dict[str, str]:
        """librdkafka properties of `user` on the SASL_SSL listener (bootstrap servers aside);
        `password` defaults to the user's own."""
        return {
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.ca),
            **self.login(user, password),
        }

    def login(self, user: str, password: str | None = None) -> dict[str, str]:
        return {
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.users[user] if password is None else password,
        }
