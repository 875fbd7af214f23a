"""The benchmark workload: prediction events of a model with numeric features of five families,
categorical features, a score, a predicted class and a latency (numpy, seeded), and those
events pre-serialized as confluent-kafka messages for the pure pipeline.

The standard model (`standard_features()`) has 20 numeric features, four of each family with
different scales, and 3 categorical features of 3, 8 and 50 categories; two numeric features
are missing (null) in 2% of events. Events are 1 ms of event time apart. With ids, a share of the
predictions can get a label event 1-10 s of event time later (`Workload.labels`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from bench.families import Categorical, Family, Numeric

START_MS = 1_764_064_800_000
MISSING_RATE = 0.02
MISSING_FEATURES = (1, 6)  # positions of the two numeric features with missing values
DECIMALS = 4  # numbers are sent with this many decimals, as an inference service would log them

_NUMERIC_TEMPLATES = (
    Numeric("normal", 100.0, 15.0),
    Numeric("lognormal", 3.0, 0.8),
    Numeric("student_t2", 0.0, 1.0),
    Numeric("poisson", 4.0),
    Numeric("bimodal", 10.0, 1.0),
)
_CATEGORY_SIZES = (3, 8, 50)
LABEL_DELAY_MS = (1_000, 10_000)  # a label comes this long after its prediction (event time)


def features(numeric: int, categorical: int) -> dict[str, Family]:
    """Feature name → family: numeric features cycle through the five families (scaled by
    10**(i // 5) so that scales differ), categorical ones through 3, 8 and 50 categories."""
    out: dict[str, Family] = {}
    for i in range(numeric):
        template = _NUMERIC_TEMPLATES[i % len(_NUMERIC_TEMPLATES)]
        out[f"n{i}"] = _scaled(template, 10.0 ** (i // len(_NUMERIC_TEMPLATES)))
    for j in range(categorical):
        out[f"c{j}"] = Categorical(f"c{j}", _CATEGORY_SIZES[j % len(_CATEGORY_SIZES)])
    return out


def _scaled(family: Numeric, factor: float) -> Numeric:
    """The family with values `factor` times larger; counts stay counts."""
    if family.name == "poisson":
        return family
    if family.name == "lognormal":
        return Numeric("lognormal", family.location + math.log(factor), family.scale)
    return Numeric(family.name, family.location * factor, family.scale * factor)


def standard_features() -> dict[str, Family]:
    """The issue's workload: 20 numeric features and 3 categorical ones."""
    return features(20, 3)


@dataclass(frozen=True)
class Workload:
    """Prediction events of one model with the given features."""

    features: dict[str, Family]
    model: str = "model-0"
    seed: int = 1
    shift: tuple[str, int, float] | None = None  # (feature, first event index, shift in sd)
    outputs: bool = True  # events carry score, prediction and latency
    ids: bool = True  # events carry an id (so predictions wait in the label join for their label)
    labelled: float = 0.0  # share of the predictions (with ids) that get a label event

    def arrays(self, start: int, n: int) -> dict[str, np.ndarray]:
        """Feature columns of events start..start+n: numbers rounded to DECIMALS (NaN = missing),
        categories as strings. The same (seed, start) gives the same values."""
        rng = np.random.default_rng([self.seed, start])
        index = np.arange(start, start + n)
        cols: dict[str, np.ndarray] = {}
        for position, (name, family) in enumerate(self.features.items()):
            values = np.asarray(family.draw(rng, n))
            if self.shift is not None and self.shift[0] == name:
                values = np.where(
                    index >= self.shift[1],
                    np.asarray(family.draw(rng, n, shift=self.shift[2])),
                    values,
                )
            if isinstance(family, Numeric):
                values = np.round(values, DECIMALS)
                if position in MISSING_FEATURES:
                    values[rng.random(n) < MISSING_RATE] = np.nan
            cols[name] = values
        return cols

    def events(self, start: int, n: int) -> Iterator[dict]:
        """Event dicts in the contract's format; with `outputs`, score, prediction and latency too."""
        names = list(self.features)
        arrays = self.arrays(start, n)
        feature_rows = zip(*(_json_values(arrays[name], self.features[name]) for name in names))
        rng = np.random.default_rng([self.seed, start, 1])
        score = rng.beta(2.0, 5.0, n)
        outputs = zip(
            np.round(score, DECIMALS).tolist(),
            (score >= 0.5).astype(np.int64).tolist(),
            np.round(rng.lognormal(2.5, 0.3, n), 2).tolist(),
        )
        for i, row, (score_i, prediction, latency) in zip(
            range(start, start + n), feature_rows, outputs
        ):
            event: dict = {"model": self.model}
            if self.ids:
                event["id"] = f"req-{i}"
            event.update(ts=START_MS + i, features=dict(zip(names, row)))
            if self.outputs:
                event.update(prediction=prediction, score=score_i, latency_ms=latency)
            yield event

    def labels(self, start: int, predictions: Sequence[dict]) -> list[dict]:
        """Label events of a `labelled` share of `predictions` (events start.. of `events`), in their
        order: each LABEL_DELAY_MS after its prediction, the class 1 drawn with the prediction's score
        as its probability (a calibrated model)."""
        if not self.labelled:
            return []
        rng = np.random.default_rng([self.seed, start, 2])
        n = len(predictions)
        chosen = (rng.random(n) < self.labelled).tolist()
        delays = rng.integers(*LABEL_DELAY_MS, n).tolist()
        draws = rng.random(n).tolist()
        return [
            {
                "model": p["model"],
                "id": p["id"],
                "ts": p["ts"] + delay,
                "label": int(draw < p["score"]),
            }
            for p, kept, delay, draw in zip(predictions, chosen, delays, draws)
            if kept
        ]

    def records(self, start: int, n: int) -> list[tuple[bytes, bytes]]:
        """The same events as Kafka records: (key = model name, value = orjson-serialized event)."""
        return [(event["model"].encode(), orjson.dumps(event)) for event in self.events(start, n)]


def _json_values(values: np.ndarray, family: Family) -> list:
    """Counts as ints, NaN as None (null), categories as they are."""
    if isinstance(family, Categorical):
        return values.tolist()
    missing = np.isnan(values)
    numbers = (
        values.astype(np.int64).tolist()
        if family.name == "poisson" and not missing.any()
        else values.tolist()
    )
    return (
        [None if m else v for v, m in zip(numbers, missing.tolist())] if missing.any() else numbers
    )


def messages(
    records: list[tuple[bytes, bytes]], topic: str, first_offset: int = 0
) -> list[Message]:
    """Records as confluent-kafka messages on partition 0 of `topic`, at consecutive offsets
    (timestamps: the events' own, START_MS + offset)."""
    return [
        Message(
            topic=topic,
            partition=0,
            offset=offset,
            key=key,
            value=value,
            timestamp=(TIMESTAMP_CREATE_TIME, START_MS + offset),
        )
        for offset, (key, value) in enumerate(records, start=first_offset)
    ]
