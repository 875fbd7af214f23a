"""`streamdrift backtest --file`: a simulated history with known drifts, replayed through the
live pipeline; positions, scores, alerts, the side-by-side comparison and usage errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.backtest.files import FileSource
from detector.core.pipeline import Pipeline
from detector.settings import load_settings
from producers.__main__ import main as producers
from tests.backtest.conftest import Backtest
from tests.backtest.support import EVENTS, History, alert_ids, detections


def test_the_injected_drifts_are_reported_at_their_positions(
    history: History, backtest: Backtest, tmp_path: Path
) -> None:
    alerts_out = tmp_path / "alerts.jsonl"

    code, out, err = backtest(
        "--file",
        history.events,
        "--labels-file",
        history.labels,
        "--truth",
        history.truth,
        "--json",
        "--alerts-out",
        alerts_out,
    )

    assert code == 0, err
    result = orjson.loads(out)
    found = detections(result)
    shift, mix = history.changes
    assert shift["start"] <= found["fraud/feature.amount"][0] <= shift["start"] + 300
    assert mix["start"] <= found["fraud/feature.country"][0] <= mix["start"] + 300
    score = result["runs"][0]["score"]
    assert (score["detected"], score["missed"]) == (2, 0)
    assert [o["delay_events"] for o in score["outcomes"]] == [
        found["fraud/feature.amount"][0] - shift["start"],
        found["fraud/feature.country"][0] - mix["start"],
    ]
    labels = sum(1 for _ in history.labels.open("rb"))
    assert result["events_by_topic"] == {"predictions": EVENTS, "labels": labels}
    assert result["predictions_by_model"] == {"fraud": EVENTS}
    written = [orjson.loads(line) for line in alerts_out.read_bytes().splitlines()]
    run = result["runs"][0]
    assert written == [e["cloudevent"] for e in run["alerts"] + run["model_events"]]
    assert "backtest [" in err and "100%" in err  # the progress bar


def test_the_backtest_fires_what_the_live_pipeline_fires_on_the_same_messages(
    history: History, backtest: Backtest
) -> None:
    settings = load_settings(None)
    batches = list(FileSource(settings, history.events).batches(10 * EVENTS))
    assert len(batches) == 1
    # one batch: as an uninterrupted consumer would
    live = Pipeline(settings).process(batches[0].messages).alerts
    live_ids = sorted(alert.id(settings.kafka.group_id) for alert in live)

    first, second = (
        orjson.loads(backtest("--file", history.events, "--json")[1]) for _ in range(2)
    )

    assert live_ids and sorted(alert_ids(first)) == live_ids
    assert alert_ids(second) == alert_ids(first)
    for alert in first["runs"][0]["alerts"]:
        # one model per file: a prediction's position is its line number - 1, which is also its offset
        assert alert["position"] == alert["cloudevent"]["data"]["source"]["offset"]


def test_the_text_summary_lists_alerts_per_monitor_and_the_score(
    history: History, backtest: Backtest
) -> None:
    code, out, _ = backtest("--file", history.events, "--truth", history.truth)

    assert code == 0
    assert f"replayed {EVENTS:,} messages ({EVENTS:,} on predictions)" in out
    monitors = [line.split()[0] for line in out.splitlines() if " DETECTED " in line]
    # grouped per monitor
    assert monitors == sorted(monitors) and "fraud/feature.amount" in monitors
    assert "detected 2 of 2" in out
    assert "MISSED" not in out


def test_two_configs_are_compared_side_by_side_on_the_same_events(
    history: History, backtest: Backtest, tmp_path: Path
) -> None:
    blind = tmp_path / "blind.toml"
    blind.write_text('[detection]\ndisabled_monitors = ["feature.country"]\n')
    alerts_out = tmp_path / "alerts.jsonl"
    args = (
        "--file",
        history.events,
        "--compare",
        blind,
        "--truth",
        history.truth,
        "--alerts-out",
        alerts_out,
    )

    code, out, _ = backtest(*args)
    result = orjson.loads(backtest(*args, "--json")[1])

    assert code == 0
    a, b = (run["score"] for run in result["runs"])
    assert (a["detected"], b["detected"]) == (2, 1)
    assert [o["detected"] for o in b["outcomes"]] == [True, False]
    assert result["runs"][1]["config"] == str(blind)
    side_by_side = out[out.index("== side by side ==") :]
    assert (
        "changes detected" in side_by_side and "2 / 2" in side_by_side and "1 / 2" in side_by_side
    )
    row = next(line for line in side_by_side.splitlines() if "category_mix country" in line)
    assert row.split()[-1] == "MISSED" and row.split()[-2].startswith("+")
    assert alerts_out.exists() and (tmp_path / "alerts-B.jsonl").exists()
    b_subjects = {
        orjson.loads(line)["subject"]
        for line in (tmp_path / "alerts-B.jsonl").read_bytes().splitlines()
    }
    assert "fraud/feature.country" not in b_subjects


def test_label_events_in_the_events_file_go_to_the_labels_topic_and_offsets_are_line_numbers(
    tmp_path: Path,
) -> None:
    lines = [
        b'{"model":"m","id":"1","ts":1000,"features":{"x":1.5},"prediction":1,"score":0.9}',
        b'{"model":"m","id":"1","ts":2000,"label":0}',
        b"",
        b"not json",
        b'{"model":"m","id":"2","ts":3000,"label":1,"prediction":1}',
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    settings = load_settings(None)

    [batch] = FileSource(settings, path).batches(100)

    assert [(m.topic(), m.offset(), m.timestamp()[1]) for m in batch.messages] == [
        ("predictions", 0, 1000),
        ("labels", 1, 2000),
        ("predictions", 3, 2000),
        ("predictions", 4, 3000),
    ]
    assert batch.models == ["m", "m", "", "m"]
    result = Pipeline(settings).process(batch.messages)
    assert result.invalid == {("predictions", "not_json"): 1}
    assert result.events[("labels", "m")] == 1


@pytest.mark.parametrize(
    ("extra", "taken_whole"),
    [
        (
            b'{"model":"fraud","id":"x","ts":"2026-11-26T06:00:00Z","label":1}',
            True,
        ),  # a label, its time as text
        (
            b'{"model":"fraud","id":"y","ts":1764064800000,"prediction":0,"label":0}',
            True,
        ),  # a prediction with a label
        (
            b'{"model":"fraud","id":"z","features":{"amount":1}}',
            False,
        ),  # no event time: the line before's
        (b'{"model":"fraud"} {"model":"fraud"}', False),  # two objects on one line: not an event
        (b'{"id":"w","ts":5}', False),  # no model
    ],
)
def test_whole_batches_read_as_line_by_line_does(
    history: History, extra: bytes, taken_whole: bool
) -> None:
    source = FileSource(load_settings(None), history.events)
    lines = [line for _, line in zip(range(300), history.events.open("rb"))]
    lines.insert(150, extra + b"\n")

    whole = source._whole(lines, 7, None)
    by_line = source._line_by_line(lines, 7, None, 1)

    assert len(by_line) == 301 and [record.offset() for record in by_line.messages] == list(
        range(7, 308)
    )
    if taken_whole:
        assert whole == by_line
    else:
        assert whole is None  # unusual lines are read one by one
        assert source._whole(lines[:150] + lines[151:], 7, None) is not None


def test_field_names_mapped_for_one_model_are_honoured_when_routing_lines(tmp_path: Path) -> None:
    lines = [
        b'{"model":"mapped","time":5000,"outcome":1,"id":"a"}',  # this model's label and time fields
        b'{"model":"other","time":6000,"outcome":1,"id":"b"}',  # default names: neither is a label nor a time
        b'{"model":17,"label":1}',  # not a valid model name
    ]
    path = tmp_path / "mapped.jsonl"
    path.write_bytes(b"\n".join(lines))
    settings = load_settings(
        None, models={"mapped": {"fields": {"label": "outcome", "ts": "time"}}}
    )

    [batch] = FileSource(settings, path).batches(100)

    assert [(m.topic(), m.timestamp()[1]) for m in batch.messages] == [
        ("labels", 5000),
        ("predictions", 5000),
        ("predictions", 5000),
    ]
    assert batch.models == ["mapped", "other", ""]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--file", "/nonexistent/events.jsonl"],
            "events file /nonexistent/events.jsonl does not exist",
        ),
        (
            ["--file", "{events}", "--from-offset", "5"],
            "--from-offset applies to topics, not to --file",
        ),
        (["--labels-file", "{events}"], "--labels-file needs --file"),
        (["--file", "{events}", "--truth", "{events}"], "--truth"),
        (
            ["--file", "{events}", "--config", "/nonexistent.toml"],
            "config file /nonexistent.toml does not exist",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    history: History, backtest: Backtest, args: list[str], message: str
) -> None:
    code, out, err = backtest(*(arg.format(events=history.events) for arg in args))

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err


def test_a_bad_time_is_a_usage_error(
    backtest: Backtest, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        backtest("--from-time", "yesterday")

    assert exited.value.code == 2
    assert "neither RFC 3339 with a zone" in capsys.readouterr().err


def test_retraining_recommendations_and_outcomes_are_reported_like_other_model_events(
    backtest: Backtest, tmp_path: Path
) -> None:
    """A concept drift, then a retrained version: the recommendation, the deployment and the
    outcome in the JSON (placed among the predictions) and in the text summary."""
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    code = producers(
        [
            "simulate",
            "--events",
            "24000",
            "--seed",
            "5",
            "--inject",
            "concept_drift@6000,magnitude=0.4",
            "--deploy",
            "2@16000,quality=fixed",
            "--out",
            str(events),
            "--labels-out",
            str(labels),
        ]
    )
    assert code == 0

    result = orjson.loads(backtest("--file", events, "--labels-file", labels, "--json")[1])
    placed = [
        (e["position"], e["cloudevent"]["type"].rsplit(".", 1)[1])
        for e in result["runs"][0]["model_events"]
    ]
    kinds = [kind for _, kind in placed if kind != "compared"]
    assert kinds == ["recommended", "deployed", "outcome"]
    position = {kind: at for at, kind in placed}
    # A label is placed among the predictions it arrived with, a minute (6,000 predictions)
    # after its own: the drop shows within 500 labels of the change, the outcome after the new
    # version's first labels.
    assert 12_000 <= position["recommended"] <= 12_500 + 500
    assert position["deployed"] == 16_000 and 22_000 < position["outcome"] <= 24_000

    code, out, _ = backtest("--file", events, "--labels-file", labels)
    assert code == 0
    assert "fraud: at event" in out and "retrain version 1 (accuracy 0.8" in out
    assert "retrained version 2 recovered: accuracy" in out
