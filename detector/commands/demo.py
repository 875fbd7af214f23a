"""`streamdrift demo`: the whole product in under a minute on an embedded broker.

Four models' traffic goes to the `predictions` topic: a simulated fraud model (features in
dollars, ratios, counts and categories), a real-data model replaying NASA shuttle sensor
readings bundled in river, a simulated shop model whose traffic follows daily and weekly
cycles over 9 days of event time, each with drifts injected at known events, and a simulated
credit model whose concept drifts until a retrained version is deployed (the retraining loop:
recommended, deployed, outcome). The detector runs in this
process; a downstream reader prints each alert from the alerts topic (read_committed) as it
arrives, with the injection that explains it; the summary compares what was injected with
what was detected, and how many events later.
"""

from __future__ import annotations

import bisect
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from detector.core.alerts import (
    DETECTED,
    OUTCOME,
    RECOMMENDED,
    RESOLVED,
    describe,
    describe_model_event,
)
from detector.core.monitors.retraining import NOT_RECOVERED, RECOVERED
from detector.kafka.embedded import EmbeddedBroker
from detector.kafka.topics import ensure_topics
from detector.service.service import Service
from detector.settings import Settings
from producers.cycles import DAY_MS
from producers.cyclic import Cyclic
from producers.play import Played, play
from producers.replay import Replay
from producers.scenarios import Deployment, Injection
from producers.simulate import Simulator
from producers.sinks import KafkaSink, SinkError
from producers.stream import EventStream

READ_TIMEOUT_S = 15.0
JOIN_TIMEOUT_S = 60.0
STATUS_INTERVAL_S = 0.25
PLAIN_STATUS_INTERVAL_S = 2.0  # when the output is not a terminal
BAR = 24
SHOP_DAYS = 9  # a week for the detector to learn the cycle, then about a day and a half watched
SHOP_START_MS = 1_763_942_400_000  # Monday 2025-11-24T00:00Z
# With fewer events the shop's 1,000-event warm-up and week of learning leave too little watched
# time to show its changes: it then runs without them.
SHOP_SHIFT_MIN_EVENTS = 16_000
ALERT_HEADER = f"{'event':>6}  {'model/monitor':<28} {'alert':<8} {'severity':<8} {'statistic/detector':<22} {'evidence':<36} explained by"


