"""All monitors of one model: discovers its features, turns a batch of its events into columns,
feeds each signal, and turns lifecycle transitions into alerts (pure; no I/O).

Monitors: `feature.<name>` (numeric or categorical), `quality.missing.<name>`,
`prediction.score`, `prediction.value`, `prediction.latency`, `quality.schema`, and those of
detector.core.monitors.performance (`performance.error`, `performance.recall.<class>`,
`performance.estimated`, `quality.labels`).

The output monitors (score, predicted value, estimated and real performance) describe the model,
so each live version of it has its own, learning its own reference from its first predictions
(detector.core.monitors.versions); the others describe the world and go on across deployments.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import numpy as np
import orjson
import river

from detector.core.alerts import COMPARED, DEPLOYED, RECOMMENDED, Alert, ModelEvent, rfc3339
from detector.core.calibration import Thresholds, detectors_for, thresholds_for_budget
from detector.core.events import (
    OFFSET_OF,
    SOURCE_OF,
    TS_OF,
    Event,
    FeatureStruct,
    InputTopic,
    features_in_order,
)
from detector.core.monitors.columns import NUMBER_TYPES, Columns, SourceRefs, number_columns
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.detectors import Updating, run_together
from detector.core.monitors.labels import PendingBudget
from detector.core.monitors.lifecycle import Transition
from detector.core.monitors.performance import ERROR, Performance
from detector.core.monitors.retraining import Decision, Labelled, PolicyBatch, RetrainPolicy
from detector.core.monitors.schema import SchemaMonitor
from detector.core.monitors.signal import SignalMonitor
from detector.core.monitors.signal_type import SignalType
from detector.core.monitors.traffic import MONITOR as TRAFFIC
from detector.core.monitors.traffic import TrafficMonitor
from detector.core.monitors.versions import (
    SCORE,
    VALUE,
    Compared,
    Deployment,
    Routed,
    Version,
    Versions,
    is_output,
)
from detector.settings import DetectionSettings, LimitSettings, ModelSettings, RetrainSettings

# The numeric features of every TYPE_SAMPLE_EVERY-th event of a batch are type-checked before the
# whole batch is converted at once; a number sent as text or a boolean there sends the batch
# column by column, where every such value is found (counted missing, a schema change once).
# Checking every value cost 4-5% of the core's speed (throughput --core-only, three A/B runs:
# 97-101k against 103-106k events/s); one in 16 costs no measurable speed, and a producer that
# changes a field's type is caught in its first batch.
TYPE_SAMPLE_EVERY = 16
NUMBERS_OR_NONE = NUMBER_TYPES | {type(None)}

# Maps and feature names -> each map's values of those names (`dict_rows`, `FeatureStruct.rows`).
Rows = Callable[[Sequence[Any], Sequence[str]], list[Any]]


def dict_rows(maps: Sequence[Any], names: Sequence[str]) -> list[Any]:
    """Each dict's values of `names`, as `FeatureStruct.rows` gives a struct's (KeyError where
    a dict lacks one)."""
    return list(map(itemgetter(*names), maps))


CRITICAL_EFFECT = 0.2  # a shift of the mean PIT position (or of a rate) this large is 'critical'

LATENCY = "prediction.latency"
SCHEMA = "quality.schema"

# Layout of the state ModelMonitor.to_state writes, with every to_state below it (signals and
# their detectors, references, label join, schema and performance monitors). Bump it with any
# change to that layout: a checkpoint of another schema is not loaded, its model re-learns.
# 0: checkpoints written before states carried a schema (the layout of 1, but with no record
# of the river that wrote them).
# 2: signals carry their season (detector.core.monitors.seasonal) and the warm-up's event
# times; models their traffic.rate monitor.
# 3: performance carries each model version's score calibration, and waiting predictions their
# version.
# 4: output monitors live under their model version (`versions`).
# 5: a season's plan says whether the signal watches while it learns (fast traffic), a
# categorical season learner carries its reference, and recentring weekdays and weekends apart.
# 6: models carry their retraining policy (`retrain`).
# 7: rate signals (missing values, label errors) learn a season too: a rate's learner counts 0s
# and 1s per hour, its season carries the cycle's rate (seasonal.BinarySeason).
# 8: a signal carries a hit below its minimum effect, still watched (`below_floor`).
# 9: a seasonal category mix carries the blocks that choose its watched category (`mix`).
STATE_SCHEMA = 9
# The libraries whose internals the state holds, with the version it loads under. ADWIN's
# buckets are river's Rust core's own binary encoding and DDM/HDDM_A's state is their private
# attributes: either may change in any river release, patches included, so a state loads only
# under exactly the river that wrote it. numpy is not listed: arrays are stored as JSON numbers.
STATE_LIBRARIES = {"river": river.__version__}
# Why a model re-learned instead of loading its checkpointed state (a metric label).
RELEARN_REASONS = ("schema", "library", "settings", "load_error")


@dataclass(frozen=True)
class Relearn:
    """A model's checkpointed state not loaded: `reason` (one of RELEARN_REASONS) and `detail`,
    what differs (e.g. `river 0.22.0 -> 0.23.0`)."""

    reason: str
    detail: str


def model_thresholds(
    settings: ModelSettings, detection: DetectionSettings, limits: LimitSettings
) -> Thresholds:
    """A model's detector thresholds: its false-alarm budget split over all the detectors it can
    run (configured features, or the feature cap, plus outputs and performance)."""
    monitored = (
        len(settings.features) if settings.features is not None else limits.max_features_per_model
    )
    return thresholds_for_budget(
        detection.false_alarm_budget_per_million,
        detectors_for(monitored, limits.max_recall_classes),
        detection.page_hinkley_delta,
        detection.block_events,
    )


def signal_config(detection: DetectionSettings, thresholds: Thresholds) -> SignalConfig:
    return SignalConfig(
        warmup_events=detection.warmup_events,
        reference_bins=detection.reference_bins,
        max_categories=detection.max_categories,
        block_events=detection.block_events,
        page_hinkley_threshold=thresholds.page_hinkley_threshold,
        page_hinkley_delta=thresholds.page_hinkley_delta,
        page_hinkley_alpha=detection.page_hinkley_alpha,
        adwin_delta=thresholds.adwin_delta,
        adwin_max_buckets=detection.adwin_max_buckets,
        min_effect_sd=detection.min_effect_sd,
        cooldown_events=detection.cooldown_events,
        resolve_window_events=detection.resolve_window_events,
        rebaseline_after_events=detection.rebaseline_after_events,
        season_max_warmup_events=detection.season_max_warmup_events,
        per_detector_rate=thresholds.per_detector_rate,
    )


def category(value: Any, max_length: int) -> str:
    """A categorical value as text: JSON spelling for booleans, truncated to max_length."""
    if value.__class__ is str:
        return value if len(value) <= max_length else value[:max_length]
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)[:max_length]


@dataclass(frozen=True)
class Found:
    """A transition of one monitor, at `row` of the batch (`owner`: the version of an output
    monitor)."""

    monitor: str
    row: int
    signal_type: str  # a SignalType's value, or "schema"
    transition: Transition
    owner: Version | None = None


class Observed(NamedTuple):
    """What one batch of a model's events produced: alerts, and events about the model
    (deployments, version comparisons, retraining), each in the order of the input events."""

    alerts: list[Alert]
    model_events: list[ModelEvent]


class Fed(NamedTuple):
    """Whose values a waiting signal update has, and at which rows of the batch."""

    monitor: str
    rows: np.ndarray
    owner: Version | None


class BatchFeed:
    """Feeds one batch's columns to a model's signals and collects their transitions."""

    def __init__(self, model: ModelMonitor, events: Sequence[Event]) -> None:
        self.model = model
        self.codes = np.fromiter(map(SOURCE_OF, events), dtype=np.int64, count=len(events))
        self.offsets = np.fromiter(map(OFFSET_OF, events), dtype=np.int64, count=len(events))
        self.times = np.fromiter(map(TS_OF, events), dtype=np.int64, count=len(events))
        self.partition = events[0].partition
        self.found: list[Found] = []
        self.predictions = np.flatnonzero(self.codes == InputTopic.prediction)
        self.versions = [events[i].version for i in self.predictions.tolist()]
        self.routed: Routed = model.versions.route(
            self.predictions, self.versions, self.offsets, len(events)
        )
        # (version code, 0 scores / 1 errors, rows, values): the versions' comparison windows
        self.samples: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        # Signals fed and not yet updated (`run`), in the order fed.
        self.waiting: dict[SignalMonitor, tuple[Updating[list[Transition]], Fed]] = {}

    def feed(
        self,
        monitor: str,
        signal_type: SignalType,
        columns: Columns,
        binary_detectors: bool = False,
        versions: list[str | None] | None = None,
    ) -> None:
        """Feed a monitor's values; an output monitor's go to their versions' own (`versions`:
        of labelled values, their predictions' versions; else the rows' predictions')."""
        if not len(columns.rows):
            return
        if not is_output(monitor):
            self._feed(monitor, signal_type, columns, binary_detectors, None)
            return
        routed = self.routed
        codes = (
            routed.codes[columns.rows]
            if versions is None
            else self.model.versions.codes_of(routed, columns.rows, versions)
        )
        for code in np.unique(codes).tolist():
            if code < 0:
                continue  # a version over the cap, or no longer live
            mine = np.flatnonzero(codes == code)
            owned = (
                columns
                if len(mine) == len(codes)
                else Columns(columns.rows[mine], _pick(columns.values, mine))
            )
            owner = routed.owners[code]
            if monitor in (SCORE, ERROR) and signal_type is not SignalType.categorical:
                self.samples.append((code, int(monitor == ERROR), owned.rows, owned.values))  # type: ignore[arg-type]
                if monitor == ERROR:
                    owner.error_kind = signal_type.value
            self._feed(monitor, signal_type, owned, binary_detectors, owner)

    def _feed(
        self,
        monitor: str,
        signal_type: SignalType,
        columns: Columns,
        binary_detectors: bool,
        owner: Version | None,
    ) -> None:
        signal = self.model.signal(monitor, signal_type, binary_detectors, owner)
        if signal is None:
            return
        rows = columns.rows
        if len(rows) == len(self.codes):  # every row (rows only ever rise): no copies to take
            codes, offsets, times = self.codes, self.offsets, self.times
        else:
            codes, offsets, times = self.codes[rows], self.offsets[rows], self.times[rows]
        if signal in self.waiting:  # fed twice in a batch: its first values go first
            self.run()
        refs = SourceRefs(self.model.topics, self.partition, codes, offsets, times)
        self.waiting[signal] = (
            signal.updating(columns.values, refs, times),
            Fed(monitor, columns.rows, owner),
        )

    def run(self) -> None:
        """Update the signals fed so far, all together (`run_together`: their statistics'
        detectors run as rows of one array), and collect their transitions."""
        waiting, self.waiting = self.waiting, {}
        updated = run_together([updating for updating, _ in waiting.values()])
        for (signal, (_, fed)), transitions in zip(waiting.items(), updated):
            for transition in transitions:
                row = int(fed.rows[transition.index])
                found = Found(fed.monitor, row, signal.signal_type.value, transition, fed.owner)
                self.found.append(found)

    def add(self, monitor: str, row: int, signal_type: str, transition: Transition) -> None:
        self.found.append(Found(monitor, row, signal_type, transition))

    def retire(self) -> None:
        """Close the open drifts of the versions retired in this batch, at the row retiring them."""
        for row, version in self.routed.retired:
            refs = SourceRefs(
                self.model.topics,
                self.partition,
                self.codes[row : row + 1],
                self.offsets[row : row + 1],
            )
            for monitor, signal in version.signals.items():
                transition = signal.retire(refs)
                if transition is not None:
                    found = Found(monitor, row, signal.signal_type.value, transition, version)
                    self.found.append(found)


