"""A three-node Apache Kafka cluster (KRaft; replication factor 3, min.insync.replicas 2) loses
a node under the detector while traffic flows: the leader of the input, the alerts or the state
partition, or the consumer group's coordinator, is killed (SIGKILL); or the leader of
the alerts, the state or the input hangs (SIGSTOP past the clients' timeouts, then SIGCONT).

The same detector process keeps going through the leader election: the alerts and dead letters
read_committed are those of an uninterrupted run, each once, and no checkpoint of the state is
committed twice. After a kill, /readyz and streamdrift_kafka_outages_total show the episode;
while a node hangs, /readyz and streamdrift_commit_pending_seconds show the detector stalled on
Kafka, and both clear after it. The killed node, restarted with its data, catches up until
every partition is fully in sync again.

Killing the group coordinator is what found librdkafka #5511 here: send_offsets_to_transaction
waited forever for the fenced node; the detector now abandons that producer (see
detector/kafka/delivery.py).

One cluster serves the module; each test creates its own topics with one partition each, led by
a chosen node, so that each fault hits the role it names (the group and transaction
coordinators sit wherever the cluster put them).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from detector.core.state import StateCodec
from detector.kafka.embedded import free_loopback_port
from tests.apache_kafka.broker import ApacheKafka
from tests.integration.test_recovery import MODELS, compare, detector_env, traffic, with_bad_events
from tests.kafka_helpers import (
    KafkaNames,
    PacedProducer,
    committed_total,
    dead_letter_sources,
    expected_alert_ids,
    expected_dead_letter_sources,
    read_topic,
    start_cli,
    stop_gracefully,
    wait_until,
)

pytestmark = pytest.mark.apache_kafka

NODES = 3
# Three JVMs and the detector share two cores: small heaps and few threads per node.
LEAN = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
    "log.cleaner.threads": "1",
}
# The first replica of a new partition leads it: each role's partition gets its own leader.
LEADER_OF = {"input": 1, "alerts": 2, "state": 3}
EVENTS_PER_MODEL = 5000
RATE = 1500  # events per second: a stream of about 20 s, over which the fault falls
# Client timeouts below a hung broker's pause (librdkafka's defaults are 30 and 60 s): requests
# to it time out and are retried on the new leader while it is still stopped.
CLIENT_TIMEOUT_MS = 10_000
PAUSE_S = 15.0  # above the clients' timeouts and the brokers' session timeout (9 s)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ApacheKafka]:
    try:
        kafka = ApacheKafka(brokers=NODES, heap="384m", overrides=LEAN).start()
    except Exception as exc:
        pytest.fail(f"cannot start a {NODES}-node Apache Kafka cluster: {exc}", pytrace=False)
    try:
        yield kafka
    finally:
        kafka.stop()


@dataclass(frozen=True)
class Topics(KafkaNames):
    """A test's topics, each with one partition replicated on every node."""

    def of(self, role: str) -> str:
        return {"input": self.predictions, "alerts": self.alerts, "state": self.state}[role]

    def create(self, cluster: ApacheKafka) -> None:
        """Create the topics, each role's partition led by LEADER_OF[role]; the dead letters
        share the alerts' leader, the other inputs the predictions'."""
        led_by = {
            self.predictions: LEADER_OF["input"],
            self.features: LEADER_OF["input"],
            self.labels: LEADER_OF["input"],
            self.alerts: LEADER_OF["alerts"],
            self.dlq: LEADER_OF["alerts"],
            self.state: LEADER_OF["state"],
        }
        new = [
            NewTopic(
                name,
                num_partitions=1,
                replica_assignment=[[(leader - 1 + i) % NODES + 1 for i in range(NODES)]],
                config={"cleanup.policy": "compact"} if name == self.state else {},
            )
            for name, leader in led_by.items()
        ]
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        for future in admin.create_topics(new, operation_timeout=30).values():
            future.result()
        wait_until(
            lambda: all(cluster.leader(name) == leader for name, leader in led_by.items()),
            30,
            "each topic led by its node",
        )


