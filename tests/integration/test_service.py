"""The detector end to end on a real broker: alerts, dead letters, metrics, restarts, signals."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest

from producers.simulate import Injection, Simulator
from tests.kafka_helpers import (
    KafkaNames,
    ServiceThread,
    alerts_of,
    committed_total,
    produce,
    read_topic,
    start_cli,
    stop_gracefully,
    wait_until,
)

pytestmark = pytest.mark.broker


def drifting(model: str, events: int, at: int, seed: int = 1) -> list[dict]:
    return Simulator(
        model=model, seed=seed, injections=(Injection("mean_shift", "amount", start=at),)
    ).events(events)


def steady(model: str, events: int, seed: int = 2) -> list[dict]:
    return Simulator(model=model, seed=seed).events(events)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except urllib.error.URLError:
        return 0, b""  # not listening (yet)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_feature_shift_alerts_and_a_stationary_model_stays_quiet(
    topics: KafkaNames, guarantee: str
) -> None:
    produced = produce(
        topics.bootstrap,
        topics.predictions,
        drifting("drifty", 9000, at=5000) + steady("steady", 9000),
    )
    with ServiceThread(topics.settings(processing_guarantee=guarantee)) as detector:
        detector.wait_processed(produced)
        alerts = alerts_of(read_topic(topics.bootstrap, topics.alerts, expect=1, timeout_s=30))
    assert alerts, "no alert reached the alerts topic"
    first = alerts[0]
    assert (first["type"], first["data"]["model"], first["data"]["monitor"]) == (
        "io.streamdrift.drift.detected",
        "drifty",
        "feature.amount",
    )
    assert 5000 <= first["data"]["source"]["offset"] < 5300
    every = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))
    assert {a["data"]["model"] for a in every} == {"drifty"}, "the stationary model raised an alert"
    assert len({a["id"] for a in every}) == len(every)


def test_malformed_messages_go_to_the_dead_letter_topic_and_change_nothing(
    topics: KafkaNames,
) -> None:
    events = drifting("m", 8000, at=5000)
    garbage = [
        b"{broken",
        b'{"model": "m", "score": 2}',
        b'{"model": "m", "features": {"x": {"y": 1}}}',
        b"[]",
    ]
    stream: list[bytes | dict] = []
    for i, event in enumerate(events):
        if i % 200 == 7:
            stream.append(garbage[(i // 200) % len(garbage)])
        stream.append(event)
    produce(topics.bootstrap, topics.predictions, stream, key=b"m")
    with ServiceThread(topics.settings()) as detector:
        detector.wait_processed(len(stream))
        letters = read_topic(topics.bootstrap, topics.dlq, expect=40, timeout_s=30)
        alerts = alerts_of(read_topic(topics.bootstrap, topics.alerts, idle_s=2))
    assert len(letters) == 40
    headers = dict(letters[0].headers())
    assert headers["streamdrift.reason"] == b"not_json"
    assert headers["streamdrift.source.topic"].decode() == topics.predictions
    assert int(headers["streamdrift.source.offset"]) == 7
    assert letters[0].value() == b"{broken"
    reasons = {dict(m.headers())["streamdrift.reason"] for m in letters}
    assert reasons == {b"not_json", b"bad_field", b"nested_feature", b"not_object"}
    # Detections are those of the clean stream, shifted by the garbage messages before them.
    detected = [a for a in alerts if a["data"]["monitor"] == "feature.amount"]
    assert detected and 5000 <= detected[0]["data"]["source"]["offset"] - 26 < 5300


def test_metrics_health_and_readiness_over_http(topics: KafkaNames) -> None:
    produce(
        topics.bootstrap, topics.predictions, [*drifting("m", 8000, at=4000), b"not json"], key=b"m"
    )
    with ServiceThread(topics.settings()) as detector:
        detector.wait_processed(8001)
        port = detector.service.metrics_port
        assert port
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, 20, "readiness")
        counted = f'streamdrift_events_total{{model="m",topic="{topics.predictions}"}} 8000.0'
        wait_until(
            lambda: b'monitor="feature.amount"' in http_get(port, "/metrics")[1],
            20,
            "monitor gauges",
        )
        # events are counted once their model's monitors ran on them: the held ones at the next commit
        wait_until(lambda: counted.encode() in http_get(port, "/metrics")[1], 20, "events counted")
        status, body = http_get(port, "/metrics")
        text = body.decode()
        assert http_get(port, "/healthz")[0] == 200
        assert http_get(port, "/other")[0] == 404
        readiness = orjson.loads(http_get(port, "/readyz")[1])
    assert status == 200
    assert counted in text
    assert (
        f'streamdrift_events_invalid_total{{reason="not_json",topic="{topics.predictions}"}} 1.0'
        in text
    )
    assert (
        'streamdrift_alerts_total{detector="page_hinkley",model="m",monitor="feature.amount",severity="critical"} 1.0'
        in text
    )
    assert 'streamdrift_drift_active{model="m",monitor="feature.amount"} 1.0' in text
    assert (
        'streamdrift_monitor_statistic{model="m",monitor="feature.amount",statistic="location"}'
        in text
    )
    assert 'streamdrift_last_event_timestamp_seconds{model="m"}' in text
    assert "streamdrift_consumer_lag{" in text
    assert "streamdrift_batch_processing_seconds_count" in text
    assert "streamdrift_checkpoint_seconds_count" in text
    assert "streamdrift_commit_pending_seconds " in text
    assert "streamdrift_last_commit_timestamp_seconds 0.0" not in text  # a checkpoint went through
    assert readiness["ready"] is True and readiness["partitions"] and readiness["reasons"] == []


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_restart_resumes_from_the_committed_offsets(topics: KafkaNames, guarantee: str) -> None:
    events = steady("m", 6000)
    produce(topics.bootstrap, topics.predictions, events[:4000])
    settings = topics.settings(processing_guarantee=guarantee)
    with ServiceThread(settings) as first:
        first.wait_processed(4000)
    produce(topics.bootstrap, topics.predictions, events[4000:])
    with ServiceThread(settings) as second:
        second.wait_processed(2000)
        wait_until(lambda: second.service.processed_events >= 2000, 10, "the rest")
    assert second.service.processed_events == 2000


def test_sigterm_finishes_the_batch_commits_and_exits_zero(topics: KafkaNames) -> None:
    produce(topics.bootstrap, topics.predictions, steady("m", 3000))
    process = start_cli(["run"], topics.env())
    wait_until(
        lambda: (
            committed_total(topics.bootstrap, topics.group, topics.predictions) >= 3000
            or process.poll() is not None
        ),
        60,
        "offsets committed",
    )
    stderr = stop_gracefully(process)
    assert "received SIGTERM" in stderr and "offsets committed" in stderr


def test_an_unreachable_broker_is_retried_and_readiness_stays_false(topics: KafkaNames) -> None:
    from detector.kafka.embedded import free_loopback_port

    env = topics.env(
        STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_loopback_port()}",
        STREAMDRIFT_METRICS__PORT=str(free_loopback_port()),
        STREAMDRIFT_METRICS__STALL_AFTER_S="10",
    )
    port = int(env["STREAMDRIFT_METRICS__PORT"])
    process = start_cli(["run"], env)
    wait_until(lambda: http_get(port, "/healthz")[0] == 200, 20, "the health endpoint")
    assert http_get(port, "/readyz")[0] == 503
    time.sleep(12)  # longer than stall_after_s: waiting for the broker is progress, not a stall
    assert http_get(port, "/healthz")[0] == 200 and http_get(port, "/readyz")[0] == 503
    stderr = stop_gracefully(process)
    assert "is unreachable" in stderr and "retrying in" in stderr


def test_a_stalled_loop_fails_health_and_readiness_until_it_moves_again(topics: KafkaNames) -> None:
    """A call that never returns inside the loop (here an alert listener that blocks, standing in
    for a commit hung on a dead coordinator) turns /healthz and /readyz to 503 after
    metrics.stall_after_s, so that a liveness probe restarts the process."""
    produce(topics.bootstrap, topics.predictions, drifting("m", 8000, at=4000), key=b"m")
    release = threading.Event()
    with ServiceThread(
        topics.settings(metrics={"host": "127.0.0.1", "port": 0, "stall_after_s": 10})
    ) as detector:
        detector.service.alert_listeners.append(lambda alert, evidence: release.wait(60))
        wait_until(lambda: detector.service.metrics_port is not None, 20, "the metrics server")
        port = detector.service.metrics_port
        assert port
        wait_until(lambda: http_get(port, "/healthz")[0] == 503, 40, "a stalled loop reported")
        _status, reason = http_get(port, "/healthz")
        readiness = orjson.loads(http_get(port, "/readyz")[1])
        metrics = http_get(port, "/metrics")[1].decode()
        checked_at = time.time()
        release.set()
        wait_until(
            lambda: http_get(port, "/healthz")[0] == 200, 20, "health back once the loop moves"
        )
        detector.wait_processed(8000)
    assert b"stalled: the consumer loop has not completed a step for" in reason
    assert readiness["ready"] is False and readiness["stalled_s"] >= 10
    last_progress = float(
        next(
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("streamdrift_last_progress_timestamp_seconds ")
        )
    )
    assert checked_at - last_progress >= 10


def test_groups_sharing_a_state_topic_keep_their_own_state(topics: KafkaNames) -> None:
    """A second group on the same input and (misconfigured) shared state topic starts from scratch
    instead of taking over the first group's checkpoints and offsets."""
    produced = produce(topics.bootstrap, topics.predictions, steady("m", 3000))
    with ServiceThread(topics.settings()) as first:
        first.wait_processed(produced)
    other = topics.settings(kafka={"group_id": f"{topics.group}-other"})
    assert other.state_topic() == topics.state
    with ServiceThread(other) as second:
        second.wait_processed(produced)
        assert sum(len(state.models) for state in second.service.pipeline.partitions.values()) == 1


def test_the_state_topic_is_named_after_the_group_by_default() -> None:
    from detector.settings import load_settings

    assert (
        load_settings(None, kafka={"group_id": "fraud-monitor"}).state_topic()
        == "fraud-monitor-state"
    )
