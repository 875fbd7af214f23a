"""Joining delayed labels, and the performance monitors built on it (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from detector.core.events import Event, InputTopic
from detector.core.monitors.labels import LabelJoin
from detector.core.pipeline import BatchResult, Pipeline
from detector.settings import load_settings
from tests.fakes import FakeMessage, messages

MINUTE = 60_000


def prediction(i: int, ts: int, pred: object = 1, score: float = 0.9) -> Event:
    return Event(
        InputTopic.prediction,
        "m",
        0,
        i,
        ts,
        id=f"r{i}",
        prediction=pred,
        score=score,
        confidence=max(score, 1 - score),
    )


def label(i: int, ts: int, value: object = 1) -> Event:
    return Event(InputTopic.label, "m", 0, i, ts, id=f"r{i}", label=value)


def join(**overrides: int | float | None) -> LabelJoin:
    params: dict = {
        "ttl_ms": 10 * MINUTE,
        "wait_ms": MINUTE,
        "max_pending": 1000,
        "max_waiting": 100,
        "sample_rate": 1.0,
        "warmup": 5,
        "maturity_ms": None,
        "min_maturity_ms": 1000,
        "before_first_label": 1000,
    }
    params.update(overrides)
    return LabelJoin(**params)


def labelled_join(**overrides: int | float | None) -> LabelJoin:
    """A join whose model has had a label (one for a prediction never seen, `r-first`)."""
    j = join(**overrides)
    j.observe([Event(InputTopic.label, "m", 0, 0, 0, id="r-first", label=1)])
    return j


def test_labels_join_their_predictions_by_id_in_either_order() -> None:
    j = join()
    outcome = j.observe(
        [prediction(1, 0), label(2, 100, 0), prediction(2, 50), label(1, 5 * MINUTE)]
    )
    assert [(x.prediction, x.label, x.delay_ms) for x in outcome.joined] == [
        (1, 0, 50),
        (1, 1, 5 * MINUTE),
    ]
    assert [x.row for x in outcome.joined] == [2, 3]
    assert not j.pending and not j.waiting


def test_predictions_expire_after_the_ttl_of_prediction_time() -> None:
    j = labelled_join()
    j.observe([prediction(1, 0)])
    assert j.observe([prediction(2, 10 * MINUTE)]).expired == 0
    outcome = j.observe([prediction(3, 10 * MINUTE + 1)])
    assert outcome.expired == 1 and "r1" not in j.pending
    late = j.observe([label(1, 11 * MINUTE)])
    assert late.late == 1 and not late.joined


def test_labels_read_ahead_of_their_predictions_wait_on_prediction_time() -> None:
    j = join()
    j.observe([label(i, 30 * MINUTE + i) for i in range(5)])  # labels topic read far ahead
    outcome = j.observe([prediction(i, i) for i in range(5)])
    assert len(outcome.joined) == 5 and outcome.unmatched == 0


def test_unmatched_labels_expire_after_the_wait() -> None:
    j = join()
    j.observe([label(7, 0)])
    assert j.observe([prediction(1, 2 * MINUTE)]).unmatched == 1


def test_the_buffers_are_bounded() -> None:
    j = labelled_join(max_pending=50, max_waiting=10)
    outcome = j.observe([prediction(i, i) for i in range(200)])
    assert len(j.pending) == 50 and outcome.evicted == 150
    assert next(iter(j.pending)) == "r150"  # the oldest went first
    j.observe([label(1000 + i, 0) for i in range(30)])
    assert len(j.waiting) == 10


def test_a_full_join_evicts_its_oldest_waiting_prediction_not_one_already_joined() -> None:
    j = join(max_pending=50)
    j.observe([prediction(i, i) for i in range(50)])
    # r0..r9 leave the join
    assert len(j.observe([label(i, 100 + i) for i in range(10)]).joined) == 10
    j.observe([prediction(i, 200 + i) for i in range(50, 60)])  # room for ten: nothing evicted
    outcome = j.observe([prediction(60, 300), prediction(0, 301)])  # r0 again: a new prediction
    assert outcome.evicted == 2 and list(j.pending)[:2] == ["r12", "r13"]  # r10 and r11 went
    assert j.observe([label(0, 400)]).joined[0].delay_ms == 99  # the new r0 is the one kept


def test_without_labels_the_queues_stay_as_small_as_the_join() -> None:
    """No label has come, so no maturity age is known: predictions that no longer wait (evicted
    here) must still leave the maturity queue, or it grows with every prediction."""
    j = join(max_pending=50)
    for start in range(0, 5000, 500):
        j.observe([prediction(i, i) for i in range(start, start + 500)])
    assert j.maturity_ms is None and len(j.pending) == 50
    assert len(j.to_mature) <= 51 and len(j.to_expire) <= 51


def test_joined_predictions_leave_the_queues_without_waiting_for_their_age() -> None:
    j = join(ttl_ms=10 * MINUTE)
    for start in range(0, 5000, 500):
        j.observe(
            [prediction(i, i) for i in range(start, start + 500)]
            + [label(i, i + 1) for i in range(start, start + 500)]
        )
    j.observe([prediction(5000, 5000)])  # the watermark moves, far from the TTL or any maturity age
    assert list(j.pending) == ["r5000"] and len(j.to_expire) == len(j.to_mature) == 1


HOUR = 60 * MINUTE


def test_before_its_first_label_a_model_keeps_only_its_first_predictions_and_counts_nothing() -> (
    None
):
    j = join(ttl_ms=24 * HOUR, max_pending=1000, before_first_label=100, maturity_ms=MINUTE)
    outcomes = [
        j.observe([prediction(i, i * 1000) for i in range(start, start + 500)])
        for start in range(0, 5000, 500)
    ]
    assert list(j.pending) == [
        f"r{i}" for i in range(100)
    ]  # the first ones, for a first label however late
    assert len(j.to_expire) == len(j.to_mature) == 100
    # no label is missing: none ever came
    assert not any(o.evicted or o.expired or o.matured for o in outcomes)
    assert j.watermark == 4_999_000


def test_the_first_label_hours_late_still_joins_and_from_then_on_the_normal_cap_applies() -> None:
    j = join(ttl_ms=24 * HOUR, max_pending=200, before_first_label=100)
    # three hours of predictions, no label
    j.observe([prediction(i, i * 1000) for i in range(3 * 3600)])
    first = j.observe([label(0, 2 * HOUR), prediction(3 * 3600, 3 * HOUR)])
    assert [(x.row, x.delay_ms) for x in first.joined] == [(0, 2 * HOUR)]
    assert j.labelled and len(j.pending) == 100  # r1..r99, and the prediction after the label
    later = j.observe([prediction(i, i * 1000) for i in range(3 * 3600 + 1, 3 * 3600 + 301)])
    # 99 + 1 + 300 predictions, the 200 oldest went
    assert len(j.pending) == 200 and later.evicted == 200
    assert next(iter(j.pending)) == f"r{3 * 3600 + 101}"


def test_a_model_without_labels_keeps_the_same_predictions_whatever_the_batch_size() -> None:
    """Batches that can only move the watermark take a shortcut; it must decide as the full path,
    here with predictions expiring (a short TTL) and their places taken by later ones."""
    events = [prediction(i, i * 997) for i in range(3000)]
    kept = {}
    for size in (1, 7, 1000, 3000):
        j = kept[size] = join(ttl_ms=MINUTE, before_first_label=25)
        for start in range(0, len(events), size):
            j.observe(events[start : start + size])
    assert len(kept[1].pending) == 25 and "r0" not in kept[1].pending
    assert all(
        list(j.pending) == list(kept[1].pending) and j.watermark == kept[1].watermark
        for j in kept.values()
    )


def test_whether_a_model_has_had_labels_survives_a_restart() -> None:
    labelled, unlabelled = (
        join(max_pending=50, before_first_label=10),
        join(max_pending=50, before_first_label=10),
    )
    labelled.observe([label(999, 0)])
    restored = {}
    for name, j in (("labelled", labelled), ("unlabelled", unlabelled)):
        restored[name] = join(max_pending=50, before_first_label=10)
        restored[name].load_state(j.to_state())
        restored[name].observe([prediction(i, i) for i in range(40)])
    assert len(restored["labelled"].pending) == 40 and len(restored["unlabelled"].pending) == 10


def test_sampling_keeps_a_share_of_ids_on_both_sides() -> None:
    j = join(sample_rate=0.25, max_pending=100_000, before_first_label=100_000)
    predictions = [prediction(i, i) for i in range(4000)]
    j.observe(predictions)
    assert 800 < len(j.pending) < 1200
    outcome = j.observe([label(i, 5000) for i in range(4000)])
    assert len(outcome.joined) == len(j.pending) + len(outcome.joined) - len(j.pending)
    assert not j.pending and not j.waiting and outcome.unmatched == 0


def test_maturity_is_learned_from_the_first_delays_and_marks_missing_labels() -> None:
    j = join(warmup=5, ttl_ms=100 * MINUTE)
    events: list[Event] = []
    for i in range(5):
        events += [prediction(i, i * 1000), label(i, i * 1000 + 2000)]
    j.observe(events)
    assert j.maturity_ms == 6000  # 3 x p95 of the delays (2 s)
    on_time = j.observe([prediction(10, 10_000), label(10, 11_000)])
    assert on_time.matured == [(1, 1.0)]
    j.observe([prediction(11, 12_000)])
    silent = j.observe([prediction(12, 30_000)])
    assert silent.matured == [(0, 0.0)]  # r11 passed its maturity age without a label
    assert "r11" in j.pending  # still joinable until the TTL


def test_state_round_trip() -> None:
    j = join()
    j.observe([prediction(1, 0), label(9, 10), prediction(2, 20)])
    again = join()
    again.load_state(j.to_state())
    assert again.pending.keys() == j.pending.keys() and again.waiting == j.waiting
    assert [x.label for x in again.observe([label(2, 30, 0)]).joined] == [0]


# -- performance monitors through the pipeline -------------------------------------------------


def traffic(
    n: int,
    error_rate: list[tuple[int, float]],
    seed: int = 0,
    label_delay: int = 2 * MINUTE,
    confidence_from: int | None = None,
) -> list[FakeMessage]:
    """A binary classifier's predictions (with ids) and labels delayed by `label_delay`, merged
    in event-time order. error_rate: [(from event, rate)]; features stay stationary."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, str, dict]] = []
    for i in range(n):
        rate = [r for start, r in error_rate if i >= start][-1]
        ts = i * 1000
        score = (
            float(rng.uniform(0.6, 0.99))
            if confidence_from is None or i < confidence_from
            else float(rng.uniform(0.5, 0.7))
        )
        pred = int(rng.random() < 0.3)
        truth = pred if rng.random() >= rate else 1 - pred
        features = {"x": float(rng.normal()), "c": str(rng.choice(["a", "b", "c"]))}
        out.append(
            (
                ts,
                "predictions",
                {
                    "model": "m",
                    "id": f"r{i}",
                    "ts": ts,
                    "features": features,
                    "prediction": pred,
                    "score": score if pred else 1 - score,
                },
            )
        )
        out.append(
            (
                ts + label_delay,
                "labels",
                {"model": "m", "id": f"r{i}", "ts": ts + label_delay, "label": truth},
            )
        )
    out.sort(key=lambda item: item[0])
    batch: list[FakeMessage] = []
    offsets = {"predictions": 0, "labels": 0}
    for _, topic, event in out:
        batch += messages([event], topic=topic, first_offset=offsets[topic])
        offsets[topic] += 1
    return batch


