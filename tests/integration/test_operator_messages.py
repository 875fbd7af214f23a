"""What the process tells its operator is true: retry delays, what a signal does to
`streamdrift broker`, and where the demo's broker log is (one per run)."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
from pathlib import Path
from typing import ClassVar

import pytest

from detector.commands import demo
from detector.kafka.embedded import free_loopback_port
from detector.kafka.topics import wait_for_cluster
from detector.settings import load_settings
from tests.kafka_helpers import start_cli


def test_the_retry_line_names_the_delay_and_the_wait_that_follows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gap between two lines is the delay plus the next attempt's wait for an answer (2.5 s,
    then 5 s, 7 s, 9 s): the lines say both."""
    unreachable = {"bootstrap.servers": f"127.0.0.1:{free_loopback_port()}"}
    with caplog.at_level(logging.WARNING, logger="detector.kafka.topics"):
        assert not wait_for_cluster(unreachable, lambda: len(caplog.records) >= 3)
    stated = [
        re.search(r"retrying in ([\d.]+)s, then waiting up to ([\d.]+)s", r.getMessage())
        for r in caplog.records
    ]
    assert [(float(m[1]), float(m[2])) for m in stated if m] == [(0.5, 2.0), (1.0, 4.0), (2.0, 5.0)]


def test_a_signal_to_the_broker_command_says_it_stops_the_broker() -> None:
    process = start_cli(["broker", "--port", "0"], dict(os.environ))
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"embedded broker on 127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    stderr = process.stderr.read().decode()
    assert "received SIGTERM: stopping the broker" in stderr
    assert "batch" not in stderr


class BrokerThatDoesNotStart:
    """Records where the demo would write the broker's log, then fails like a broker that cannot start."""

    log_paths: ClassVar[list[Path]] = []

    def __init__(self, log_path: Path) -> None:
        self.log_paths.append(log_path)

    def start(self) -> BrokerThatDoesNotStart:
        raise RuntimeError("no broker in this test")


def test_each_demo_writes_its_broker_log_to_a_place_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo, "EmbeddedBroker", BrokerThatDoesNotStart)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no broker"):
            demo.run_demo(load_settings(), out=io.StringIO())
    first, second = BrokerThatDoesNotStart.log_paths
    assert first != second
    assert first.parent.is_dir() and first.parent.name.startswith("streamdrift-demo-")
    for path in (first, second):
        path.parent.rmdir()


def test_the_demo_on_an_unreachable_cluster_says_so_in_one_line() -> None:
    env = {
        **os.environ,
        "STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_loopback_port()}",
    }
    process = start_cli(["demo", "--events", "1000"], env)
    _, stderr = process.communicate(timeout=120)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("streamdrift demo: kafka at 127.0.0.1:")
    assert "unset it to run the demo on the embedded broker" in lines[0]
