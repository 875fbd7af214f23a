"""A hostile load on the real broker: `streamdrift run` as a subprocess reads a stream in which
10% of the messages are malformed (not JSON, NaN/Infinity, oversize, nested 5,000 deep, wrong
fields), 100,000 distinct model names arrive and one model carries 10,000 distinct feature
names, next to two real models (one drifting, one stationary).

The test runs it scaled down (tests/security/test_load.py); the full size is a command:

    .venv/bin/python -m tests.security.load            # full size, its own embedded broker
    .venv/bin/python -m tests.security.load --scale 0.1

The stream comes in two phases: the first fills the caps (limits.max_models and
limits.max_features_per_model), the second floods far past them. The detector's RSS is
sampled at the end of each phase: once the caps are reached it must stay flat.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Message
from prometheus_client.parser import text_string_to_metric_families

from detector.core.pipeline import Pipeline
from detector.kafka.embedded import EmbeddedBroker, free_loopback_port
from detector.settings import Settings
from producers.simulate import Injection, Simulator
from tests.kafka_helpers import (
    KafkaNames,
    committed_total,
    create_topics,
    expected_alert_ids,
    interleaved,
    produce,
    read_topic,
    start_cli,
    stop_gracefully,
    wait_until,
)

FULL_MODELS = 100_000  # distinct model names at full size
FULL_FEATURES = 10_000  # distinct feature names of one model at full size
MALFORMED_SHARE = 0.10
REAL_EVENTS = 6000  # per real model; the drift starts at DRIFT_AT
DRIFT_AT = 3500
NAMES_PER_WIDE_EVENT = 100
LONG_NAME_EVERY = 50
OVERSIZE_BYTES = 100_000
DEPTH = 5000
REAL_MODELS = ("fraud", "steady")
WIDE_MODEL = "wide"
PHASE_TIMEOUT_S = 300.0

Stream = list[dict[str, Any] | bytes]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (metric, sorted labels) -> value


@dataclass(frozen=True)
class LoadPlan:
    """Sizes of the hostile stream and the caps the detector runs with."""

    scale: float = 1.0
    max_models: int = 100
    max_features_per_model: int = 20
    max_message_bytes: int = 65_536
    seed: int = 8

    @property
    def flood_models(self) -> int:
        return int(FULL_MODELS * self.scale)

    @property
    def flood_features(self) -> int:
        return int(FULL_FEATURES * self.scale)

    def limits(self) -> dict[str, int]:
        return {
            "max_models": self.max_models,
            "max_features_per_model": self.max_features_per_model,
            "max_message_bytes": self.max_message_bytes,
        }

    def env(self) -> dict[str, str]:
        return {
            f"STREAMDRIFT_LIMITS__{name.upper()}": str(value)
            for name, value in self.limits().items()
        } | {"STREAMDRIFT_TOPICS__PARTITIONS": "1"}

    def settings(self, names: KafkaNames) -> Settings:
        """The detector's settings, as the subprocess resolves them from `env()`."""
        return names.settings(limits=self.limits(), topics={"partitions": 1})

    def phases(self) -> tuple[Stream, Stream]:
        """The stream, split where the caps have just been reached: real models first (so they
        are admitted), then flood models and feature names up to past the caps; the rest after."""
        rng = random.Random(self.seed)
        real = interleaved(
            [
                Simulator(
                    model="fraud",
                    seed=11,
                    injections=(Injection("mean_shift", "amount", start=DRIFT_AT),),
                ).events(REAL_EVENTS),
                Simulator(model="steady", seed=12).events(REAL_EVENTS),
            ]
        )
        flood: Stream = [
            {"model": f"flood-{i}", "score": rng.random()} for i in range(self.flood_models)
        ]
        wide: Stream = [
            {
                "model": WIDE_MODEL,
                "features": {
                    feature_name(i, j): rng.random()
                    for j in range(start, min(start + NAMES_PER_WIDE_EVENT, self.flood_features))
                },
            }
            for i, start in enumerate(range(0, self.flood_features, NAMES_PER_WIDE_EVENT))
        ]
        split = 2 * self.max_models
        head = with_malformed(real[:2000] + wide[:2] + flood[:split], rng)
        tail = with_malformed(mixed(real[2000:], wide[2:] + flood[split:], rng), rng)
        return head, tail