def run(batch: list[FakeMessage], settings=None, size: int = 2000) -> tuple[Pipeline, BatchResult]:
    pipeline = Pipeline(settings or load_settings(None))
    total = BatchResult()
    for start in range(0, len(batch), size):
        result = pipeline.process(batch[start : start + size])
        total.alerts += result.alerts
    return pipeline, total


def test_concept_drift_is_caught_by_the_error_monitor_and_by_no_input_monitor() -> None:
    # One event a second: the error rate, like the features, would first learn its weekly
    # cycle for 604,800 events (docs/detection.md, daily and weekly cycles); a model known to
    # have none watches right after its warm-up.
    no_seasons = load_settings(None, detection={"season_max_warmup_events": 0})
    pipeline, result = run(traffic(16_000, [(0, 0.1), (8000, 0.3)]), no_seasons)
    detected = [a for a in result.alerts if a.kind == "detected"]
    assert detected and detected[0].monitor == "performance.error"
    assert not [a for a in detected if a.monitor.startswith("feature.")]
    accuracy = detected[0].evidence["accuracy"]
    assert (
        accuracy["reference"] > 0.85
        and accuracy["before"] > 0.8
        and accuracy["after"] < accuracy["before"] - 0.1
    )
    labelled_at = detected[0].observations
    assert 7000 < labelled_at < 9500
    performance = next(iter(pipeline.models())).performance.summary()
    assert 0.65 < performance["accuracy"] < 0.8


