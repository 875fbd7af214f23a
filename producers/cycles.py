"""Daily and weekly cycles in event time (pure; numpy only): the shapes a seasonal stream's
signals and traffic rate follow, and event times whose rate follows the traffic cycle.

Times are epoch milliseconds, hours and weekdays in UTC.
"""

from __future__ import annotations

import numpy as np

MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS  # 1970-01-05T00:00Z, the first Monday of epoch time
WEEKEND_BUSIER = 0.15  # weekend traffic above weekday traffic
TRAFFIC_SWING = 0.7  # the daily traffic cycle's amplitude, relative to its mean
# the mean of the weekly factor (1 + WEEKEND_BUSIER on 2 days of 7): traffic_factor's mean is 1
WEEK_MEAN = 1.0 + WEEKEND_BUSIER * 2 / 7


def daily(ts: np.ndarray, peak_hour: float) -> np.ndarray:
    """A daily cycle in [-1, 1] that peaks at `peak_hour` (UTC)."""
    hours = (np.asarray(ts) % DAY_MS) / HOUR_MS
    return np.cos(2 * np.pi * (hours - peak_hour) / 24.0)


def weekend_of(ts: np.ndarray) -> np.ndarray:
    """1.0 on Saturdays and Sundays (UTC), else 0.0."""
    return (((np.asarray(ts) - MONDAY_MS) // DAY_MS) % 7 >= 5).astype(np.float64)


def traffic_factor(ts: np.ndarray) -> np.ndarray:
    """The traffic rate relative to its mean over a week: a trough about 05:00, a peak about
    17:00 (0.3 and 1.7 times the day's mean), and weekends 15% busier than weekdays."""
    return (
        (1.0 + TRAFFIC_SWING * daily(ts, peak_hour=17.0))
        * (1.0 + WEEKEND_BUSIER * weekend_of(ts))
        / WEEK_MEAN
    )


# The traffic's cumulative intensity over one week from a Monday, minute by minute: in
# milliseconds of traffic at the mean rate (a week of it is about WEEK_MS).
_GRID_MS = np.arange(0, WEEK_MS + 1, MINUTE_MS, dtype=np.float64)
_CUMULATIVE_MS = np.concatenate(
    ([0.0], np.cumsum(traffic_factor(MONDAY_MS + _GRID_MS[:-1] + MINUTE_MS / 2) * MINUTE_MS))
)
_WEEK_INTENSITY_MS = float(_CUMULATIVE_MS[-1])


def cyclic_times(start_ms: int, positions: np.ndarray, interval_ms: float) -> np.ndarray:
    """Event times (epoch ms, int64, non-decreasing) of the events at `positions` of a stream
    that starts at `start_ms` with `interval_ms` between events on average, its rate following
    `traffic_factor`: consecutive events are `interval_ms` apart in traffic-weighted time, so
    night-time gaps are about 3 times the mean and evening ones 0.6 times. Deterministic, per
    position: any chunking gives the same times."""
    weeks, into = np.divmod(float(start_ms - MONDAY_MS), float(WEEK_MS))
    origin = weeks * _WEEK_INTENSITY_MS + np.interp(into, _GRID_MS, _CUMULATIVE_MS)
    weeks, into = np.divmod(
        origin + np.asarray(positions, dtype=np.float64) * interval_ms, _WEEK_INTENSITY_MS
    )
    ts = MONDAY_MS + weeks * WEEK_MS + np.interp(into, _CUMULATIVE_MS, _GRID_MS)
    return np.rint(ts).astype(np.int64)
