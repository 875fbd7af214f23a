"""Real data as a model's event stream: datasets bundled inside the river package (files shipped
in the wheel, so nothing is downloaded), replayed with injectable drifts (pure; no I/O but
reading the bundled file).

The rows are replayed in passes, each pass a seeded shuffle of the whole dataset, for as many
events as asked. The model is river's logistic regression (one-vs-rest for more than two
classes) after a standard scaler, trained on one pass of the first rows and then frozen, as a
deployed model would be; its class probabilities are the events' scores. A label is the row's
true class. A covariate injection moves the inputs the model sees; the label stays the row's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import compose, datasets, linear_model, multiclass, preprocessing
from river.datasets.base import FileDataset

from producers.scenarios import Reference
from producers.stream import Draw, EventStream, FeatureSpec

TRAIN_ROWS = 5000
PERMUTATION_STREAM = 2**32 + 1  # seeds the pass shuffles apart from every block's streams


@dataclass(frozen=True)
class Dataset:
    loader: Callable[[], FileDataset]  # one of river's bundled dataset classes
    description: str


# Only river's bundled file datasets: no download at run time.
DATASETS = {
    "phishing": Dataset(datasets.Phishing, "web pages, phishing or not: 1,250 rows, 9 features"),
    "bananas": Dataset(datasets.Bananas, "two banana-shaped clusters: 5,300 rows, 2 features"),
    "shuttle": Dataset(
        datasets.Shuttle, "NASA shuttle sensor readings, anomaly or not: 49,097 rows, 9 features"
    ),
    "segment": Dataset(datasets.ImageSegments, "image regions, 7 classes: 2,310 rows, 18 features"),
}


@dataclass
class Table:
    """A dataset as columns."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray  # class codes
    classes: tuple[Any, ...]
    rows: list[dict[str, Any]]  # the original feature dicts, for the model

    @property
    def size(self) -> int:
        return len(self.labels)


def load(name: str) -> Table:
    """Read a bundled dataset into columns."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    rows, targets = zip(*DATASETS[name].loader())
    classes = tuple(sorted(set(targets)))
    codes = {value: code for code, value in enumerate(classes)}
    names = list(rows[0])
    columns = {
        n: np.array([np.nan if r.get(n) is None else float(r[n]) for r in rows]) for n in names
    }
    return Table(columns, np.array([codes[t] for t in targets]), classes, list(rows))


@dataclass
class Replay(EventStream):
    """Events of a model serving one of `DATASETS`; `dataset` names it (and the model, by default)."""

    dataset: str = "phishing"
    base_latency_ms: float = 8.0
    table: Table = field(init=False, repr=False)
    estimator: compose.Pipeline = field(init=False, repr=False)

    def _setup(self) -> None:
        self.table = table = load(self.dataset)
        self.model = self.model or self.dataset
        self.features = tuple(
            FeatureSpec(name, decimals=0 if np.all(np.isnan(c) | (c == np.round(c))) else None)
            for name, c in table.columns.items()
        )
        self.classes = table.classes
        self.model_inputs = tuple(table.columns)
        self.reference = {
            name: Reference(float(np.nanmedian(c)), float(np.nanstd(c)))
            for name, c in table.columns.items()
        }
        self.estimator = self._train()
        # probabilities of unchanged rows
        self._cached = np.full((table.size, len(self.classes)), np.nan)

    def _train(self) -> compose.Pipeline:
        classifier = linear_model.LogisticRegression()
        estimator = preprocessing.StandardScaler() | (
            classifier if len(self.classes) == 2 else multiclass.OneVsRestClassifier(classifier)
        )
        for row in self._pass(0)[:TRAIN_ROWS].tolist():
            estimator.learn_one(self.table.rows[row], self.table.classes[self.table.labels[row]])
        return estimator

    def _pass(self, number: int) -> np.ndarray:
        return np.random.default_rng([self.seed, PERMUTATION_STREAM, number]).permutation(
            self.table.size
        )

    def _draw(self, index: np.ndarray, rng: np.random.Generator) -> Draw:
        passes, within = np.divmod(index, self.table.size)
        rows = np.empty(len(index), dtype=np.int64)
        for number in np.unique(passes).tolist():
            here = passes == number
            rows[here] = self._pass(number)[within[here]]
        return self._rows(index, rows)

    def _redraw(self, index: np.ndarray, rng: np.random.Generator) -> Draw:
        return self._rows(index, rng.integers(0, self.table.size, len(index)))

    def _rows(self, index: np.ndarray, rows: np.ndarray) -> Draw:
        return Draw(
            index,
            {name: column[rows] for name, column in self.table.columns.items()},
            {"row": rows},
        )

    def _probabilities(self, draw: Draw) -> np.ndarray:
        rows = draw.hidden["row"]
        changed = np.zeros(len(rows), dtype=bool)
        for name, column in draw.features.items():
            original = self.table.columns[name][rows]
            changed |= ~((column == original) | (np.isnan(column) & np.isnan(original)))
        missing = np.isnan(self._cached[rows, 0]) & ~changed
        for row in np.unique(rows[missing]).tolist():
            self._cached[row] = self._predict(self.table.rows[row])
        probabilities = self._cached[rows]
        for i in np.flatnonzero(changed).tolist():
            x: dict[Hashable, Any] = {
                name: v
                for name, column in draw.features.items()
                if not np.isnan(v := float(column[i]))
            }
            probabilities[i] = self._predict(x)
        return probabilities

    def _predict(self, x: dict[Hashable, Any]) -> np.ndarray:
        probabilities = self.estimator.predict_proba_one(x)
        if len(self.classes) == 2:
            return np.array([probabilities.get(False, 0.0), probabilities.get(True, 0.0)])
        return np.array([probabilities.get(c, 0.0) for c in self.classes])

    def _labels(self, draw: Draw, probabilities: np.ndarray) -> np.ndarray:
        return self.table.labels[draw.hidden["row"]]
