"""librdkafka's statistics (`statistics.interval.ms`, delivered to `stats_cb` as JSON), read for
what tells a broker that is down or does not answer: each cluster node's connection state, the
requests waiting on it, and the requests that timed out.

Each entry of librdkafka's `brokers` has a connection of its own: the nodes it learned from the
cluster's metadata (`source` "learned"), the bootstrap addresses, and the logical handles of the
group and transaction coordinators. Requests are counted over all of them; connection states
over the learned nodes only, so that each node counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

# Every statistics emission costs a JSON document per client (a few kB per partition it knows):
# often enough to follow an episode of a few seconds, rare enough to cost nothing.
STATISTICS_INTERVAL_MS = 5000
CONNECTION_STATES = ("up", "connecting", "down")
# librdkafka's broker states (rdkafka_broker.h), by what they mean for requests: UP and UPDATE
# serve them; INIT and DOWN have no connection (an idle node is DOWN too, as librdkafka
# connects only to the nodes it needs); the rest are on the way to a connection.
_DOWN = frozenset({"INIT", "DOWN"})
_UP = frozenset({"UP", "UPDATE"})


@dataclass(frozen=True)
class ClientStatistics:
    """One statistics emission of one client.

    `client`: "producer" or "consumer"; `instance`: librdkafka's name of the client (a replaced
    producer has a new one); `brokers`: nodes by connection state (CONNECTION_STATES); `waiting`:
    requests queued for sending or waiting for an answer (a consumer's fetches wait up to
    fetch.wait.max.ms by design); `timeouts`: requests that got no answer in time, since the
    client started."""

    client: str
    instance: str
    brokers: dict[str, int] = field(default_factory=dict)
    waiting: int = 0
    timeouts: int = 0


def connection_state(state: str) -> str:
    """librdkafka's broker state as one of CONNECTION_STATES."""
    if state in _UP:
        return "up"
    if state in _DOWN:
        return "down"
    return "connecting"


def parse_statistics(document: str | bytes) -> ClientStatistics:
    """The parts of a librdkafka statistics document that the detector exports."""
    data = orjson.loads(document)
    brokers = dict.fromkeys(CONNECTION_STATES, 0)
    waiting = timeouts = 0
    for broker in data.get("brokers", {}).values():
        timeouts += broker.get("req_timeouts", 0)
        waiting += broker.get("outbuf_cnt", 0) + broker.get("waitresp_cnt", 0)
        if broker.get("source") == "learned":
            brokers[connection_state(broker.get("state", "INIT"))] += 1
    return ClientStatistics(data.get("type", ""), data.get("name", ""), brokers, waiting, timeouts)


class TimeoutCount:
    """Turns each client's running total of timed-out requests into increments, for a counter
    that survives the client's replacement (a new instance counts from 0 again)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, int]] = {}  # client -> (instance, total)

    def increase(self, statistics: ClientStatistics) -> int:
        """Timed-out requests since the previous emission of the same client."""
        instance, total = self._last.get(statistics.client, ("", 0))
        self._last[statistics.client] = (statistics.instance, statistics.timeouts)
        if instance != statistics.instance:
            return statistics.timeouts
        return max(0, statistics.timeouts - total)
