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
* `noise` (normal, iid): the one signal without cycles;
* labels (`label_coverage` of the predictions, `LABEL_DELAY_MS` later): drawn from the score,
  which is calibrated, so the error rate and each class's recall follow the cycle too
  (`performance.error`, `performance.recall.<class>`, `quality.labels`).

Two histories: a *clean* one (no change: every alert is a false alarm) and a *shifted* one
whose changes start on day `shift_day`: `amount` + 0.5 of its within-hour sd, `noise` + 0.5 sd,
10% of every hour's device mix moved to `web`, and `LABELS_FLIPPED` of the labels flipped (a
concept drift: every hour's error rate up by 6 to 9 points); and whose traffic falls to 10% of its usual
rate for an hour, an outage, at noon two days later (`traffic.rate`). Both are written as JSON lines and replayed
by `detector.backtest.replay` (the code `streamdrift backtest` runs), scored with
`detector.backtest.score` against the changes' ground truth.
"""

from __future__ import annotations

import gc
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from bench.report import progress, table
from detector.backtest.files import FileSource
from detector.backtest.replay import Replayed, Run, replay
from detector.backtest.score import Change, Detection, Score, score
from detector.core.monitors.columns import SourceRefs
from detector.core.monitors.signal import SignalMonitor
from detector.core.monitors.signal_type import SignalType
from detector.core.monitors.traffic import MONITOR as TRAFFIC
from detector.core.monitors.traffic import TrafficMonitor
from detector.core.pipeline import Pipeline
from detector.settings import Settings, load_settings
from producers.cycles import DAY_MS, HOUR_MS, MINUTE_MS, daily, weekend_of

MODEL = "shop"
START_MS = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
DEVICES = ("ios", "android", "web")
SHIFT_SD = 0.5  # the in-cycle shifts, in within-hour standard deviations
DEVICE_MOVED = 0.1  # share of every hour's device mix moved to web by the shift
MAX_DELAY = 20_000  # events after a change within which its detection counts
DAYS_PER_MONTH = 30.0
OUTAGE_AFTER_SHIFT = 2.5  # days from the shift to the outage (noon)
OUTAGE_HOURS, OUTAGE_RATE = 1.0, 0.1
LABEL_DELAY_MS = 60_000  # event time from a prediction to its label
LABELS_FLIPPED = 0.2  # share of the shifted history's labels flipped from the shift on
DEFAULT_SHIFT_DAY = 15.0  # the day the shifted history changes, unless told


@dataclass(frozen=True)
class Scenario:
    """The seasonal history: `days` days at `rate` events a minute on average; changes from
    `shift_day` on (None: a clean history)."""

    days: float = 21.0
    rate: float = 20.0
    seed: int = 1
    shift_day: float | None = None
    outage_after: float = OUTAGE_AFTER_SHIFT  # days from the shift to the outage
    label_coverage: float = 1.0  # share of predictions that get a label

    def times(self) -> np.ndarray:
        """Event times (epoch ms, sorted): a Poisson count per minute at the cycling rate,
        spread uniformly within the minute."""
        rng = np.random.default_rng([self.seed, 0])
        return self._times(rng, START_MS + MINUTE_MS * np.arange(int(self.days * 1440)))

    def hour_times(self, hour: int) -> np.ndarray:
        """The event times of hour `hour` from the start alone, from a generator of that hour
        (for histories too long to hold: `columns(ts, part=hour)` gives their fields)."""
        rng = np.random.default_rng([self.seed, 0, hour])
        return self._times(rng, START_MS + HOUR_MS * hour + MINUTE_MS * np.arange(60))

    def _times(self, rng: np.random.Generator, minutes: np.ndarray) -> np.ndarray:
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
        start = START_MS + int((self.shift_day + self.outage_after) * DAY_MS)
        return start, start + int(OUTAGE_HOURS * HOUR_MS)

    def columns(self, ts: np.ndarray, part: int | None = None) -> dict[str, np.ndarray]:
        """Every field of the events at times `ts`, seeded by the scenario (and by `part`)."""
        rng = np.random.default_rng([self.seed, 1] if part is None else [self.seed, 1, part])
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

    def labels(self, ts: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which predictions get a label (`label_coverage` of them), and each one's label: 1 with
        probability `score` (a calibrated score), drawn apart from the fields so that these
        stay the draws of the recorded figures."""
        rng = np.random.default_rng([self.seed, 2])
        labelled = rng.random(len(ts)) < self.label_coverage
        label = (rng.random(len(ts)) < score).astype(np.int64)
        if self.shift_day is not None:
            flipped = (rng.random(len(ts)) < LABELS_FLIPPED) & (
                ts >= START_MS + self.shift_day * DAY_MS
            )
            label[flipped] = 1 - label[flipped]
        return labelled, label

    def write(self, path: Path, labels_path: Path) -> int:
        """The history as JSON lines at `path`, its label events at `labels_path`; returns the
        number of prediction events."""
        ts = self.times()
        cols = self.columns(ts)
        labelled, label = self.labels(ts, cols["score"])
        with labels_path.open("wb") as out:
            for i in np.flatnonzero(labelled).tolist():
                event = {
                    "model": MODEL,
                    "id": f"r{i}",
                    "ts": int(ts[i]) + LABEL_DELAY_MS,
                    "label": int(label[i]),
                }
                out.write(orjson.dumps(event) + b"\n")
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
        # (a label alert is placed among the predictions its label arrived with: its delay
        # includes the label's 60 s, about 20 events)
        concept = [
            Change(MODEL, "concept_drift", "", monitor, start)
            for monitor in ("performance.error", "performance.recall.0", "performance.recall.1")
        ]
        return [
            Change(MODEL, "mean_shift", "amount", "feature.amount", start),
            Change(MODEL, "mean_shift", "noise", "feature.noise", start),
            Change(MODEL, "mix_shift", "device", "feature.device", start),
            *concept,
            Change(MODEL, "outage", "", "traffic.rate", down, end=up),
        ]