def test_river_binary_detectors_run_on_the_error_stream() -> None:
    pipeline, _ = run(traffic(4000, [(0, 0.1)]))
    error = next(iter(pipeline.models())).statistic_signals()["performance.error"]
    assert set(error.binary) == {"ddm", "hddm_a"}


def test_ddm_sits_out_when_errors_are_too_rare_for_its_normal_approximation() -> None:
    pipeline, result = run(traffic(20_000, [(0, 0.004)], seed=2))
    error = next(iter(pipeline.models())).statistic_signals()["performance.error"]
    assert set(error.binary) == {"hddm_a"}
    assert not [a for a in result.alerts if a.monitor == "performance.error"]


def test_a_drop_of_confidence_is_an_estimated_performance_drift_before_any_label() -> None:
    # One event a second: a slow model that would first learn its weekly cycle for 604,800
    # events (docs/detection.md, daily and weekly cycles); this is about the confidence alone.
    no_seasons = load_settings(None, detection={"season_max_warmup_events": 0})
    _, result = run(
        traffic(12_000, [(0, 0.1)], confidence_from=6000, label_delay=10**9), no_seasons
    )
    detected = [a for a in result.alerts if a.kind == "detected"]
    assert any(a.monitor == "performance.estimated" and 6000 <= a.offset < 7000 for a in detected)


