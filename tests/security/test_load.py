"""The hostile load of tests/security/load.py on the real broker, scaled down by SCALE (10,000
distinct model names and 1,000 distinct feature names instead of 100,000 and 10,000; the caps
are exceeded a hundredfold and fiftyfold all the same). The full size is a command:
`.venv/bin/python -m tests.security.load` (see docs/security.md, Hostile load, for its numbers).

The process stays up (and exits 0 on SIGTERM); memory stays flat once the caps are reached; overflow is counted and
dead-lettered exactly as the pure pipeline decides; the real models alert exactly as in a clean
run (the same alert ids: the clean events at the offsets they have in the hostile stream)."""

from __future__ import annotations

import pytest

from tests.kafka_helpers import KafkaNames
from tests.security.load import REAL_MODELS, WIDE_MODEL, LoadPlan, expected, run_load, total

pytestmark = pytest.mark.broker

SCALE = 0.1
# RSS may grow this much after the caps are reached: batches and dead-letter copies of oversize
# messages in flight. Without the model cap it grows by about 170 MiB here (measured).
MAX_GROWTH_MIB = 96.0


def test_a_hostile_flood_is_survived_within_the_caps(topics: KafkaNames) -> None:
    plan = LoadPlan(scale=SCALE)
    report = run_load(plan, topics)
    want = expected(plan, topics, report.inputs)
    metrics = report.metrics

    assert report.rss_end_mib - report.rss_at_caps_mib < MAX_GROWTH_MIB, (
        report.rss_at_caps_mib,
        report.rss_end_mib,
    )

    assert total(metrics, "streamdrift_models") == want.models == plan.max_models
    assert {
        reason: total(metrics, "streamdrift_events_invalid_total", reason=reason)
        for reason in want.invalid
    } == want.invalid
    # The flood names are one-off: refused at the cap (a name is admitted at its second message),
    # so they cost no monitor, and the real models (past their warm-up before the flood) keep their places.
    assert want.invalid["model_cap"] == plan.flood_models - (plan.max_models - len(REAL_MODELS) - 1)
    assert total(metrics, "streamdrift_models_evicted_total", reason="cap") == want.evictions["cap"]
    if want.wide_overflow is not None:
        assert (
            total(metrics, "streamdrift_features_unmonitored", model=WIDE_MODEL)
            == want.wide_overflow
        )
    models_in_metrics = {dict(labels).get("model") for _, labels in metrics} - {None}
    assert len(models_in_metrics) <= plan.max_models  # the label caps bound the /metrics body

    letters = [dict(m.headers())["streamdrift.reason"].decode() for m in report.dead_letters]
    assert len(letters) == sum(want.invalid.values()) and set(letters) == set(want.invalid)

    got = sorted(a["id"] for a in report.alerts if a["data"]["model"] in REAL_MODELS)
    assert got == sorted(want.alert_ids) and any(
        a["data"]["monitor"] == "feature.amount" for a in report.alerts
    )
