"""The Grafana dashboard, statically: well-formed, laid out on the grid, every query on the
datasource variable, and every metric it queries declared by detector/http/metrics.py, or listed
in PENDING_METRICS until it is (the live check against /metrics is in test_prometheus_e2e)."""

from __future__ import annotations

import re

from tests.deploy.support import (
    PENDING_METRICS,
    dashboard,
    dashboard_metrics,
    dashboard_panels,
    dashboard_queries,
    declared_sample_names,
    metric_names,
)

BOARD = dashboard()
PANELS = [p for p in dashboard_panels(BOARD) if p["type"] != "row"]
VARIABLE = re.compile(r"\$(\w+)")
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid() -> None:
    all_panels = dashboard_panels(BOARD)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_every_query_uses_the_datasource_variable_and_defined_variables() -> None:
    defined = {v["name"] for v in BOARD["templating"]["list"]} | GRAFANA_VARIABLES
    assert (
        next(v for v in BOARD["templating"]["list"] if v["name"] == "datasource")["query"]
        == "prometheus"
    )
    for panel in PANELS:
        assert panel["targets"], f"{panel['title']} has no query"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel[
                "title"
            ]
        for target in panel["targets"]:
            assert set(VARIABLE.findall(target["expr"])) <= defined, (
                f"{panel['title']}: undefined variable in {target['expr']}"
            )


def test_the_dashboard_draws_what_the_issue_asks_for() -> None:
    queried = " ".join(dashboard_queries(BOARD))
    for metric in (
        "streamdrift_events_total",  # events rate
        "streamdrift_alerts_total",  # alerts over time by model and monitor
        "streamdrift_drift_active",  # active drifts
        "streamdrift_monitor_statistic",  # monitor statistics per feature
        "streamdrift_model_accuracy",  # accuracy
        "streamdrift_estimated_accuracy",  # estimated accuracy
        "streamdrift_label_join_pending",  # label join state
        "streamdrift_consumer_lag",  # lag
        "streamdrift_events_invalid_total",  # dead-letter rate
    ):
        assert metric in metric_names(queried), f"no panel queries {metric}"


def test_every_queried_metric_is_declared_or_pending() -> None:
    declared = declared_sample_names()
    queried = dashboard_metrics(BOARD)
    undeclared = queried - declared - PENDING_METRICS
    assert not undeclared, (
        f"the dashboard queries metrics detector/http/metrics.py does not declare: {sorted(undeclared)}"
    )


def test_pending_metrics_are_still_pending_and_still_queried() -> None:
    exported = PENDING_METRICS & declared_sample_names()
    assert not exported, (
        f"{sorted(exported)} are now declared in detector/http/metrics.py: remove them from PENDING_METRICS in "
        "tests/deploy/support.py, so that the live /metrics check covers them"
    )
    unused = PENDING_METRICS - dashboard_metrics(BOARD)
    assert not unused, (
        f"PENDING_METRICS lists metrics the dashboard does not query: {sorted(unused)}"
    )
