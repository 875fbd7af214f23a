"""The ground truth names the monitor the detector really uses: every label-free scenario, run
through the detector's pipeline, is detected by the monitor its ground truth names, soon after
the injection, and any other alert is one of its declared side effects."""

from __future__ import annotations

import pytest

from detector.core.pipeline import Pipeline
from detector.settings import load_settings
from producers.scenarios import Injection
from producers.simulate import Simulator
from tests.fakes import messages

START = 6000


@pytest.mark.parametrize(
    "injection",
    [
        Injection("mean_shift", "amount", START),
        Injection("gradual_shift", "amount", START, length=3000),
        Injection("incremental_shift", "utilization", START, length=4000),
        Injection("scale_change", "age", START, magnitude=1.5),
        Injection("category_mix", "country", START),
        Injection("missing_burst", "income", START, magnitude=0.5),
        Injection("field_missing", "device", START),
        Injection("field_rename", "income", START),
        Injection("latency_creep", "", START, magnitude=1.0, length=4000),
        Injection("prior_shift", "", START, magnitude=0.5),
    ],
    ids=lambda injection: injection.scenario,
)
def test_the_expected_monitor_detects_the_injection(injection: Injection) -> None:
    simulator = Simulator(seed=7, injections=(injection,))
    (truth,) = simulator.ground_truth()
    pipeline = Pipeline(load_settings(None))
    stream = messages(simulator.events(15_000))
    alerts = [
        a
        for start in range(0, len(stream), 2500)
        for a in pipeline.process(stream[start : start + 2500]).alerts
    ]
    detected = [a for a in alerts if a.kind == "detected"]
    first = next((a for a in detected if a.monitor == truth["monitor"]), None)
    assert first is not None, (
        f"{truth['monitor']} did not alert; alerts: {[(a.monitor, a.offset) for a in detected]}"
    )
    assert START <= first.offset < START + 4000
    assert {a.monitor for a in detected} <= {truth["monitor"], *truth["side_effects"]}