def traffic_factor(ts: np.ndarray) -> np.ndarray:
    """The simulator's traffic cycle (producers.cycles.traffic_factor) normalised by 1.043, not by
    its exact weekly mean: the recorded figures were measured with these draws."""
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
    (result,) = replay_designs(scenario, folder, {"default": load_settings(None)}).values()
    return result


def replay_designs(
    scenario: Scenario, folder: Path, designs: dict[str, Settings]
) -> dict[str, Result]:
    """Write the scenario's history and replay it once through every design (name -> settings),
    each scored against the scenario's changes."""
    path = folder / f"seasonal-{scenario.shift_day}.jsonl"
    labels = folder / f"seasonal-{scenario.shift_day}-labels.jsonl"
    events = scenario.write(path, labels)
    progress(
        f"replaying {events:,} events ({scenario.days:g} days, shift day {scenario.shift_day}) "
        f"through {', '.join(designs)}"
    )
    runs = [Run(name, None, settings) for name, settings in designs.items()]
    replayed = replay(FileSource(runs[0].settings, path, labels), runs)
    changes = scenario.changes(scenario.times())
    return {
        run.name: Result(
            scenario, events, replayed, score(changes, run.detections(), {MODEL: events}, MAX_DELAY)
        )
        for run in replayed.runs
    }


def beside_no_adjustment(quick: bool, seed: int) -> str:
    """The seasonal rows of `bench quality` (issue 16.6): the slow scenario's clean and shifted
    histories, each replayed at the default configuration and, on the same data, without
    seasonal adjustment (`season_max_warmup_events = 0`, the design before it)."""
    days, shift_day = (2.0, 1.0) if quick else (Scenario.days, DEFAULT_SHIFT_DAY)
    designs = {
        "seasonal (default)": load_settings(None),
        "no seasonal adjustment": load_settings(None, detection={"season_max_warmup_events": 0}),
    }
    with tempfile.TemporaryDirectory(prefix="streamdrift-seasonal-") as folder:
        clean = replay_designs(Scenario(days, seed=seed), Path(folder), designs)
        shifted = replay_designs(
            Scenario(days, seed=seed, shift_day=shift_day), Path(folder), designs
        )
    monitors = [outcome.change.monitor for outcome in shifted["seasonal (default)"].score.outcomes]
    rows = []
    for design in designs:
        delays = {o.change.monitor: o.delay for o in shifted[design].score.outcomes}
        quantiles = shifted[design].score.start_error_quantiles
        rows.append(
            [
                design,
                len(clean[design].false_alarms) / clean[design].months,
                *(delays[monitor] for monitor in monitors),
                f"{quantiles[0]:,.0f} / {quantiles[1]:,.0f}" if quantiles else None,
            ]
        )
    intro = (
        f"Model `{MODEL}` ({days:g} days, about {Scenario.rate:g} events a minute, daily and weekly "
        f"cycles; `python -m bench seasonal` describes it): false alarms per model-month in the clean "
        f"history; in the shifted one (changes from day {shift_day:g}), the delay in events of each "
        "change's first alert (– : not found within "
        f"{MAX_DELAY:,} events) and the start estimates' error in events (median / p90).\n"
    )
    headers = ["design", "false alarms per model-month", *monitors, "start error"]
    return intro + "\n" + table(headers, rows) + "\n"