class ModelMonitor:
    """Monitors of one model, created as its features and outputs appear."""

    def __init__(
        self,
        name: str,
        settings: ModelSettings,
        detection: DetectionSettings,
        limits: LimitSettings,
        retrain: RetrainSettings,
        topics: tuple[str, ...],
        pending_budget: PendingBudget | None = None,
        log_blocks: bool = False,
    ) -> None:
        """`log_blocks`: every signal logs its completed blocks (`SignalMonitor.block_log`)."""
        self.name = name
        self.log_blocks = log_blocks
        self.settings = settings
        self.limits = limits
        self.topics = topics
        self.thresholds = model_thresholds(settings, detection, limits)
        self.config = signal_config(detection, self.thresholds)
        self.disabled = tuple(detection.disabled_monitors)
        self.signals: dict[str, SignalMonitor] = {}
        self.feature_types: dict[str, SignalType] = {}
        self.skipped_features: set[str] = set()  # ignored, not configured, or over the cap
        self.untyped_features: dict[str, None] = {}  # seen only as null so far (ordered set)
        self.mistyped_features: set[str] = set()  # reported as a schema change once
        self.feature_overflow = 0  # features not monitored because of the cap
        self.schema = SchemaMonitor(
            detection.warmup_events, detection.resolve_window_events, detection.cooldown_events
        )
        self.performance = Performance(
            settings,
            limits,
            detection.warmup_events,
            detection.resolve_window_events,
            pending_budget,
        )
        self.traffic = (
            None
            if self.disabled and TRAFFIC.startswith(self.disabled)
            else TrafficMonitor(detection.warmup_events, detection.season_max_warmup_events)
        )
        self.versions = Versions(
            detection.version_idle_events,
            detection.version_compare_events,
            detection.version_compare_alpha,
            limits.max_versions_per_model,
            limits.max_category_length,
        )
        self.retrain = RetrainPolicy(retrain, detection.warmup_events) if retrain.enabled else None
        self.version: str | None = None
        # The type the decoder gives this model's features in, once it knows their names
        # (Pipeline sets it from `feature_names` after each batch; None: dicts only).
        self.feature_struct: type[FeatureStruct] | None = None
        self.events_seen = 0
        self.last_seen_ms = (
            0  # its partition's clock at its last event (detector.core.pipeline); 0: not yet
        )

    # -- one batch ----------------------------------------------------------------------

    def observe(self, events: Sequence[Event]) -> Observed:
        """Feed this model's events of one batch, in partition order; return its alerts and the
        events about it (deployments, version comparisons)."""
        if not events:
            return Observed([], [])
        self.events_seen += len(events)
        self._note_version(events)
        batch = BatchFeed(self, events)
        self._observe_features(events, batch)
        self._observe_outputs(events, batch)
        self._observe_traffic(batch)
        for feed in self.performance.observe(events, self._is_classifier(events)):
            batch.feed(
                feed.monitor, feed.signal_type, feed.columns, feed.binary_detectors, feed.versions
            )
        batch.run()
        batch.retire()
        batch.found.sort(key=lambda found: (found.row, found.monitor))
        compared = self.versions.compare(batch.routed, batch.samples)
        alerts = [self._alert(found, events[found.row]) for found in batch.found]
        placed = [(d.row, 0, self._deployed(d, events[d.row])) for d in batch.routed.deployed]
        placed += [(c.row, 1, self._compared(c, events[c.row])) for c in compared]
        placed += [
            (d.row, 2, self._retrain_event(d, events[d.row])) for d in self._retrain(batch, alerts)
        ]
        placed.sort(key=itemgetter(0, 1))
        return Observed(alerts, [event for _, _, event in placed])

    def _retrain(self, batch: BatchFeed, alerts: list[Alert]) -> list[Decision]:
        """The retraining policy's decisions on this batch (none if it is disabled)."""
        if self.retrain is None:
            return []
        owners = batch.routed.owners
        labelled = [
            Labelled(owners[code].name, kind, rows, values)
            for code, part, rows, values in batch.samples
            if part == 1 and (kind := owners[code].error_kind) is not None
        ]
        return self.retrain.observe(
            PolicyBatch(
                position=self.events_seen - len(batch.codes),
                topics=self.topics,
                partition=batch.partition,
                codes=batch.codes,
                offsets=batch.offsets,
                times=batch.times,
                prediction_rows=batch.predictions,
                prediction_versions=[self.versions.name(v) for v in batch.versions],
                labelled=labelled,
                alerts=[(found.row, alert) for found, alert in zip(batch.found, alerts)],
                deployments=batch.routed.deployed,
                live=self.versions.live.keys(),
            )
        )

    def _observe_traffic(self, batch: BatchFeed) -> None:
        """The prediction rate (traffic.rate), from the predictions' event times."""
        if self.traffic is None:
            return
        rows = np.flatnonzero(batch.codes == InputTopic.prediction)
        for transition in self.traffic.observe(batch.times[rows]):
            batch.add(TRAFFIC, int(rows[transition.index]), SignalType.rate.value, transition)

    def _note_version(self, events: Sequence[Event]) -> None:
        for event in reversed(events):
            if event.version is not None:
                self.version = event.version
                return

    def feature_names(self) -> tuple[list[str], list[str]]:
        """The feature names that need no discovery (monitored or skipped), and those seen only
        as null so far: what the decoder's FeatureStruct for this model holds. Numeric names
        come first, so that the struct's numeric fields are one run (`FeatureStruct.rows`)."""
        types = self.feature_types
        numeric = [name for name, kind in types.items() if kind is SignalType.numeric]
        others = [name for name, kind in types.items() if kind is not SignalType.numeric]
        return [*numeric, *others, *sorted(self.skipped_features)], list(self.untyped_features)

    def _observe_features(self, events: Sequence[Event], batch: BatchFeed) -> None:
        feature_rows = [i for i, e in enumerate(events) if e.features is not None]
        if not feature_rows:
            return
        maps = [events[i].features or {} for i in feature_rows]
        rows = np.asarray(feature_rows, dtype=np.int64)
        changes: list[tuple[int, str]] = []
        types = set(map(type, maps))
        # Decoded into this model's FeatureStruct: every name is known, nothing to discover.
        structs = types == {self.feature_struct}
        if structs:
            assert self.feature_struct is not None
            columns = self._feature_columns(maps, read=self.feature_struct.rows)
        else:
            if types != {dict}:  # structs of other names (new monitors): back to the messages
                maps = [features_in_order(events[i]) or {} for i in feature_rows]
            # Every map with exactly the monitored names (as many, and none missing) has no name
            # to discover: the usual case, checked in C before the per-map check of _discover.
            same_count = set(map(len, maps)) == {len(self.feature_types)}
            columns = self._feature_columns(maps, strict=True) if same_count else None
        if columns is None:
            changes = self._discover(maps, feature_rows)
            columns = self._feature_columns(maps)
            assert columns is not None  # not strict: absent names read as None
        for name, signal_type, column in columns:
            values, missing, mismatched = self._column(column, signal_type)
            if mismatched and name not in self.mistyped_features:
                self.mistyped_features.add(name)  # reported once: its missing rate shows the rest
                changes.append(
                    (
                        feature_rows[mismatched[0]],
                        f"feature '{name}' is no longer {signal_type.value}",
                    )
                )
            batch.feed(
                f"quality.missing.{name}",
                SignalType.rate,
                Columns(rows, missing.astype(np.float64)),
            )
            if missing.any():
                present = np.flatnonzero(~missing)
                batch.feed(
                    f"feature.{name}", signal_type, Columns(rows[present], _pick(values, present))
                )
            else:
                batch.feed(f"feature.{name}", signal_type, Columns(rows, values))
        for name in list(self.untyped_features):
            missing = (
                np.ones(len(maps))  # a FeatureStruct holds these names as null only
                if structs
                else np.fromiter(
                    (m.get(name) is None for m in maps), dtype=np.float64, count=len(maps)
                )
            )
            batch.feed(f"quality.missing.{name}", SignalType.rate, Columns(rows, missing))
        for transition in self.schema.update(changes_in(changes, feature_rows), len(feature_rows)):
            batch.add(SCHEMA, feature_rows[transition.index], "schema", transition)

    def _observe_outputs(self, events: Sequence[Event], batch: BatchFeed) -> None:
        batch.feed(SCORE, SignalType.numeric, self._output(events, "score", SignalType.numeric))
        batch.feed(
            LATENCY, SignalType.numeric, self._output(events, "latency_ms", SignalType.numeric)
        )
        prediction_type = self._prediction_type(events)
        if prediction_type is not None:
            batch.feed(VALUE, prediction_type, self._output(events, "prediction", prediction_type))

    # -- signals and features -----------------------------------------------------------

    def signal(
        self,
        monitor: str,
        signal_type: SignalType,
        binary_detectors: bool = False,
        owner: Version | None = None,
    ) -> SignalMonitor | None:
        """The monitor of a signal (of version `owner`'s, for an output monitor), created on
        first use (None if disabled by configuration)."""
        signals = self.signals if owner is None else owner.signals
        signal = signals.get(monitor)
        if signal is None:
            if self.disabled and monitor.startswith(self.disabled):
                return None
            signal = signals[monitor] = SignalMonitor(
                monitor, signal_type, self.config, binary_detectors, self.log_blocks
            )
        return signal

    def _discover(
        self, maps: list[dict[str, Any]], feature_rows: list[int]
    ) -> list[tuple[int, str]]:
        """Register feature names not seen before; return schema changes (row, description).

        A feature seen only as null has no type yet: its missing rate is watched meanwhile.
        Names that are not monitored are remembered, so that later events skip them at once, but
        only up to limits.max_features_per_model of them and only if no longer than
        max_category_length: a flood of distinct names cannot grow memory. A name past that is
        judged again in every event that carries it (and counted again if over the cap)."""
        limits = self.limits
        known = self.feature_types.keys() | self.skipped_features
        changes: list[tuple[int, str]] = []
        if known.issuperset(chain.from_iterable(maps)):  # every name known: the usual case, in C
            return changes
        for j, features in enumerate(maps):
            if features.keys() <= known:
                continue
            for name, value in features.items():
                if name in known:
                    continue
                if not self._wanted(name):
                    if (
                        len(self.skipped_features) < limits.max_features_per_model
                        and len(name) <= limits.max_category_length
                    ):
                        self.skipped_features.add(name)
                        known.add(name)
                elif value is not None:
                    self.feature_types[name] = self._type_of(name, value)
                    self.untyped_features.pop(name, None)
                    changes.append((feature_rows[j], f"new feature '{name}'"))
                    known.add(name)
                else:
                    self.untyped_features[name] = None
        return changes

    def _wanted(self, name: str) -> bool:
        s = self.settings
        if name in s.ignore_features or (s.features is not None and name not in s.features):
            return False
        if len(name) > self.limits.max_category_length:
            return False
        monitored = len(self.feature_types) + len(self.untyped_features)
        if name not in self.untyped_features and monitored >= self.limits.max_features_per_model:
            self.feature_overflow += 1
            return False
        return True

    def _type_of(self, name: str, value: Any) -> SignalType:
        if name in self.settings.categorical or value.__class__ in (str, bool):
            return SignalType.categorical
        return SignalType.numeric

    def _feature_columns(
        self, maps: Sequence[Any], strict: bool = False, read: Rows = dict_rows
    ) -> list[tuple[str, SignalType, Sequence[Any] | np.ndarray]] | None:
        """(name, type, values) of every known feature over `maps` (dicts, or FeatureStructs read
        with `read=FeatureStruct.rows`), None where absent (`strict`: no columns at all, None, if any map
        lacks a name). Numeric features come as one float array each when the whole batch
        converts at once."""
        numeric = [n for n, t in self.feature_types.items() if t is SignalType.numeric]
        categorical = [n for n, t in self.feature_types.items() if t is SignalType.categorical]
        numeric_rows = rows_of(maps, numeric, strict, read) if numeric else []
        categorical_rows = rows_of(maps, categorical, strict, read) if categorical else []
        if numeric_rows is None or categorical_rows is None:
            return None
        columns: list[tuple[str, SignalType, Sequence[Any] | np.ndarray]] = []
        if numeric:
            rows = numeric_rows
            try:
                if not _numbers_only(rows[::TYPE_SAMPLE_EVERY], len(numeric)):
                    raise TypeError  # text or booleans, which np.fromiter would take as numbers
                flat = chain.from_iterable(rows) if len(numeric) > 1 else rows
                matrix = np.fromiter(
                    flat, dtype=np.float64, count=len(maps) * len(numeric)
                ).reshape(len(maps), len(numeric))
                columns += [
                    (name, SignalType.numeric, matrix[:, j]) for j, name in enumerate(numeric)
                ]
            except (TypeError, ValueError):  # a value of another type somewhere: column by column
                columns += [
                    (name, SignalType.numeric, column)
                    for name, column in zip(numeric, transpose(rows, len(numeric)))
                ]
        if categorical:
            columns += [
                (name, SignalType.categorical, column)
                for name, column in zip(categorical, transpose(categorical_rows, len(categorical)))
            ]
        return columns

    def _column(
        self, column: Sequence[Any] | np.ndarray, signal_type: SignalType
    ) -> tuple[np.ndarray | list[str], np.ndarray, list[int]]:
        """Values, missing mask and rows whose value has the wrong type (counted as missing)."""
        if signal_type is SignalType.numeric:
            if isinstance(column, np.ndarray):
                return column, np.isnan(column), []
            if set(map(type, column)) <= NUMBERS_OR_NONE:
                values = np.array(column, dtype=np.float64)  # None is NaN
                return values, np.isnan(values), []
            mismatched = [
                j for j, v in enumerate(column) if v is not None and v.__class__ not in NUMBER_TYPES
            ]
            values = np.array(
                [v if v.__class__ in NUMBER_TYPES else None for v in column], dtype=np.float64
            )
            return values, np.isnan(values), mismatched
        limit = self.limits.max_category_length
        if (
            set(map(type, column)) == {str} and max(map(len, column)) <= limit
        ):  # the usual case, in C
            return list(column), np.zeros(len(column), dtype=bool), []
        missing = np.fromiter((v is None for v in column), dtype=bool, count=len(column))
        return [category(v, limit) if v is not None else "" for v in column], missing, []

    def _prediction_type(self, events: Sequence[Event]) -> SignalType | None:
        known = next(
            (v.signals[VALUE] for v in self.versions.live.values() if VALUE in v.signals), None
        )
        if known is not None:
            return known.signal_type
        task = self.settings.task
        if task != "auto":
            return SignalType.numeric if task == "regression" else SignalType.categorical
        first = next((e.prediction for e in events if e.prediction is not None), None)
        if first is None:
            return None
        return SignalType.numeric if first.__class__ is float else SignalType.categorical

    def _is_classifier(self, events: Sequence[Event]) -> bool | None:
        """Whether predictions are classes (None: not known yet)."""
        prediction_type = self._prediction_type(events)
        return None if prediction_type is None else prediction_type is SignalType.categorical

    def _output(self, events: Sequence[Event], field: str, signal_type: SignalType) -> Columns:
        """The column of an output field over the events that carry it (numbers only, if numeric:
        e.g. a string prediction of a regression model is skipped)."""
        raw = list(map(attrgetter(field), events))
        if signal_type is SignalType.numeric:
            return number_columns(raw)
        rows = [i for i, v in enumerate(raw) if v is not None]
        limit = self.limits.max_category_length
        return Columns(np.asarray(rows, dtype=np.int64), [category(raw[i], limit) for i in rows])

    # -- alerts -------------------------------------------------------------------------

    def _alert(self, found: Found, event: Event) -> Alert:
        monitor, signal_type, transition = found.monitor, found.signal_type, found.transition
        evidence = {"signal_kind": signal_type, **transition.evidence}  # its key in the contract
        if monitor == ERROR and signal_type == SignalType.rate.value:
            evidence["accuracy"] = accuracy_view(transition.evidence)
        return Alert(
            kind=transition.kind,
            model=self.name,
            version=found.owner.name if found.owner is not None else event.version or self.version,
            monitor=monitor,
            statistic=transition.statistic,
            detector=transition.detector,
            severity=severity(transition),
            observations=transition.observations,
            evidence=evidence,
            topic=self.topics[int(event.source)],
            partition=event.partition,
            offset=event.offset,
            event_time_ms=event.ts_ms,
            owner=self.settings.owner,
            runbook_url=self.settings.runbook_url,
            reason=transition.reason,
            estimated_start=self._estimated_start(transition, event),
        )

    def _deployed(self, deployment: Deployment, event: Event) -> ModelEvent:
        data = {"previous_version": deployment.previous_version, "rollback": deployment.rollback}
        return self._model_event(
            DEPLOYED, deployment.version, "model.version", deployment.version, data, event
        )

    def _compared(self, compared: Compared, event: Event) -> ModelEvent:
        test = "two-proportion z-test" if compared.statistic == "accuracy" else "Welch z-test"
        data = {
            "versions": list(compared.versions),
            "statistic": compared.statistic,
            "values": list(compared.values),
            "counts": list(compared.counts),
            "worse": compared.worse,
            "significance": {
                "test": test,
                "p": compared.p,
                "adjusted_p": compared.adjusted,
                "alpha": self.versions.alpha,
            },
            "window": {
                "predictions": self.versions.compare_events,
                "end_prediction": compared.window_end,
            },
        }
        about = f"version.{compared.statistic}"
        return self._model_event(
            COMPARED, compared.worse, about, list(compared.versions), data, event
        )

    def _retrain_event(self, decision: Decision, event: Event) -> ModelEvent:
        data = {**decision.data, "runbook_url": self.settings.runbook_url}
        about = "retrain" if decision.type == RECOMMENDED else "retrain.outcome"
        return self._model_event(
            decision.type, decision.version, about, decision.detail, data, event
        )

    def _model_event(
        self,
        event_type: str,
        version: str | None,
        about: str,
        detail: Any,
        data: dict[str, Any],
        event: Event,
    ) -> ModelEvent:
        """An event about this model decided at input `event`; `detail` (as JSON) stands in its
        id for an alert's detector."""
        return ModelEvent(
            type=event_type,
            model=self.name,
            version=version,
            about=about,
            detail=orjson.dumps(detail).decode(),
            data=data,
            topic=self.topics[int(event.source)],
            partition=event.partition,
            offset=event.offset,
            event_time_ms=event.ts_ms,
            owner=self.settings.owner,
        )

    def _estimated_start(self, transition: Transition, event: Event) -> dict[str, Any] | None:
        """Where a detected change began; a detector that gives no estimate (river's binary
        ones, the rule and rate monitors) points at the alert's own event (`estimated` false)."""
        if transition.kind != "detected":
            return None
        start = transition.estimated_start
        topic, offset, time_ms, clipped = (
            (start.topic, start.offset, start.time_ms, start.clipped)
            if start is not None
            else (self.topics[int(event.source)], event.offset, float(event.ts_ms), False)
        )
        return {
            "topic": topic,
            "partition": event.partition,
            "offset": offset,
            "time": rfc3339(int(time_ms)) if math.isfinite(time_ms) else None,
            "clipped": clipped,
            "estimated": start is not None,
        }

    # -- checkpoint state ---------------------------------------------------------------

    def config_fingerprint(self) -> str:
        """Identifies the detection parameters; state learned under others is not reused."""
        return hashlib.sha256(repr(self.config).encode()).hexdigest()[:16]

    def to_state(self) -> dict[str, Any]:
        return {
            "state_schema": STATE_SCHEMA,
            "libraries": dict(STATE_LIBRARIES),
            "config": self.config_fingerprint(),
            "version": self.version,
            "events_seen": self.events_seen,
            "last_seen_ms": self.last_seen_ms,
            "feature_kinds": {name: t.value for name, t in self.feature_types.items()},
            "skipped_features": sorted(self.skipped_features),
            "untyped_features": list(self.untyped_features),
            "mistyped_features": sorted(self.mistyped_features),
            "feature_overflow": self.feature_overflow,
            "signals": {name: signal.to_state() for name, signal in self.signals.items()},
            "schema": self.schema.to_state(),
            "traffic": self.traffic.to_state() if self.traffic is not None else None,
            "performance": self.performance.to_state(),
            "versions": self.versions.to_state(),
            "retrain": self.retrain.to_state() if self.retrain is not None else None,
        }

    def state_mismatch(self, state: dict[str, Any]) -> Relearn | None:
        """Why `state` must not be loaded into this monitor (None: it may): written under
        another state schema or library version, or learned under other detection settings.
        A state without a schema is schema 0 (written before states carried one)."""
        schema = state.get("state_schema", 0)
        if schema != STATE_SCHEMA:
            return Relearn("schema", f"state schema {schema!r} -> {STATE_SCHEMA}")
        libraries = state["libraries"]
        for library, version in STATE_LIBRARIES.items():
            if libraries.get(library) != version:
                return Relearn(
                    "library", f"{library} {libraries.get(library, 'unknown')} -> {version}"
                )
        if state["config"] != self.config_fingerprint():
            return Relearn("settings", "learned under other detection settings")
        return None

    def load_state(self, state: dict[str, Any]) -> None:
        """Take over learned state that `state_mismatch` accepted. A malformed state raises
        (KeyError, TypeError, ValueError, ... or a panic of river's core) part way through:
        detector.core.state.restore_model contains that and discards the monitor."""
        self.version = state["version"]
        self.events_seen = int(state["events_seen"])
        self.last_seen_ms = int(state["last_seen_ms"])
        self.feature_types = {
            str(name): SignalType(value) for name, value in state["feature_kinds"].items()
        }
        self.skipped_features = {str(name) for name in state["skipped_features"]}
        self.untyped_features = dict.fromkeys(str(name) for name in state["untyped_features"])
        self.mistyped_features = {str(name) for name in state["mistyped_features"]}
        self.feature_overflow = int(state["feature_overflow"])
        self.signals = {
            str(name): SignalMonitor.from_state(str(name), self.config, signal)
            for name, signal in state["signals"].items()
        }
        self.schema.load_state(state["schema"])
        if self.traffic is not None and state["traffic"] is not None:
            self.traffic.load_state(state["traffic"])
        self.performance.load_state(state["performance"])
        self.versions.load_state(
            state["versions"],
            lambda name, signal: SignalMonitor.from_state(name, self.config, signal),
        )
        policy = state["retrain"]
        if self.retrain is not None and policy is not None:
            self.retrain.load_state(policy)

    # -- for metrics --------------------------------------------------------------------

    def every_signal(self) -> Iterator[tuple[str, str, SignalMonitor]]:
        """(scope, monitor, signal) of every signal: scope '' for the model's own, else
        'version:' and the JSON of the version's name for the output monitors of live versions."""
        for name, signal in self.signals.items():
            yield "", name, signal
        for version in self.versions.live.values():
            scope = "version:" + orjson.dumps(version.name).decode()
            for name, signal in version.signals.items():
                yield scope, name, signal

    def statistic_signals(self) -> dict[str, SignalMonitor]:
        """The signals whose recent statistics are exported: the model's, and the output
        monitors of the version of its newest prediction."""
        current = self.versions.live.get(self.versions.current)
        return self.signals | (current.signals if current is not None else {})

    def drifting_monitors(self) -> dict[str, bool]:
        """Per monitor, is a drift open (an output monitor's: of any live version)?"""
        states = {name: signal.drifting for name, signal in self.signals.items()}
        for version in self.versions.live.values():
            for name, signal in version.signals.items():
                states[name] = states.get(name, False) or signal.drifting
        states[SCHEMA] = self.schema.drifting
        if self.traffic is not None:
            states[TRAFFIC] = self.traffic.alerted
        return states


