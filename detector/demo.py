"""`streamdrift demo`: the whole product in under a minute on an embedded broker.

A simulated fraud model's traffic, with drifts injected at known events, goes to the
`predictions` topic; the detector runs in this process; a downstream reader prints each alert
from the alerts topic (read_committed) as it arrives; the summary compares what was injected
with what was detected, and when.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from detector.broker import EmbeddedBroker
from detector.consume import Service
from detector.settings import Settings
from detector.topics import ensure_topics
from producers.simulate import Injection, Simulator

MODEL = "fraud"
READ_TIMEOUT_S = 15.0


def demo_injections(events: int) -> tuple[Injection, ...]:
    """Three drifts at fixed fractions of the stream: one that ends, two that persist."""
    return (
        Injection("mean_shift", "amount", start=events // 4, magnitude=1.0, length=events // 4),
        Injection("category_mix", "country", start=events * 5 // 8),
        Injection("missing_burst", "income", start=events * 13 // 16, magnitude=0.5),
    )


@dataclass
class Progress:
    """Shared counters, printed as one status line."""

    total: int
    produced: int = 0
    first_offset: int | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    out: TextIO = sys.stdout

    def status(self, processed: int, started: float) -> None:
        line = f"[{time.monotonic() - started:5.1f}s] produced {self.produced:>6}/{self.total}  processed {processed:>6}  alerts {len(self.alerts)}"
        with self.lock:
            self._write(line, transient=True)

    def print_alert(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.alerts.append(event)
            self._write(format_alert(event, self.first_offset or 0), transient=False)

    def _write(self, line: str, transient: bool) -> None:
        if self.out.isatty():
            self.out.write("\r\033[K" + line + ("" if transient else "\n"))
        elif not transient or int(time.monotonic() * 2) % 4 == 0:
            self.out.write(line + "\n")
        self.out.flush()


def run_demo(settings: Settings, events: int = 24_000, rate: float = 3000.0, seed: int = 7, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 if every injected drift was detected, 1 if one was missed."""
    broker = None
    if not settings.kafka.bootstrap_servers:
        log_path = Path(tempfile.gettempdir()) / "streamdrift-demo-broker.log"
        out.write(f"starting the embedded broker (log: {log_path}) ...\n")
        broker = EmbeddedBroker(log_path=log_path).start()
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})})
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
            "kafka": settings.kafka.model_copy(update={"group_id": f"streamdrift-demo-{suffix}", "session_timeout_ms": 6000}),
            "metrics": settings.metrics.model_copy(update={"port": 0}),
            "commit_interval_ms": 500,
        }
    )


def _run(settings: Settings, events: int, rate: float, seed: int, out: TextIO) -> int:
    topics = settings.topics
    admin = AdminClient(settings.kafka.client_config())
    ensure_topics(admin, settings, topics.inputs(), [topics.alerts, topics.dlq])
    simulator = Simulator(model=MODEL, seed=seed, injections=demo_injections(events))
    progress = Progress(total=events, out=out)
    out.write(f"model '{MODEL}': {events} events at {rate:.0f}/s to '{topics.predictions}'; injected drifts:\n")
    for truth in simulator.ground_truth():
        until = f"..{truth['start'] + truth['length']}" if truth["length"] else " onwards"
        out.write(f"  - {truth['scenario']} of {truth['target']} from event {truth['start']}{until}\n")
    out.write("\n")

    alerts_end = _end_offsets(settings, topics.alerts)
    reading = threading.Event()
    reading.set()
    reader = threading.Thread(target=_read_alerts, args=(settings, alerts_end, progress, reading), daemon=True)
    producer = threading.Thread(target=_produce, args=(settings, simulator, events, rate, progress), daemon=True)
    service = Service(settings)
    published: list[str] = []
    service.alert_listeners.append(lambda alert, event: published.append(event["id"]))
    started = time.monotonic()
    last_status = [0.0]

    def finished(svc: Service) -> bool:
        if time.monotonic() - last_status[0] >= 0.5:
            last_status[0] = time.monotonic()
            progress.status(svc.processed_events, started)
        return not producer.is_alive() and svc.processed_events >= progress.produced

    reader.start()
    producer.start()
    service.run(until=finished)
    deadline = time.monotonic() + READ_TIMEOUT_S
    while len(progress.alerts) < len(published) and time.monotonic() < deadline:
        time.sleep(0.1)
    reading.clear()
    reader.join(timeout=5)
    progress.status(service.processed_events, started)
    out.write("\n\n")
    return _summary(simulator, progress, out)