def run(
    quick: bool, days: float, rate: float, shift_day: float, seed: int, fast_rate: float
) -> str:
    """The slow scenario through the backtest; then, unless `fast_rate` (events a second) is
    0 or `quick`, the fast one."""
    if quick:
        days, shift_day = 2.0, 1.0
    with tempfile.TemporaryDirectory(prefix="streamdrift-seasonal-") as folder:
        clean = backtest(Scenario(days, rate, seed), Path(folder))
        shifted = backtest(Scenario(days, rate, seed, shift_day), Path(folder))
    sections = [
        intro(clean, shift_day),
        "### False alarms (clean history)\n\n" + false_alarm_table(clean),
        "### In-cycle shifts (shifted history)\n\n" + shift_table(shifted),
    ]
    if fast_rate > 0 and not quick:
        sections.append("### Fast traffic\n\n" + run_fast(fast_rate, seed))
    return "\n\n".join(sections)


def intro(clean: Result, shift_day: float) -> str:
    s = clean.scenario
    return (
        f"Model `{MODEL}`: {s.days:g} days of event time from a Monday, {clean.events:,} events "
        f"(about {s.rate:g} a minute, cycling), signals following daily and weekly cycles, "
        f"`noise` iid; labels for {s.label_coverage:.0%} of the predictions, "
        f"{LABEL_DELAY_MS // 1000} s later, drawn from the calibrated score; default "
        f"configuration, replayed by `detector.backtest.replay` "
        f"({clean.replayed.seconds:.0f} s). Shifted history: changes from day {shift_day:g}: "
        f"`amount` +{SHIFT_SD} within-hour sd, `noise` +{SHIFT_SD} sd, "
        f"{DEVICE_MOVED:.0%} of the device mix moved to web, {LABELS_FLIPPED:.0%} of the labels "
        f"flipped; an outage (traffic at "
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


# -- fast traffic: too many events for a file, fed straight to the model's monitors ----------

FAST_RATE = 6000.0  # events a minute (100 a second) of the fast scenario
FAST_DAYS, FAST_SHIFT_DAY, FAST_OUTAGE_AFTER = 10.0, 8.0, 1.5
FAST_SIGNALS = {  # monitor -> (field of Scenario.columns, signal type)
    "feature.amount": ("amount", SignalType.numeric),
    "feature.sessions": ("sessions", SignalType.numeric),
    "feature.temperature": ("temperature", SignalType.numeric),
    "feature.device": ("device", SignalType.categorical),
    "feature.noise": ("noise", SignalType.numeric),
    "prediction.score": ("score", SignalType.numeric),
    "prediction.latency": ("latency_ms", SignalType.numeric),
}


@dataclass(frozen=True)
class Streamed:
    """A history fed hour by hour to the signal monitors and traffic.rate of the model."""

    scenario: Scenario
    events: int
    learned_at: int | None  # the first event past the learned week (the switch)
    detections: list[Detection]
    changes: list[Change]
    cpu_seconds: float

    def after_learning(self) -> list[Detection]:
        start = self.events if self.learned_at is None else self.learned_at
        return [d for d in self.detections if d.position is not None and d.position >= start]

    def watched_days(self) -> float:
        """Days of event time from the switch to the end (or to the changes)."""
        end = self.scenario.shift_day if self.scenario.shift_day is not None else self.scenario.days
        return end - 7.0


def stream(scenario: Scenario, detection: dict[str, object] | None = None) -> Streamed:
    """Feed the scenario's history, hour by hour, to the monitors a model has at the default
    configuration (with `detection` overrides), timing them in CPU seconds."""
    settings = load_settings(None, detection=detection or {})
    config = Pipeline(settings).new_monitor(MODEL).config
    signals = {name: SignalMonitor(name, kind, config) for name, (_, kind) in FAST_SIGNALS.items()}
    traffic = TrafficMonitor(
        settings.detection.warmup_events, settings.detection.season_max_warmup_events
    )
    moments: dict[str, int | None] = {"learned": None, "shift": None, "down": None, "up": None}
    outage = scenario.outage_ms()
    if scenario.shift_day is not None and outage is not None:
        moments |= {
            "shift": START_MS + int(scenario.shift_day * DAY_MS),
            "down": outage[0],
            "up": outage[1],
        }
    found: dict[str, int] = {}
    detections: list[Detection] = []
    events, cpu = 0, 0.0
    for hour in range(int(scenario.days * 24)):
        ts = scenario.hour_times(hour)
        columns = scenario.columns(ts, part=hour)
        refs = SourceRefs(
            ("predictions",),
            0,
            np.zeros(len(ts), dtype=np.int64),
            np.arange(events, events + len(ts)),
        )
        started = time.process_time()
        for name, (field, kind) in FAST_SIGNALS.items():
            values = columns[field]
            for t in signals[name].update(
                values.tolist() if kind is SignalType.categorical else values, refs, ts
            ):
                if t.kind == "detected":
                    detections.append(
                        Detection(MODEL, name, events + t.index, "", t.statistic, t.detector)
                    )
        for t in traffic.observe(ts):
            if t.kind == "detected":
                detections.append(
                    Detection(MODEL, TRAFFIC, events + t.index, "", t.statistic, t.detector)
                )
        cpu += time.process_time() - started
        learner = signals["feature.noise"].season_learner
        if moments["learned"] is None and learner is not None:
            moments["learned"] = learner.plan.end_ms
        for key, moment in moments.items():
            if moment is not None and key not in found and len(ts) and ts[-1] >= moment:
                found[key] = events + int(np.searchsorted(ts, moment))
        events += len(ts)
    changes = (
        [
            Change(MODEL, "mean_shift", "amount", "feature.amount", found["shift"]),
            Change(MODEL, "mean_shift", "noise", "feature.noise", found["shift"]),
            Change(MODEL, "mix_shift", "device", "feature.device", found["shift"]),
            Change(MODEL, "outage", "", TRAFFIC, found["down"], end=found["up"]),
        ]
        if scenario.shift_day is not None
        else []
    )
    progress(
        f"streamed {events:,} events ({scenario.days:g} days, shift day {scenario.shift_day}): {cpu:.0f} CPU s"
    )
    return Streamed(scenario, events, found.get("learned"), detections, changes, cpu)


def run_fast(rate_per_s: float, seed: int) -> str:
    """The fast scenario: clean and shifted histories of FAST_DAYS days at `rate_per_s`, and
    the clean one again without seasonal adjustment (as before it learned fast traffic)."""
    rate = rate_per_s * 60.0
    shifted_scenario = Scenario(
        FAST_DAYS, rate, seed, FAST_SHIFT_DAY, outage_after=FAST_OUTAGE_AFTER
    )
    off: dict[str, object] = {"season_max_warmup_events": 0}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:  # three histories at once
        runs = [
            pool.submit(stream, scenario, detection)
            for scenario, detection in (
                (Scenario(FAST_DAYS, rate, seed), None),
                (Scenario(FAST_DAYS, rate, seed), off),
                (shifted_scenario, None),
            )
        ]
        clean, before, shifted = (run.result() for run in runs)
    found = score(shifted.changes, shifted.after_learning(), {MODEL: shifted.events}, MAX_DELAY)
    watched = clean.watched_days()
    split = clean.learned_at or 0  # the switch (the same event in both clean runs)
    rows = []
    for label, r in (("no seasonal adjustment (before)", before), ("seasonal (after)", clean)):
        learning = sum(1 for d in r.detections if d.position is not None and d.position < split)
        after = len(r.detections) - learning
        rows.append(
            [label, learning, after, after / watched * DAYS_PER_MONTH, r.events / r.cpu_seconds]
        )
    intro_text = (
        f"Fast traffic: the same model at about {rate_per_s:g} events a second "
        f"({clean.events:,} events in {FAST_DAYS:g} days, fed hour by hour to its signal "
        f"monitors and traffic.rate at the default configuration; {clean.cpu_seconds:.0f} CPU s). "
        f"The week is learned while watching; the switch comes at event {clean.learned_at:,}. "
        f"False alarms are counted from there to day {FAST_DAYS:g} ({watched:g} days)."
    )
    by_monitor: dict[str, int] = {}
    for d in clean.after_learning():
        by_monitor[d.monitor] = by_monitor.get(d.monitor, 0) + 1
    shift_rows = [
        [
            o.change.monitor,
            o.change.start,
            o.delay,
            f"{o.detection.statistic}/{o.detection.detector}" if o.detection else None,
        ]
        for o in found.outcomes
    ]
    unexplained = len(found.false_alarms) + len(found.unscored)
    return "\n\n".join(
        [
            intro_text,
            table(
                [
                    "fast history (clean)",
                    "alarms while learning the week",
                    "false alarms after it",
                    "per model-month",
                    "events per CPU-second",
                ],
                rows,
            ),
            f"After the switch, by monitor: {dict(sorted(by_monitor.items())) or 'none'}.",
            f"Shifted history (changes from day {FAST_SHIFT_DAY:g}, the outage at day "
            f"{FAST_SHIFT_DAY + FAST_OUTAGE_AFTER:g}):\n\n"
            + table(["monitor", "change at event", "delay (events)", "first alert by"], shift_rows)
            + f"\n\nAlerts after the switch no change explains: {unexplained}.",
        ]
    )


# -- the cost of seasonal adjustment ------------------------------------------------------------


def cost(rounds: int = 3) -> str:
    """Pipeline.process in this process over the same messages with the default configuration
    and with `season_max_warmup_events = 0` (no seasonal adjustment), batch by batch in turn
    (the order alternating), in CPU seconds: the slow seasonal history (a blind learned week,
    then watched against the hour: timed from day 8 on) and the throughput benchmark's plain
    workload (events 1 ms apart: fast traffic, watched while its week is learned)."""
    from bench.throughput import BATCH, Stream, as_messages, generate
    from bench.workload import Workload, standard_features

    settings = load_settings(None)
    off = load_settings(None, detection={"season_max_warmup_events": 0})
    scenario = Scenario()
    with tempfile.TemporaryDirectory(prefix="streamdrift-seasonal-") as folder:
        path = Path(folder) / "clean.jsonl"
        scenario.write(path, Path(folder) / "labels.jsonl")  # (the labels are not timed)
        lines = path.read_bytes().splitlines()
    day_8 = int(np.searchsorted(scenario.times(), START_MS + 8 * DAY_MS))
    streams = (
        (
            "seasonal, 20 a minute, days 8 to 21",
            Stream([(MODEL.encode(), v) for v in lines], []),
            day_8,
        ),
        (
            "plain, 1,000 a second (learning its week)",
            generate(Workload(standard_features(), ids=False), 200_000),
            0,
        ),
    )
    rows = []
    for name, stream, timed_from in streams:
        merged = as_messages(stream, settings.topics)
        batches = [merged[i : i + BATCH] for i in range(0, len(merged), BATCH)]
        for round_ in range(rounds):
            pipelines = [Pipeline(settings), Pipeline(off)]
            seconds, events = [0.0, 0.0], 0
            # Collected between batches, untimed: a collection scans both pipelines' objects,
            # and timed it fell on whichever batch crossed the threshold.
            gc.disable()
            for index, batch in enumerate(batches):
                timed = index * BATCH >= timed_from
                events += len(batch) if timed else 0
                for which in (index + round_) % 2, (index + round_ + 1) % 2:
                    started = time.process_time()
                    pipelines[which].process(batch)
                    if timed:
                        seconds[which] += time.process_time() - started
                gc.collect(0)
            gc.enable()
            rate, rate_off = events / seconds[0], events / seconds[1]
            rows.append([name, round_ + 1, events, rate, rate_off, rate / rate_off])
            progress(f"cost: {name}, round {round_ + 1}: {rate / rate_off:.3f}")
    return table(
        ["messages", "round", "timed", "events per CPU-s, default", "with 0", "default ÷ 0"],
        rows,
    )