def is_model_failure(exc: BaseException) -> bool:
    """Is this one model's failure, to contain (any Exception, or a panic of river's Rust core,
    e.g. on ADWIN bytes it cannot read: pyo3's PanicException derives from BaseException and
    cannot be imported by name), rather than the process's (KeyboardInterrupt, SystemExit)?"""
    return isinstance(exc, Exception) or (
        type(exc).__name__ == "PanicException" and type(exc).__module__ == "pyo3_runtime"
    )


def accuracy_view(evidence: dict[str, Any]) -> dict[str, Any]:
    """The error-rate evidence of a classifier restated as accuracy."""
    view: dict[str, Any] = {}
    if "rate" in evidence.get("reference", {}):
        view["reference"] = 1.0 - evidence["reference"]["rate"]
    for side in ("before", "after"):
        window = evidence.get(side, {})
        if "rate" in window:
            view[side] = 1.0 - window["rate"]
            view[f"{side}_labelled_events"] = window["events"]
    return view


def changes_in(changes: list[tuple[int, str]], feature_rows: list[int]) -> list[tuple[int, str]]:
    """Schema changes re-indexed to positions among the feature-carrying rows."""
    if not changes:
        return []  # the usual case: no index of the rows to build
    position = {row: j for j, row in enumerate(feature_rows)}
    return sorted((position[row], text) for row, text in changes)