def test_labels_that_stop_coming_raise_a_label_alert() -> None:
    batch = traffic(12_000, [(0, 0.1)])
    cut = [m for m in batch if not (m.topic() == "labels" and m.offset() >= 6000)]
    _, result = run(cut)
    label_alerts = [
        a for a in result.alerts if a.monitor == "quality.labels" and a.kind == "detected"
    ]
    assert label_alerts, "labels stopped and nothing noticed"
    evidence = label_alerts[0].evidence
    assert (
        evidence["reference"]["rate"] > 0.95
        and evidence["after"]["rate"] < evidence["before"]["rate"] - 0.3
    )
    # one maturity age (3 x the 2 min delay) later
    assert 6000 < label_alerts[0].offset < 6000 + 6 * 60 + 200


def test_regression_error_is_scale_free() -> None:
    rng = np.random.default_rng(4)
    events = []
    for i in range(12_000):
        truth = float(rng.normal(1000, 200))
        noise = 20 if i < 6000 else 60
        events.append(
            (
                {
                    "model": "r",
                    "id": f"q{i}",
                    "ts": i,
                    "prediction": truth + float(rng.normal(0, noise)),
                },
                {"model": "r", "id": f"q{i}", "ts": i, "label": truth},
            )
        )
    batch = messages([p for p, _ in events]) + messages([lab for _, lab in events], topic="labels")
    batch.sort(key=lambda m: (m.offset(), m.topic() != "predictions"))
    pipeline, result = run(batch)
    detected = [
        a for a in result.alerts if a.monitor == "performance.error" and a.kind == "detected"
    ]
    assert detected and 6000 <= detected[0].offset < 7000
    assert 15 < next(iter(pipeline.models())).performance.summary()["mae"] < 60


