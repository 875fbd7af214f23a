"""Estimated accuracy before labels, calibrated from the labels that came (pure)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import orjson

from detector.core.events import Event, InputTopic
from detector.core.monitors.decay import DecayedMean
from detector.core.monitors.model import ModelMonitor
from detector.core.monitors.score_calibration import GENERATION_LABELS, ScoreCalibration
from detector.core.pipeline import Pipeline
from detector.settings import load_settings
from producers.simulate import Injection, Simulator
from tests.fakes import FakeMessage, messages

SHIFT_AT = 12_000
PREDICTIONS = 24_000
BEFORE_SHIFT = 10_000


def overconfident_traffic(seed: int = 1) -> tuple[list[FakeMessage], np.ndarray]:
    """The simulated fraud model with over-confident scores (log-odds / 0.4), every label 10 s
    (1,000 predictions) late, `amount` shifted +2 sd from SHIFT_AT: messages in event-time order,
    and whether each prediction was right."""
    simulator = Simulator(
        seed=seed,
        injections=(Injection("mean_shift", "amount", SHIFT_AT, 2.0),),
        score_temperature=0.4,
        label_delay_ms=10_000,
    )
    batch = simulator.batch(PREDICTIONS)
    labels = batch.labels + simulator.drain()
    truth = {label["id"]: label["label"] for label in labels}
    right = np.array([e["prediction"] == truth[e["id"]] for e in batch.predictions], dtype=float)
    timeline = sorted(
        [(e["ts"], 0, i, e) for i, e in enumerate(batch.predictions)]
        + [(e["ts"], 1, i, e) for i, e in enumerate(labels)]
    )
    predictions = iter(messages([e for _, topic, _, e in timeline if topic == 0]))
    label_messages = iter(messages([e for _, topic, _, e in timeline if topic == 1], "labels"))
    merged = [next(label_messages if topic else predictions) for _, topic, _, _ in timeline]
    return merged, right


def run(batch: list[FakeMessage], size: int) -> tuple[Pipeline, list]:
    pipeline, alerts = Pipeline(load_settings(None)), []
    for start in range(0, len(batch), size):
        alerts += pipeline.process(batch[start : start + size]).alerts
    return pipeline, alerts


def model(pipeline: Pipeline) -> ModelMonitor:
    return next(iter(pipeline.models()))


def realised(right: np.ndarray, window: int = 1000) -> float:
    """The realised accuracy weighted as the gauges weigh their values."""
    mean = DecayedMean(1.0 - 1.0 / window)
    mean.update(right)
    assert mean.value is not None
    return mean.value


def test_the_calibrated_estimate_follows_realised_accuracy_under_covariate_shift() -> None:
    batch, right = overconfident_traffic()
    cut = next(
        i for i, m in enumerate(batch) if m.topic() == "predictions" and m.offset() == BEFORE_SHIFT
    )
    pipeline, _ = run(batch[:cut], 2000)
    before = model(pipeline).performance.summary()
    pipeline.process(batch[cut:])
    after = model(pipeline).performance.summary()
    for summary, truth in ((before, realised(right[:BEFORE_SHIFT])), (after, realised(right))):
        assert abs(summary["estimated"] - truth) < 0.03  # within 3 points
        assert summary["confidence"] - truth > 0.08  # the mean confidence claims far more
    assert after["estimated"] < before["estimated"] - 0.1  # it saw the drop before the labels


def test_the_estimate_is_the_mean_confidence_until_a_version_has_warmup_labels() -> None:
    batch, _ = overconfident_traffic()
    labels_seen = 0
    pipeline = Pipeline(load_settings(None))
    for start in range(0, len(batch), 500):
        part = batch[start : start + 500]
        pipeline.process(part)
        labels_seen += sum(m.topic() == "labels" for m in part)
        if labels_seen + 500 < 1000:  # detection.warmup_events labelled predictions
            summary = model(pipeline).performance.summary()
            assert summary["estimated"] == summary["confidence"]
            assert model(pipeline).performance.calibrated_labels() == labels_seen
    # Two generations of counts: the newest 10,000 to 20,000 labels.
    assert (
        GENERATION_LABELS <= model(pipeline).performance.calibrated_labels() < 2 * GENERATION_LABELS
    )


def test_calibration_and_alerts_are_the_same_for_any_batching() -> None:
    batch, _ = overconfident_traffic()
    (small, small_alerts), (large, large_alerts) = run(batch, 700), run(batch, 5003)
    assert small_alerts == large_alerts
    small_state = model(small).performance.to_state()
    large_state = model(large).performance.to_state()
    assert small_state["calibrations"] == large_state["calibrations"]
    probe = np.linspace(0.0, 1.0, 101)
    confidence = np.maximum(probe, 1.0 - probe)
    estimates = [
        model(p).performance.calibrations["1"].estimate(probe, confidence) for p in (small, large)
    ]
    assert np.array_equal(estimates[0], estimates[1])


def test_the_calibration_survives_a_checkpoint_round_trip() -> None:
    batch, _ = overconfident_traffic()
    cut = len(batch) // 2
    whole, whole_alerts = run(batch, 2000)
    first, first_alerts = run(batch[:cut], 2000)
    state = orjson.loads(orjson.dumps(model(first).to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    second = Pipeline(load_settings(None))
    restored = second.new_monitor("fraud")
    assert restored.state_mismatch(state) is None
    restored.load_state(state)
    assert restored.performance.to_state() == model(first).performance.to_state()
    second.install(0, {"fraud": restored})
    later = [
        a
        for start in range(cut, len(batch), 2000)
        for a in second.process(batch[start : start + 2000]).alerts
    ]
    assert first_alerts + later == whole_alerts
    assert (
        model(second).performance.to_state()["calibrations"]
        == model(whole).performance.to_state()["calibrations"]
    )


def prediction(i: int, version: str, score: float) -> Event:
    return Event(
        InputTopic.prediction,
        "m",
        0,
        i,
        i * 10,
        version=version,
        id=f"r{i}",
        prediction=int(score >= 0.5),
        score=score,
        confidence=max(score, 1.0 - score),
    )


def label(i: int, value: int) -> Event:
    return Event(InputTopic.label, "m", 0, i, i * 10 + 5, id=f"r{i}", label=value)


def test_each_version_learns_its_own_calibration_and_a_new_one_starts_from_its_confidence() -> None:
    monitor = Pipeline(load_settings(None)).new_monitor("m")
    rng = np.random.default_rng(3)
    events: list[Event] = []
    for i in range(3000):  # version 1 says 0.95 and is right 70% of the time
        events += [prediction(i, "1", 0.95), label(i, int(rng.random() < 0.7))]
    monitor.observe(events)
    monitor.observe([prediction(4000 + i, "1", 0.95) for i in range(4000)])
    performance = monitor.performance
    assert abs(performance.summary()["estimated"] - 0.7) < 0.03
    monitor.observe([prediction(9000 + i, "2", 0.95) for i in range(4000)])
    assert list(performance.calibrations) == ["1"]  # version 2 has no label yet
    assert abs(performance.summary()["estimated"] - 0.95) < 0.01  # decayed over 1,000 values
    assert performance.calibrated_labels() == 0


def test_a_multiclass_top_class_confidence_is_calibrated() -> None:
    rng = np.random.default_rng(5)
    calibration = ScoreCalibration(min_labels=1000)
    top = rng.uniform(0.34, 1.0, 20_000)
    right = rng.random(20_000) < 0.34 + 0.5 * (top - 0.34)  # far less often right than claimed
    calibration.learn(top, top, right)
    probe = rng.uniform(0.34, 1.0, 5000)
    estimate = calibration.estimate(probe, probe).mean()
    assert abs(estimate - (0.34 + 0.5 * (probe.mean() - 0.34))) < 0.02
    assert probe.mean() - estimate > 0.1


def test_the_calibration_keeps_two_generations_and_unlearns_an_old_concept() -> None:
    rng = np.random.default_rng(6)
    calibration = ScoreCalibration(min_labels=1000)
    scores = np.full(3 * GENERATION_LABELS, 0.9)
    calibration.learn(scores, scores, rng.random(len(scores)) < 0.6)
    assert GENERATION_LABELS <= calibration.labels < 2 * GENERATION_LABELS
    calibration.learn(scores, scores, rng.random(len(scores)) < 0.85)  # in smaller steps too
    assert abs(float(calibration.estimate(scores[:1], scores[:1])[0]) - 0.85) < 0.02


def test_labelled_estimates_are_those_before_each_label_however_the_labels_are_split() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(0.0, 1.0, 5000)
    confidences = np.maximum(scores, 1.0 - scores)
    right = rng.random(5000) < 0.5 + 0.6 * (confidences - 0.5)
    whole = ScoreCalibration(min_labels=1000)
    at_once = whole.learn(scores, confidences, right)
    pieces = ScoreCalibration(min_labels=1000)
    cuts = [0, 1, 99, 100, 1234, 1235, 4000, 5000]
    split = np.concatenate(
        [pieces.learn(scores[a:b], confidences[a:b], right[a:b]) for a, b in pairwise(cuts)]
    )
    assert np.array_equal(at_once, split)
    assert whole.to_state() == pieces.to_state()
    assert np.array_equal(at_once[:1000], confidences[:1000])  # not ready before 1,000 labels
    assert not np.array_equal(at_once[1000:], confidences[1000:])
