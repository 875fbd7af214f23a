"""When to recommend retraining a model, and whether the version deployed next fixed it (pure;
no I/O). ModelMonitor feeds it each batch; it decides on event positions of the model only, never
on batch boundaries, so its events are the same bits across batching, restores and backtests.

* Performance: per model version, the errors of its labelled predictions in the order they were
  joined (1 for a wrong class, or a regression's absolute error). The version's first
  `reference_events` (detection.warmup_events) are its reference; from its first labelled
  prediction on, every `min_labelled_events` close a block. A block that began after the
  reference is complete is *dropped* when its performance (accuracy; a regression's mean absolute
  error) is worse than the reference by more than `performance_drop` (accuracy points; a share of
  the reference error) and significantly so (two-proportion z-test, or Welch's, p < `alpha`), and
  *recovered* when it is within `recovered_within` of it, clear of that line by CLEAR_Z
  standard errors (a block of a version still somewhat down would otherwise pass for recovered
  now and then, and end its episode only for the next block to open another).
* Input drift: a `feature.*` monitor's drift detected with a severity in `input_severities`,
  until resolved (re-baselined included).
* Episodes, one at a time per model: a dropped block (`performance_drop`), or an input drift open
  for `open_drift_events` events of the model (`input_drift`; predictions, features and labels
  all count), opens one and publishes `io.streamdrift.retrain.recommended` at that event. It ends
  when a new version is deployed, or when its cause is gone: a recovered block of its version, or
  no such input drift left open. An input drift open when an episode begins, or opened during
  one, belongs to it and never opens another: a drift of the inputs against their reference stays
  open across a retrained version (inputs keep their reference), and must not recommend again.
  Likewise a version whose episode a deployment ended (it is being replaced, or a canary is
  beside it) opens no other until a block of it has recovered.
* Outcome: after the deployment that ends an episode, the new version's labelled predictions
  decide `io.streamdrift.retrain.outcome` as soon as they say so either way: at the end of each
  of its blocks, its performance so far is `recovered` if within `recovered_within` of the
  replaced version's reference, else `not_recovered`, published once that estimate is
  CLEAR_Z standard errors clear of the `recovered_within` line (or after OUTCOME_MAX_BLOCKS
  blocks, as it stands). A version as good as the reference is thus judged after about 2,000
  labels at the defaults, a clearly better or worse one after its first block. A later
  deployment before the judgement is the one judged. Without a reference (the replaced version
  had too few labels) there is no outcome.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from detector.core.alerts import OUTCOME, RECOMMENDED, Alert, rfc3339
from detector.core.monitors.performance import ERROR
from detector.core.monitors.versions import Deployment
from detector.core.statistics import accumulate, means_p, moments, rates_p
from detector.settings import RetrainSettings

PERFORMANCE_DROP, INPUT_DRIFT = "performance_drop", "input_drift"
RECOVERED, NOT_RECOVERED = "recovered", "not_recovered"
RATE = "rate"  # the error kind of a classifier (a regression's is "numeric")
CLEAR_Z = 1.96  # standard errors a performance must be clear of the recovered_within line by
OUTCOME_MAX_BLOCKS = 10  # blocks of the new version after which the outcome is published anyway
INPUTS = "feature."  # the monitors whose drift is input drift


@dataclass(frozen=True)
class Labelled:
    """One live version's labelled predictions of a batch: rows and errors, in row order."""

    version: str | None
    kind: str  # RATE (classifier: 1 = wrong) or "numeric" (regression: absolute error)
    rows: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class PolicyBatch:
    """What the policy reads of one batch of a model's events (rows in partition order)."""

    position: int  # the model's events before this batch
    topics: tuple[str, ...]
    partition: int
    codes: np.ndarray  # per row: its input topic (an index into `topics`)
    offsets: np.ndarray
    times: np.ndarray  # event times, epoch ms
    prediction_rows: np.ndarray
    prediction_versions: list[str | None]  # of those rows' predictions
    labelled: list[Labelled]
    alerts: list[tuple[int, Alert]]  # (row, alert), in row order
    deployments: list[Deployment]
    live: Collection[str | None]  # the versions live at the batch's end


@dataclass(frozen=True)
class Decision:
    """An event to publish at `row` of the batch: its type, version and data (the monitor adds
    model, owner and runbook)."""

    row: int
    type: str
    version: str | None
    detail: str  # stands in its id for an alert's detector
    data: dict[str, Any]


