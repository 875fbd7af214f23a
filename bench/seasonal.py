"""Seasonal traffic: one model whose signals follow the hour of the day and the day of the week,
through the backtest path at the default configuration (issue 16).

The model `shop` sends about `rate` events a minute for `days` days (event time from a Monday
00:00 UTC), with a traffic rate that cycles (night-time trough, evening peak, busier weekends)
and signals that cycle with it:

* `amount` (dollars, lognormal): baskets grow in the evening and at the weekend;
* `sessions` (a count): more in the evening and at the weekend;
* `temperature` (°C, normal): a daily cycle of ±6 °C against a within-hour sd of 2;
* `device` (ios/android/web): mobile in the evening, web in working hours;
* `score` (beta) and `latency_ms` (lognormal, slower under load): both follow the cycle;
* `noise` (normal, iid): the one signal without cycles.

Two histories: a *clean* one (no change: every alert is a false alarm) and a *shifted* one
whose changes start on day `shift_day`: `amount` + 0.5 of its within-hour sd, `noise` + 0.5 sd,
and 10% of every hour's device mix moved to `web`; and whose traffic falls to 10% of its usual
rate for an hour, an outage, at noon two days later (`traffic.rate`). Both are written as JSON lines and replayed
by `detector.backtest.replay` (the code `streamdrift backtest` runs), scored with
`detector.backtest.score` against the changes' ground truth.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from bench.report import progress, table
from detector.backtest.files import FileSource
from detector.backtest.replay import Replayed, Run, replay
from detector.backtest.score import Change, Detection, Score, score
from detector.settings import load_settings

MODEL = "shop"
START_MS = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
DEVICES = ("ios", "android", "web")
SHIFT_SD = 0.5  # the in-cycle shifts, in within-hour standard deviations
DEVICE_MOVED = 0.1  # share of every hour's device mix moved to web by the shift
MAX_DELAY = 20_000  # events after a change within which its detection counts
DAYS_PER_MONTH = 30.0
OUTAGE_AFTER_SHIFT = 2.5  # days from the shift to the outage (noon)
OUTAGE_HOURS, OUTAGE_RATE = 1.0, 0.1


@dataclass(frozen=True)
class Scenario:
    """The seasonal history: `days` days at `rate` events a minute on average; changes from
    `shift_day` on (None: a clean history)."""

    days: float = 21.0
    rate: float = 20.0
    seed: int = 1
    shift_day: float | None = None

    def times(self) -> np.ndarray:
        """Event times (epoch ms, sorted): a Poisson count per minute at the cycling rate,
        spread uniformly within the minute."""
        rng = np.random.default_rng([self.seed, 0])
        minutes = START_MS + MINUTE_MS * np.arange(int(self.days * 1440))
        rate = self.rate * traffic_factor(minutes)
        outage = self.outage_ms()
        if outage is not None:
            during = (minutes >= outage[0]) & (minutes < outage[1])
            rate = np.where(during, rate * OUTAGE_RATE, rate)
        counts = rng.poisson(rate)
        starts = np.repeat(minutes, counts)
        return np.sort(starts + rng.integers(0, MINUTE_MS, len(starts)))

    def outage_ms(self) -> tuple[int, int] | None:
        """Start and end (event time) of the shifted history's outage."""
        if self.shift_day is None:
            return None
        start = START_MS + int((self.shift_day + OUTAGE_AFTER_SHIFT) * DAY_MS)
        return start, start + int(OUTAGE_HOURS * HOUR_MS)

    def columns(self, ts: np.ndarray) -> dict[str, np.ndarray]:
        """Every field of the events at times `ts`, seeded by the scenario."""
        rng = np.random.default_rng([self.seed, 1])
        n = len(ts)
        day, weekend = daily(ts, peak_hour=20.0), weekend_of(ts)
        shifted = (
            ts >= START_MS + self.shift_day * DAY_MS
            if self.shift_day is not None
            else np.zeros(n, dtype=bool)
        )
        log_mean, log_sd = 3.5 + 0.35 * day + 0.3 * weekend, 0.7
        within_sd = np.exp(log_mean + log_sd**2 / 2) * np.sqrt(np.expm1(log_sd**2))
        amount = rng.lognormal(log_mean, log_sd) + SHIFT_SD * within_sd * shifted
        ios, android = 0.35 + 0.15 * day, 0.3 + 0.1 * day + 0.05 * weekend
        web = 1.0 - ios - android
        shares = np.column_stack((ios, android, web))
        shares = np.where(
            shifted[:, None], shares * (1 - DEVICE_MOVED) + [0.0, 0.0, DEVICE_MOVED], shares
        )
        device = (rng.random(n)[:, None] > np.cumsum(shares, axis=1)).sum(axis=1)
        load = traffic_factor(ts)
        score = rng.beta(2.0 + 0.8 * (day + 1.0), 5.0)
        return {
            "amount": np.round(amount, 2),
            "sessions": rng.poisson(4.0 + 2.0 * day + 1.5 * weekend).astype(np.float64),
            "temperature": np.round(rng.normal(15.0 + 6.0 * daily(ts, peak_hour=15.0), 2.0), 2),
            "device": np.asarray(DEVICES)[np.minimum(device, len(DEVICES) - 1)],
            "noise": np.round(rng.normal(0.0, 1.0, n) + SHIFT_SD * shifted, 4),
            "score": np.round(score, 4),
            "latency_ms": np.round(rng.lognormal(np.log(40.0) + 0.25 * load, 0.3), 2),
        }

    def write(self, path: Path) -> int:
        """The history as JSON lines at `path`; returns the number of events."""
        ts = self.times()
        cols = self.columns(ts)
        numeric = ("amount", "sessions", "temperature", "noise")
        rows = zip(
            ts.tolist(),
            *(cols[name].tolist() for name in (*numeric, "device", "score", "latency_ms")),
        )
        with path.open("wb") as out:
            for i, (t, amount, sessions, temperature, noise, device, p, latency) in enumerate(rows):
                event = {
                    "model": MODEL,
                    "id": f"r{i}",
                    "ts": t,
                    "features": {
                        "amount": amount,
                        "sessions": int(sessions),
                        "temperature": temperature,
                        "noise": noise,
                        "device": device,
                    },
                    "prediction": int(p >= 0.5),
                    "score": p,
                    "latency_ms": latency,
                }
                out.write(orjson.dumps(event) + b"\n")
        return len(ts)

    def changes(self, ts: np.ndarray) -> list[Change]:
        """Ground truth: the shifted history's changes, at the first event of `shift_day`."""
        if self.shift_day is None:
            return []
        start = int(np.searchsorted(ts, START_MS + self.shift_day * DAY_MS))
        outage = self.outage_ms()
        assert outage is not None
        down, up = (int(np.searchsorted(ts, moment)) for moment in outage)
        return [
            Change(MODEL, "mean_shift", "amount", "feature.amount", start),
            Change(MODEL, "mean_shift", "noise", "feature.noise", start),
            Change(MODEL, "mix_shift", "device", "feature.device", start),
            Change(MODEL, "outage", "", "traffic.rate", down, end=up),
        ]