def severity(transition: Transition) -> str:
    if transition.kind == "resolved":
        return "info"
    before, after = transition.evidence.get("before", {}), transition.evidence.get("after", {})
    shared = [k for k in after if (k.startswith("pit_") or k == "rate") and k in before]
    effect = max((abs(after[k] - before[k]) for k in shared), default=0.0)
    return "critical" if effect >= CRITICAL_EFFECT else "warning"


def _numbers_only(rows: Sequence[Any], width: int) -> bool:
    """Are all these values (rows of `width` values, or single values) numbers?"""
    return set(map(type, chain.from_iterable(rows) if width > 1 else rows)) <= NUMBERS_OR_NONE


def rows_of(
    maps: Sequence[Any], names: list[str], strict: bool = False, read: Rows = dict_rows
) -> list[Any] | None:
    """Each map's values of `names` (a tuple, or the bare value for one name), None where absent
    (`strict`: None instead of any rows if a map lacks a name); in C when every map has every name.
    FeatureStructs are read with `read=FeatureStruct.rows` (an absent name is None there)."""
    try:
        return read(maps, names)
    except KeyError:
        if strict:
            return None
        if len(names) == 1:
            return [m.get(names[0]) for m in maps]
        return [tuple(m.get(n) for n in names) for m in maps]


def transpose(rows: list[Any], width: int) -> list[Sequence[Any]]:
    """Columns of rows as made by rows_of."""
    return [rows] if width == 1 else list(zip(*rows))


def _pick(values: np.ndarray | list[str], rows: np.ndarray) -> np.ndarray | list[str]:
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[j] for j in rows.tolist()]
