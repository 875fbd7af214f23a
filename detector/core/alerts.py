"""Alert events: CloudEvents 1.0 in JSON structured mode, keyed by model name (pure).

The id is a UUID derived (uuid5) from the group, model, monitor, detector, source partition
and offset, and the event type: a replay of the same input produces the same ids, so any
downstream can deduplicate even without transactions.

Events about a model rather than one monitor's drift (`ModelEvent`: a deployment, a comparison
of live versions, a retraining recommended and its outcome) share the topic, the envelope and the id rule; their `monitor` and `detector`
in the id are fixed texts naming what the event is about (its version, or its statistic and
versions compared).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

DETECTED = "io.streamdrift.drift.detected"
RESOLVED = "io.streamdrift.drift.resolved"
EVENT_TYPES = {"detected": DETECTED, "resolved": RESOLVED}
DEPLOYED = "io.streamdrift.model.deployed"
COMPARED = "io.streamdrift.version.compared"
RECOMMENDED = "io.streamdrift.retrain.recommended"
OUTCOME = "io.streamdrift.retrain.outcome"

_ID_NAMESPACE = uuid.UUID("5f1c2a7e-9d3b-4c8e-a1f0-7b6d2e4c9a10")
MAX_TEXT_CHARS = 1000  # texts of an alert too large to publish whole are cut to this


def _shortened(value: Any) -> Any:
    """`value` with every string in it, dictionary keys included, cut to MAX_TEXT_CHARS."""
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS]
    if isinstance(value, dict):
        return {
            key[:MAX_TEXT_CHARS] if isinstance(key, str) else key: _shortened(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_shortened(item) for item in value]
    return value


def alert_id(
    group: str,
    model: str,
    monitor: str,
    detector: str,
    partition: int,
    offset: int,
    event_type: str,
) -> str:
    """Deterministic alert id (see the module docstring)."""
    name = "\x1f".join((group, model, monitor, detector, str(partition), str(offset), event_type))
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def rfc3339(epoch_ms: int) -> str:
    return (
        datetime.fromtimestamp(epoch_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class Alert:
    """One alert, as decided by a monitor, with where it came from."""

    kind: str  # "detected" or "resolved"
    model: str
    version: str | None
    monitor: str
    statistic: str
    detector: str
    severity: str
    observations: int
    evidence: dict[str, Any]
    topic: str
    partition: int
    offset: int
    event_time_ms: int
    owner: str = ""
    runbook_url: str = ""
    reason: str = ""
    # of a detected change: {"topic", "partition", "offset", "time", "clipped", "estimated"}
    estimated_start: dict[str, Any] | None = None

    @property
    def type(self) -> str:
        return EVENT_TYPES[self.kind]

    @property
    def signal(self) -> str:
        return self.monitor.split(".", 1)[0]

    def id(self, group: str) -> str:
        return alert_id(
            group, self.model, self.monitor, self.detector, self.partition, self.offset, self.type
        )

    def cloudevent(self, group: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "monitor": self.monitor,
            "signal": self.signal,
            "statistic": self.statistic,
            "detector": self.detector,
            "severity": self.severity,
            "observations": self.observations,
            "evidence": self.evidence,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "owner": self.owner,
            "runbook_url": self.runbook_url,
        }
        if self.reason:
            data["reason"] = self.reason
        if self.estimated_start is not None:
            data["estimated_start"] = self.estimated_start
        return envelope(
            self.type,
            group,
            self.id(group),
            self.event_time_ms,
            f"{self.model}/{self.monitor}",
            data,
        )

    def encode(self, group: str, max_bytes: int | None = None) -> bytes:
        """The CloudEvent as JSON (see `encoded`)."""
        return encoded(self.cloudevent(group), self.key, max_bytes)

    @property
    def key(self) -> bytes:
        return self.model.encode()


@dataclass(frozen=True)
class ModelEvent:
    """An event about a model, on the alerts topic: a deployment (`DEPLOYED`), a comparison of
    its live versions (`COMPARED`), a retraining recommended (`RECOMMENDED`) or its outcome
    (`OUTCOME`), decided at the input event at `topic`/`partition`/`offset`.
    `about` and `detail` stand in the id for an alert's monitor and detector."""

    type: str
    model: str
    version: str | None
    about: str
    detail: str
    data: dict[str, Any]  # the CloudEvent's data, after model and version
    topic: str
    partition: int
    offset: int
    event_time_ms: int
    owner: str = ""

    @property
    def kind(self) -> str:
        """The event type's last word: 'deployed', 'compared', 'recommended' or 'outcome'."""
        return self.type.rsplit(".", 1)[1]

    def id(self, group: str) -> str:
        return alert_id(
            group, self.model, self.about, self.detail, self.partition, self.offset, self.type
        )

    def cloudevent(self, group: str) -> dict[str, Any]:
        data = {
            "model": self.model,
            "version": self.version,
            **self.data,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "owner": self.owner,
        }
        return envelope(
            self.type, group, self.id(group), self.event_time_ms, f"{self.model}/{self.about}", data
        )

    def encode(self, group: str, max_bytes: int | None = None) -> bytes:
        return encoded(self.cloudevent(group), self.key, max_bytes)

    @property
    def key(self) -> bytes:
        return self.model.encode()