def feature_name(event: int, j: int) -> str:
    """Mostly short distinct names; every LONG_NAME_EVERY-th is longer than limits.max_category_length."""
    return f"f{j:06d}" if j % LONG_NAME_EVERY else f"long-{event}-{j}-" + "x" * 300


def mixed(real: Stream, flood: Stream, rng: random.Random) -> Stream:
    """The flood spread at random through the real models' events, keeping each one's order."""
    out: Stream = []
    i = j = 0
    while i < len(real) or j < len(flood):
        if j >= len(flood) or (
            i < len(real) and rng.random() < len(real) / (len(real) + len(flood))
        ):
            out.append(real[i])
            i += 1
        else:
            out.append(flood[j])
            j += 1
    return out


def malformed(rng: random.Random) -> bytes:
    """One bad message; some claim to be events of a real model."""
    kind = rng.randrange(9)
    model = rng.choice(REAL_MODELS)
    if kind == 0:
        return b'{"model": "' + model.encode() + b'", "features": {"amount": 1'  # cut short
    if kind == 1:
        return b'{"model": "' + model.encode() + b'", "score": NaN}'
    if kind == 2:
        return b'{"model": "' + model.encode() + b'", "features": {"amount": Infinity}}'
    if kind == 3:
        return orjson.dumps({"model": model, "padding": "x" * OVERSIZE_BYTES})
    if kind == 4:
        return (
            b'{"model": "'
            + model.encode()
            + b'", "features": {"a": '
            + b"[" * DEPTH
            + b"]" * DEPTH
            + b"}}"
        )
    if kind == 5:
        return orjson.dumps({"model": model, "score": 1.5 + rng.random()})
    if kind == 6:
        return orjson.dumps([{"model": model}])
    if kind == 7:
        # not UTF-8
        return b'{"model": "' + model.encode() + b'", "features": {"country": "D\xff\xfeE"}}'
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))


def with_malformed(stream: Stream, rng: random.Random) -> Stream:
    """The stream with malformed messages making up MALFORMED_SHARE of the result."""
    out: Stream = []
    for value in stream:
        while rng.random() < MALFORMED_SHARE:
            out.append(malformed(rng))
        out.append(value)
    return out


