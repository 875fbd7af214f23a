"""Ground-truth matching (pure): delays, misses, consequences, false alarms and their spacing."""

from __future__ import annotations

import pytest

from detector.backtest.score import Change, Detection, TruthError, changes_from_truth, score

SHIFT = Change(
    "fraud",
    "mean_shift",
    "amount",
    "feature.amount",
    start=10_000,
    end=15_000,
    length=5000,
    side_effects=("prediction.score",),
)
MIX = Change("fraud", "category_mix", "country", "feature.country", start=30_000)


def detection(monitor: str, position: int | None, model: str = "fraud") -> Detection:
    return Detection(
        model, monitor, position, f"id-{monitor}-{position}", "location", "page_hinkley"
    )


def test_a_detection_in_the_window_scores_its_delay_and_a_change_without_one_is_missed() -> None:
    result = score(
        [SHIFT, MIX], [detection("feature.amount", 10_046)], {"fraud": 50_000}, max_delay=5000
    )

    assert [(o.change, o.delay) for o in result.outcomes] == [(SHIFT, 46), (MIX, None)]
    assert (result.detected, result.missed, result.mean_delay) == (1, 1, 46)
    assert result.false_alarms == []


def test_the_window_spans_the_change_and_max_delay_after_its_end() -> None:
    late = detection("feature.amount", 10_000 + 5000 + 4999)
    too_late = detection("feature.country", 30_000 + 5000)

    result = score([SHIFT, MIX], [late, too_late], {"fraud": 50_000}, max_delay=5000)

    assert result.outcomes[0].detection == late
    assert result.outcomes[1].detection is None  # missed: too late to count
    assert result.consequences == [(too_late, MIX)]  # but the change lasts: not a false alarm
    assert result.false_alarms == []


def test_a_change_with_an_end_explains_nothing_after_it_and_one_that_lasts_explains_all() -> None:
    after_shift = detection("prediction.score", 15_000 + 1000)  # SHIFT ended at 15,000
    long_after_mix = detection("feature.country", 49_000)

    result = score([SHIFT, MIX], [after_shift, long_after_mix], {"fraud": 50_000}, max_delay=1000)

    assert result.false_alarms == [after_shift]
    assert [d for d, _ in result.consequences] == [long_after_mix]


def test_a_detection_before_the_change_is_a_false_alarm_not_a_detection() -> None:
    early = detection("feature.amount", 9_999)

    result = score([SHIFT], [early], {"fraud": 50_000}, max_delay=1000)

    assert result.outcomes[0].detection is None
    assert result.false_alarms == [early]


def test_side_effects_and_repeats_inside_the_window_are_consequences() -> None:
    first, repeat = detection("feature.amount", 10_100), detection("feature.amount", 12_000)
    effect = detection("prediction.score", 10_200)
    unrelated = detection("feature.age", 10_300)

    result = score([SHIFT], [repeat, effect, first, unrelated], {"fraud": 50_000}, max_delay=1000)

    # the first in position order, whatever the input order
    assert result.outcomes[0].detection == first
    assert [d for d, _ in result.consequences] == [effect, repeat]
    assert result.false_alarms == [unrelated]


def test_mean_events_between_false_alarms_counts_only_events_when_no_change_is_in_effect() -> None:
    alarms = [
        detection("feature.age", 1000),
        detection("feature.age", 40_000),
    ]  # not side effects: false alarms

    result = score([SHIFT, MIX], alarms, {"fraud": 50_000}, max_delay=1000)

    windows = (5000 + 1000) + 20_000  # [10000, 16000) and, as MIX lasts, [30000, 50000)
    assert result.stationary_events == 50_000 - windows
    assert result.mean_events_between_false_alarms == pytest.approx((50_000 - windows) / 2)
    assert score([SHIFT], [], {"fraud": 50_000}, 1000).mean_events_between_false_alarms is None


def test_models_without_ground_truth_are_listed_but_not_scored() -> None:
    other = detection("feature.x", 500, model="shuttle")

    result = score([SHIFT], [other], {"fraud": 20_000, "shuttle": 20_000}, max_delay=1000)

    assert result.unscored == [other]
    assert result.false_alarms == []
    assert result.stationary_events == 20_000 - 6000  # only the scored model's events


def test_ground_truth_is_read_as_the_simulator_writes_it_and_bad_entries_are_named() -> None:
    truth = {
        "model": "fraud",
        "seed": 1,
        "injections": [
            {
                "scenario": "category_mix",
                "target": "country",
                "start": 30000,
                "magnitude": 1.0,
                "length": 0,
                "model": "fraud",
                "monitor": "feature.country",
                "end": None,
                "side_effects": [],
            },
            {
                "scenario": "mean_shift",
                "target": "amount",
                "start": 10000,
                "magnitude": 1.0,
                "length": 5000,
                "model": "fraud",
                "monitor": "feature.amount",
                "end": 15000,
                "side_effects": ["prediction.score"],
            },
        ],
    }

    assert changes_from_truth([truth]) == [SHIFT, MIX]  # in start order
    assert SHIFT.describe() == "mean_shift amount @10000..15000"
    with pytest.raises(TruthError, match="needs model, monitor"):
        changes_from_truth({"model": "fraud", "injections": [{"scenario": "x", "start": "soon"}]})