def demo_streams(events: int, seed: int) -> list[EventStream]:
    """The four models, with drifts (and a deployment) at fixed fractions of `events` (per model)."""
    fraud = Simulator(
        model="fraud",
        seed=seed,
        label_delay_ms=5_000,
        injections=(
            Injection("mean_shift", "amount", start=events // 4, magnitude=1.0, length=events // 4),
            Injection("concept_drift", "", start=events * 9 // 16, magnitude=0.3),
            Injection("category_mix", "country", start=events * 11 // 16),
            Injection("missing_burst", "income", start=events * 13 // 16, magnitude=0.5),
        ),
    )
    shuttle = Replay(
        dataset="shuttle",
        seed=seed,
        injections=(
            Injection(
                "incremental_shift", "f1", start=events * 3 // 8, magnitude=1.0, length=events // 8
            ),
            Injection(
                "latency_creep", "", start=events * 11 // 16, magnitude=1.0, length=events // 16
            ),
        ),
    )
    # No labels: its error rate and recalls would be judged per hour of the cycle, but the
    # share of its labels that arrive in time (quality.labels) is the demo's delivery timing, not
    # its traffic's: a chunk of its predictions spans over an hour of event time, their labels
    # follow on another topic, and with `--events 16000` most came late, one unexpected
    # quality.labels alert in 2 runs of 2.
    shop = Cyclic(
        model="shop",
        seed=seed,
        start_ms=SHOP_START_MS,
        interval_ms=SHOP_DAYS * DAY_MS // max(events, 1),
        label_coverage=0.0,
        injections=(
            Injection("mean_shift", "amount", start=events * 7 // 8, magnitude=0.5),
            # an upstream outage: 40 events (about 20 minutes) spread over 3 hours
            Injection("rate_drop", "", start=events * 15 // 16, magnitude=0.1, length=40),
        )
        if events >= SHOP_SHIFT_MIN_EVENTS
        else (),
    )
    # The retraining loop: the concept drifts, the detector recommends retraining, a version
    # retrained on the new concept is deployed, and the outcome says whether it recovered.
    credit = Simulator(
        model="credit",
        seed=seed + 1,
        label_delay_ms=5_000,
        injections=(Injection("concept_drift", "", start=events * 3 // 8, magnitude=0.3),),
        deployments=(Deployment("2", start=events * 5 // 8, quality="fixed"),),
    )
    return [fraud, shuttle, shop, credit]


@dataclass
class Explained:
    """Why an alert fired: the injection it detects (`truth`), or one it follows from (`effect`)."""

    truth: dict[str, Any] | None = None
    effect: dict[str, Any] | None = None

    def describe(self, position: int) -> str:
        if self.truth is not None:
            return f"{_injected(self.truth)} ({position - self.truth['start']:+d})"
        if self.effect is not None:
            return f"effect of {_injected(self.effect)}"
        return "UNEXPECTED"


@dataclass
class Board:
    """What the demo has seen: delivered offsets per model, alerts; prints lines under a lock."""

    truths: list[dict[str, Any]]
    total: int
    out: TextIO = sys.stdout
    # (topic, model)
    offsets: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    alerts: list[tuple[dict[str, Any], int | None, Explained]] = field(default_factory=list)
    model_events: list[tuple[dict[str, Any], int | None]] = field(default_factory=list)
    played: Played = field(default_factory=Played)  # the producer's live counts
    deployments: list[tuple[str, Deployment]] = field(default_factory=list)  # (model, deployment)
    lock: threading.Lock = field(default_factory=threading.Lock)
    status_line: str = ""
    last_plain_status: float = 0.0

    def playing(self, played: Played) -> None:
        self.played = played

    def delivered(self, topic: str, model: str, offset: int) -> None:
        # delivery reports of one partition arrive in offset order
        self.offsets[topic, model].append(offset)

    def position(self, topic: str, model: str, offset: int) -> int | None:
        """The model's event number of an offset: its n-th prediction, or the prediction of its
        n-th label (every prediction of the demo gets a label, in order)."""
        offsets = self.offsets.get((topic, model), [])
        at = bisect.bisect_left(offsets, offset)
        return at if at < len(offsets) and offsets[at] == offset else None

    def alert(self, event: dict[str, Any]) -> None:
        data = event["data"]
        source = data["source"]
        position = self.position(source["topic"], data["model"], source["offset"])
        if event["type"] not in (DETECTED, RESOLVED):  # an event about a model: a deployment
            with self.lock:
                self.model_events.append((event, position))
                self._print(format_model_event(event, position))
            return
        explained = explain(self.truths, data["model"], data["monitor"], position)
        with self.lock:
            self.alerts.append((event, position, explained))
            self._print(format_alert(event, position, explained))

    def status(self, processed: int, seconds: float, final: bool = False) -> None:
        played = self.played
        done = min(played.predictions / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(done * BAR) + "." * (BAR - int(done * BAR))
        line = f"[{bar}] {done:4.0%}  produced {played.predictions:>6}/{self.total}  processed {processed:>6}  alerts {len(self.alerts)}  {seconds:5.1f}s"
        with self.lock:
            if self.out.isatty():
                self.status_line = line
                self.out.write("\r\033[K" + line)
            elif final or time.monotonic() - self.last_plain_status >= PLAIN_STATUS_INTERVAL_S:
                self.last_plain_status = time.monotonic()
                self.out.write(line + "\n")
            self.out.flush()

    def _print(self, line: str) -> None:
        if self.out.isatty():
            self.out.write("\r\033[K" + line + "\n" + self.status_line)
        else:
            self.out.write(line + "\n")
        self.out.flush()


def explain(
    truths: list[dict[str, Any]], model: str, monitor: str, position: int | None
) -> Explained:
    """The injection an alert at `position` on `monitor` detects, or the one it is an effect of."""
    started = [
        t for t in truths if t["model"] == model and (position is None or t["start"] <= position)
    ]
    for truth in reversed(started):
        if truth["monitor"] == monitor:
            return Explained(truth=truth)
    for truth in reversed(started):
        if monitor in truth["side_effects"]:
            return Explained(effect=truth)
    return Explained()


def run_demo(
    settings: Settings,
    events: int = 24_000,
    rate: float = 3000.0,
    seed: int = 7,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo with `events` per model at `rate` events/s in all; 0 if every injected drift
    was detected, 1 if one was missed or the traffic could not be delivered."""
    broker = None
    if not settings.kafka.bootstrap_servers:
        # one per run: demos may run side by side
        log_path = Path(tempfile.mkdtemp(prefix="streamdrift-demo-")) / "broker.log"
        out.write("starting the embedded broker ... ")
        out.flush()
        broker = EmbeddedBroker(log_path=log_path).start()
        out.write(f"listening on {broker.bootstrap_servers} (log: {log_path})\n")
        settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap_servers": broker.bootstrap_servers}
                )
            }
        )
    settings = _demo_settings(settings)
    try:
        return _run(settings, events, rate, seed, out)
    finally:
        if broker is not None:
            broker.stop()


def _demo_settings(settings: Settings) -> Settings:
    suffix = str(int(time.time()))
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"group_id": f"streamdrift-demo-{suffix}", "session_timeout_ms": 6000}
            ),
            "metrics": settings.metrics.model_copy(update={"port": 0}),
            "commit_interval_ms": 500,
        }
    )


def _run(settings: Settings, events: int, rate: float, seed: int, out: TextIO) -> int:
    topics = settings.topics
    # librdkafka's own reconnect lines would bury the one line below.
    admin = AdminClient({**settings.kafka.client_config(), "log_level": 0})
    try:
        ensure_topics(admin, settings, topics.inputs(), [topics.alerts, topics.dlq])
    except KafkaException as exc:
        print(
            f"streamdrift demo: kafka at {settings.kafka.bootstrap_servers} cannot be reached "
            f"({exc.args[0].str()}): start it, fix STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS, or unset "
            "it to run the demo on the embedded broker",
            file=sys.stderr,
        )
        return 1
    streams = demo_streams(events, seed)
    truths = [truth for stream in streams for truth in stream.ground_truth()]
    board = Board(truths, total=events * len(streams), out=out)
    board.deployments = [(s.model, deployment) for s in streams for deployment in s.deployments]
    _introduce(streams, events, rate, topics.predictions, out)

    alerts_end = _end_offsets(settings, topics.alerts)
    reading = threading.Event()
    reading.set()
    failure: list[str] = []
    reader = threading.Thread(
        target=_read_alerts, args=(settings, alerts_end, board, reading, failure), daemon=True
    )
    producer = threading.Thread(
        target=_produce, args=(settings, streams, events, rate, board, failure), daemon=True
    )
    service = Service(settings)
    published: list[str] = []
    service.alert_listeners.append(lambda alert, event: published.append(event["id"]))
    started = [time.monotonic()]
    last_status = [0.0]

    def finished(svc: Service) -> bool:
        """Called by the detector's loop: start the traffic once the detector owns its
        partitions (so alerts appear live), report progress, and end after the last event."""
        if producer.ident is None:
            if svc.readiness()[0]:
                started[0] = time.monotonic()
                producer.start()
            elif time.monotonic() - started[0] > JOIN_TIMEOUT_S:
                failure.append(
                    f"the detector did not get its partitions within {JOIN_TIMEOUT_S:.0f}s"
                )
                return True
            return False
        if time.monotonic() - last_status[0] >= STATUS_INTERVAL_S:
            last_status[0] = time.monotonic()
            board.status(svc.processed_events, time.monotonic() - started[0])
        expected = board.played.predictions + board.played.labels
        return (not producer.is_alive() and svc.processed_events >= expected) or bool(failure)

    reader.start()
    service.run(until=finished)
    deadline = time.monotonic() + READ_TIMEOUT_S
    while len(board.alerts) < len(published) and reader.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    reading.clear()
    reader.join(timeout=5)
    board.status(service.processed_events, time.monotonic() - started[0], final=True)
    out.write("\n")
    if failure:
        out.write(f"demo failed: {failure[0]}\n")
        return 1
    return _summary(board, service.processed_events, time.monotonic() - started[0], out)


def _introduce(
    streams: list[EventStream], events: int, rate: float, topic: str, out: TextIO
) -> None:
    out.write(
        f"{len(streams)} models, {events} prediction events each, {rate:.0f} events/s in all, to topic '{topic}':\n"
    )
    for stream in streams:
        kinds = ", ".join(f"{spec.name}" for spec in stream.features)
        source = (
            f"river's {stream.dataset} dataset (real data)"
            if isinstance(stream, Replay)
            else "simulated"
        )
        out.write(f"  {stream.model:<8} {source}; features: {kinds}\n")
        if isinstance(stream, Cyclic):
            out.write(
                f"           {SHOP_DAYS} days of event time; the traffic rate, features, score and latency "
                "follow daily and weekly cycles:\n"
                "           the detector learns them over a week of event time, then watches\n"
            )
        for truth in stream.ground_truth():
            out.write(
                f"           injected: {_injected(truth):<40} expect an alert on {truth['monitor']}\n"
            )
        for deployment in stream.deployments:
            out.write(
                f"           deployed: {f'version {deployment.version} ({deployment.quality}) @{deployment.start}':<40} "
                "expect retrain.recommended before it, retrain.outcome after it\n"
            )
    out.write(
        "\nthe detector joins its consumer group, then the traffic starts; alerts as they arrive:\n\n"
        + ALERT_HEADER
        + "\n"
    )


def _end_offsets(settings: Settings, topic: str) -> list[TopicPartition]:
    """Where the alerts topic ends now, so the demo prints only its own alerts."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "streamdrift-demo-reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = []
        for number in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=10)
            ends.append(TopicPartition(topic, number, high))
        return ends
    finally:
        consumer.close()


def _produce(
    settings: Settings,
    streams: list[EventStream],
    events: int,
    rate: float,
    board: Board,
    failure: list[str],
) -> None:
    topics = settings.topics

    def delivered(topic: str, model: str, partition: int, offset: int) -> None:
        board.delivered(topic, model, offset)

    try:
        sink = KafkaSink(
            {**settings.kafka.client_config(), "linger.ms": 5},
            topics.predictions,
            topics.labels,
            delivered,
        )
        play(streams, sink, events, rate, on_progress=board.playing)
        sink.close()
    except SinkError as exc:
        failure.append(str(exc))


def _read_alerts(
    settings: Settings,
    start: list[TopicPartition],
    board: Board,
    reading: threading.Event,
    failure: list[str],
) -> None:
    """A downstream consumer of the alerts topic (read_committed), printing each alert."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": "streamdrift-demo-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(start)
    try:
        while reading.is_set():
            message = consumer.poll(0.2)
            value = None if message is None or message.error() else message.value()
            if value is not None:
                board.alert(orjson.loads(value))
    except Exception as exc:
        failure.append(f"reading alerts failed: {exc!r}")
    finally:
        consumer.close()


def format_alert(event: dict[str, Any], position: int | None, explained: Explained) -> str:
    """One row of the live alert table."""
    data = event["data"]
    kind = "DETECTED" if event["type"].endswith("detected") else "RESOLVED"
    at = f"{position:>6}" if position is not None else f"{'-':>6}"
    test = f"{data['statistic']}/{data['detector']}"
    cause = explained.describe(position or 0) if kind == "DETECTED" else data.get("reason", "")
    return f"{at}  {data['model'] + '/' + data['monitor']:<28} {kind:<8} {data['severity']:<8} {test:<22} {describe(data):<36} {cause}".rstrip()


def format_model_event(event: dict[str, Any], position: int | None) -> str:
    """One row of the live alert table for an event about a model (a deployment, a comparison
    of versions, a retraining recommended or its outcome)."""
    detail = describe_model_event(event["type"], event["data"])
    at = f"{position:>6}" if position is not None else f"{'-':>6}"
    return f"{at}  {event['subject']:<28} {event['type'].rsplit('.', 1)[1].upper():<8} {detail}"


def _injected(truth: dict[str, Any]) -> str:
    target = f" {truth['target']}" if truth["target"] else ""
    if truth["end"] is not None:
        return f"{truth['scenario']}{target} @{truth['start']}..{truth['end']}"
    ramp = f" (ramp {truth['length']})" if truth["length"] else ""
    return f"{truth['scenario']}{target} @{truth['start']}{ramp}"


def _summary(board: Board, processed: int, seconds: float, out: TextIO) -> int:
    detections = [(e, p, x) for e, p, x in board.alerts if e["type"].endswith("detected")]
    out.write(
        f"Summary: {board.played.predictions} prediction events in {seconds:.1f}s, {processed} processed by the detector\n"
    )
    out.write(
        f"  {'model':<8} {'injected':<40} {'expected monitor':<26} {'detected by':<22} {'at event':>8} {'delay':>7}\n"
    )
    missed = 0
    for truth in board.truths:
        hits = [(e, p) for e, p, x in detections if x.truth is truth]
        first = min(hits, key=lambda hit: hit[1] or 0, default=None)
        row = f"  {truth['model']:<8} {_injected(truth):<40} {truth['monitor']:<26}"
        if first is None:
            missed += 1
            out.write(f"{row} {'MISSED':<22}\n")
            continue
        event, at = first
        test = f"{event['data']['statistic']}/{event['data']['detector']}"
        out.write(
            f"{row} {test:<22} {at if at is not None else '-':>8} {(at or 0) - truth['start']:>+7}\n"
        )
    resolved = [(e, p) for e, p, x in board.alerts if e["type"].endswith("resolved")]
    for event, at in resolved:
        data = event["data"]
        out.write(
            f"  {data['model']:<8} {'  resolved':<40} {data['monitor']:<26} {data.get('reason', ''):<22} {at if at is not None else '-':>8}\n"
        )
    for event, at in board.model_events:
        kind = event["type"].removeprefix("io.streamdrift.")
        out.write(
            f"  {event['data']['model']:<8} {'  ' + kind:<40} {describe_model_event(event['type'], event['data'])} (event {at if at is not None else '-'})\n"
        )
    effects = sorted(
        {
            f"{e['data']['model']}/{e['data']['monitor']}"
            for e, p, x in detections
            if x.truth is None and x.effect is not None
        }
    )
    unclosed = _retraining_loops(board, out)
    unexpected = [e for e, p, x in detections if x.truth is None and x.effect is None]
    if effects:
        out.write(
            f"  also alerted, as consequences of an injection (e.g. the score follows its inputs): {', '.join(effects)}\n"
        )
    out.write(f"  unexpected alerts (false alarms): {len(unexpected)}\n")
    detected = len(board.truths) - missed
    out.write(
        f"all {detected} injected drifts detected\n"
        if not missed
        else f"{missed} of {len(board.truths)} injected drift(s) missed\n"
    )
    if unclosed:
        out.write(f"{unclosed} retraining loop(s) not closed as expected\n")
    return 0 if not missed and not unclosed else 1


# The outcome a deployment of each quality should get (a version that is "the same" may get either).
EXPECTED_OUTCOME = {"fixed": RECOVERED, "worse": NOT_RECOVERED}


def _retraining_loops(board: Board, out: TextIO) -> int:
    """A row per deployment of the demo: the retraining recommended before it and the outcome
    after it, as its quality expects. Returns how many of these loops did not close so."""
    unclosed = 0
    for model, deployment in board.deployments:
        positions = [
            (event["type"], event["data"], at)
            for event, at in board.model_events
            if event["data"]["model"] == model and at is not None
        ]
        recommended = [
            at for kind, _, at in positions if kind == RECOMMENDED and at < deployment.start
        ]
        outcomes = [
            (data["outcome"], at)
            for kind, data, at in positions
            if kind == OUTCOME and at >= deployment.start
        ]
        expected = EXPECTED_OUTCOME.get(deployment.quality)
        row = f"  {model:<8} {f'  retraining loop, version {deployment.version} @{deployment.start}':<40}"
        if not recommended:
            problem = "NOT CLOSED: no retrain.recommended before the deployment"
        elif not outcomes:
            problem = "NOT CLOSED: no retrain.outcome after the deployment"
        elif expected is not None and outcomes[0][0] != expected:
            problem = f"NOT CLOSED: outcome {outcomes[0][0]}, expected {expected}"
        else:
            out.write(
                f"{row} recommended @{recommended[0]}, outcome {outcomes[0][0]} @{outcomes[0][1]}\n"
            )
            continue
        unclosed += 1
        out.write(f"{row} {problem}\n")
    return unclosed