def daily(ts: np.ndarray, peak_hour: float) -> np.ndarray:
    """A daily cycle in [-1, 1] that peaks at `peak_hour` (UTC)."""
    hours = (ts % DAY_MS) / HOUR_MS
    return np.cos(2 * np.pi * (hours - peak_hour) / 24.0)


def weekend_of(ts: np.ndarray) -> np.ndarray:
    """1.0 on Saturdays and Sundays, else 0.0 (START_MS is a Monday)."""
    return (((ts - START_MS) // DAY_MS) % 7 >= 5).astype(np.float64)


def traffic_factor(ts: np.ndarray) -> np.ndarray:
    """The traffic rate relative to its mean: a trough about 05:00, a peak about 17:00, and
    weekends 15% busier."""
    return (1.0 + 0.7 * daily(ts, peak_hour=17.0)) * (1.0 + 0.15 * weekend_of(ts)) / 1.043


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    events: int
    replayed: Replayed
    score: Score

    @property
    def false_alarms(self) -> list[Detection]:
        """Alerts no change explains (a history without changes is all false alarms: its model
        is not among the scored ones)."""
        return self.score.false_alarms + self.score.unscored

    @property
    def months(self) -> float:
        return self.scenario.days / DAYS_PER_MONTH

    def alerts_by_monitor(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for detection in self.false_alarms:
            counts[detection.monitor] = counts.get(detection.monitor, 0) + 1
        return dict(sorted(counts.items()))


def backtest(scenario: Scenario, folder: Path) -> Result:
    """Write the scenario's history and replay it at the default configuration."""
    path = folder / f"seasonal-{scenario.shift_day}.jsonl"
    events = scenario.write(path)
    settings = load_settings(None)
    progress(
        f"replaying {events:,} events ({scenario.days:g} days, shift day {scenario.shift_day})"
    )
    replayed = replay(FileSource(settings, path), [Run("default", None, settings)])
    run = replayed.runs[0]
    changes = scenario.changes(scenario.times())
    found = score(changes, run.detections(), {MODEL: events}, MAX_DELAY)
    return Result(scenario, events, replayed, found)


def run(quick: bool, days: float, rate: float, shift_day: float, seed: int) -> str:
    if quick:
        days, shift_day = 2.0, 1.0
    with tempfile.TemporaryDirectory(prefix="streamdrift-seasonal-") as folder:
        clean = backtest(Scenario(days, rate, seed), Path(folder))
        shifted = backtest(Scenario(days, rate, seed, shift_day), Path(folder))
    return "\n\n".join(
        [
            intro(clean, shift_day),
            "### False alarms (clean history)\n\n" + false_alarm_table(clean),
            "### In-cycle shifts (shifted history)\n\n" + shift_table(shifted),
        ]
    )


def intro(clean: Result, shift_day: float) -> str:
    s = clean.scenario
    return (
        f"Model `{MODEL}`: {s.days:g} days of event time from a Monday, {clean.events:,} events "
        f"(about {s.rate:g} a minute, cycling), signals following daily and weekly cycles, "
        f"`noise` iid; default configuration, replayed by `detector.backtest.replay` "
        f"({clean.replayed.seconds:.0f} s). Shifted history: changes from day {shift_day:g}: "
        f"`amount` +{SHIFT_SD} within-hour sd, `noise` +{SHIFT_SD} sd, "
        f"{DEVICE_MOVED:.0%} of the device mix moved to web; an outage (traffic at "
        f"{OUTAGE_RATE:.0%} of usual for {OUTAGE_HOURS:g} h) at noon of day {shift_day + OUTAGE_AFTER_SHIFT - 0.5:g}."
    )


def false_alarm_table(result: Result) -> str:
    alarms = len(result.false_alarms)
    rows = [
        [monitor, count, count / result.scenario.days]
        for monitor, count in result.alerts_by_monitor().items()
    ]
    rows.append(["all monitors", alarms, alarms / result.scenario.days])
    summary = (
        f"{alarms} false alarms in {result.scenario.days:g} days: "
        f"{alarms / result.months:.2f} per model-month (target ≤ 1)."
    )
    return summary + "\n\n" + table(["monitor", "false alarms", "per day"], rows)


def shift_table(result: Result) -> str:
    rows = [
        [
            outcome.change.monitor,
            outcome.change.start,
            outcome.delay,
            f"{outcome.detection.statistic}/{outcome.detection.detector}"
            if outcome.detection
            else None,
        ]
        for outcome in result.score.outcomes
    ]
    before = sum(
        d.position is not None and d.position < result.score.outcomes[0].change.start
        for d in result.false_alarms
    )
    summary = (
        f"False alarms before the changes: {before}; other alerts not explained by a change: "
        f"{len(result.false_alarms) - before}."
    )
    return (
        table(["monitor", "change at event", "delay (events)", "first alert by"], rows)
        + "\n\n"
        + summary
    )
