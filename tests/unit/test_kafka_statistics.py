"""librdkafka's statistics, read for the broker-health metrics: nodes by connection state,
requests waiting, timed-out requests as a counter that survives a replaced client."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.http.metrics import Metrics
from detector.kafka.statistics import (
    ClientStatistics,
    TimeoutCount,
    connection_state,
    parse_statistics,
)


def broker(
    source: str, state: str, outbuf: int = 0, waitresp: int = 0, timeouts: int = 0
) -> dict[str, Any]:
    """One entry of librdkafka's `brokers` (the fields read, as librdkafka 2.x names them)."""
    return {
        "source": source,
        "state": state,
        "stateage": 1_000_000,
        "outbuf_cnt": outbuf,
        "waitresp_cnt": waitresp,
        "req_timeouts": timeouts,
        "rtt": {"avg": 900, "p99": 2000},
    }


def document(name: str, client: str, **brokers: dict[str, Any]) -> bytes:
    return orjson.dumps({"name": name, "type": client, "ts": 1, "brokers": brokers, "topics": {}})


def test_a_hung_node_shows_as_connecting_with_requests_waiting_and_timed_out() -> None:
    """Three learned nodes, one reconnecting to a hung broker after a timed-out request; the
    logical coordinator handle has its own connection, so its requests count, its node not."""
    statistics = parse_statistics(
        document(
            "rdkafka#producer-1",
            "producer",
            **{
                "n1:9092/1": broker("learned", "UP", waitresp=1),
                "n2:9092/2": broker("learned", "APIVERSION_QUERY", outbuf=3, timeouts=2),
                "n3:9092/3": broker("learned", "DOWN"),
                "TxnCoordinator": broker("logical", "UP", waitresp=1, timeouts=1),
                "n1:9092/bootstrap": broker("configured", "INIT"),
            },
        )
    )
    assert statistics == ClientStatistics(
        "producer",
        "rdkafka#producer-1",
        {"up": 1, "connecting": 1, "down": 1},
        waiting=5,
        timeouts=3,
    )


@pytest.mark.parametrize(
    ("state", "meaning"),
    [
        ("UP", "up"),
        ("UPDATE", "up"),
        ("INIT", "down"),
        ("DOWN", "down"),
        ("TRY_CONNECT", "connecting"),
        ("CONNECT", "connecting"),
        ("SSL_HANDSHAKE", "connecting"),
        ("APIVERSION_QUERY", "connecting"),
        ("AUTH_HANDSHAKE", "connecting"),
        ("AUTH_REQ", "connecting"),
        ("REAUTH", "connecting"),
    ],
)
def test_every_broker_state_has_a_meaning(state: str, meaning: str) -> None:
    assert connection_state(state) == meaning


def test_a_client_without_brokers_yet_reports_zeros() -> None:
    statistics = parse_statistics(document("rdkafka#consumer-1", "consumer"))
    assert statistics.brokers == {"up": 0, "connecting": 0, "down": 0}
    assert (statistics.waiting, statistics.timeouts) == (0, 0)


def test_timeouts_count_across_emissions_and_a_replaced_client() -> None:
    count = TimeoutCount()
    producer = [
        ClientStatistics("producer", "rdkafka#producer-1", timeouts=n) for n in (0, 2, 2, 5)
    ]
    assert [count.increase(s) for s in producer] == [0, 2, 0, 3]
    # the consumer's total is its own; a new producer instance counts from 0 again
    assert count.increase(ClientStatistics("consumer", "rdkafka#consumer-2", timeouts=4)) == 4
    assert count.increase(ClientStatistics("producer", "rdkafka#producer-3", timeouts=1)) == 1
    assert count.increase(ClientStatistics("producer", "rdkafka#producer-3", timeouts=1)) == 0


def test_the_statistics_become_series_per_client_and_state() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.record_client("producer", {"up": 2, "connecting": 1, "down": 0}, 4, 1)
    metrics.record_client("producer", {"up": 3, "connecting": 0, "down": 0}, 0, 2)
    value = registry.get_sample_value
    assert value("streamdrift_kafka_brokers", {"client": "producer", "state": "up"}) == 3
    assert value("streamdrift_kafka_brokers", {"client": "producer", "state": "connecting"}) == 0
    assert value("streamdrift_kafka_requests_waiting", {"client": "producer"}) == 0
    assert value("streamdrift_kafka_request_timeouts_total", {"client": "producer"}) == 3
