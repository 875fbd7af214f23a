"""Estimated accuracy before the labels come, for an over-confident model under covariate shift:
streamdrift's estimate (calibrated from the labels that did come, and the mean confidence it
used to report) beside NannyML's CBPE on the same predictions.

The simulated fraud model (producers.simulate) reports over-confident scores: its true
probabilities sharpened with temperature TEMPERATURE (log-odds / 0.4), labels drawn from the
true ones. A share LABELLED of the predictions get their label, LABEL_DELAY_MS of event time
later (6,000 predictions at 100 a second). From the middle prediction on, `amount` is shifted by
+SHIFT_SD reference standard deviations (covariate shift): the scores move towards the decision
boundary and the realised accuracy drops from about 84% to 68%. Ground truth is known for every
prediction, labelled or not.

* streamdrift: predictions and the labels due by then through the core (`Pipeline.process`),
  a window of predictions a batch. After each window, `streamdrift_estimated_accuracy` (and
  `streamdrift_mean_confidence`, the estimate before this change) is compared with the realised
  accuracy of the same predictions weighted the same way (decayed over resolve_window_events).
* NannyML CBPE (optional peers environment, as `python -m bench peers`): fitted on the labelled
  predictions of the first REFERENCE_SHARE of the stream (its reference), then estimating
  accuracy per chunk of a window's size; compared with each chunk's realised accuracy.
Errors are taken over the windows after the reference part (the same predictions for both).
streamdrift starts from nothing: its first label comes 6,000 predictions in, and with the default
limits.pending_labels_before_first (1,000) only the first 1,000 predictions wait for theirs, so
its calibration has its 1,000 labels (detection.warmup_events) at about prediction 15,000, before
the first measured window.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from bench.peers import peer_python
from bench.report import progress, table
from detector.core.monitors.decay import DecayedMean
from detector.core.pipeline import Pipeline
from detector.settings import Settings, load_settings
from producers.simulate import Injection, Simulator

TEMPERATURE = 0.4
LABELLED = 0.3
LABEL_DELAY_MS = 60_000
SHIFT_SD = 2.0
REFERENCE_SHARE = 1 / 3
SEEDS = (1, 2, 3)


@dataclass(frozen=True)
class Sizes:
    predictions: int
    window: int


FULL = Sizes(predictions=60_000, window=2000)
QUICK = Sizes(predictions=24_000, window=1000)  # the calibration is ready from about 15,000


@dataclass
class Stream:
    """One seed's simulated traffic, a window of predictions at a time, with the ground truth."""

    windows: list[tuple[list[dict], list[dict]]]  # (predictions, labels due by the last one)
    score: np.ndarray
    prediction: np.ndarray
    right: np.ndarray  # 1 where the prediction is right (known for every prediction)
    labelled: np.ndarray  # the prediction's label is sent


