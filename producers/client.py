"""The inference-side client: report predictions, features and labels to streamdrift's topics
without ever slowing down or breaking the inference path.

Calls only encode the event and hand it to librdkafka's local queue; a background thread serves
delivery reports. When Kafka is slow or down, events wait in that queue, which is bounded:

* a new event that finds `max_buffered` events (or `max_buffer_kbytes`) waiting is dropped and
  counted in `stats.dropped`;
* an event still undelivered after `message_timeout_ms` is given up and counted in `stats.failed`
  (as is one the broker refuses);
* an event that cannot be encoded as JSON is counted in `stats.invalid`.

Nothing raises into the caller. Losses are logged from the background thread, at most every
`LOG_INTERVAL_S`. `close()` (called at interpreter exit if not before) flushes what is waiting.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.kafka import close_now

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0
POLL_S = 0.2


@dataclass(frozen=True)
class ClientStats:
    """Event counts since the client started."""

    sent: int = 0  # accepted into the local queue
    delivered: int = 0  # acknowledged by Kafka
    dropped: int = 0  # refused because the local queue was full (or the client closed)
    failed: int = 0  # given up after message_timeout_ms, or refused by the broker
    invalid: int = 0  # not encodable as JSON

    @property
    def pending(self) -> int:
        return self.sent - self.delivered - self.failed


class DriftClient:
    """Reports one model's events; key = model name. Thread-safe; prediction(), features() and
    label() return at once.

    `config` passes any librdkafka property through (security.protocol, sasl.*, ...)."""

    def __init__(
        self,
        bootstrap_servers: str,
        model: str,
        version: str | None = None,
        *,
        predictions_topic: str = "predictions",
        features_topic: str = "features",
        labels_topic: str = "labels",
        max_buffered: int = 100_000,
        max_buffer_kbytes: int = 65_536,
        message_timeout_ms: int = 120_000,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.model, self.version = model, version
        self.topics = {
            "prediction": predictions_topic,
            "features": features_topic,
            "label": labels_topic,
        }
        self._key = model.encode()
        self._counts = dict.fromkeys(("sent", "delivered", "dropped", "failed", "invalid"), 0)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._last_error = ""  # of a failed delivery
        self._reported = ClientStats()  # losses as last logged
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "linger.ms": 50,
                "queue.buffering.max.messages": max_buffered,
                "queue.buffering.max.kbytes": max_buffer_kbytes,
                "message.timeout.ms": message_timeout_ms,
                "log_level": 2,  # librdkafka logs every reconnect attempt; error_cb reports what matters
                "logger": log,
                **(config or {}),
                "on_delivery": self._delivered,
                "error_cb": self._kafka_error,
            }
        )
        self._poller = threading.Thread(
            target=self._serve, name=f"streamdrift-client-{model}", daemon=True
        )
        self._poller.start()
        atexit.register(self.close)

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(**self._counts)

    # -- the inference path: never blocks, never raises ------------------------------------

    def prediction(
        self,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        score: float | Mapping[str, float] | None = None,
        *,
        id: str | None = None,
        latency_ms: float | None = None,
        ts: int | None = None,
    ) -> bool:
        """Report a prediction (ts: epoch ms, default the Kafka timestamp); True if queued."""
        event = {
            "features": features,
            "prediction": prediction,
            "score": score,
            "id": id,
            "latency_ms": latency_ms,
            "ts": ts,
        }
        return self._send("prediction", event)

    def features(
        self, features: Mapping[str, Any], *, id: str | None = None, ts: int | None = None
    ) -> bool:
        """Report a model's inputs on their own; True if queued."""
        return self._send("features", {"features": features, "id": id, "ts": ts})

    def label(self, id: str, label: Any, *, ts: int | None = None) -> bool:
        """Report the true outcome of the prediction with this id; True if queued."""
        return self._send("label", {"id": id, "label": label, "ts": ts})

    def _send(self, kind: str, fields: dict[str, Any]) -> bool:
        if self._closed.is_set():
            self._count("dropped")
            return False
        event = {
            "model": self.model,
            "version": self.version if kind != "label" else None,
            **fields,
        }
        try:
            # NaN/Infinity encode as null, i.e. missing; numpy scalars and arrays are accepted.
            value = orjson.dumps(
                {k: v for k, v in event.items() if v is not None}, option=orjson.OPT_SERIALIZE_NUMPY
            )
        except TypeError:
            self._count("invalid")
            return False
        try:
            self._producer.produce(self.topics[kind], value=value, key=self._key)
        except (BufferError, RuntimeError):  # queue full, or closed by another thread meanwhile
            self._count("dropped")
            return False
        except KafkaException:  # refused at once (e.g. larger than message.max.bytes)
            self._count("sent", "failed")
            return False
        self._count("sent")
        return True

    # -- shutdown ----------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to timeout_s for queued events to be delivered; return how many still wait."""
        return 0 if self._closed.is_set() else self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> int:
        """Stop accepting events and flush for up to timeout_s; what is still undelivered then is
        dropped (counted as failed). Returns how many that were."""
        atexit.unregister(self.close)
        if self._closed.is_set():
            return self.stats.pending
        self._closed.set()
        self._poller.join()
        remaining = self._producer.flush(timeout_s)
        close_now(self._producer)  # what is left is counted as failed
        self._report_losses()
        return remaining

    def __enter__(self) -> DriftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread ---------------------------------------------------------------

    def _serve(self) -> None:
        logged = -LOG_INTERVAL_S
        while not self._closed.is_set():
            self._producer.poll(POLL_S)
            if time.monotonic() - logged >= LOG_INTERVAL_S and self._report_losses():
                logged = time.monotonic()

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._count("delivered")
        else:
            self._count("failed")
            self._last_error = error.str()

    def _kafka_error(self, error: KafkaError) -> None:
        # A failed connection attempt is reported by every retry: log the brokers-down state instead.
        if error.code() != KafkaError._TRANSPORT:
            log.warning("streamdrift client for model '%s': kafka: %s", self.model, error.str())

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._counts[name] += 1

    def _report_losses(self) -> bool:
        """Log the losses if there are new ones; True if it did."""
        s, before = self.stats, self._reported
        if (s.dropped, s.failed, s.invalid) == (before.dropped, before.failed, before.invalid):
            return False
        log.warning(
            "streamdrift client for model '%s': %d events dropped (local queue full), %d failed (%s), %d not encodable so far; %d waiting",
            self.model,
            s.dropped,
            s.failed,
            self._last_error or "-",
            s.invalid,
            s.pending,
        )
        self._reported = s
        return True
