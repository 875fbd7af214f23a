"""The drift lifecycle on its own: hits and block checks in, detected/resolved edges out."""

from __future__ import annotations

import orjson

from detector.core.monitors.batch_detector import Hit
from detector.core.monitors.lifecycle import (
    BlockCheck,
    Deferred,
    Detected,
    Drift,
    Lifecycle,
    Resolved,
    StatisticHit,
)

COOLDOWN, WINDOW = 100, 50


def hit(index: int, detector: str = "page_hinkley", change_age: int = 10) -> StatisticHit:
    return StatisticHit("location", Hit(index, detector, change_age))


def check(index: int, in_band: bool, window_full: bool = True) -> BlockCheck:
    return BlockCheck(index, window_full, in_band)


def test_a_hit_opens_one_drift_and_later_hits_are_absorbed() -> None:
    lifecycle = Lifecycle(COOLDOWN, WINDOW)
    edges = lifecycle.decide([hit(3), hit(7, "adwin")], [], seen=1000)
    assert edges == [Detected(3, 1003, "location", Hit(3, "page_hinkley", 10))]
    assert lifecycle.drift == Drift(1003, "location", "page_hinkley")
    assert lifecycle.decide([hit(1)], [], seen=1100) == []


def test_a_drift_resolves_at_a_block_end_in_band_once_a_whole_window_is_after_it() -> None:
    lifecycle = Lifecycle(COOLDOWN, WINDOW)
    lifecycle.decide([hit(0)], [], seen=1000)
    checks = [
        check(16, True, window_full=False),
        check(32, False),
        check(48, True),
        check(64, True),
    ]
    edges = lifecycle.decide([], checks, seen=1001)
    # 1001 + 48 - 1000 = 49 < WINDOW: too early; at 1065 (65 after the detection) it resolves
    assert edges == [
        Resolved(64, 1065, Drift(1000, "location", "page_hinkley"), "returned_to_reference")
    ]
    assert lifecycle.drift is None and lifecycle.cooldown_until == 1065 + 1 + COOLDOWN


def test_a_hit_in_the_cooldown_is_deferred_and_raised_at_its_end_if_still_out_of_band() -> None:
    lifecycle = Lifecycle(COOLDOWN, WINDOW)
    lifecycle.cooldown_until = 200
    assert lifecycle.decide([hit(150, change_age=30)], [check(160, False)], seen=0) == []
    assert lifecycle.deferred == Deferred("location", "page_hinkley", 120)
    edges = lifecycle.decide([], [check(10, False)], seen=200)
    assert edges == [Detected(10, 210, "location", Hit(10, "page_hinkley", 90))]
    assert lifecycle.deferred is None and lifecycle.drift == Drift(210, "location", "page_hinkley")


def test_a_deferred_hit_is_dropped_if_the_signal_is_back_in_band_when_the_cooldown_ends() -> None:
    lifecycle = Lifecycle(COOLDOWN, WINDOW)
    lifecycle.cooldown_until = 200
    lifecycle.decide([hit(150)], [], seen=0)
    assert lifecycle.decide([], [check(10, True)], seen=200) == []
    assert lifecycle.settled


def test_at_the_same_index_a_hit_comes_before_the_block_check() -> None:
    """A hit and a block end at the index where the cooldown ends: the hit opens the drift, so
    the block check (out of band) does not raise a second detection for the deferred hit."""
    lifecycle = Lifecycle(COOLDOWN, WINDOW)
    lifecycle.cooldown_until = 100
    lifecycle.decide([hit(50)], [], seen=0)  # deferred
    edges = lifecycle.decide([hit(0, "adwin")], [check(0, False)], seen=100)
    assert [type(edge) for edge in edges] == [Detected]
    assert edges[0].hit.detector == "adwin"


def test_the_state_round_trips_through_json() -> None:
    lifecycle = Lifecycle(COOLDOWN, WINDOW)
    lifecycle.decide([hit(5)], [], seen=0)
    lifecycle.resolve(9, 90, "rebaselined")
    lifecycle.decide([hit(3, change_age=2)], [], seen=100)  # in the cooldown: deferred
    lifecycle.decide([hit(3)], [], seen=300)  # opens a drift
    state = orjson.loads(orjson.dumps(lifecycle.to_state()))
    assert set(state) == {"drift", "cooldown_until", "deferred"}
    restored = Lifecycle(COOLDOWN, WINDOW)
    restored.load_state(state)
    assert (restored.drift, restored.deferred, restored.cooldown_until) == (
        lifecycle.drift,
        lifecycle.deferred,
        lifecycle.cooldown_until,
    )
    assert restored.drift == Drift(303, "location", "page_hinkley")
    assert restored.deferred == Deferred("location", "page_hinkley", 101)