def simulate(seed: int, sizes: Sizes) -> Stream:
    simulator = Simulator(
        seed=seed,
        injections=(Injection("mean_shift", "amount", sizes.predictions // 2, SHIFT_SD),),
        score_temperature=TEMPERATURE,
        label_delay_ms=LABEL_DELAY_MS,
    )
    labelled = np.random.default_rng([seed, 7]).random(sizes.predictions) < LABELLED
    windows: list[tuple[list[dict], list[dict]]] = []
    truth: dict[str, int] = {}
    for _ in range(0, sizes.predictions, sizes.window):
        batch = simulator.batch(sizes.window)
        truth |= {label["id"]: label["label"] for label in batch.labels}
        windows.append((batch.predictions, [x for x in batch.labels if labelled[_position(x)]]))
    truth |= {label["id"]: label["label"] for label in simulator.drain()}
    predictions = [e for window, _ in windows for e in window]
    prediction = np.array([e["prediction"] for e in predictions])
    return Stream(
        windows,
        np.array([e["score"] for e in predictions]),
        prediction,
        (prediction == np.array([truth[e["id"]] for e in predictions])).astype(np.float64),
        labelled,
    )


def _position(event: dict) -> int:
    return int(event["id"].rsplit("-", 1)[1])


@dataclass
class Errors:
    """Estimate minus realised accuracy, per window after the reference part (in points)."""

    confidence: list[float] = field(default_factory=list)  # streamdrift, the mean confidence
    calibrated: list[float] = field(default_factory=list)  # streamdrift, calibrated
    cbpe: list[float] = field(default_factory=list)
    after_shift: list[bool] = field(default_factory=list)  # the window starts at or after it


def streamdrift(stream: Stream, sizes: Sizes, settings: Settings, errors: Errors) -> None:
    """The core over the stream, a window a batch; the gauges against the realised accuracy."""
    pipeline, offsets = Pipeline(settings), {"predictions": 0, "labels": 0}
    realised = DecayedMean(1.0 - 1.0 / settings.detection.resolve_window_events)
    for number, (predictions, labels) in enumerate(stream.windows):
        timeline = sorted(
            [("predictions", e) for e in predictions] + [("labels", e) for e in labels],
            key=lambda item: item[1]["ts"],
        )
        pipeline.process([_message(topic, event, offsets) for topic, event in timeline])
        start = number * sizes.window
        realised.update(stream.right[start : start + sizes.window])
        if start >= _reference_end(sizes):
            gauges = next(iter(pipeline.models())).performance.summary()
            assert realised.value is not None
            errors.confidence.append(100 * (gauges["confidence"] - realised.value))
            errors.calibrated.append(100 * (gauges["estimated"] - realised.value))
            errors.after_shift.append(start >= sizes.predictions // 2)


def cbpe(stream: Stream, sizes: Sizes, python: Path, errors: Errors) -> str:
    """NannyML's CBPE on the same predictions: its version."""
    reference = slice(0, _reference_end(sizes))
    analysis = slice(_reference_end(sizes), sizes.predictions)
    kept = stream.labelled[reference]
    truth = np.where(stream.right == 1, stream.prediction, 1 - stream.prediction)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data.npz"
        np.savez(
            data,
            allow_pickle=False,
            **{
                "reference.score": stream.score[reference][kept],
                "reference.prediction": stream.prediction[reference][kept],
                "reference.label": truth[reference][kept],
                "analysis.score": stream.score[analysis],
                "analysis.prediction": stream.prediction[analysis],
            },
        )
        done = subprocess.run(
            [
                str(python),
                str(Path(__file__).with_name("peer_cbpe.py")),
                str(data),
                str(sizes.window),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(done.stdout)
    right = stream.right[analysis]
    for first, estimate in zip(result["chunk_starts"], result["accuracy"]):
        errors.cbpe.append(100 * (estimate - float(right[first : first + sizes.window].mean())))
    return str(result["version"])


def _reference_end(sizes: Sizes) -> int:
    return int(sizes.predictions * REFERENCE_SHARE) // sizes.window * sizes.window


def _message(topic: str, event: dict, offsets: dict[str, int]) -> Message:
    offsets[topic] += 1
    return Message(
        topic=topic,
        partition=0,
        offset=offsets[topic] - 1,
        key=event["model"].encode(),
        value=orjson.dumps(event),
        timestamp=(TIMESTAMP_CREATE_TIME, event["ts"]),
    )


def _summary(values: list[float], after: list[bool]) -> list[str]:
    """Mean absolute error over all windows, after the shift, and the largest (points)."""
    errors = np.abs(np.array(values))
    later = errors[np.array(after)]
    return [f"{errors.mean():.1f}", f"{later.mean():.1f}", f"{errors.max():.1f}"]


def run(quick: bool, venv: str, install: bool) -> str:
    sizes = QUICK if quick else FULL
    settings = load_settings(None)
    python, why_not = peer_python(Path(venv), install)
    errors, version, accuracy = Errors(), "", []
    for seed in SEEDS:
        progress(f"seed {seed}: simulating {sizes.predictions:,} predictions")
        stream = simulate(seed, sizes)
        half = sizes.predictions // 2
        accuracy.append((stream.right[:half].mean(), stream.right[half:].mean()))
        streamdrift(stream, sizes, settings, errors)
        if python is not None:
            progress(f"seed {seed}: NannyML CBPE")
            version = cbpe(stream, sizes, python, errors)
    rows = [
        [
            "streamdrift, mean confidence (the estimate before calibration)",
            *_summary(errors.confidence, errors.after_shift),
        ],
        [
            "streamdrift, calibrated from the labels that came",
            *_summary(errors.calibrated, errors.after_shift),
        ],
    ]
    if python is not None:
        rows.append(
            [
                f"NannyML {version} CBPE, fitted on the labelled reference",
                *_summary(errors.cbpe, errors.after_shift),
            ]
        )
    before, after = np.mean(accuracy, axis=0)
    note = (
        f"{len(SEEDS)} seeds × {sizes.predictions:,} predictions of the simulated fraud model, scores "
        f"over-confident (temperature {TEMPERATURE}), {LABELLED:.0%} labelled {LABEL_DELAY_MS // 1000} s "
        f"(6,000 predictions) later; `amount` +{SHIFT_SD} sd from prediction {sizes.predictions // 2:,}: "
        f"realised accuracy {before:.1%} before, {after:.1%} after. Windows of {sizes.window:,} "
        f"predictions after the first {_reference_end(sizes):,} (CBPE's reference): "
        f"{len(errors.calibrated)} windows."
        + (f" NannyML not run: {why_not}." if python is None else "")
    )
    return (
        note
        + "\n\n"
        + table(
            ["estimate", "mean abs. error (points)", "after the shift", "largest"],
            rows,
        )
    )