@dataclass(frozen=True)
class Level:
    """Performance over a run of labelled predictions: count, mean and variance of the errors."""

    kind: str
    n: int
    mean: float
    variance: float

    @property
    def statistic(self) -> str:
        return "accuracy" if self.kind == RATE else "mae"

    @property
    def value(self) -> float:
        """Accuracy, or mean absolute error."""
        return 1.0 - self.mean if self.kind == RATE else self.mean

    def worse_than(self, reference: Level) -> float:
        """How much worse than `reference`: accuracy points lost, or the share of error added."""
        if self.kind == RATE:
            return self.mean - reference.mean
        if reference.mean > 0:
            return (self.mean - reference.mean) / reference.mean
        return math.inf if self.mean > 0 else 0.0

    def standard_error(self, reference: Level) -> float:
        """Standard error of `worse_than(reference)` (the reference taken as exact)."""
        if self.kind == RATE:
            return math.sqrt(self.mean * (1.0 - self.mean) / self.n)
        spread = math.sqrt(self.variance / self.n)
        return spread / reference.mean if reference.mean > 0 else math.inf

    def combined(self, other: Level) -> Level:
        """Performance over this run and `other` together."""
        n = self.n + other.n
        mean = (self.n * self.mean + other.n * other.mean) / n
        squares = self.n * (self.variance + self.mean**2) + other.n * (
            other.variance + other.mean**2
        )
        return Level(self.kind, n, mean, max(squares / n - mean * mean, 0.0))

    def p_against(self, reference: Level) -> float:
        """Two-sided p-value of the difference from `reference`."""
        if self.kind == RATE:
            return rates_p(reference.mean, reference.n, self.mean, self.n)
        return means_p(
            reference.mean, reference.variance, reference.n, self.mean, self.variance, self.n
        )

    def to_state(self) -> list[Any]:
        return [self.kind, self.n, self.mean, self.variance]

    @classmethod
    def from_state(cls, state: list[Any] | None) -> Level | None:
        if state is None:
            return None
        kind, n, mean, variance = state
        return cls(str(kind), int(n), float(mean), float(variance))


def _level(kind: str, sums: list[float]) -> Level:
    return Level(kind, *moments(sums))


@dataclass(frozen=True)
class Block:
    """A complete run of `min_labelled_events` labelled predictions of one version, ending at
    `row`; `first` is its first labelled event (topic code, offset, event time ms)."""

    row: int
    version: str | None
    index: int  # 1: the version's first block
    level: Level
    first: tuple[int, int, int]
    reference: Level | None  # the version's, when complete before the block began


@dataclass
class Track:
    """One version's labelled predictions so far: reference sums, and the open block's."""

    kind: str
    labelled: int = 0
    reference: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    block: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    blocks: int = 0
    first: tuple[int, int, int] = (0, 0, 0)


@dataclass
class Drift:
    """An open input drift: where it was detected and where its change began."""

    opened: int  # the model's event position of its detection
    severity: str
    source: dict[str, Any]  # the detecting event: topic, partition, offset, time
    start: dict[str, Any] | None  # its alert's estimated_start
    spent: bool  # belongs to an episode: never opens another


@dataclass
class Episode:
    """Retraining recommended for `version`, not yet ended."""

    reason: str
    version: str | None
    reference: Level | None
    before: Level | None  # the version's latest block
    recommended: dict[str, Any]  # the event that published the recommendation


@dataclass
class Awaited:
    """A deployment after a recommendation, waiting for the new version's labels to judge it."""

    version: str | None
    previous_version: str | None
    reason: str
    reference: Level
    before: Level | None
    recommended: dict[str, Any]
    deployed: dict[str, Any]
    after: Level | None = None  # the new version's blocks so far
    blocks: int = 0


