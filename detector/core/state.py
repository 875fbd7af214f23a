"""Checkpoint records of the state topic, and how a partition's state is chosen on restore (pure).

The state topic has as many partitions as the inputs; input partition p checkpoints to state
partition p. Each checkpoint writes one record per model that saw events since the last one
(key `model:<name>`) and then a `checkpoint` record naming the input offsets the state covers.
Every record carries those offsets. On restore the newest checkpoint record wins, and each
model takes its newest record that the checkpoint covers: records of a checkpoint that never
completed are ignored. A model record larger than `PART_BYTES` (a wide model, or a long label
join buffer) is written as parts `model:<name>#<i>` carrying the same offsets and the part
count; restore reassembles complete sets only, so no record outgrows the broker's limit. A model
evicted from the process (idle, or at the model cap) is retired by an `evicted` record under its
key, so that a restore does not bring it back (and compaction drops its old state).

Format (version 1): `SDS\\x01`, then a 32-byte HMAC-SHA256 when a signing key is configured,
then zlib-compressed JSON: {"type", "group", "partition", "offsets", "model"?, "state"?}. Decoding
never runs code: JSON, base64 and river's plain-data ADWIN buckets only. Whoever can write the
state topic can still change what the detector remembers; a signing key stops that.

A model's state (ModelMonitor.to_state) carries `state_schema` (monitors.model.STATE_SCHEMA,
bumped with every change of its layout) and `libraries`, the versions of the libraries whose
internals it holds (river). States written before these existed read as schema 0. A state of
another schema or river, learned under other detection settings, or that fails to load is not
loaded: `restore_model` says why, and its model re-learns from its next events while every
other model of the partition is restored. A record that cannot be used at all raises
StateError with a `reason` from REJECT_REASONS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from detector.core.monitors.model import ModelMonitor, Relearn, is_model_failure

MAGIC = b"SDS\x01"
CHECKPOINT_KEY = b"checkpoint"
MODEL_KEY_PREFIX = b"model:"
MAX_DECODED_BYTES = 64 * 1024 * 1024
PART_BYTES = 400_000  # encoded model records above this are split (Kafka's default limit is 1 MB)
_MAC_BYTES = 32
DETAIL_CHARS = 200  # of an exception's message in a log line


# Why a state record was skipped on restore (a metric label): not a record of this format,
# a signature that does not match the key, content that does not decode, or written by
# another consumer group (a state topic shared by mistake).
REJECT_REASONS = ("format", "signature", "malformed", "other_group")


class StateError(ValueError):
    """A state record that cannot be used; `reason` is one of REJECT_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class StateRecord:
    type: str  # "model", "part", "evicted" or "checkpoint"
    group: str  # consumer group that wrote it
    partition: int
    offsets: dict[str, int]  # input topic -> next offset the state covers
    model: str | None = None
    state: dict[str, Any] | None = None
    part: tuple[int, int, bytes] | None = None  # (index, count, piece of an encoded model record)

    def covered_by(self, offsets: dict[str, int]) -> bool:
        return all(offset <= offsets.get(topic, -1) for topic, offset in self.offsets.items())


