"""Where generated events go: Kafka topics (key = model name) or JSON-lines files.

Unlike the inference client, a sink never drops: when the local queue is full it waits for the
broker, and it fails loudly when events cannot be delivered.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any, Protocol

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.kafka import close_now
from producers.stream import Batch

DeliveryHook = Callable[[str, str, int, int], None]  # (topic, model, partition, offset)


class SinkError(RuntimeError):
    """Events could not be written (the message says where and why)."""


class Sink(Protocol):
    def write(self, batch: Batch) -> None: ...
    def close(self) -> None: ...


class KafkaSink:
    """Predictions and labels to their topics (labels dropped when `labels` is None).
    `on_delivery` hears of every delivered event."""

    def __init__(
        self,
        config: dict[str, Any],
        predictions: str,
        labels: str | None,
        on_delivery: DeliveryHook | None = None,
    ) -> None:
        self.where = config.get("bootstrap.servers", "?")
        self.topics = (predictions, labels)
        self.on_delivery = on_delivery
        self.error: KafkaError | None = None
        # librdkafka's own connection logs are silenced (log_level 2): failures surface as SinkError.
        # Idempotence keeps a model's events in the order written through retries (without it,
        # a retried first batch on a freshly created topic landed after the last one).
        defaults = {
            "linger.ms": 20,
            "message.timeout.ms": 30_000,
            "log_level": 2,
            "enable.idempotence": True,
        }
        self.producer = Producer({**defaults, **config, "on_delivery": self._delivered})
        try:
            self.producer.list_topics(timeout=10)
        except KafkaException as exc:
            raise SinkError(
                f"kafka at {self.where} is unreachable ({exc.args[0].str()}); start it or fix the bootstrap servers"
            ) from None

    def write(self, batch: Batch) -> None:
        for topic, events in zip(self.topics, (batch.predictions, batch.labels)):
            if topic is None:
                continue
            for event in events:
                self._produce(topic, event)
        self.producer.poll(0)
        self._raise_on_error()

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued, then disconnect; SinkError if anything was not delivered."""
        try:
            remaining = self.producer.flush(timeout_s)
            self._raise_on_error()
            if remaining:
                raise SinkError(
                    f"{remaining} events still undelivered to kafka at {self.where} after {timeout_s:.0f}s"
                )
        finally:
            close_now(self.producer)

    def _produce(self, topic: str, event: dict[str, Any]) -> None:
        value, key = orjson.dumps(event), event["model"].encode()
        while True:
            try:
                self.producer.produce(topic, value=value, key=key)
                return
            except BufferError:  # the local queue is full: let the broker catch up
                self.producer.poll(0.1)
                self._raise_on_error()

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.error = self.error or error
        elif self.on_delivery is not None:
            self.on_delivery(
                message.topic() or "",
                (message.key() or b"").decode(),
                message.partition() or 0,
                message.offset() or 0,
            )

    def _raise_on_error(self) -> None:
        if self.error is not None:
            raise SinkError(f"cannot deliver events to kafka at {self.where}: {self.error.str()}")


class FileSink:
    """Predictions and labels as JSON lines: one event per line, '-' for standard output;
    labels are dropped when no labels file is given."""

    def __init__(self, predictions: str, labels: str | None = None) -> None:
        self.files = [_open(predictions), _open(labels) if labels else None]

    def write(self, batch: Batch) -> None:
        for handle, events in zip(self.files, (batch.predictions, batch.labels)):
            if handle is not None and events:
                handle.write(
                    b"".join(
                        orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) for event in events
                    )
                )

    def close(self) -> None:
        for handle in self.files:
            if handle is not None:
                handle.flush()
                if handle is not sys.stdout.buffer:
                    handle.close()


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror}") from None
