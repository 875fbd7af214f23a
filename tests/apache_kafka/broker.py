"""Apache Kafka for the test suite: the broker's jars fetched from Maven Central with the POM
beside this file, and a KRaft cluster of N combined broker+controller JVMs on loopback ports.

    python -m tests.apache_kafka.broker fetch   # fetch the jars once (what `make kafka` runs)
    python -m tests.apache_kafka.broker run     # a one-node cluster until Ctrl-C

The jars are cached in ~/.cache/streamdrift/kafka-<version>/lib (or $STREAMDRIFT_KAFKA_CACHE),
keyed by the POM's hash: a second fetch neither runs Maven nor needs the network.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from detector.kafka.embedded import BrokerError, free_loopback_port, wait_for_port
from tests.apache_kafka.security import BrokerSecurity

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
CACHE_ENV = "STREAMDRIFT_KAFKA_CACHE"
START_TIMEOUT_S = 90.0  # a JVM start on a loaded 2-core machine; usually 5-10 s
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
OFFSETS_PARTITIONS = 5  # of __consumer_offsets; 50 by default: slow to create, useless on loopback


def kafka_version() -> str:
    """The `kafka.version` property of the POM (also the docker-compose image tag)."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).getroot().find("m:properties/m:kafka.version", namespace)
    assert version is not None and version.text, f"{POM} has no kafka.version property"
    return version.text.strip()


