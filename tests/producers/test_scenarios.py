"""Each drift scenario produces the change it claims, measured on the generated events against
the same seed without the injection (the base stream does not depend on injections)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import ks_2samp

from producers.scenarios import Injection
from producers.simulate import Simulator
from producers.stream import Batch

EVENTS, START = 8000, 4000


def run(*injections: Injection, events: int = EVENTS, seed: int = 5) -> Batch:
    simulator = Simulator(seed=seed, injections=injections, label_delay_ms=0)
    batch = simulator.batch(events)
    return Batch(batch.predictions, batch.labels + simulator.drain())


def feature(batch: Batch, name: str) -> np.ndarray:
    return np.array(
        [
            np.nan if e["features"].get(name) is None else e["features"][name]
            for e in batch.predictions
        ],
        dtype=float,
    )


def labels(batch: Batch) -> np.ndarray:
    return np.array([e["label"] for e in batch.labels])


def field(batch: Batch, name: str) -> np.ndarray:
    return np.array([e[name] for e in batch.predictions], dtype=float)


@pytest.fixture(scope="module")
def baseline() -> Batch:
    return run()


@pytest.fixture(scope="module")
def reference_std() -> float:
    return Simulator(seed=5).reference["amount"].std


def test_mean_shift_moves_the_mean_by_magnitude_std_and_ends_when_told(
    baseline: Batch, reference_std: float
) -> None:
    drifted = feature(
        run(Injection("mean_shift", "amount", START, magnitude=1.0, length=2000)), "amount"
    )
    base = feature(baseline, "amount")
    assert drifted[:START] == pytest.approx(base[:START])
    assert np.mean(drifted[START:6000]) - np.mean(base[START:6000]) == pytest.approx(
        reference_std, rel=0.01
    )
    assert ks_2samp(drifted[:START], drifted[START:6000]).statistic > 0.3
    # back to normal after `length`
    assert ks_2samp(drifted[:START], drifted[6000:]).statistic < 0.06
    untouched = feature(run(Injection("mean_shift", "amount", START)), "utilization")
    assert untouched == pytest.approx(feature(baseline, "utilization"))


def test_gradual_shift_mixes_in_fully_shifted_events_at_a_growing_rate(
    baseline: Batch, reference_std: float
) -> None:
    ramp = 2000
    difference = feature(
        run(Injection("gradual_shift", "amount", START, magnitude=1.0, length=ramp)), "amount"
    ) - feature(baseline, "amount")
    shifted = np.isclose(difference, reference_std, atol=0.011)
    # each event is either shifted or not
    assert np.all(shifted | np.isclose(difference, 0.0, atol=0.011))
    assert not shifted[:START].any()
    quarters = [shifted[START + q * 500 : START + (q + 1) * 500].mean() for q in range(4)]
    assert quarters == pytest.approx([0.125, 0.375, 0.625, 0.875], abs=0.07)
    assert shifted[START + ramp :].all()


def test_incremental_shift_moves_every_event_a_little_more(
    baseline: Batch, reference_std: float
) -> None:
    ramp = 2000
    difference = feature(
        run(Injection("incremental_shift", "amount", START, magnitude=2.0, length=ramp)), "amount"
    ) - feature(baseline, "amount")
    expected = 2.0 * reference_std * np.clip((np.arange(EVENTS) - START + 1) / ramp, 0, 1)
    assert difference == pytest.approx(expected, abs=0.011)


def test_scale_change_multiplies_the_spread_and_keeps_the_median(baseline: Batch) -> None:
    drifted = feature(
        run(Injection("scale_change", "utilization", START, magnitude=2.0)), "utilization"
    )
    before, after = drifted[:START], drifted[START:]
    assert np.std(after) / np.std(before) == pytest.approx(2.0, rel=0.08)
    assert np.median(after) == pytest.approx(np.median(before), rel=0.05)


def test_category_mix_reverses_the_category_order(baseline: Batch) -> None:
    drifted = run(Injection("category_mix", "country", START))

    def shares(events: list[dict[str, Any]]) -> dict[str, float]:
        values = [e["features"]["country"] for e in events]
        return {c: values.count(c) / len(values) for c in ("DE", "BR")}

    before, after = shares(drifted.predictions[:START]), shares(drifted.predictions[START:])
    assert before["DE"] == pytest.approx(0.35, abs=0.03) and before["BR"] == pytest.approx(
        0.04, abs=0.015
    )
    assert after["DE"] == pytest.approx(0.04, abs=0.015) and after["BR"] == pytest.approx(
        0.35, abs=0.03
    )


def test_missing_burst_nulls_the_feature_at_the_given_rate_for_its_length() -> None:
    missing = np.isnan(
        feature(
            run(Injection("missing_burst", "income", START, magnitude=0.5, length=2000)), "income"
        )
    )
    assert missing[:START].mean() == pytest.approx(0.05, abs=0.015)
    assert missing[START:6000].mean() == pytest.approx(0.05 + 0.95 * 0.5, abs=0.04)
    assert missing[6000:].mean() == pytest.approx(0.05, abs=0.015)


def test_field_missing_removes_the_key(baseline: Batch) -> None:
    drifted = run(Injection("field_missing", "device", START))
    assert all("device" in e["features"] for e in drifted.predictions[:START])
    assert not any("device" in e["features"] for e in drifted.predictions[START:])


def test_field_rename_sends_the_same_values_under_a_new_name(baseline: Batch) -> None:
    drifted = run(Injection("field_rename", "income", START))
    assert all(
        "income" in e["features"] and "income_v2" not in e["features"]
        for e in drifted.predictions[:START]
    )
    assert not any("income" in e["features"] for e in drifted.predictions[START:])
    assert [e["features"]["income_v2"] for e in drifted.predictions[START:]] == [
        e["features"]["income"] for e in baseline.predictions[START:]
    ]


def test_latency_creep_reaches_one_plus_magnitude_times_the_latency(baseline: Batch) -> None:
    ratio = field(
        run(Injection("latency_creep", "", START, magnitude=1.5, length=2000)), "latency_ms"
    ) / field(baseline, "latency_ms")
    expected = 1 + 1.5 * np.clip((np.arange(EVENTS) - START + 1) / 2000, 0, 1)
    assert ratio == pytest.approx(expected, rel=1e-3)


def test_rate_drop_spreads_its_events_and_delays_the_later_ones(baseline: Batch) -> None:
    dropped = run(Injection("rate_drop", "", START, magnitude=0.25, length=1000))
    gaps = np.diff(field(dropped, "ts"))
    assert (gaps[:START] == 10).all() and (gaps[START : START + 1000] == 40).all()
    assert (gaps[START + 1000 :] == 10).all()
    # labels follow their (later) predictions; nothing else changes
    ts = {e["id"]: e["ts"] for e in dropped.predictions}
    assert all(label["ts"] == ts[label["id"]] for label in dropped.labels)
    assert [e["features"] for e in dropped.predictions] == [
        e["features"] for e in baseline.predictions
    ]
    [truth] = Simulator(injections=(Injection("rate_drop", "", 10, 0.1, 5),)).ground_truth()
    assert (truth["monitor"], truth["end"], truth["side_effects"]) == ("traffic.rate", 15, [])
    with pytest.raises(ValueError, match="magnitude must be > 0"):
        Injection("rate_drop", "", 10, magnitude=0.0)


def test_prior_shift_changes_the_class_share_but_not_the_inputs_given_the_class(
    baseline: Batch,
) -> None:
    drifted = run(Injection("prior_shift", "1", START, magnitude=0.5), events=12_000)
    y = labels(drifted)
    assert y[:START].mean() == pytest.approx(0.17, abs=0.03)
    assert y[START:].mean() == pytest.approx(0.5, abs=0.03)
    amount = feature(drifted, "amount")
    for cls in (0, 1):
        before, after = amount[:START][y[:START] == cls], amount[START:][y[START:] == cls]
        assert ks_2samp(before, after).pvalue > 0.001, f"amount given class {cls} changed"
    score = field(drifted, "score")
    assert score[START:].mean() > score[:START].mean()
    # what prediction.score should notice
    assert ks_2samp(score[:START], score[START:]).statistic > 0.08


def test_concept_drift_changes_labels_and_nothing_else(baseline: Batch) -> None:
    drifted = run(Injection("concept_drift", "", START, magnitude=0.3))
    assert [(e["features"], e["score"], e["prediction"]) for e in drifted.predictions] == [
        (e["features"], e["score"], e["prediction"]) for e in baseline.predictions
    ]
    flipped = labels(drifted) != labels(baseline)
    assert not flipped[:START].any()
    assert flipped[START:].mean() == pytest.approx(0.3, abs=0.025)
    predictions = field(drifted, "prediction")
    error_before = np.mean(predictions[:START] != labels(drifted)[:START])
    error_after = np.mean(predictions[START:] != labels(drifted)[START:])
    assert error_after > error_before + 0.15