class RetrainPolicy:
    """The retraining policy of one model (see the module docstring)."""

    def __init__(self, settings: RetrainSettings, reference_events: int) -> None:
        self.settings = settings
        self.reference_events = reference_events
        self.tracks: dict[str | None, Track] = {}
        # each live version's latest block (its performance, and its reference if used), as walked
        self.latest: dict[str | None, tuple[Level, Level | None]] = {}
        self.drifts: dict[str, Drift] = {}  # open input drifts by monitor, in order of opening
        self.error_starts: dict[str | None, dict[str, Any] | None] = {}  # open error drifts
        self.replaced: set[str | None] = set()  # versions whose episode a deployment ended
        self.episode: Episode | None = None
        self.awaited: Awaited | None = None
        self.current: str | None = None  # version of the model's newest prediction
        self.end_offsets: dict[int, int] = {}  # newest offset read, per input topic code

    # -- one batch ----------------------------------------------------------------------------

    def observe(self, batch: PolicyBatch) -> list[Decision]:
        """Walk one batch's labelled blocks, input alerts and deployments in row order."""
        steps: list[tuple[int, int, Any]] = [(row, 0, alert) for row, alert in batch.alerts]
        steps += [(block.row, 1, block) for block in self._blocks(batch)]
        steps += [(deployment.row, 2, deployment) for deployment in batch.deployments]
        steps.sort(key=lambda step: (step[0], step[1]))
        out: list[Decision] = []
        for row, kind, item in steps:
            self._due(batch, row, out)
            if kind == 0:
                self._on_alert(batch, row, item)
            elif kind == 1:
                self._on_block(batch, item, out)
            else:
                self._on_deployment(batch, item)
        self._due(batch, len(batch.codes) - 1, out)
        if batch.prediction_versions:
            self.current = batch.prediction_versions[-1]
        for code in np.unique(batch.codes).tolist():
            self.end_offsets[code] = int(batch.offsets[np.flatnonzero(batch.codes == code)[-1]])
        for gone in (self.tracks.keys() | self.latest.keys() | self.replaced) - set(batch.live):
            self.tracks.pop(gone, None)
            self.latest.pop(gone, None)
            self.replaced.discard(gone)
        return out

    def _blocks(self, batch: PolicyBatch) -> list[Block]:
        """The blocks completed in this batch, version by version (a deployment of a version
        starts its track afresh at its row)."""
        blocks: list[Block] = []
        labelled = dict.fromkeys(part.version for part in batch.labelled)
        for version in labelled:
            parts = [part for part in batch.labelled if part.version == version]
            rows = np.concatenate([part.rows for part in parts])
            values = np.concatenate([part.values for part in parts])
            order = np.argsort(rows, kind="stable")
            rows, values = rows[order], values[order]
            resets = sorted(d.row for d in batch.deployments if d.version == version)
            blocks += self._cut(batch, version, parts[-1].kind, rows, values, resets)
        for deployment in batch.deployments:
            if deployment.version not in labelled:  # (a version retired and deployed again)
                self.tracks.pop(deployment.version, None)
        return blocks

    def _cut(
        self,
        batch: PolicyBatch,
        version: str | None,
        kind: str,
        rows: np.ndarray,
        values: np.ndarray,
        resets: list[int],
    ) -> list[Block]:
        size, reference_events = self.settings.min_labelled_events, self.reference_events
        blocks: list[Block] = []
        i = 0
        while i < len(values):
            while resets and resets[0] <= rows[i]:
                self.tracks.pop(version, None)
                resets.pop(0)
            track = self.tracks.get(version)
            if track is None or track.kind != kind:
                track = self.tracks[version] = Track(kind)
            end = int(np.searchsorted(rows, resets[0])) if resets else len(values)
            in_block = int(track.block[0])
            take = min(end - i, max(1, size - in_block))
            if track.labelled < reference_events:
                take = min(take, reference_events - track.labelled)
            if not in_block:
                row = int(rows[i])
                track.first = (
                    int(batch.codes[row]),
                    int(batch.offsets[row]),
                    int(batch.times[row]),
                )
            chunk = values[i : i + take]
            accumulate(track.block, chunk)
            if track.labelled < reference_events:
                accumulate(track.reference, chunk)
            track.labelled += take
            i += take
            if track.block[0] >= size:
                track.blocks += 1
                began = track.labelled - int(track.block[0])
                blocks.append(
                    Block(
                        int(rows[i - 1]),
                        version,
                        track.blocks,
                        _level(kind, track.block),
                        track.first,
                        _level(kind, track.reference) if began >= reference_events else None,
                    )
                )
                track.block = [0.0, 0.0, 0.0]
        if resets:  # deployed after its last labelled value here: the next starts afresh
            self.tracks.pop(version, None)
        return blocks

    # -- the steps ----------------------------------------------------------------------------

    def _on_alert(self, batch: PolicyBatch, row: int, alert: Alert) -> None:
        detected = alert.kind == "detected"
        if alert.monitor == ERROR:
            if detected:
                self.error_starts[alert.version] = alert.estimated_start
            else:
                self.error_starts.pop(alert.version, None)
        elif not alert.monitor.startswith(INPUTS):
            return
        elif detected and alert.severity in self.settings.input_severities:
            self.drifts[alert.monitor] = Drift(
                batch.position + row + 1,
                alert.severity,
                self._place(batch, row),
                alert.estimated_start,
                spent=self.episode is not None,
            )
        elif not detected and self.drifts.pop(alert.monitor, None) is not None:
            episode = self.episode
            if episode is not None and episode.reason == INPUT_DRIFT and not self.drifts:
                self.episode = None  # its drifts are resolved

    def _on_block(self, batch: PolicyBatch, block: Block, out: list[Decision]) -> None:
        self.latest[block.version] = (block.level, block.reference)
        awaited = self.awaited
        if awaited is not None and block.version == awaited.version:
            self._judge(awaited, block, out)
        reference = block.reference
        if reference is None:
            return
        worse = block.level.worse_than(reference)
        recovered = worse <= self.settings.recovered_within - CLEAR_Z * (
            block.level.standard_error(reference)
        )
        if recovered:
            self.replaced.discard(block.version)
        episode = self.episode
        if episode is not None:
            if episode.version == block.version:
                episode.before = block.level
                if episode.reason == PERFORMANCE_DROP and recovered:
                    self.episode = None  # recovered
        elif block.version not in self.replaced and worse > self.settings.performance_drop:
            p = block.level.p_against(reference)
            if p < self.settings.alpha:
                out.append(self._performance_drop(batch, block, reference, worse, p))

    def _on_deployment(self, batch: PolicyBatch, deployment: Deployment) -> None:
        self.latest.pop(deployment.version, None)
        episode, self.episode = self.episode, None
        deployed = self._place(batch, deployment.row)
        if episode is not None and episode.reason == PERFORMANCE_DROP:
            self.replaced.add(episode.version)
        if episode is not None and episode.reference is not None:
            self.awaited = Awaited(
                deployment.version,
                episode.version,
                episode.reason,
                episode.reference,
                episode.before,
                episode.recommended,
                deployed,
            )
        elif self.awaited is not None:  # deployed again before the last one was judged
            self.awaited = replace(
                self.awaited, version=deployment.version, deployed=deployed, after=None, blocks=0
            )

    def _due(self, batch: PolicyBatch, upto: int, out: list[Decision]) -> None:
        """Recommend at the event where an input drift has been open `open_drift_events` events,
        if that is at or before row `upto` and no episode is open."""
        if self.episode is not None:
            return
        fresh = [drift for drift in self.drifts.values() if not drift.spent]
        if not fresh:
            return
        first = min(fresh, key=lambda drift: drift.opened)
        # Negative only after a restore under a lowered open_drift_events: due at once.
        row = max(first.opened + self.settings.open_drift_events - batch.position - 1, 0)
        if row <= upto:
            out.append(self._input_drift(batch, row, first))

    # -- the events -----------------------------------------------------------------------------

    def _performance_drop(
        self, batch: PolicyBatch, block: Block, reference: Level, worse: float, p: float
    ) -> Decision:
        code, offset, time_ms = block.first
        window_start = self._at(batch, code, offset, time_ms)
        evidence = {
            "statistic": block.level.statistic,
            "reference": reference.value,
            "current": block.level.value,
            "drop": worse,
            "threshold": self.settings.performance_drop,
            "p": p,
            "alpha": self.settings.alpha,
            "labelled_events": block.level.n,
            "reference_labelled_events": reference.n,
            "window": {"from": window_start, "to": self._place(batch, block.row)},
            "input_drifts": self._drifts_evidence(batch, block.row),
        }
        return self._recommend(
            batch,
            block.row,
            PERFORMANCE_DROP,
            block.version,
            reference,
            block.level,
            evidence,
            _start(self.error_starts.get(block.version), window_start),
        )

    def _input_drift(self, batch: PolicyBatch, row: int, first: Drift) -> Decision:
        version = self._version_at(batch, row)
        before, reference = self.latest.get(version, (None, None))
        evidence: dict[str, Any] = {
            "drifts": self._drifts_evidence(batch, row),
            "threshold": self.settings.open_drift_events,
        }
        if before is not None:
            evidence["performance"] = {
                "statistic": before.statistic,
                "reference": reference.value if reference is not None else None,
                "current": before.value,
                "labelled_events": before.n,
            }
        start = _start(first.start, first.source)
        return self._recommend(batch, row, INPUT_DRIFT, version, reference, before, evidence, start)

    def _recommend(
        self,
        batch: PolicyBatch,
        row: int,
        reason: str,
        version: str | None,
        reference: Level | None,
        before: Level | None,
        evidence: dict[str, Any],
        start: tuple[str, dict[str, Any]],
    ) -> Decision:
        source = self._place(batch, row)
        self.episode = Episode(reason, version, reference, before, source)
        for drift in self.drifts.values():
            drift.spent = True
        data = {
            "reason": reason,
            "evidence": evidence,
            "retrain_data": self._retrain_data(batch, row, *start),
        }
        return Decision(row, RECOMMENDED, version, reason, data)

    def _judge(self, awaited: Awaited, block: Block, out: list[Decision]) -> None:
        """Add a block of the new version; publish the outcome once the labels say it."""
        after = block.level if awaited.after is None else awaited.after.combined(block.level)
        awaited.after, awaited.blocks = after, awaited.blocks + 1
        reference, line = awaited.reference, self.settings.recovered_within
        clear = abs(after.worse_than(reference) - line) >= CLEAR_Z * after.standard_error(reference)
        if clear or awaited.blocks >= OUTCOME_MAX_BLOCKS:
            out.append(self._outcome(awaited, block.row, after))
            self.awaited = None

    def _outcome(self, awaited: Awaited, row: int, after: Level) -> Decision:
        reference = awaited.reference
        recovered = after.worse_than(reference) <= self.settings.recovered_within
        data = {
            "previous_version": awaited.previous_version,
            "outcome": RECOVERED if recovered else NOT_RECOVERED,
            "reason": awaited.reason,
            "statistic": reference.statistic,
            "reference": reference.value,
            "before": awaited.before.value if awaited.before is not None else None,
            "after": after.value,
            "recovered_within": self.settings.recovered_within,
            "labelled_events": {
                "reference": reference.n,
                "before": awaited.before.n if awaited.before is not None else 0,
                "after": after.n,
            },
            "recommended": awaited.recommended,
            "deployed": awaited.deployed,
        }
        return Decision(row, OUTCOME, awaited.version, "outcome", data)

    def _retrain_data(
        self, batch: PolicyBatch, row: int, kind: str, start: dict[str, Any]
    ) -> dict[str, Any]:
        """Where to read the data to retrain on: from `start` to the event at `row`."""
        ends = self._end_offsets(batch, row)
        topic = start["topic"]
        return {
            "topic": topic,
            "partitions": [
                {
                    "partition": batch.partition,
                    "from_offset": start["offset"],
                    "to_offset": ends.get(topic, start["offset"]),
                }
            ],
            "time_range": {"from": start["time"], "to": rfc3339(int(batch.times[row]))},
            "end_offsets": ends,
            "start": kind,
        }

    # -- helpers --------------------------------------------------------------------------------

    def _drifts_evidence(self, batch: PolicyBatch, row: int) -> list[dict[str, Any]]:
        position = batch.position + row + 1
        return [
            {
                "monitor": monitor,
                "severity": drift.severity,
                "detected": drift.source,
                "open_events": position - drift.opened,
            }
            for monitor, drift in self.drifts.items()
        ]

    def _end_offsets(self, batch: PolicyBatch, row: int) -> dict[str, int]:
        """The newest offset read of each input topic, up to the event at `row`."""
        ends = dict(self.end_offsets)
        codes = batch.codes[: row + 1]
        for code in np.unique(codes).tolist():
            ends[code] = int(batch.offsets[np.flatnonzero(codes == code)[-1]])
        return {batch.topics[code]: offset for code, offset in sorted(ends.items())}

    def _version_at(self, batch: PolicyBatch, row: int) -> str | None:
        """The version of the model's newest prediction at or before `row`."""
        index = int(np.searchsorted(batch.prediction_rows, row, side="right")) - 1
        return batch.prediction_versions[index] if index >= 0 else self.current

    def _place(self, batch: PolicyBatch, row: int) -> dict[str, Any]:
        return self._at(
            batch, int(batch.codes[row]), int(batch.offsets[row]), int(batch.times[row])
        )

    @staticmethod
    def _at(batch: PolicyBatch, code: int, offset: int, time_ms: int) -> dict[str, Any]:
        return {
            "topic": batch.topics[code],
            "partition": batch.partition,
            "offset": offset,
            "time": rfc3339(time_ms),
        }

    # -- checkpoint state -------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "tracks": [
                [
                    version,
                    track.kind,
                    track.labelled,
                    track.reference,
                    track.block,
                    track.blocks,
                    list(track.first),
                ]
                for version, track in self.tracks.items()
            ],
            "latest": [
                [version, level.to_state(), _level_state(reference)]
                for version, (level, reference) in self.latest.items()
            ],
            "drifts": [
                [monitor, d.opened, d.severity, d.source, d.start, d.spent]
                for monitor, d in self.drifts.items()
            ],
            "error_starts": [[version, start] for version, start in self.error_starts.items()],
            "replaced": sorted(self.replaced, key=str),
            "episode": None
            if self.episode is None
            else {
                "reason": self.episode.reason,
                "version": self.episode.version,
                "reference": _level_state(self.episode.reference),
                "before": _level_state(self.episode.before),
                "recommended": self.episode.recommended,
            },
            "awaited": None
            if self.awaited is None
            else {
                "version": self.awaited.version,
                "previous_version": self.awaited.previous_version,
                "reason": self.awaited.reason,
                "reference": self.awaited.reference.to_state(),
                "before": _level_state(self.awaited.before),
                "recommended": self.awaited.recommended,
                "deployed": self.awaited.deployed,
                "after": _level_state(self.awaited.after),
                "blocks": self.awaited.blocks,
            },
            "current": self.current,
            "end_offsets": [[code, offset] for code, offset in self.end_offsets.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.tracks = {}
        for version, kind, labelled, reference, block, blocks, first in state["tracks"]:
            self.tracks[version] = Track(
                str(kind),
                int(labelled),
                [float(x) for x in reference],
                [float(x) for x in block],
                int(blocks),
                _first(first),
            )
        self.latest = {}
        for version, level, reference in state["latest"]:
            loaded = Level.from_state(level)
            if loaded is not None:
                self.latest[version] = (loaded, Level.from_state(reference))
        self.drifts = {
            str(monitor): Drift(int(opened), str(severity), dict(source), start, bool(spent))
            for monitor, opened, severity, source, start, spent in state["drifts"]
        }
        self.error_starts = dict(state["error_starts"])
        self.replaced = set(state["replaced"])
        episode = state["episode"]
        self.episode = (
            None
            if episode is None
            else Episode(
                str(episode["reason"]),
                episode["version"],
                Level.from_state(episode["reference"]),
                Level.from_state(episode["before"]),
                dict(episode["recommended"]),
            )
        )
        awaited = state["awaited"]
        reference = None if awaited is None else Level.from_state(awaited["reference"])
        self.awaited = (
            None
            if awaited is None or reference is None
            else Awaited(
                awaited["version"],
                awaited["previous_version"],
                str(awaited["reason"]),
                reference,
                Level.from_state(awaited["before"]),
                dict(awaited["recommended"]),
                dict(awaited["deployed"]),
                Level.from_state(awaited["after"]),
                int(awaited["blocks"]),
            )
        )
        self.current = state["current"]
        self.end_offsets = {int(code): int(offset) for code, offset in state["end_offsets"]}


def _start(estimated: dict[str, Any] | None, window: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where the data to retrain on begins: the change's start where a detector estimated it,
    else the start of the window that showed it."""
    if estimated is not None and estimated["estimated"]:
        return "estimated_change", estimated
    return "window", window


def _level_state(level: Level | None) -> list[Any] | None:
    return level.to_state() if level is not None else None


def _first(state: list[Any]) -> tuple[int, int, int]:
    code, offset, time_ms = state
    return int(code), int(offset), int(time_ms)
