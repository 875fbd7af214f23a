"""Secrets are never logged: `streamdrift run` at DEBUG, with a SASL password in
STREAMDRIFT_KAFKA__SECRETS and a state signing key, works through alerts and signed checkpoints
and never prints either, nor serves them on its HTTP endpoints."""

from __future__ import annotations

import json
import urllib.request

import pytest

from detector.core.state import StateCodec
from detector.kafka.embedded import free_loopback_port
from producers.simulate import Injection, Simulator
from tests.kafka_helpers import (
    KafkaNames,
    alerts_of,
    create_topics,
    produce,
    read_topic,
    start_cli,
    stop_gracefully,
)

pytestmark = pytest.mark.broker

PASSWORD = "pa55-w0rd-that-must-not-leak"
SIGNING_KEY = "signing-key-that-must-not-leak"


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def test_secrets_never_reach_the_logs_or_the_endpoints(topics: KafkaNames) -> None:
    port = free_loopback_port()
    env = topics.env(
        STREAMDRIFT_LOG_LEVEL="DEBUG",
        STREAMDRIFT_METRICS__PORT=str(port),
        STREAMDRIFT_KAFKA__SECRETS=json.dumps({"sasl.password": PASSWORD}),
        STREAMDRIFT_STATE__SIGNING_KEY=SIGNING_KEY,
    )
    create_topics(topics.settings())
    produce(
        topics.bootstrap,
        topics.predictions,
        Simulator(
            model="m", seed=1, injections=(Injection("mean_shift", "amount", start=4000),)
        ).events(6000),
    )
    process = start_cli(["run"], env)
    try:
        alerts = alerts_of(read_topic(topics.bootstrap, topics.alerts, expect=1, timeout_s=60))
        served = fetch(port, "/metrics") + fetch(port, "/readyz") + fetch(port, "/healthz")
    except BaseException:
        process.kill()
        raise
    stderr = stop_gracefully(process, 60)
    assert alerts and " DEBUG " in stderr and "offsets committed" in stderr, stderr[
        -3000:
    ]  # it ran, at DEBUG
    assert '"sasl.password":"**********"' in stderr and '"signing_key":"**********"' in stderr
    for secret in (PASSWORD, SIGNING_KEY):
        assert secret not in stderr and secret not in served
    state = read_topic(topics.bootstrap, topics.state, expect=1, timeout_s=30)
    # signed with it
    assert (
        StateCodec(topics.group, SIGNING_KEY.encode()).decode(state[0].value()).group
        == topics.group
    )