class StateCodec:
    """Encodes and decodes the state records of one consumer group, signed when `signing_key` is set."""

    def __init__(self, group: str, signing_key: bytes | None = None) -> None:
        self.group = group
        self.signing_key = signing_key

    def model_records(
        self, partition: int, offsets: dict[str, int], model: str, state: dict[str, Any]
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) of a model's state: one record, or parts of it when it is large."""
        key = MODEL_KEY_PREFIX + model.encode()
        head = {"group": self.group, "partition": partition, "offsets": offsets, "model": model}
        value = self._encode({"type": "model", **head, "state": state})
        if len(value) <= PART_BYTES:
            return [(key, value)]
        pieces = [value[start : start + PART_BYTES] for start in range(0, len(value), PART_BYTES)]
        return [
            (
                key + b"#%d" % index,
                self._encode(
                    {
                        "type": "part",
                        **head,
                        "index": index,
                        "count": len(pieces),
                        "data": base64.b64encode(piece).decode(),
                    }
                ),
            )
            for index, piece in enumerate(pieces)
        ]

    def evicted_record(
        self, partition: int, offsets: dict[str, int], model: str
    ) -> tuple[bytes, bytes]:
        """(key, value) retiring a model's state: restore forgets it."""
        body = {
            "type": "evicted",
            "group": self.group,
            "partition": partition,
            "offsets": offsets,
            "model": model,
        }
        return MODEL_KEY_PREFIX + model.encode(), self._encode(body)

    def checkpoint_record(self, partition: int, offsets: dict[str, int]) -> tuple[bytes, bytes]:
        """(key, value) closing a checkpoint of one partition."""
        return CHECKPOINT_KEY, self._encode(
            {"type": "checkpoint", "group": self.group, "partition": partition, "offsets": offsets}
        )

    def _encode(self, body: dict[str, Any]) -> bytes:
        payload = zlib.compress(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), 1)
        mac = (
            hmac.new(self.signing_key, payload, hashlib.sha256).digest()
            if self.signing_key
            else b""
        )
        return MAGIC + mac + payload

    def decode(self, value: bytes | None) -> StateRecord:
        if not value or not value.startswith(MAGIC):
            raise StateError("format", "not a streamdrift state record of format version 1")
        payload = value[len(MAGIC) :]
        if self.signing_key:
            mac, payload = payload[:_MAC_BYTES], payload[_MAC_BYTES:]
            if not hmac.compare_digest(
                mac, hmac.new(self.signing_key, payload, hashlib.sha256).digest()
            ):
                raise StateError("signature", "signature does not match the configured signing key")
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(payload, MAX_DECODED_BYTES)
            if inflater.unconsumed_tail:
                raise StateError("malformed", f"decoded state exceeds {MAX_DECODED_BYTES} bytes")
            body = orjson.loads(raw)
            record = StateRecord(
                type=str(body["type"]),
                group=str(body["group"]),
                partition=int(body["partition"]),
                offsets={str(topic): int(offset) for topic, offset in body["offsets"].items()},
                model=str(body["model"]) if body.get("model") is not None else None,
                state=body.get("state"),
                part=(
                    int(body["index"]),
                    int(body["count"]),
                    base64.b64decode(body["data"], validate=True),
                )
                if body["type"] == "part"
                else None,
            )
        except (
            zlib.error,
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            binascii.Error,
        ) as exc:
            raise StateError("malformed", f"malformed state record: {exc}") from None
        if record.type not in ("model", "part", "evicted", "checkpoint") or (
            record.type == "model" and not isinstance(record.state, dict)
        ):
            raise StateError("malformed", f"malformed state record of type {record.type!r}")
        return record


@dataclass
class RestoredPartition:
    """What a partition restarts from: input offsets (None: none checkpointed), model states,
    and the reassembled model records that could not be decoded (model, why)."""

    offsets: dict[str, int] | None
    models: dict[str, dict[str, Any]]
    rejected: list[tuple[str, StateError]] = field(default_factory=list)


def select(
    records: Iterable[StateRecord], decode: Callable[[bytes], StateRecord]
) -> RestoredPartition:
    """The newest complete checkpoint among one partition's records, in log order; `decode`
    turns a reassembled model record (from its parts) back into a record."""
    records = list(records)
    checkpoints = [r for r in records if r.type == "checkpoint"]
    if not checkpoints:
        return RestoredPartition(None, {})
    offsets = checkpoints[-1].offsets
    restored = RestoredPartition(offsets, {})
    pieces: dict[tuple[str, tuple[tuple[str, int], ...]], dict[int, bytes]] = {}
    for record in records:
        if record.model is None or not record.covered_by(offsets):
            continue
        if record.type == "model" and record.state is not None:
            restored.models[record.model] = record.state
        elif record.type == "evicted":
            restored.models.pop(record.model, None)
        elif record.type == "part" and record.part is not None:
            index, count, piece = record.part
            found = pieces.setdefault((record.model, tuple(sorted(record.offsets.items()))), {})
            found[index] = piece
            if len(found) == count and set(found) == set(range(count)):
                try:
                    whole = decode(b"".join(found[i] for i in range(count)))
                except StateError as exc:
                    restored.rejected.append((record.model, exc))
                    continue
                if (
                    whole.type == "model"
                    and whole.state is not None
                    and whole.model == record.model
                ):
                    restored.models[record.model] = whole.state
    return restored


def restore_model(monitor: ModelMonitor, state: dict[str, Any]) -> Relearn | None:
    """Load a model's checkpointed state into `monitor`, new; None once loaded, else why the
    model re-learns instead (then discard `monitor`). Never raises for a bad state: whatever
    loading it raises is a `load_error`, so that one bad record cannot stop the restore of the
    partition's other models, nor the process."""
    try:
        mismatch = monitor.state_mismatch(state)
        if mismatch is None:
            monitor.load_state(state)
        return mismatch
    except BaseException as exc:
        if not is_model_failure(exc):
            raise
        monitor.performance.join.release()  # what it had taken of the process's label-join budget
        return Relearn(
            "load_error",
            f"its state does not load ({type(exc).__name__}: {str(exc)[:DETAIL_CHARS]})",
        )
