"""The versions of one model (pure; no I/O): which are live, when one is deployed or retired, and
how live versions compare.

A version is named by its predictions' `version` field (None for predictions without one), cut to
`limits.max_category_length`. Only predictions count: features and labels do not name a version.

* live: a version is live from its first prediction until the model has made
  `version_idle_events` predictions none of which is of it; it is then retired, and its output
  monitors dropped (an open drift of theirs is resolved, reason `version_retired`).
* deployed: a prediction of a version that is not live, once the model has had predictions, is a
  deployment: the first version a model monitor sees is not one (the model just appeared). It is a
  rollback when the version was live before and retired since (the last `4 * max_versions`
  retired names are remembered). `previous_version` is the version of the model's prediction just
  before it: the one being replaced, or (for a canary) the one beside it.
* cap: at most `max_versions` live at once; a prediction of another version is counted
  (`overflow`) and has no output monitor until a live version retires, so a flood of names costs
  no memory and publishes nothing.
* compared: every `version_compare_events` predictions of the model (a window), each pair of live
  versions that both served at least MIN_VALUES of the window's predictions, with at least
  MIN_VALUES values each, is compared: mean score (Welch's z-test), and accuracy (two-proportion
  z-test) or mean absolute error (Welch) of the labels joined in the window, all the window's
  tests Holm-adjusted together. Both versions served over the same stretch of predictions, so a
  difference is the versions', not the time's (a version that replaced another outright is
  compared with it only over the window of the switch; after it the old one serves nothing, and
  its late labels alone would compare two periods, not two versions). A pair and statistic
  whose adjusted p-value falls below `version_compare_alpha` is reported once, and again only after
  a window in which it was tested and not significant.

Decisions fall on prediction positions of the model, never on batch boundaries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np

from detector.core.monitors.performance import ERROR, ESTIMATED, RECALL
from detector.core.monitors.signal import SignalMonitor
from detector.core.statistics import accumulate, holm, means_p, moments, rates_p

SCORE, VALUE = "prediction.score", "prediction.value"
OUTPUT_MONITORS = (SCORE, VALUE, ESTIMATED, ERROR)  # and RECALL.<class>: one set per live version
MIN_VALUES = 30  # fewer values of a version in a window than this: not compared
RETIRED_KEPT_PER_VERSION = 4  # retired names remembered (rollbacks), per live version allowed


def is_output(monitor: str) -> bool:
    """Does this monitor describe the model rather than the world (one per live version)?"""
    return monitor in OUTPUT_MONITORS or monitor.startswith(RECALL)


WINDOW_SUMS = 7  # n, sum, sum of squares of scores, then of errors; predictions served


@dataclass
class Window:
    """Sums of one version's values in the current comparison window: scores, and the errors of
    labels joined (0/1 for classifiers, absolute errors for regressions); and how many of the
    window's predictions it served."""

    sums: list[float] = field(default_factory=lambda: [0.0] * WINDOW_SUMS)

    @property
    def served(self) -> int:
        return int(self.sums[6])

    def serve(self, predictions: int) -> None:
        self.sums[6] += predictions

    def add(self, part: int, values: np.ndarray) -> None:
        """Add scores (part 0) or errors (part 1), in order (`accumulate`)."""
        accumulate(self.sums, values, 3 * part)

    def moments(self, part: int) -> tuple[int, float, float]:
        """(count, mean, variance) of scores (0) or errors (1)."""
        return moments(self.sums, 3 * part)


@dataclass
class Version:
    """A live version: where it was first seen, and its own output monitors."""

    name: str | None
    first_offset: int
    last: int  # the model's prediction count at its newest prediction
    predictions: int = 0
    signals: dict[str, SignalMonitor] = field(default_factory=dict)
    window: Window = field(default_factory=Window)
    error_kind: str | None = None  # 'rate' (classifier) or 'numeric' (regression), once labelled
    closed: dict[str, float] = field(default_factory=dict)  # summary of its last complete window

    def reported(self) -> dict[str, float]:
        """Its last complete window's summary (its current window's until one completes)."""
        return self.closed or self.summary()

    def summary(self) -> dict[str, float]:
        """Its current window: mean score, and accuracy or MAE (those with values)."""
        values: dict[str, float] = {}
        n, mean, _ = self.window.moments(0)
        if n:
            values["score_mean"] = mean
        n, mean, _ = self.window.moments(1)
        if n and self.error_kind is not None:
            values["accuracy" if self.error_kind == "rate" else "mae"] = (
                1.0 - mean if self.error_kind == "rate" else mean
            )
        return values


@dataclass(frozen=True)
class Deployment:
    """A version deployed at `row` of the batch (the hook a retraining follow-up can use)."""

    row: int
    version: str | None
    previous_version: str | None
    rollback: bool


@dataclass(frozen=True)
class Compared:
    """Two live versions significantly apart on one statistic, in the window closed at `row`."""

    row: int
    versions: tuple[str | None, str | None]
    statistic: str  # score_mean, accuracy or mae
    values: tuple[float, float]
    counts: tuple[int, int]
    p: float
    adjusted: float
    worse: str | None  # the worse version (None for the score: different, not worse)
    window_end: int  # the model's prediction count at the window's end


