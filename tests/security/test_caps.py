"""Per-model memory stays bounded under a flood of distinct feature names (pure; no broker)."""

from __future__ import annotations

import orjson

from detector.core.monitors.model import ModelMonitor
from detector.core.pipeline import Pipeline
from detector.settings import load_settings
from tests.fakes import messages

CAP = 5


def flooded(events: list[dict]) -> ModelMonitor:
    pipeline = Pipeline(load_settings(None, limits={"max_features_per_model": CAP}))
    for start in range(0, len(events), 500):
        pipeline.process(messages(events[start : start + 500], first_offset=start))
    return next(iter(pipeline.models()))


def test_a_flood_of_feature_names_keeps_the_model_bounded() -> None:
    events = [
        {"model": "m", "features": {f"f{i}_{j}": 1.0 for j in range(10)}} for i in range(3000)
    ]
    monitor = flooded(events)
    assert len(monitor.feature_types) == CAP
    assert len(monitor.skipped_features) <= CAP
    assert monitor.feature_overflow == 3000 * 10 - CAP  # every unmonitored name counted
    # the checkpoint record too
    assert len(orjson.dumps(monitor.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)) < 200_000


def test_names_over_the_length_limit_are_not_remembered() -> None:
    events = [{"model": "m", "features": {"n" * 500 + str(i): 1.0}} for i in range(100)]
    monitor = flooded(events)
    assert monitor.feature_types == {} and monitor.skipped_features == set()


def test_a_feature_first_seen_as_null_at_the_cap_still_gets_its_type() -> None:
    null_first = [
        {"model": "m", "features": {f"a{k}": 1.0 for k in range(CAP - 1)} | {"late": None}}
    ] * 3
    monitor = flooded([*null_first, {"model": "m", "features": {"late": 2.0}}])
    assert monitor.feature_types["late"].value == "numeric"
    assert monitor.feature_overflow == 0 and "late" not in monitor.skipped_features