def cache_dir() -> Path:
    """Where this version's jars are kept between runs."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "streamdrift"
    return Path(root) / f"kafka-{kafka_version()}"


def fetch(quiet: bool = False) -> Path:
    """Directory of the broker's jars, fetched with Maven into the cache unless already there."""
    target = cache_dir()
    lib, stamp = target / "lib", target / "pom.sha256"
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    if lib.is_dir() and stamp.is_file() and stamp.read_text().strip() == pom_hash:
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed once to fetch Apache Kafka's jars; install maven")
    partial = target / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    if not quiet:
        print(
            f"fetching Apache Kafka {kafka_version()} from Maven Central into {lib} ...", flush=True
        )
    started = time.monotonic()
    result = subprocess.run(
        [
            mvn,
            "-B",
            "--no-transfer-progress",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        raise BrokerError(
            f"mvn could not fetch Apache Kafka (exit {result.returncode}):\n{_tail(result.stdout)}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    stamp.write_text(pom_hash + "\n")
    if not quiet:
        size = sum(jar.stat().st_size for jar in lib.iterdir())
        print(
            f"fetched {len(list(lib.iterdir()))} jars, {size / 2**20:.0f} MiB, in {time.monotonic() - started:.0f}s",
            flush=True,
        )
    return lib


def java_binary() -> str:
    """`java` from JAVA_HOME, else from PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise BrokerError("Apache Kafka needs Java 17+: install a JDK or set JAVA_HOME")
    return candidate


def random_cluster_id() -> str:
    """A cluster id as `kafka-storage random-uuid` makes one: 16 random bytes, base64url without
    padding, never starting with '-' (it would read as a command-line flag)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def offsets_partition(group: str, partitions: int) -> int:
    """The partition of __consumer_offsets that holds a group, as Kafka picks it:
    Utils.abs(group.hashCode()) % partitions, with Java's String.hashCode."""
    code = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        code = (31 * code + int(unit, 16)) & 0xFFFFFFFF
    signed = code - 2**32 if code >= 2**31 else code
    return (0 if signed == -(2**31) else abs(signed)) % partitions


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Node:
    """One combined broker+controller of the cluster."""

    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def properties_path(self) -> Path:
        return self.directory / "server.properties"

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"
        return f"--- node {self.node_id}: {self.log_path} ---\n{_tail(text)}"


@dataclass
class ApacheKafka:
    """A KRaft cluster of `brokers` nodes (node ids 1..N, all of them voters) on 127.0.0.1.

    Topics the cluster creates itself (consumer offsets, transaction state) are replicated
    min(N, 3) times. `overrides` are extra server properties for every node. The data lives
    in `work_dir` (a temporary directory removed at stop() unless one is given). With
    `security`, the client listener is SASL_SSL with ACLs enforced (see security.py)."""

    brokers: int = 1
    heap: str = "512m"
    overrides: dict[str, str] = field(default_factory=dict)
    work_dir: Path | None = None
    security: BrokerSecurity | None = None
    nodes: list[Node] = field(default_factory=list, init=False)
    _own_dir: bool = field(default=False, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ApacheKafka:
        """Format every node's log directory, start the JVMs, and wait until all brokers are
        registered; on failure stop everything and raise BrokerError with the logs' tails."""
        lib = fetch()
        if self.work_dir is None:
            self.work_dir, self._own_dir = Path(tempfile.mkdtemp(prefix="apache-kafka-")), True
        self.nodes = [
            Node(
                node_id,
                free_loopback_port(),
                free_loopback_port(),
                self.work_dir / f"node-{node_id}",
            )
            for node_id in range(1, self.brokers + 1)
        ]
        cluster_id = random_cluster_id()
        try:
            for node in self.nodes:
                node.directory.mkdir(parents=True, exist_ok=True)
                node.properties_path.write_text(self._properties(node))
                self._format(lib, node, cluster_id)
            for node in self.nodes:
                self._launch(lib, node)
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _properties(self, node: Node) -> str:
        replicas = min(self.brokers, 3)
        min_isr = 2 if replicas == 3 else 1
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.directory / "data"),
            "auto.create.topics.enable": "false",  # as in docker-compose.yml: the detector creates its topics
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            # Test histories are stamped in the past (2025): a time limit would let the broker's
            # retention check delete them in the middle of a session.
            "log.retention.ms": "-1",
            # A transaction left open by a killed client is aborted after its own
            # transaction.timeout.ms; check for such transactions every second, not every 10.
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            **(
                self.security.properties(node.node_id, node.port, node.controller_port)
                if self.security
                else {}
            ),
            **self.overrides,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, lib: Path, main: str, *args: str) -> list[str]:
        return [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            str(lib / "*"),
            main,
            *args,
        ]

    def _format(self, lib: Path, node: Node, cluster_id: str) -> None:
        command = self._java(
            lib,
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(node.properties_path),
            "--cluster-id",
            cluster_id,
            *(self.security.format_arguments() if self.security else []),
        )
        result = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if result.returncode != 0:
            raise BrokerError(
                f"formatting node {node.node_id}'s log directory failed (exit {result.returncode}):\n{_tail(result.stdout)}"
            )

    def _launch(self, lib: Path, node: Node) -> None:
        with open(node.log_path, "ab") as output:
            node.process = subprocess.Popen(
                self._java(lib, "kafka.Kafka", str(node.properties_path)),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, timeout_s: float) -> None:
        """Until every node accepts connections and the metadata lists all N brokers."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            if not wait_for_port("127.0.0.1", node.port, max(0.0, deadline - time.monotonic())):
                raise BrokerError(
                    self._failure(
                        f"node {node.node_id} did not listen on 127.0.0.1:{node.port} within {timeout_s:.0f}s"
                    )
                )
        admin = self._admin()
        while time.monotonic() < deadline:
            dead = [
                node
                for node in self.nodes
                if node.process is None or node.process.poll() is not None
            ]
            if dead:
                raise BrokerError(self._failure(f"node {dead[0].node_id} exited"))
            try:
                if len(admin.list_topics(timeout=2).brokers) == self.brokers:
                    return
            except KafkaException:
                pass
            time.sleep(0.2)
        raise BrokerError(
            self._failure(
                f"the cluster did not list {self.brokers} brokers within {timeout_s:.0f}s"
            )
        )

    def admin_config(self) -> dict[str, Any]:
        """librdkafka properties of a client allowed everything (the super user when secured)."""
        if self.security:
            return self.security.admin_config()
        return {"bootstrap.servers": self.bootstrap_servers}

    def _admin(self) -> AdminClient:
        return AdminClient({**self.admin_config(), "log_level": 0})

    def _failure(self, what: str) -> str:
        return f"Apache Kafka did not start: {what}\n" + "\n".join(
            node.log_tail() for node in self.nodes
        )

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (fault tests); its data stays in its log directory."""
        node = self.nodes[node_id - 1]
        if node.process is not None:
            node.process.kill()
            node.process.wait()
            node.process = None

    def pause(self, node_id: int) -> None:
        """SIGSTOP one node: a hung broker, whose sockets stay open but never answer."""
        self._signal(node_id, signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        """SIGCONT a paused node."""
        self._signal(node_id, signal.SIGCONT)

    def _signal(self, node_id: int, signum: signal.Signals) -> None:
        process = self.nodes[node_id - 1].process
        assert process is not None and process.poll() is None, f"node {node_id} is not running"
        process.send_signal(signum)

    def restart(self, node_id: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start a killed node again on its ports with its log directory (the data it had), and
        wait until the cluster lists every broker again."""
        node = self.nodes[node_id - 1]
        assert node.process is None, f"node {node_id} is running: kill it first"
        self._launch(fetch(), node)
        self._wait_ready(timeout_s)

    def replicas(self, topic: str, partition: int = 0) -> tuple[int, list[int]]:
        """(leader, in-sync replicas) of a topic partition as the cluster describes it now
        (leader -1 while it has none or the answering broker does not know it yet)."""
        # Metadata, which any broker answers (describe_topics waits for the controller it last
        # heard of, which may be the node just killed).
        metadata = self._admin().list_topics(topic, timeout=10).topics[topic]
        info = metadata.partitions.get(partition)
        return (info.leader, sorted(info.isrs)) if info is not None else (-1, [])

    def leader(self, topic: str, partition: int = 0) -> int:
        """Node id of the leader of a topic partition."""
        return self.replicas(topic, partition)[0]

    def group_coordinator(self, group: str) -> int:
        """Node id of the coordinator of a consumer group: the leader of the group's partition of
        __consumer_offsets (-1 while it has none). Read from metadata: librdkafka 2.16's
        describe_consumer_groups aborted the process when asked right after the coordinator died."""
        return self.leader("__consumer_offsets", offsets_partition(group, OFFSETS_PARTITIONS))

    def wait_in_sync(self, topic: str, partition: int = 0, timeout_s: float = 120.0) -> list[int]:
        """Until every node is in the partition's ISR again (a restarted node has caught up);
        returns the ISR. Raises BrokerError with the ISR last seen at timeout."""
        deadline = time.monotonic() + timeout_s
        isr: list[int] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(KafkaException):
                _, isr = self.replicas(topic, partition)
            if len(isr) == self.brokers:
                return isr
            time.sleep(0.5)
        raise BrokerError(
            f"{topic}[{partition}]: ISR {isr} after {timeout_s:.0f}s, not all {self.brokers} nodes"
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every node (a controlled shutdown), SIGKILL those still running after
        timeout_s, then remove the temporary directory."""
        running = [
            node.process
            for node in self.nodes
            if node.process is not None and node.process.poll() is None
        ]
        for process in running:
            process.send_signal(signal.SIGCONT)  # a paused node would not act on SIGTERM
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for node in self.nodes:
            node.process = None
        if self._own_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir, self._own_dir = None, False

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command == "fetch":
        print(f"Apache Kafka {kafka_version()} jars: {fetch()}")
        return 0
    if command == "run":
        brokers = int(argv[1]) if len(argv) > 1 else 1
        started = time.monotonic()
        with ApacheKafka(brokers=brokers) as cluster:
            print(
                f"Apache Kafka {kafka_version()} ({brokers} node(s)) on {cluster.bootstrap_servers}, "
                f"ready in {time.monotonic() - started:.1f}s; logs in {cluster.work_dir}; Ctrl-C stops it",
                flush=True,
            )
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    print("usage: python -m tests.apache_kafka.broker [fetch | run [BROKERS]]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