def test_per_class_recall_is_monitored_for_few_classes() -> None:
    pipeline, _ = run(traffic(3000, [(0, 0.1)]))
    assert {"performance.recall.0", "performance.recall.1"} <= set(
        next(iter(pipeline.models())).statistic_signals()
    )


def test_a_flood_of_predictions_whose_labels_are_late_stays_within_the_cap() -> None:
    settings = load_settings(None, limits={"max_pending_labels": 500})
    first_label = messages([{"model": "m", "id": "x-first", "ts": 0, "label": 1}], topic="labels")
    flood = messages(
        [
            {"model": "m", "id": f"x{i}", "ts": i, "prediction": 1, "score": 0.8}
            for i in range(20_000)
        ]
    )
    pipeline, _ = run(first_label + flood, settings)
    monitor = next(iter(pipeline.models()))
    assert monitor.performance.pending == 500
    assert monitor.performance.take_counts()[0]["evicted"] == 19_500


def test_a_model_with_ids_but_no_labels_keeps_only_its_small_budget_and_counts_nothing() -> None:
    settings = load_settings(
        None,
        limits={"pending_labels_before_first": 300},
        models={"m": {"label_maturity_seconds": 60, "label_ttl_seconds": 3600}},
    )
    flood = messages(
        [
            {"model": "m", "id": f"x{i}", "ts": i * 1000, "prediction": 1, "score": 0.8}
            for i in range(20_000)
        ]
    )
    pipeline, _ = run(flood, settings)
    monitor = next(iter(pipeline.models()))
    assert monitor.performance.pending == 300 and not monitor.performance.labelled
    counts, _ = monitor.performance.take_counts()
    assert counts["evicted"] == counts["expired"] == 0
    assert "quality.labels" not in monitor.signals


@pytest.mark.parametrize("cut", [3000, 9001])
def test_state_with_labels_restores_to_identical_decisions(cut: int) -> None:
    from detector.core.state import StateCodec, restore_model

    settings = load_settings(None)
    batch = traffic(14_000, [(0, 0.1), (7000, 0.35)])
    _, whole = run(batch)
    first, before = run(batch[:cut])
    monitor = next(iter(first.models()))
    ((_, value),) = StateCodec("g").model_records(0, {}, monitor.name, monitor.to_state())
    record = StateCodec("g").decode(value)
    second = Pipeline(settings)
    restored = second.new_monitor("m")
    assert record.state is not None and restore_model(restored, record.state) is None
    second.install(0, {"m": restored})
    after = BatchResult()
    for start in range(cut, len(batch), 2000):
        after.alerts += second.process(batch[start : start + 2000]).alerts
    key = lambda a: (a.monitor, a.kind, a.topic, a.offset, a.detector)  # noqa: E731
    assert [key(a) for a in before.alerts + after.alerts] == [key(a) for a in whole.alerts]


def test_the_process_budget_bounds_all_models_together_and_is_released_when_they_leave() -> None:
    settings = load_settings(
        None, limits={"max_pending_labels": 1000, "max_pending_labels_total": 1500}
    )
    pipeline = Pipeline(settings)
    pipeline.assign([0, 1])
    flood = [
        messages(
            [{"model": name, "id": f"{name}{i}", "ts": i, "prediction": 1} for i in range(1200)],
            partition=p,
        )
        for p, name in enumerate("ab")
    ]
    pipeline.process(flood[0] + flood[1])
    pending = {m.name: m.performance.pending for m in pipeline.models()}
    assert pending == {"a": 1000, "b": 500} and pipeline.pending_budget.used == 1500
    pipeline.revoke([0])
    assert pipeline.pending_budget.used == 500
    pipeline.process(
        messages(
            [
                {"model": "b", "id": f"later{i}", "ts": 2000 + i, "prediction": 1}
                for i in range(800)
            ],
            partition=1,
        )
    )
    assert next(iter(pipeline.models())).performance.pending == 1000
