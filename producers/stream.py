"""The event stream of one model, shared by the simulator and the dataset replay (pure; no I/O).

Events are generated in fixed blocks of `BLOCK` positions, each from random generators seeded by
(seed, block number, stream): the same seed gives the same events however the caller chunks
its requests, and an injection's randomness never disturbs the base stream. Per block:

1. draw features (and whatever else the source needs) for the block's positions;
2. apply the covariate and schema injections to the features;
3. let the model score them, and draw each event's true label;
4. prior shift: redraw events until they have the wanted class (rejection sampling, so the
   inputs given the class keep their distribution);
5. concept drift changes labels; latency creep changes latency;
6. deployments: from a `Deployment`'s start, a share of events is served by its version, whose
   scores may differ (`deployed_probabilities`); the labels do not depend on the version;
7. build the contract's prediction events and label events (`{"model","id","ts","label"}`,
   time-stamped `label_delay_ms` after their prediction).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from producers.scenarios import (
    CATEGORICAL,
    CLASS,
    COVARIATE,
    FEATURE,
    NONE,
    NUMERIC,
    SCHEMA,
    Deployment,
    Injection,
    Reference,
    change_concept,
    creep_latency,
    deployed_probabilities,
    renamed,
    shift_categorical,
    shift_numeric,
    slowed,
)

BLOCK = 1000
START_MS = 1_764_064_800_000  # 2025-11-25T10:00:00Z: a fixed start keeps runs reproducible
MAX_REDRAWS = 1000
OUTPUT_EFFECTS = (
    "prediction.score",
    "prediction.value",
    "performance.estimated",
    "performance.error",
)
# random streams per block (features; latency and label coverage); injection k uses 2 + k
BASE, SERVING = 0, 1


@dataclass(frozen=True)
class FeatureSpec:
    """A feature: categorical when it has categories (its column holds codes, -1 = missing),
    else numeric (NaN = missing), written with `decimals` digits (0: an integer; None: as is)."""

    name: str
    categories: tuple[str, ...] = ()
    decimals: int | None = None


@dataclass
class Draw:
    """Columns for some positions: features, plus source-specific hidden columns."""

    index: np.ndarray
    features: dict[str, np.ndarray]
    hidden: dict[str, np.ndarray] = field(default_factory=dict)
    # original values of renamed features
    renamed: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Block:
    """BLOCK consecutive events as columns; `probabilities` is (n, classes)."""

    index: np.ndarray
    features: dict[str, np.ndarray]
    renamed: dict[str, np.ndarray]  # original values of renamed features
    probabilities: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray
    latency_ms: np.ndarray
    served: np.ndarray  # per event, the index of the deployment serving it (-1: `version`)


@dataclass(frozen=True)
class Batch:
    """Prediction events, and the label events that became due while they were produced."""

    predictions: list[dict[str, Any]]
    labels: list[dict[str, Any]]


@dataclass
class EventStream(ABC):
    """Prediction and label events of one model, with injected drifts; `events(n)` or `batch(n)`
    give the next n predictions. Subclasses define the features, classes and model."""

    model: str = ""
    seed: int = 0
    injections: tuple[Injection, ...] = ()
    version: str = "1"
    deployments: tuple[Deployment, ...] = ()
    start_ms: int = START_MS
    interval_ms: int = 10  # event time between predictions
    label_delay_ms: int = 60_000  # event time from a prediction to its label
    label_coverage: float = 1.0  # share of predictions that ever get a label
    # Below 1, the model is over-confident: it reports its class probabilities sharpened,
    # p ** (1 / T) renormalised (for a binary score, sigmoid(log-odds / T)); labels are still
    # drawn from the true probabilities. Above 1, under-confident.
    score_temperature: float = 1.0
    base_latency_ms: float = 12.0
    produced: int = field(default=0, init=False)

    features: tuple[FeatureSpec, ...] = field(default=(), init=False)
    classes: tuple[Any, ...] = field(default=(), init=False)
    # features the model's score depends on
    model_inputs: tuple[str, ...] = field(default=(), init=False)
    reference: dict[str, Reference] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.score_temperature <= 0:
            raise ValueError("score_temperature must be > 0")
        self._setup()
        self.injections = tuple(self._checked(i) for i in self.injections)
        self._block: Block | None = None
        self._pending: deque[tuple[int, int, int]] = deque()  # (due ts, position, label code)

    # -- the public interface -----------------------------------------------------------

    def events(self, n: int) -> list[dict[str, Any]]:
        """The next n prediction events (without their labels: use `batch` for those)."""
        return [event for block, rows in self._take(n) for event in self._predictions(block, rows)]

    def batch(self, n: int) -> Batch:
        """The next n prediction events, and the label events due by the last one's time."""
        predictions: list[dict[str, Any]] = []
        for block, rows in self._take(n):
            predictions += self._predictions(block, rows)
            self._queue_labels(block, rows)
        now = predictions[-1]["ts"] if predictions else self.start_ms
        return Batch(predictions, self._release(lambda due: due <= now))

    def drain(self) -> list[dict[str, Any]]:
        """The label events still waiting for their time, at the end of a run."""
        return self._release(lambda due: True)

    def ground_truth(self) -> list[dict[str, Any]]:
        """What was injected where, which monitor should notice, and which may react too."""
        return [
            {
                **asdict(i),
                "model": self.model,
                "monitor": i.monitor,
                "end": i.end,
                "side_effects": self._side_effects(i),
            }
            for i in self.injections
        ]

    def deployment_truth(self) -> list[dict[str, Any]]:
        """The versions deployed where: each one's first event and what it changes."""
        return [{**asdict(d), "model": self.model} for d in self.deployments]

    # -- what a source defines ----------------------------------------------------------

    @abstractmethod
    def _setup(self) -> None:
        """Set features, classes, model_inputs, reference (and a default model name)."""

    @abstractmethod
    def _draw(self, index: np.ndarray, rng: np.random.Generator) -> Draw:
        """Undrifted features for these positions."""

    @abstractmethod
    def _redraw(self, index: np.ndarray, rng: np.random.Generator) -> Draw:
        """Fresh random candidates for these positions (for rejection sampling)."""

    @abstractmethod
    def _probabilities(self, draw: Draw) -> np.ndarray:
        """The model's class probabilities, (n, classes), from possibly drifted features."""

    @abstractmethod
    def _labels(self, draw: Draw, probabilities: np.ndarray) -> np.ndarray:
        """The true class code of each event."""

    def _times(self, index: np.ndarray) -> np.ndarray:
        """Event times (epoch ms, int64) of these positions, rate drops included."""
        at = index.astype(np.float64)
        for injection in self.injections:
            if injection.scenario == "rate_drop":
                at = slowed(injection, at)
        return self._clock(at)

    def _clock(self, at: np.ndarray) -> np.ndarray:
        """Event times (epoch ms, int64) of positions in time `at`: evenly spaced by default."""
        return np.rint(self.start_ms + at * self.interval_ms).astype(np.int64)

    def _load(self, index: np.ndarray) -> np.ndarray | float:
        """Latency relative to `base_latency_ms` at these positions (serving load): constant
        by default."""
        return 1.0

    # -- generation ---------------------------------------------------------------------

    def _take(self, n: int) -> list[tuple[Block, slice]]:
        parts = []
        end = self.produced + n
        while self.produced < end:
            number, offset = divmod(self.produced, BLOCK)
            block = self._block
            if block is None or block.index[0] != number * BLOCK:
                block = self._block = self._generate(number)
            stop = min(BLOCK, offset + end - self.produced)
            parts.append((block, slice(offset, stop)))
            self.produced += stop - offset
        return parts

    def _rngs(self, number: int) -> list[np.random.Generator]:
        return [
            np.random.default_rng([self.seed, number, stream])
            for stream in range(2 + len(self.injections) + len(self.deployments))
        ]

    def _generate(self, number: int) -> Block:
        index = np.arange(number * BLOCK, (number + 1) * BLOCK)
        rngs = self._rngs(number)
        draw = self._draw(index, rngs[BASE])
        self._drift_inputs(draw, rngs)
        probabilities = self._probabilities(draw)
        labels = self._labels(draw, probabilities)
        for k, injection in enumerate(self.injections):
            if injection.scenario == "prior_shift":
                self._prior_shift(injection, draw, probabilities, labels, rngs, rngs[2 + k])
        latency = rngs[SERVING].lognormal(np.log(self.base_latency_ms), 0.25, BLOCK)
        latency *= self._load(index)
        labelled = rngs[SERVING].random(BLOCK) < self.label_coverage
        concept = labels
        for k, injection in enumerate(self.injections):
            if injection.scenario == "concept_drift":
                labels = change_concept(injection, labels, index, len(self.classes), rngs[2 + k])
            elif injection.scenario == "latency_creep":
                latency = creep_latency(injection, latency, index)
        served = np.full(BLOCK, -1, dtype=np.int64)
        for k, deployment in enumerate(self.deployments):
            rng = rngs[2 + len(self.injections) + k]
            serves = (index >= deployment.start) & (rng.random(BLOCK) < deployment.share)
            if serves.any():
                served[serves] = k
                probabilities[serves] = deployed_probabilities(
                    deployment, probabilities[serves], concept[serves], labels[serves], rng
                )
        return Block(
            index, draw.features, draw.renamed, probabilities, labels, labelled, latency, served
        )

    def _drift_inputs(self, draw: Draw, rngs: list[np.random.Generator]) -> None:
        """Apply covariate and schema injections to the features in place. A renamed feature's
        values are kept aside: the model no longer finds them, the events carry them renamed."""
        specs = {spec.name: spec for spec in self.features}
        for k, injection in enumerate(self.injections):
            column = draw.features.get(injection.target)
            if column is None or injection.scenario not in COVARIATE + SCHEMA:
                continue
            if injection.scenario in SCHEMA:
                if injection.scenario == "field_rename":
                    draw.renamed[injection.target] = column.copy()
                gone = injection.active(draw.index)
                column[gone] = -1 if specs[injection.target].categories else np.nan
            elif specs[injection.target].categories:
                shift_categorical(
                    injection,
                    column,
                    draw.index,
                    len(specs[injection.target].categories),
                    rngs[2 + k],
                )
            else:
                shift_numeric(
                    injection, column, draw.index, self.reference[injection.target], rngs[2 + k]
                )

    def _prior_shift(
        self,
        injection: Injection,
        draw: Draw,
        probabilities: np.ndarray,
        labels: np.ndarray,
        rngs: list[np.random.Generator],
        rng: np.random.Generator,
    ) -> None:
        """Replace events until each active one has the wanted class: the target class with
        probability magnitude, another class otherwise."""
        active = injection.active(draw.index)
        if not active.any():
            return
        target = self._class_code(injection.target)
        want_target = rng.random(len(draw.index)) < injection.magnitude
        todo = np.flatnonzero(active & ((labels == target) != want_target))
        for _ in range(MAX_REDRAWS):
            if not len(todo):
                return
            candidates = self._redraw(draw.index[todo], rng)
            self._drift_inputs(candidates, rngs)
            candidate_p = self._probabilities(candidates)
            candidate_labels = self._labels(candidates, candidate_p)
            fits = (candidate_labels == target) == want_target[todo]
            rows = todo[fits]
            for columns, fresh in (
                (draw.features, candidates.features),
                (draw.renamed, candidates.renamed),
            ):
                for name, column in columns.items():
                    column[rows] = fresh[name][fits]
            probabilities[rows] = candidate_p[fits]
            labels[rows] = candidate_labels[fits]
            todo = todo[~fits]
        raise ValueError(
            f"prior_shift: could not find events of the wanted class for {len(todo)} positions"
        )

    # -- events -------------------------------------------------------------------------

    def _predictions(self, block: Block, rows: slice) -> list[dict[str, Any]]:
        index = block.index[rows].tolist()
        features = self._feature_dicts(block, rows)
        probabilities = sharpened(block.probabilities[rows], self.score_temperature)
        predicted = probabilities.argmax(axis=1).tolist()
        binary = len(self.classes) == 2
        scores = np.round(probabilities[:, 1] if binary else probabilities, 5).tolist()
        latency = np.round(block.latency_ms[rows], 3).tolist()
        times = self._times(block.index[rows]).tolist()
        versions = [self.version, *(d.version for d in self.deployments)]
        served = (block.served[rows] + 1).tolist()
        events = []
        for i, ts, x, code, score, ms, by in zip(
            index, times, features, predicted, scores, latency, served
        ):
            events.append(
                {
                    "model": self.model,
                    "version": versions[by],
                    "id": f"{self.model}-{i}",
                    "ts": ts,
                    "features": x,
                    "prediction": self.classes[code],
                    "score": score if binary else dict(zip(self.class_names, score)),
                    "latency_ms": ms,
                }
            )
        return events

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.classes]

    def _feature_dicts(self, block: Block, rows: slice) -> list[dict[str, Any]]:
        columns = {
            spec.name: _values(spec, block.features[spec.name][rows]) for spec in self.features
        }
        dicts = [dict(zip(columns, values)) for values in zip(*columns.values())]
        index = block.index[rows]
        for injection in self.injections:
            if injection.scenario not in SCHEMA:
                continue
            spec = next(s for s in self.features if s.name == injection.target)
            original = (
                _values(spec, block.renamed[spec.name][rows])
                if injection.scenario == "field_rename"
                else None
            )
            for row in np.flatnonzero(injection.active(index)).tolist():
                del dicts[row][spec.name]
                if original is not None:
                    dicts[row][renamed(spec.name)] = original[row]
        return dicts

    def _queue_labels(self, block: Block, rows: slice) -> None:
        index = block.index[rows]
        keep = block.labelled[rows]
        due = self._times(index[keep]) + self.label_delay_ms
        self._pending.extend(
            zip(due.tolist(), index[keep].tolist(), block.labels[rows][keep].tolist())
        )

    def _release(self, is_due: Callable[[int], bool]) -> list[dict[str, Any]]:
        released = []
        while self._pending and is_due(self._pending[0][0]):
            due, position, code = self._pending.popleft()
            released.append(
                {
                    "model": self.model,
                    "id": f"{self.model}-{position}",
                    "ts": due,
                    "label": self.classes[code],
                }
            )
        return released

    # -- checks and ground truth ----------------------------------------------------------

    def _checked(self, injection: Injection) -> Injection:
        """The injection, its target validated against this stream (a default class filled in)."""
        wants = injection.kind.target
        specs = {spec.name: spec for spec in self.features}
        if wants == NONE and injection.target:
            raise ValueError(f"{injection.scenario} takes no target, not {injection.target!r}")
        if wants == CLASS:
            if not injection.target and len(self.classes) == 2:
                return replace(injection, target=self.class_names[1])
            self._class_code(injection.target)
            return injection
        if wants in (NUMERIC, CATEGORICAL, FEATURE):
            spec = specs.get(injection.target)
            kind = None if spec is None else CATEGORICAL if spec.categories else NUMERIC
            if kind is None or wants not in (kind, FEATURE):
                choices = [
                    s.name
                    for s in self.features
                    if wants in (FEATURE, CATEGORICAL if s.categories else NUMERIC)
                ]
                raise ValueError(
                    f"{injection.scenario} needs a {wants} of model '{self.model}' as target, not {injection.target!r}; "
                    f"choose from: {', '.join(choices) or '(none)'}"
                )
        return injection

    def _class_code(self, name: str) -> int:
        spellings = [{str(c), orjson.dumps(c).decode()} for c in self.classes]
        for code, names in enumerate(spellings):
            if name in names:
                return code
        raise ValueError(
            f"prior_shift needs a class of model '{self.model}' as target, not {name!r}; choose from: {', '.join(self.class_names)}"
        )

    def _side_effects(self, injection: Injection) -> list[str]:
        """Monitors that may also alert, as a consequence of the injection."""
        target = injection.target
        outputs = [*OUTPUT_EFFECTS, *(f"performance.recall.{name}" for name in self.class_names)]
        effects: list[str] = []
        if injection.scenario == "prior_shift":
            effects = [f"feature.{name}" for name in self.model_inputs] + outputs
        elif injection.scenario in COVARIATE + SCHEMA and target in self.model_inputs:
            effects = outputs
        elif injection.scenario == "concept_drift":
            effects = [f"performance.recall.{name}" for name in self.class_names]
        if injection.scenario == "field_rename":
            effects = [f"quality.missing.{target}", *effects]
        elif injection.scenario == "field_missing":
            effects = ["quality.schema", *effects]
        return effects


def sharpened(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities (n, classes) raised to 1 / temperature and renormalised (the predicted
    class does not change)."""
    if temperature == 1.0:
        return probabilities
    powered = np.power(probabilities, 1.0 / temperature)
    return powered / powered.sum(axis=1, keepdims=True)


def _values(spec: FeatureSpec, column: np.ndarray) -> list[Any]:
    """A column as JSON-ready values: categories, ints or rounded floats; None when missing."""
    if spec.categories:
        return [spec.categories[c] if c >= 0 else None for c in column.tolist()]
    missing = np.isnan(column)
    if spec.decimals == 0:
        values = np.where(missing, 0, np.rint(column)).astype(np.int64).tolist()
    else:
        values = (column if spec.decimals is None else np.round(column, spec.decimals)).tolist()
    return [None if gone else v for v, gone in zip(values, missing.tolist())]