def envelope(
    event_type: str, group: str, event_id: str, event_time_ms: int, subject: str, data: Any
) -> dict[str, Any]:
    """The CloudEvents 1.0 envelope (JSON structured mode) of every event the detector publishes."""
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": f"streamdrift/{group}",
        "id": event_id,
        "time": rfc3339(event_time_ms),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


def encoded(event: dict[str, Any], key: bytes, max_bytes: int | None) -> bytes:
    """A CloudEvent as JSON; over `max_bytes` (with the key), every text in it is cut to
    `MAX_TEXT_CHARS` and `data.truncated` set (a feature name can be as long as a message)."""
    raw = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)
    if max_bytes is None or len(raw) + len(key) <= max_bytes:
        return raw
    event["data"]["truncated"] = True
    return orjson.dumps(_shortened(event), option=orjson.OPT_SERIALIZE_NUMPY)


def describe(data: dict[str, Any]) -> str:
    """A short human reading of an alert event's evidence (its CloudEvent `data`): for the demo's
    alert table and the backtest's summary."""
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


def describe_model_event(event_type: str, data: dict[str, Any]) -> str:
    """A short human reading of an event about a model (its CloudEvent `type` and `data`): for
    the demo's alert table and the backtest's summary."""
    if event_type == DEPLOYED:
        rollback = "a rollback, " if data["rollback"] else ""
        return f"version {data['version']} deployed ({rollback}was {data['previous_version']})"
    if event_type == COMPARED:
        values = ", ".join(
            f"{version} {value:.3g}" for version, value in zip(data["versions"], data["values"])
        )
        return f"versions apart on {data['statistic']}: {values}"
    if event_type == RECOMMENDED:
        evidence, retrain = data["evidence"], data["retrain_data"]
        (span,) = retrain["partitions"]
        where = (
            f"{retrain['topic']}[{span['partition']}] {span['from_offset']}..{span['to_offset']}"
        )
        if data["reason"] == "performance_drop":
            why = (
                f"{evidence['statistic']} {evidence['reference']:.3g} -> {evidence['current']:.3g}"
            )
        else:
            why = "input drift open: " + ", ".join(d["monitor"] for d in evidence["drifts"][:3])
        return f"retrain version {data['version']} ({why}) on {where}"
    return (
        f"retrained version {data['version']} {data['outcome'].replace('_', ' ')}: "
        f"{data['statistic']} {data['after']:.3g} against {data['reference']:.3g} "
        f"({data['labelled_events']['after']} labels)"
    )