@dataclass
class Routed:
    """One batch's predictions among the versions: `codes` gives, per row of the batch, the index
    in `owners` of the version whose prediction it is (-1: not a prediction, or over the cap)."""

    codes: np.ndarray
    owners: list[Version]
    spans: dict[str | None, list[list[int]]]  # name -> [from row, to row, code] while live
    deployed: list[Deployment] = field(default_factory=list)
    retired: list[tuple[int, Version]] = field(default_factory=list)
    closes: list[tuple[int, int]] = field(default_factory=list)  # (row, window end position)

    def code_at(self, name: str | None, row: int) -> int:
        """The code of the incarnation of version `name` live at `row` (-1: none)."""
        for start, end, code in self.spans.get(name, ()):
            if start <= row < end:
                return code
        return -1

    def live_at(self, row: int) -> list[Version]:
        return [
            self.owners[code]
            for spans in self.spans.values()
            for start, end, code in spans
            if start <= row < end
        ]


class Versions:
    """The live versions of one model, and the names of some retired ones."""

    def __init__(
        self,
        idle_events: int,
        compare_events: int,
        alpha: float,
        max_versions: int,
        max_name_length: int,
    ) -> None:
        self.idle_events = idle_events
        self.compare_events = compare_events
        self.alpha = alpha
        self.max_versions = max_versions
        self.max_name_length = max_name_length
        self.live: dict[str | None, Version] = {}
        self.retired: OrderedDict[str | None, None] = OrderedDict()
        self.current: str | None = None  # version of the newest prediction
        self.seen = 0  # predictions of the model
        self.overflow = 0  # predictions of versions over the cap
        self.deployments = 0
        self.flagged: set[tuple[str | None, str | None, str]] = set()

    def name(self, version: str | None) -> str | None:
        if version is None or len(version) <= self.max_name_length:
            return version
        return version[: self.max_name_length]

    # -- one batch --------------------------------------------------------------------------

    def route(
        self, rows: np.ndarray, versions: list[str | None], offsets: np.ndarray, total: int
    ) -> Routed:
        """Assign the batch's predictions (at `rows` of its `total` rows, naming `versions`, at
        input `offsets`) to live versions; deploy and retire versions on the way."""
        names = [self.name(v) for v in versions]
        routed = Routed(
            np.full(total, -1, dtype=np.int64),
            list(self.live.values()),
            {name: [[0, total, code]] for code, name in enumerate(self.live)},
        )
        start = self.seen
        if len(self.live) == 1 and set(names) == set(self.live):  # one version serves: usual
            only = routed.owners[0]
            routed.codes[rows] = 0
            only.last = start + len(rows)
            only.predictions += len(rows)
            self.seen = only.last
        else:
            self._walk(rows, names, offsets, routed)
        every = self.compare_events
        for end in range((start // every + 1) * every, self.seen + 1, every):
            routed.closes.append((int(rows[end - start - 1]), end))
        return routed

    def _walk(
        self, rows: np.ndarray, names: list[str | None], offsets: np.ndarray, routed: Routed
    ) -> None:
        """Prediction by prediction: retire, deploy, count."""
        idle = self.idle_events
        due = min((v.last for v in self.live.values()), default=self.seen) + idle + 1
        code_of = {name: code for code, name in enumerate(self.live)}
        for row, name in zip(rows.tolist(), names):
            position = self.seen + 1
            if position >= due:
                for stale in [v for v in self.live.values() if v.last + idle < position]:
                    self._retire(stale, row, routed, code_of)
                due = min((v.last for v in self.live.values()), default=position) + idle + 1
            version = self.live.get(name)
            if version is None:
                if len(self.live) >= self.max_versions:
                    self.overflow += 1
                    self.seen = position
                    continue
                version = self._deploy(name, row, int(offsets[row]), position, routed)
                code_of[name] = len(routed.owners) - 1
            version.last = position
            version.predictions += 1
            routed.codes[row] = code_of[name]
            self.current = name
            self.seen = position

    def _deploy(
        self, name: str | None, row: int, offset: int, position: int, routed: Routed
    ) -> Version:
        version = self.live[name] = Version(name, offset, position)
        routed.owners.append(version)
        routed.spans.setdefault(name, []).append([row, len(routed.codes), len(routed.owners) - 1])
        if position > 1:  # the model had predictions: a version replaces or joins another
            rollback = name in self.retired
            routed.deployed.append(Deployment(row, name, self.current, rollback))
            self.deployments += 1
        self.retired.pop(name, None)
        return version

    def _retire(
        self, version: Version, row: int, routed: Routed, code_of: dict[str | None, int]
    ) -> None:
        del self.live[version.name]
        del code_of[version.name]
        routed.spans[version.name][-1][1] = row
        routed.retired.append((row, version))
        self.retired[version.name] = None
        if len(self.retired) > RETIRED_KEPT_PER_VERSION * self.max_versions:
            self.retired.popitem(last=False)
        self.flagged = {f for f in self.flagged if version.name not in f[:2]}

    def codes_of(self, routed: Routed, rows: np.ndarray, versions: list[str | None]) -> np.ndarray:
        """Codes of labelled values (at `rows`, of predictions of `versions`): the incarnation of
        each one's version live at its row (-1: none)."""
        names = [self.name(v) for v in versions]
        if all(
            len(spans) == 1 and spans[0][:2] == [0, len(routed.codes)]
            for spans in routed.spans.values()
        ):
            whole = {name: spans[0][2] for name, spans in routed.spans.items()}
            return np.fromiter((whole.get(n, -1) for n in names), dtype=np.int64, count=len(names))
        return np.fromiter(
            (routed.code_at(n, r) for n, r in zip(names, rows.tolist())),
            dtype=np.int64,
            count=len(names),
        )

    def compare(
        self, routed: Routed, samples: list[tuple[int, int, np.ndarray, np.ndarray]]
    ) -> list[Compared]:
        """Add this batch's samples (code, part 0 scores / 1 errors, rows, values) to the windows,
        closing each window at its row: the comparisons found significant, newly."""
        found: list[Compared] = []
        done = -1
        for row, end in [*routed.closes, (len(routed.codes), -1)]:
            for code, part, rows, values in samples:
                lo, hi = np.searchsorted(rows, [done + 1, row + 1])
                if hi > lo:
                    routed.owners[code].window.add(part, values[lo:hi])
            served = np.bincount(
                routed.codes[done + 1 : row + 1] + 1, minlength=len(routed.owners) + 1
            )
            for code, version in enumerate(routed.owners):
                version.window.serve(int(served[code + 1]))
            done = row
            if end < 0:
                break
            live = routed.live_at(row)
            found += self._tested(row, end, live)
            for version in live:
                version.closed = version.summary()
                version.window = Window()
        return found

    def _tested(self, row: int, end: int, live: list[Version]) -> list[Compared]:
        candidates: list[Compared] = []
        for a, b in combinations(live, 2):
            if min(a.window.served, b.window.served) < MIN_VALUES:
                continue  # not both serving in this window: a difference would be the time's
            for part, statistic in ((0, "score_mean"), (1, b.error_kind or a.error_kind)):
                if statistic is None:
                    continue
                (n_a, mean_a, var_a), (n_b, mean_b, var_b) = (
                    a.window.moments(part),
                    b.window.moments(part),
                )
                if min(n_a, n_b) < MIN_VALUES:
                    continue
                if statistic == "rate":
                    p = rates_p(mean_a, n_a, mean_b, n_b)
                    values, statistic = (1.0 - mean_a, 1.0 - mean_b), "accuracy"
                    worse = a.name if mean_a > mean_b else b.name
                elif statistic == "numeric":
                    p = means_p(mean_a, var_a, n_a, mean_b, var_b, n_b)
                    values, statistic = (mean_a, mean_b), "mae"
                    worse = a.name if mean_a > mean_b else b.name
                else:
                    p = means_p(mean_a, var_a, n_a, mean_b, var_b, n_b)
                    values, worse = (mean_a, mean_b), None
                candidates.append(
                    Compared(row, (a.name, b.name), statistic, values, (n_a, n_b), p, p, worse, end)
                )
        found = []
        for compared, adjusted in zip(candidates, holm([c.p for c in candidates])):
            key = (*compared.versions, compared.statistic)
            if adjusted >= self.alpha:
                self.flagged.discard(key)
            elif key not in self.flagged:
                self.flagged.add(key)
                found.append(replace(compared, adjusted=adjusted))
        return found

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "current": self.current,
            "overflow": self.overflow,
            "deployments": self.deployments,
            "retired": list(self.retired),
            "flagged": sorted(
                ([a, b, s] for a, b, s in self.flagged), key=lambda f: [str(x) for x in f]
            ),
            "live": [
                {
                    "name": v.name,
                    "first_offset": v.first_offset,
                    "last": v.last,
                    "predictions": v.predictions,
                    "signals": {name: signal.to_state() for name, signal in v.signals.items()},
                    "window": v.window.sums,
                    "error_kind": v.error_kind,
                }
                for v in self.live.values()
            ],
        }

    def load_state(
        self, state: dict[str, Any], signal: Callable[[str, dict[str, Any]], SignalMonitor]
    ) -> None:
        """`signal(monitor, state)`: a SignalMonitor restored from its state."""
        self.seen = int(state["seen"])
        self.current = state["current"]
        self.overflow = int(state["overflow"])
        self.deployments = int(state["deployments"])
        self.retired = OrderedDict.fromkeys(state["retired"])
        self.flagged = {(a, b, str(s)) for a, b, s in state["flagged"]}
        self.live = {}
        for v in state["live"]:
            version = Version(
                v["name"], int(v["first_offset"]), int(v["last"]), int(v["predictions"])
            )
            version.signals = {
                str(name): signal(str(name), signal_state)
                for name, signal_state in v["signals"].items()
            }
            version.window = Window([float(x) for x in v["window"]])
            version.error_kind = v["error_kind"]
            self.live[version.name] = version
