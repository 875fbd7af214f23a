"""`streamdrift periods` over topics of a real broker: two periods selected by message time, the
shift found where it was injected, the live group untouched."""

from __future__ import annotations

import orjson
import pytest

from detector.commands.cli import main as streamdrift
from producers.simulate import Injection, Simulator
from tests.kafka_helpers import KafkaNames, committed_offsets, create_topics, produce

pytestmark = pytest.mark.broker

PERIOD_EVENTS = 6000  # predictions per period, 10 ms apart from 2025-11-25T10:00:00Z: one minute


def test_two_periods_of_the_topics_selected_by_time(
    topics: KafkaNames, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in topics.env().items():
        if name.startswith("STREAMDRIFT_"):
            monkeypatch.setenv(name, value)
    create_topics(topics.settings())
    stream = Simulator(seed=8, injections=(Injection("mean_shift", "amount", start=PERIOD_EVENTS),))
    batch = stream.batch(3 * PERIOD_EVENTS)  # a third minute: the current period's labels
    produce(topics.bootstrap, topics.predictions, batch.predictions, event_time=True)
    produce(topics.bootstrap, topics.labels, batch.labels, event_time=True)
    capsys.readouterr()

    code = streamdrift(
        [
            "periods",
            "--reference",
            "2025-11-25T10:00:00Z..2025-11-25T10:01:00Z",
            "--current",
            "2025-11-25T10:01:00Z..2025-11-25T10:02:00Z",
            "--json",
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0, err
    result = orjson.loads(out)
    for period in ("reference", "current"):
        assert result["periods"][period]["predictions"] == {"fraud": PERIOD_EVENTS}
    monitors = {m["monitor"]: m for m in result["monitors"]}
    assert monitors["feature.amount"]["significant"]
    assert monitors["feature.amount"]["adjusted_p"] < 1e-12
    for name in ("utilization", "age", "income", "country", "device"):
        assert not monitors[f"feature.{name}"]["significant"], name
    (performance,) = result["performance"]
    # Labels come a minute after their predictions: those of each period are read after its end
    # (the reference's are the current period's first minute, where they join nothing).
    assert performance["reference"]["labelled"] == PERIOD_EVENTS
    assert performance["current"]["labelled"] == PERIOD_EVENTS
    assert set(committed_offsets(topics.bootstrap, topics.group, topics.predictions).values()) == {
        0
    }