def _end_offsets(settings: Settings, topic: str) -> list[TopicPartition]:
    """Where the alerts topic ends now, so the demo prints only its own alerts."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "streamdrift-demo-reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = []
        for number in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=10)
            ends.append(TopicPartition(topic, number, high))
        return ends
    finally:
        consumer.close()


def _produce(settings: Settings, simulator: Simulator, events: int, rate: float, progress: Progress) -> None:
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 5})
    topic = settings.topics.predictions

    def delivered(error: Any, message: Any) -> None:
        if error is None and progress.first_offset is None:
            progress.first_offset = message.offset()

    chunk = max(1, int(rate / 20))
    started = time.monotonic()
    while progress.produced < events:
        batch = simulator.events(min(chunk, events - progress.produced))
        for event in batch:
            producer.produce(topic, key=MODEL.encode(), value=orjson.dumps(event), on_delivery=delivered)
        producer.poll(0)
        progress.produced += len(batch)
        ahead = progress.produced / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush(30)


def _read_alerts(settings: Settings, start: list[TopicPartition], progress: Progress, reading: threading.Event) -> None:
    consumer = Consumer(
        {**settings.kafka.client_config(), "group.id": "streamdrift-demo-reader", "isolation.level": "read_committed", "enable.auto.commit": False}
    )
    consumer.assign(start)
    try:
        while reading.is_set():
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            progress.print_alert(orjson.loads(message.value()))
    finally:
        consumer.close()


def format_alert(event: dict[str, Any], first_offset: int) -> str:
    data = event["data"]
    kind = "DETECTED" if event["type"].endswith("detected") else "RESOLVED"
    position = data["source"]["offset"] - first_offset
    return f"{kind:8} {data['model']}/{data['monitor']:<24} {data['statistic']:<9} {data['detector']:<12} {data['severity']:<8} event {position:>6}  {describe(data)}"


def describe(data: dict[str, Any]) -> str:
    """A short human reading of the evidence."""
    evidence = data.get("evidence", {})
    before, after = evidence.get("before", {}), evidence.get("after", {})
    if "changes" in evidence:
        return "; ".join(evidence["changes"][:3])
    if "mean" in after:
        reference = evidence.get("reference", {}).get("mean", before.get("mean"))
        return f"mean {reference:.4g} -> {after['mean']:.4g} (std {after.get('std', 0):.3g})"
    if "rate" in after:
        return f"rate {evidence.get('reference', {}).get('rate', before.get('rate', 0)):.1%} -> {after['rate']:.1%}"
    if "top_categories" in after:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in list(after["top_categories"].items())[:3])
        return f"now: {shares}"
    return ""


def _summary(simulator: Simulator, progress: Progress, out: TextIO) -> int:
    base = progress.first_offset or 0
    alerts = sorted(progress.alerts, key=lambda e: e["data"]["source"]["offset"])
    truths = simulator.ground_truth()
    first_start = min(t["start"] for t in truths)
    out.write("Summary: injected vs detected\n")
    out.write(f"  {'injected':<34} {'detected by':<40} {'at event':>8} {'delay':>7}\n")
    missed = 0
    matched: set[str] = set()
    for truth in truths:
        label = f"{truth['scenario']} {truth['target']} @{truth['start']}"
        hit = next(
            (a for a in alerts if a["data"]["monitor"] == truth["monitor"] and a["type"].endswith("detected") and a["data"]["source"]["offset"] - base >= truth["start"]),
            None,
        )
        if hit is None:
            missed += 1
            out.write(f"  {label:<34} {'MISSED':<40}\n")
            continue
        matched.add(hit["id"])
        at = hit["data"]["source"]["offset"] - base
        by = f"{truth['monitor']} ({hit['data']['detector']})"
        out.write(f"  {label:<34} {by:<40} {at:>8} {at - truth['start']:>+7}\n")
    others = [a for a in alerts if a["id"] not in matched and a["type"].endswith("detected")]
    early = [a for a in others if a["data"]["source"]["offset"] - base < first_start]
    resolved = [a for a in alerts if a["type"].endswith("resolved")]
    for alert in resolved:
        out.write(f"  {'  resolved':<34} {alert['data']['monitor']:<40} {alert['data']['source']['offset'] - base:>8}\n")
    if others:
        names = ", ".join(sorted({a["data"]["monitor"] for a in others if a not in early}))
        if names:
            out.write(f"  also alerted after an injection (effects on the model's outputs): {names}\n")
    out.write(f"  false alarms before the first injection: {len(early)}\n")
    out.write("all injected drifts detected\n" if not missed else f"{missed} injected drift(s) missed\n")
    return 0 if not missed else 1
