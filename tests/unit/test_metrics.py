"""Metrics.forget_models: every series of a departed model goes, every other model's stays."""

from __future__ import annotations

import re
from collections import defaultdict

from prometheus_client import CollectorRegistry

from detector.core.pipeline import Pipeline
from detector.http.metrics import Metrics
from detector.settings import ModelSettings, load_settings
from producers.scenarios import Deployment
from producers.simulate import Injection, Simulator
from tests.fakes import messages
from tests.simulated import traffic


def series_by_model(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Model label value -> names of the metric families with a sample of that model."""
    found: dict[str, set[str]] = defaultdict(set)
    for family in registry.collect():
        for sample in family.samples:
            if "model" in sample.labels:
                found[sample.labels["model"]].add(family.name)
    return found


def test_forgetting_a_model_removes_all_its_series_and_only_those() -> None:
    simulator = Simulator(
        seed=3, injections=(Injection("mean_shift", "amount", start=4000, magnitude=1.0),)
    )
    events = simulator.events(8000)
    twins = [{**event, "model": "twin"} for event in events]
    pipeline = Pipeline(load_settings(None))
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for batch in (messages(events), messages(twins, partition=1)):
        for start in range(0, len(batch), 1000):
            result = pipeline.process(batch[start : start + 1000])
            metrics.record_batch(result)
            metrics.record_alerts(result.alerts)
    metrics.record_models(pipeline.models(), pipeline.model_count)
    before = series_by_model(registry)
    assert before["fraud"] == before["twin"]
    assert {
        "streamdrift_events",
        "streamdrift_alerts",
        "streamdrift_drift_active",
        "streamdrift_monitor_statistic",
        "streamdrift_model",  # streamdrift_model_info
    } <= before["fraud"]

    metrics.forget_models(["fraud"])
    after = series_by_model(registry)
    assert "fraud" not in after
    assert after["twin"] == before["twin"]
    # forgetting twice, or an unknown model, is harmless
    metrics.forget_models(["fraud", "never-seen"])
    assert series_by_model(registry) == after


def test_model_info_carries_the_configured_owner_and_the_newest_version() -> None:
    owned = ModelSettings(owner="team-risk", runbook_url="https://runbooks/fraud")
    settings = load_settings(None).model_copy(update={"models": {"fraud": owned}})
    events = Simulator(seed=5).events(1200)
    versions = [{**event, "version": "3" if i < 600 else "4"} for i, event in enumerate(events)]
    pipeline = Pipeline(settings)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    pipeline.process(messages(versions))
    metrics.record_models(pipeline.models(), pipeline.model_count)
    info = {
        sample.labels["model"]: sample
        for family in registry.collect()
        if family.name == "streamdrift_model"
        for sample in family.samples
    }
    assert set(info) == {"fraud"}
    assert info["fraud"].value == 1
    assert info["fraud"].labels == {
        "model": "fraud",
        "owner": "team-risk",
        "runbook_url": "https://runbooks/fraud",
        "version": "4",
    }
    metrics.forget_models(["fraud"])
    assert "fraud" not in series_by_model(registry)


def test_retraining_recommendations_and_outcomes_are_counted() -> None:
    batch = traffic(
        24_000,
        (Deployment("2", 16_000, quality="fixed"),),
        (Injection("concept_drift", "", start=6000, magnitude=0.4),),
    )
    pipeline = Pipeline(load_settings(None))
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    standing = []
    for start in range(0, len(batch), 2000):
        result = pipeline.process(batch[start : start + 2000])
        metrics.record_model_events(result.model_events)
        metrics.record_models(pipeline.models(), pipeline.model_count)
        standing.append(
            registry.get_sample_value("streamdrift_retrain_recommended", {"model": "fraud"})
        )

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": "fraud", **labels})

    assert value("streamdrift_retrain_recommendations_total", reason="performance_drop") == 1
    assert value("streamdrift_retrain_recommendations_total", reason="input_drift") is None
    assert value("streamdrift_retrain_recovered_total") == 1
    assert value("streamdrift_retrain_not_recovered_total") is None
    # 0 until the drop is seen, 1 while the recommendation stands, 0 once version 2 is deployed
    assert re.fullmatch("0+1+0+", "".join(str(int(v or 0)) for v in standing))
