"""A shortened seasonal scenario through the backtest path at the default configuration: the
daily and weekly cycles raise nothing, the in-cycle shifts are caught (issue 16)."""

from __future__ import annotations

from pathlib import Path

from bench.seasonal import Scenario, backtest

MAX_DELAY = 3000  # events


def test_cycles_raise_nothing_and_in_cycle_shifts_are_caught(tmp_path: Path) -> None:
    # 10 events a minute: the first week is learned, day 7 watched, the changes start on day 8.
    result = backtest(Scenario(days=9.0, rate=10.0, seed=3, shift_day=8.0), tmp_path)
    assert [(d.monitor, d.position) for d in result.false_alarms] == []
    delays = {o.change.monitor: o.delay for o in result.score.outcomes}
    # (the 10% mix shift takes about 4,000 events at 20 a minute: tests/unit/test_seasonal.py
    # checks a larger one within 3,000)
    for monitor in ("feature.amount", "feature.noise"):
        delay = delays[monitor]
        assert delay is not None and delay < MAX_DELAY, (monitor, delay)
