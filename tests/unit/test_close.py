"""How a Service closes its clients (Kafka and the HTTP server faked): after a failure the
outputs are discarded before the consumer leaves the group, and every step runs even if one
before it raises."""

from __future__ import annotations

import pytest

from detector.service.service import Service
from detector.settings import load_settings


class Recorder:
    """Stands for a client: records which of its closing methods ran, in one shared list."""

    def __init__(self, name: str, calls: list[str], raising: str = "") -> None:
        self.name, self.calls, self.raising = name, calls, raising

    def __getattr__(self, method: str) -> object:
        def call() -> None:
            self.calls.append(f"{self.name}.{method}")
            if method == self.raising:
                raise RuntimeError(f"{self.name}.{method} failed")

        return call


def service_with(calls: list[str], consumer_raises: str = "") -> Service:
    service = Service(load_settings(kafka={"bootstrap_servers": "127.0.0.1:1"}))
    service.outputs = Recorder("outputs", calls)  # type: ignore[assignment]
    service.consumer = Recorder("consumer", calls, consumer_raises)  # type: ignore[assignment]
    service.http = Recorder("http", calls)  # type: ignore[assignment]
    return service


def test_a_clean_stop_leaves_the_group_first_then_delivers_what_is_queued() -> None:
    calls: list[str] = []
    service_with(calls)._close()
    assert calls == ["consumer.close", "outputs.close", "http.stop"]


def test_after_a_failure_the_outputs_are_discarded_before_leaving_the_group() -> None:
    calls: list[str] = []
    service = service_with(calls, consumer_raises="close")
    service.failed = True
    service._close()  # the error that made it fail is the one propagating: this one is only logged
    assert calls == ["outputs.discard", "consumer.close", "http.stop"]


def test_a_commit_that_fails_while_leaving_the_group_discards_the_outputs_and_is_raised() -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError, match=r"consumer\.close failed"):
        service_with(calls, consumer_raises="close")._close()
    assert calls == ["consumer.close", "outputs.discard", "http.stop"]