@dataclass
class Watch:
    """Polls the detector's /readyz and /metrics from a thread; keeps what it saw."""

    port: int
    readiness: list[dict[str, object]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    fault_at: int = 0  # index of the first sample after the fault

    def start(self) -> Watch:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.readiness.append(self._get_json("/readyz"))
                self.metrics.append(self._get_metrics())
            except OSError:
                pass  # not serving yet
            time.sleep(0.1)

    def _get_json(self, path: str) -> dict[str, object]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                return orjson.loads(answer.read())
        except urllib.error.HTTPError as refused:  # 503: not ready, with the same details
            return orjson.loads(refused.read())

    def _get_metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            lines = answer.read().decode().splitlines()
        samples = {}
        for line in lines:
            if line.startswith("streamdrift_"):
                series, value = line.rsplit(" ", 1)  # name{labels as exported}
                samples[series] = float(value)
        return samples

    def latest_ready(self) -> bool:
        return bool(self.readiness) and self.readiness[-1]["ready"] is True

    def stop(self) -> None:
        self.stopped.set()


Fault = Callable[[ApacheKafka, int], None]


def kill(cluster: ApacheKafka, node: int) -> None:
    cluster.kill(node)


def hang(cluster: ApacheKafka, node: int) -> None:
    cluster.pause(node)
    time.sleep(PAUSE_S)
    cluster.resume(node)


def node_of(cluster: ApacheKafka, topics: Topics, role: str) -> int:
    """The node that leads `role`'s partition, or coordinates the group (-1: none right now)."""
    try:
        if role == "group coordinator":
            return cluster.group_coordinator(topics.group)
        return cluster.leader(topics.of(role))
    except KafkaException:
        return -1


def run_through(
    cluster: ApacheKafka, role: str, fault: Fault, guarantee: str, tmp_path: Path
) -> tuple[Topics, int, Watch]:
    """Traffic (with malformed events) through one detector process; mid-stream, `fault` hits
    the node of `role`. Checks that the same process went on to the end, ready again, and that
    what it published is what an uninterrupted run publishes; returns the topics, the node hit
    and what /readyz and /metrics showed."""
    topics = Topics(cluster.bootstrap_servers, uuid.uuid4().hex[:10], aborts_dead_transactions=True)
    topics.create(cluster)
    events = with_bad_events(traffic(EVENTS_PER_MODEL), every=500)
    port = free_loopback_port()
    env = detector_env(
        topics,
        guarantee,
        STREAMDRIFT_METRICS__HOST="127.0.0.1",
        STREAMDRIFT_METRICS__PORT=str(port),
        STREAMDRIFT_KAFKA__PROPERTIES=orjson.dumps(
            {"socket.timeout.ms": CLIENT_TIMEOUT_MS, "request.timeout.ms": CLIENT_TIMEOUT_MS}
        ).decode(),
    )
    log_path = tmp_path / "detector.log"
    with log_path.open("wb") as log:
        process = start_cli(["run"], env, stderr=log)
    watch = Watch(port).start()

    def committed() -> int:
        return committed_total(topics.bootstrap, topics.group, topics.predictions)

    def log_tail() -> str:
        return f"the detector's log ends:\n{log_path.read_text(errors='replace')[-3000:]}"

    try:
        producer = PacedProducer(topics.bootstrap, topics.predictions, events, rate=RATE).start()
        wait_until(
            lambda: committed() > len(events) // 4 or process.poll() is not None,
            180,
            "a quarter of the stream committed",
        )
        assert committed() < len(events), "the detector was through the stream before the fault"
        victim = node_of(cluster, topics, role)
        watch.fault_at = len(watch.readiness)
        fault(cluster, victim)
        wait_until(
            lambda: node_of(cluster, topics, role) not in (victim, -1), 60, f"a new {role} node"
        )
        producer.join()
        inputs = read_topic(topics.bootstrap, topics.predictions, expect=len(events))
        try:
            wait_until(
                lambda: committed() >= len(inputs) or process.poll() is not None,
                180,
                "all input committed",
            )
        except AssertionError as stuck:
            raise AssertionError(f"{stuck}; {log_tail()}") from None
        assert process.poll() is None, f"the detector exited ({process.returncode}); {log_tail()}"
        wait_until(watch.latest_ready, 60, "/readyz ready again")
    finally:
        watch.stop()
        stop_gracefully(process)

    settings = topics.settings(processing_guarantee=guarantee)
    expected = expected_alert_ids(settings, inputs)
    assert len(expected) >= MODELS
    missing, unexpected, duplicates = compare(topics, expected)
    assert missing == set(), f"{len(missing)} alerts of the uninterrupted run are missing"
    assert unexpected == set(), f"{len(unexpected)} alerts an uninterrupted run would not publish"
    letters = dead_letter_sources(read_topic(topics.bootstrap, topics.dlq, idle_s=3))
    assert set(letters) == set(expected_dead_letter_sources(settings, inputs))
    if guarantee == "exactly_once":
        assert duplicates == 0, f"{duplicates} duplicate alerts read_committed"
        assert len(letters) == len(set(letters)), "duplicate dead letters read_committed"
        assert_each_checkpoint_once(topics)
    return topics, victim, watch


def assert_each_checkpoint_once(topics: KafkaNames) -> None:
    """No state record was committed twice: no two committed records of a kind (and model, and
    part) cover the same offsets."""
    codec = StateCodec(topics.group)
    records = [
        codec.decode(m.value()) for m in read_topic(topics.bootstrap, topics.state, idle_s=3)
    ]
    written = Counter(
        (r.type, r.model, r.part[0] if r.part else None, tuple(sorted(r.offsets.items())))
        for r in records
    )
    twice = [key for key, count in written.items() if count > 1]
    assert twice == [], f"{len(twice)} state records committed more than once, first {twice[:1]}"


def assert_the_episode_shows(watch: Watch) -> None:
    """/readyz answered not ready after the fault and ready at the end; the outage is counted."""
    episode = watch.readiness[watch.fault_at :]
    assert any(sample["ready"] is False for sample in episode), "/readyz never showed the episode"
    assert episode[-1]["ready"] is True
    assert watch.metrics[-1]["streamdrift_kafka_outages_total"] >= 1
    assert watch.metrics[-1]["streamdrift_ready"] == 1


def assert_the_stall_shows(watch: Watch) -> None:
    """While the node hung, /readyz answered not ready because work waited on Kafka past the
    threshold (the commit interval of detector_env, 0.3 s, plus half the 10 s request timeout),
    and streamdrift_commit_pending_seconds showed it; at the end both are clear again. The
    clients' statistics reached the metrics (each client up on at least one node)."""
    overdue_s = 0.3 + CLIENT_TIMEOUT_MS / 1000 / 2
    episode = watch.readiness[watch.fault_at :]
    stalled = [
        sample
        for sample in episode
        if sample["ready"] is False
        and any("stalled on Kafka" in reason for reason in sample["reasons"])  # type: ignore[attr-defined]
    ]
    assert stalled, "/readyz never showed the stall"
    pending = [sample["streamdrift_commit_pending_seconds"] for sample in watch.metrics]
    assert max(pending[watch.fault_at :]) > overdue_s
    assert episode[-1]["ready"] is True and episode[-1]["reasons"] == []
    assert pending[-1] < overdue_s
    for client in ("consumer", "producer"):
        up = f'streamdrift_kafka_brokers{{client="{client}",state="up"}}'
        assert any(sample.get(up, 0) >= 1 for sample in watch.metrics), (
            f"no statistics of the {client}"
        )


@pytest.mark.parametrize("role", ["input", "alerts", "state", "group coordinator"])
def test_a_killed_leader_loses_no_alert_and_duplicates_none(
    cluster: ApacheKafka, role: str, tmp_path: Path
) -> None:
    """SIGKILL the node that leads the role's partition (or coordinates the group) mid-stream;
    then restart it with its data: it catches up and every partition is fully in sync again."""
    topics, victim, watch = run_through(cluster, role, kill, "exactly_once", tmp_path)
    assert_the_episode_shows(watch)
    cluster.restart(victim)
    for each in LEADER_OF:
        assert cluster.wait_in_sync(topics.of(each)) == [1, 2, 3]


@pytest.mark.parametrize("role", ["alerts", "state"])
def test_a_hung_leader_loses_no_alert_and_duplicates_none(
    cluster: ApacheKafka, role: str, tmp_path: Path
) -> None:
    """SIGSTOP the leader of the alerts' (or the state's) partition past the clients' request timeouts and the brokers' session
    timeout, then SIGCONT: the cluster fences it and elects another leader; it comes back.

    No client error is raised (librdkafka retries the timed-out requests on the new leader, or a
    transactional call waits on a coordinator that hangs, until the detector gives its producer
    up), so the outage count does not move: the work waiting to be committed shows the stall."""
    topics, _, watch = run_through(cluster, role, hang, "exactly_once", tmp_path)
    assert_the_stall_shows(watch)
    for each in LEADER_OF:
        assert cluster.wait_in_sync(topics.of(each)) == [1, 2, 3]


def test_a_hung_input_leader_loses_no_alert_and_duplicates_none(
    cluster: ApacheKafka, tmp_path: Path
) -> None:
    """SIGSTOP the input's leader past the consumer's request timeout, then SIGCONT: the
    consumer reads on from the new leader, in the same process.

    Nothing is asserted of the metrics: the cluster fences the hung node after the brokers'
    session timeout (9 s) and leaves it out of its metadata, and librdkafka (2.10 and later)
    then moves the fetches to the new leader and drops the hung node, with its pending fetch
    and its count of timed-out requests, often before that fetch times out. Nothing the
    detector processed waits on the input's leader, so /readyz need not change either."""
    topics, _, _ = run_through(cluster, "input", hang, "exactly_once", tmp_path)
    for each in LEADER_OF:
        assert cluster.wait_in_sync(topics.of(each)) == [1, 2, 3]


def test_at_least_once_a_killed_coordinator_loses_no_alert(
    cluster: ApacheKafka, tmp_path: Path
) -> None:
    """at_least_once, the group coordinator killed mid-stream: nothing is lost (duplicates are
    allowed, with the same ids); the node comes back."""
    topics, victim, watch = run_through(
        cluster, "group coordinator", kill, "at_least_once", tmp_path
    )
    assert_the_episode_shows(watch)
    cluster.restart(victim)
    for each in LEADER_OF:
        assert cluster.wait_in_sync(topics.of(each)) == [1, 2, 3]