# -- running it ---------------------------------------------------------------------------


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    """Resident memory of a process (VmRSS now, or VmHWM: the peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"{field_name} not in /proc/{pid}/status")


def scrape(port: int) -> Samples:
    """Every sample of /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_or_empty(port: int) -> Samples:
    try:
        return scrape(port)
    except OSError:
        return {}  # not listening yet


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels."""
    return sum(
        value
        for (sample, keys), value in samples.items()
        if sample == name and labels.items() <= dict(keys).items()
    )


@dataclass
class LoadReport:
    messages: int
    seconds: float  # from the first message produced to the last one processed
    rss_at_caps_mib: float
    rss_end_mib: float
    peak_rss_mib: float
    metrics: Samples
    alerts: list[dict[str, Any]]
    dead_letters: list[Message]
    inputs: list[Message]


def run_load(plan: LoadPlan, names: KafkaNames) -> LoadReport:
    """Create the topics, start `streamdrift run`, produce both phases, collect what came out."""
    create_topics(plan.settings(names))
    head, tail = plan.phases()
    port = free_loopback_port()
    process = start_cli(["run"], names.env(**plan.env(), STREAMDRIFT_METRICS__PORT=str(port)))

    def processed(count: int) -> Callable[[], bool]:
        def done() -> bool:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(
                    f"the detector exited with code {process.returncode} under load:\n{stderr[-3000:]}"
                )
            # Committed input offsets, not the event counters: an evicted model's series are removed.
            return committed_total(names.bootstrap, names.group, names.predictions) >= count

        return done

    try:
        started = time.monotonic()
        produce(names.bootstrap, names.predictions, head)
        wait_until(processed(len(head)), PHASE_TIMEOUT_S, "the first phase processed")
        rss_at_caps = rss_mib(process.pid)
        produce(names.bootstrap, names.predictions, tail)
        wait_until(processed(len(head) + len(tail)), PHASE_TIMEOUT_S, "the second phase processed")
        seconds = time.monotonic() - started
        rss_end, peak = rss_mib(process.pid), rss_mib(process.pid, "VmHWM")
        messages = len(head) + len(tail)
        wait_until(
            lambda: committed_total(names.bootstrap, names.group, names.predictions) >= messages,
            60,
            "the last checkpoint",
        )
        invalid = int(total(scrape(port), "streamdrift_events_invalid_total"))
        letters = read_topic(names.bootstrap, names.dlq, expect=invalid, timeout_s=PHASE_TIMEOUT_S)
        alerts = [
            orjson.loads(m.value()) for m in read_topic(names.bootstrap, names.alerts, idle_s=3)
        ]
        inputs = read_topic(
            names.bootstrap, names.predictions, expect=messages, timeout_s=PHASE_TIMEOUT_S
        )
        metrics = scrape(port)  # the gauges as the last checkpoint left them
    except BaseException:
        process.kill()
        raise
    stop_gracefully(process, 60)  # SIGTERM: exit code 0 required
    return LoadReport(
        messages, seconds, rss_at_caps, rss_end, peak, metrics, alerts, letters, inputs
    )


@dataclass(frozen=True)
class Expected:
    """What the pure pipeline makes of the same input: clean alert ids, rejection and eviction counts."""

    alert_ids: list[str]
    invalid: Counter[str]
    models: int
    evictions: Counter[str]  # reason -> models evicted
    wide_overflow: int | None  # None: the wide model was evicted by the flood and did not come back


def expected(plan: LoadPlan, names: KafkaNames, inputs: list[Message]) -> Expected:
    settings = plan.settings(names)
    clean = [m for m in inputs if m.key() in {name.encode() for name in REAL_MODELS}]
    pipeline = Pipeline(settings)
    result = pipeline.process(sorted(inputs, key=lambda m: (m.partition(), m.offset())))
    invalid: Counter[str] = Counter()
    for (_, reason), count in result.invalid.items():
        invalid[reason] += count
    wide = next((m.feature_overflow for m in pipeline.models() if m.name == WIDE_MODEL), None)
    evictions = Counter(eviction.reason for eviction in result.evictions)
    return Expected(
        expected_alert_ids(settings, clean), invalid, pipeline.model_count, evictions, wide
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The hostile load test at full size (or --scale), on an embedded broker."
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="share of 100,000 models and 10,000 features (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    plan = LoadPlan(scale=args.scale)
    with EmbeddedBroker() as broker:
        names = KafkaNames(broker.bootstrap_servers, uuid.uuid4().hex[:10])
        report = run_load(plan, names)
        want = expected(plan, names, report.inputs)
    group = names.group
    got_ids = sorted(a["id"] for a in report.alerts if a["data"]["model"] in REAL_MODELS)
    print(
        f"messages {report.messages} in {report.seconds:.1f}s ({report.messages / report.seconds:,.0f}/s end to end), "
        f"flood models {plan.flood_models}, flood features {plan.flood_features}, caps {plan.max_models} models / {plan.max_features_per_model} features"
    )
    print(
        f"detector RSS: {report.rss_at_caps_mib:.0f} MiB when the caps were reached, {report.rss_end_mib:.0f} MiB at the end, peak {report.peak_rss_mib:.0f} MiB"
    )
    print(
        f"models monitored {total(report.metrics, 'streamdrift_models'):.0f} (expected {want.models}); "
        f"models evicted at the cap {total(report.metrics, 'streamdrift_models_evicted_total', reason='cap'):.0f} (expected {want.evictions['cap']}); "
        f"features unmonitored of {WIDE_MODEL} {total(report.metrics, 'streamdrift_features_unmonitored', model=WIDE_MODEL):.0f} (expected {want.wide_overflow})"
    )
    print(
        f"dead letters {len(report.dead_letters)} (expected {sum(want.invalid.values())}): {dict(sorted(want.invalid.items()))}"
    )
    print(
        f"real models' alert ids as in the clean run: {got_ids == sorted(want.alert_ids)} ({len(got_ids)} alerts, group {group})"
    )
    print("process up throughout, exit code 0 after SIGTERM")
    return 0 if got_ids == sorted(want.alert_ids) else 1


if __name__ == "__main__":
    sys.exit(main())
