"""TLS in front of the embedded broker, for the TLS tests: Debian's stunnel4 accepts TLS and
forwards to the broker's plaintext port (the bundled Tansu's own --cert/--key do not enable TLS),
with certificates made by the openssl CLI (stunnel4 depends on openssl); `make system-packages`
installs both."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from detector.kafka.embedded import EmbeddedBroker, free_loopback_port, wait_for_port
from tests.system_packages import system_program

START_TIMEOUT_S = 15.0


class ToolFailed(RuntimeError):
    """A tool the TLS tests run failed (the message says how)."""


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA the detector is told to trust
    other_ca: Path  # a CA that signed nothing here
    key: Path  # the broker's key, for both certificates below
    server: Path  # signed by `ca`, names 127.0.0.1 and localhost
    wrong_host: Path  # signed by `ca`, names only wrong.example


def make_certificates(directory: Path) -> Certificates:
    """Two self-signed CAs and two server certificates (P-256 keys, valid for two days)."""
    binary = system_program("openssl")

    def openssl(*args: str) -> None:
        result = subprocess.run(
            [binary, *args], cwd=directory, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise ToolFailed(f"`openssl {' '.join(args)}` failed: {result.stderr.strip()[-1000:]}")

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            *key,
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN=streamdrift test {ca}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        )
    openssl(
        "req", "-new", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    for name, names in (
        ("server", "IP:127.0.0.1,DNS:localhost"),
        ("wrong-host", "DNS:wrong.example"),
    ):
        (directory / f"{name}.ext").write_text(f"subjectAltName={names}\n")
        openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    return Certificates(
        directory / "ca.pem",
        directory / "other-ca.pem",
        directory / "server.key",
        directory / "server.pem",
        directory / "wrong-host.pem",
    )


@dataclass
class TlsBroker:
    """The embedded broker behind stunnel: `tls_port` presents the right certificate (and is the
    advertised listener), `wrong_host_port` one that names another host; `plain_port` is the
    broker's own plaintext listener."""

    certificates: Certificates
    directory: Path
    tls_port: int = 0
    wrong_host_port: int = 0
    plain_port: int = 0
    broker: EmbeddedBroker | None = None
    stunnel: subprocess.Popen[bytes] | None = None

    def start(self) -> TlsBroker:
        binary = system_program("stunnel4")
        self.tls_port, self.wrong_host_port = free_loopback_port(), free_loopback_port()
        self.broker = EmbeddedBroker(
            advertised_port=self.tls_port, log_path=self.directory / "tansu.log"
        ).start()
        self.plain_port = self.broker.port
        c = self.certificates
        config = self.directory / "stunnel.conf"
        config.write_text(
            f"foreground = yes\npid =\noutput = {self.directory / 'stunnel.log'}\n"
            f"[kafka]\naccept = 127.0.0.1:{self.tls_port}\nconnect = 127.0.0.1:{self.plain_port}\ncert = {c.server}\nkey = {c.key}\n"
            f"[wrong-host]\naccept = 127.0.0.1:{self.wrong_host_port}\nconnect = 127.0.0.1:{self.plain_port}\ncert = {c.wrong_host}\nkey = {c.key}\n"
        )
        self.stunnel = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not all(
            wait_for_port("127.0.0.1", port, START_TIMEOUT_S)
            for port in (self.tls_port, self.wrong_host_port)
        ):
            self.stop()
            raise ToolFailed(
                f"stunnel did not listen on ports {self.tls_port} and {self.wrong_host_port}; see {self.directory / 'stunnel.log'}"
            )
        return self

    def stop(self) -> None:
        if self.stunnel is not None:
            self.stunnel.terminate()
            self.stunnel.wait(timeout=10)
        if self.broker is not None:
            self.broker.stop()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    @property
    def wrong_host_bootstrap(self) -> str:
        return f"127.0.0.1:{self.wrong_host_port}"

    def client_properties(self, ca: Path | None = None) -> dict[str, str]:
        """librdkafka properties for TLS to this broker, trusting `ca` (default: the right one)."""
        return {"security.protocol": "SSL", "ssl.ca.location": str(ca or self.certificates.ca)}
