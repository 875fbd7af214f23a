"""What the client and the sinks share about confluent-kafka's Producer."""

from __future__ import annotations

from confluent_kafka import Producer


def close_now(producer: Producer) -> None:
    """Drop whatever is still queued (each dropped event gets a failed delivery report) and
    disconnect at once; Producer.close() alone would wait for delivery."""
    producer.purge()
    producer.poll(0)
    producer.close()
