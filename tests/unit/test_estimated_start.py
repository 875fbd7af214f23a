"""Where a detected change began (issue 16 point 4): the block of the detector's estimate, in the
alert as data.estimated_start, and scored by the backtest."""

from __future__ import annotations

import math

import numpy as np

from detector.backtest.score import Change, Detection, score
from detector.core.alerts import Alert, rfc3339
from detector.core.pipeline import Pipeline
from detector.core.state import restore_model
from detector.settings import load_settings
from producers.simulate import Injection, Simulator
from tests.fakes import messages
from tests.unit.test_state import learned_state

CHANGE = 6000
BLOCK = 16  # detection.block_events at the defaults


def detected(injection: Injection, events: int = 12_000) -> tuple[list[Alert], list[dict]]:
    stream = Simulator(seed=3, injections=(injection,)).events(events)
    alerts = Pipeline(load_settings(None)).process(messages(stream)).alerts
    return [a for a in alerts if a.kind == "detected"], stream


def test_a_step_change_is_dated_to_the_block_it_began_in() -> None:
    alerts, stream = detected(Injection("mean_shift", "amount", start=CHANGE, magnitude=1.0))
    first = next(a for a in alerts if a.monitor == "feature.amount")
    start = first.estimated_start
    assert start is not None and start["estimated"] and not start["clipped"]
    assert CHANGE - 2 * BLOCK <= start["offset"] <= CHANGE + BLOCK < first.offset
    assert start["topic"] == "predictions" and start["partition"] == first.partition
    assert start["time"] == rfc3339(stream[start["offset"]]["ts"])
    assert first.cloudevent("g")["data"]["estimated_start"] == start


def test_only_detected_alerts_carry_an_estimate() -> None:
    stream = Simulator(
        seed=6, injections=(Injection("mean_shift", "amount", start=3000, length=3000),)
    ).events(12_000)
    alerts = Pipeline(load_settings(None)).process(messages(stream)).alerts
    resolved = [a for a in alerts if a.kind == "resolved"]
    assert resolved and all("estimated_start" not in a.cloudevent("g")["data"] for a in resolved)


def test_a_checkpoint_from_before_event_times_were_kept_restores_with_unknown_times() -> None:
    state = learned_state(3000)
    signal = state["signals"]["feature.amount"]
    columns = signal.pop("history_columns")
    rows = np.asarray(signal["history"], dtype=np.float64).reshape(-1, len(columns))
    signal["history"] = np.delete(rows, columns.index("ts"), axis=1)
    signal["block_source"] = signal["block_source"][:2]
    monitor = Pipeline(load_settings(None)).new_monitor("fraud")

    assert restore_model(monitor, state) is None
    history = monitor.signals["feature.amount"].history
    assert len(history.rows) and np.isnan(history.column("ts")).all()
    np.testing.assert_array_equal(history.column("offset"), rows[:, columns.index("offset")])
    assert math.isnan(monitor.signals["feature.amount"].block_source[2])


def test_the_backtest_scores_how_far_the_estimate_fell_from_the_start() -> None:
    changes = [
        Change("m", "mean_shift", "a", "feature.a", 1000),
        Change("m", "x", "b", "feature.b", 5000),
    ]
    detections = [
        Detection("m", "feature.a", 1100, "1", "location", "page_hinkley", start_position=990),
        Detection("m", "feature.b", 5200, "2", "location", "ddm"),  # no estimate
    ]
    scored = score(changes, detections, {"m": 10_000}, 2000)
    assert [o.start_error for o in scored.outcomes] == [-10, None]
    assert scored.start_error_quantiles == (10.0, 10.0)
    assert scored.to_json()["start_error_events"] == {"median": 10.0, "p90": 10.0}
