"""Replay of river's bundled datasets: real rows, no download, drifts on top."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from river.datasets import base

from producers.replay import DATASETS, Replay, load
from producers.scenarios import Injection
from producers.stream import EventStream


def run(stream: EventStream, events: int) -> tuple[list[dict], list[dict]]:
    """Predictions and all their labels."""
    batch = stream.batch(events)
    return batch.predictions, batch.labels + stream.drain()


def test_every_dataset_is_a_file_inside_the_river_package() -> None:
    for dataset in DATASETS.values():
        loaded = dataset.loader()
        assert not isinstance(loaded, base.RemoteDataset)
        assert loaded.path.is_file()


def test_a_pass_replays_every_row_once() -> None:
    table = load("phishing")
    predictions, labels = run(Replay(dataset="phishing", seed=2), table.size)
    replayed = Counter(
        (*tuple(sorted(e["features"].items())), label["label"])
        for e, label in zip(predictions, labels)
    )
    original = Counter(
        (*tuple(sorted(row.items())), table.classes[code])
        for row, code in zip(table.rows, table.labels.tolist())
    )
    assert replayed == original
    assert predictions[0]["model"] == "phishing"


def test_the_frozen_model_is_better_than_chance() -> None:
    predictions, labels = run(Replay(dataset="phishing"), 2000)
    truth = {label["id"]: label["label"] for label in labels}
    accuracy = np.mean([truth[e["id"]] == e["prediction"] for e in predictions])
    assert accuracy > 0.8


def test_a_shift_on_real_data_moves_the_feature_and_the_scores() -> None:
    shifted = Replay(
        dataset="shuttle", seed=1, injections=(Injection("mean_shift", "f1", 1000, magnitude=2.0),)
    ).events(3000)
    plain = Replay(dataset="shuttle", seed=1).events(3000)
    std = load("shuttle").columns["f1"].std()
    difference = np.array(
        [a["features"]["f1"] - b["features"]["f1"] for a, b in zip(shifted, plain)]
    )
    assert not difference[:1000].any()
    assert difference[1000:] == pytest.approx(2.0 * std, abs=0.51)  # the feature is an integer
    assert [e["score"] for e in shifted[1000:]] != [e["score"] for e in plain[1000:]]


def test_prior_shift_on_real_data_resamples_the_classes() -> None:
    replay = Replay(
        dataset="shuttle", seed=1, injections=(Injection("prior_shift", "", 3000, magnitude=0.5),)
    )
    anomalies = np.array([label["label"] for label in run(replay, 9000)[1]])
    assert anomalies[:3000].mean() == pytest.approx(0.07, abs=0.02)
    assert anomalies[3000:].mean() == pytest.approx(0.5, abs=0.03)


def test_concept_drift_on_a_multiclass_dataset_changes_the_class_only() -> None:
    plain = run(Replay(dataset="segment", seed=1), 3000)
    drifted = run(
        Replay(
            dataset="segment",
            seed=1,
            injections=(Injection("concept_drift", "", 1000, magnitude=0.4),),
        ),
        3000,
    )
    assert plain[0] == drifted[0]
    before, after = ([label["label"] for label in labels] for _, labels in (plain, drifted))
    changed = np.array([a != b for a, b in zip(before, after)])
    assert not changed[:1000].any()
    assert changed[1000:].mean() == pytest.approx(0.4, abs=0.04)
    score = drifted[0][0]["score"]
    assert set(score) == set(load("segment").classes) and sum(score.values()) == pytest.approx(
        1.0, abs=1e-3
    )


def test_an_unknown_dataset_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'iris'; choose from phishing, bananas"):
        Replay(dataset="iris")
