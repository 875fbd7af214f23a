"""`python -m producers`: files, ground truth, and one-line usage errors with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from producers.__main__ import UsageError, main, parse_deployment, parse_injection
from producers.scenarios import Deployment, Injection


def test_simulate_writes_predictions_labels_and_ground_truth(tmp_path: Path) -> None:
    out, labels, truth = tmp_path / "p.jsonl", tmp_path / "l.jsonl", tmp_path / "truth.json"
    code = main(
        [
            "simulate",
            "--events",
            "2500",
            "--seed",
            "3",
            "--label-delay-ms",
            "1000",
            "--label-coverage",
            "0.5",
            "--inject",
            "mean_shift:amount@1000,length=500",
            "--inject",
            "concept_drift@2000,magnitude=0.5",
            "--out",
            str(out),
            "--labels-out",
            str(labels),
            "--truth",
            str(truth),
        ]
    )
    assert code == 0
    predictions = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    label_events = [orjson.loads(line) for line in labels.read_bytes().splitlines()]
    assert [e["id"] for e in predictions] == [f"fraud-{i}" for i in range(2500)]
    assert 1000 < len(label_events) < 1500 and {e["id"] for e in label_events} <= {
        e["id"] for e in predictions
    }
    written = orjson.loads(truth.read_bytes())
    assert written["model"] == "fraud" and written["seed"] == 3
    assert [(t["scenario"], t["monitor"], t["start"], t["end"]) for t in written["injections"]] == [
        ("mean_shift", "feature.amount", 1000, 1500),
        ("concept_drift", "performance.error", 2000, None),
    ]


def test_simulate_cycle_writes_the_shop_model_at_a_cycling_rate(tmp_path: Path) -> None:
    out, truth = tmp_path / "p.jsonl", tmp_path / "truth.json"
    args = ["simulate", "--cycle", "--events", "2000", "--start-ms", "0", "--interval-ms", "60000"]
    code = main(
        [*args, "--out", str(out), "--inject", "category_mix:device@1500", "--truth", str(truth)]
    )
    assert code == 0
    predictions = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [e["id"] for e in predictions] == [f"shop-{i}" for i in range(2000)]
    assert set(predictions[0]["features"]) == {
        "amount",
        "sessions",
        "temperature",
        "device",
        "noise",
    }
    # a minute apart on average over 33 hours from midnight: about 3.5 at 05:00, 0.6 at 17:00
    gaps = np.diff([e["ts"] for e in predictions])
    assert predictions[0]["ts"] == 0 and gaps.max() > 3 * gaps.min()
    written = orjson.loads(truth.read_bytes())
    assert written["model"] == "shop"
    assert [(t["monitor"], t["start"]) for t in written["injections"]] == [("feature.device", 1500)]


def test_replay_to_standard_output_keeps_the_ground_truth_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "replay",
                "--dataset",
                "bananas",
                "--events",
                "20",
                "--out",
                "-",
                "--inject",
                "scale_change:1@5,magnitude=3",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    events = [orjson.loads(line) for line in captured.out.splitlines()]
    assert (
        len(events) == 20
        and events[0]["model"] == "bananas"
        and set(events[0]["features"]) == {"1", "2"}
    )
    assert '"monitor": "feature.1"' in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["simulate", "--events", "5"],
            "no destination: give --out FILE, or Kafka with --bootstrap-servers",
        ),
        (["simulate", "--labels-out", "x"], "--labels-out needs --out"),
        (
            ["simulate", "--out", "-", "--inject", "mean_shift:country@5"],
            "needs a numeric feature of model 'fraud'",
        ),
        (
            ["replay", "--dataset", "phishing", "--out", "-", "--inject", "prior_shift:maybe@5"],
            "choose from: False, True",
        ),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("STREAMDRIFT_CONFIG", raising=False)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_an_unwritable_output_exits_1_saying_where(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", "/nonexistent/dir/x.jsonl"]) == 1
    assert (
        "cannot write /nonexistent/dir/x.jsonl: No such file or directory"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--rate", "-1"],
        ["replay", "--dataset", "iris"],
        ["simulate", "--label-coverage", "2"],
    ],
)
def test_bad_option_values_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2


def test_injection_specs() -> None:
    assert parse_injection("mean_shift:amount@5000") == Injection("mean_shift", "amount", 5000)
    assert parse_injection("latency_creep@10,length=20,magnitude=0.5") == Injection(
        "latency_creep", "", 10, 0.5, 20
    )
    assert parse_injection("prior_shift:True@3,magnitude=0.9") == Injection(
        "prior_shift", "True", 3, 0.9
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mean_shift:amount", "expected SCENARIO[:TARGET]@START"),
        ("mean_shift:amount@5,speed=3", "unknown option 'speed'"),
        ("mean_shift:amount@5,length=x", "length must be a number"),
        ("wobble:amount@5", "unknown scenario 'wobble'"),
    ],
)
def test_bad_injection_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_injection(spec)


def test_deployment_specs() -> None:
    assert parse_deployment("2@5000") == Deployment("2", 5000)
    assert parse_deployment("v3@10,share=0.2,quality=worse,magnitude=0.5") == Deployment(
        "v3", 10, 0.2, "worse", 0.5
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("2", "expected VERSION@START"),
        ("2@5,speed=3", "unknown option 'speed'"),
        ("2@5,share=x", "share must be a number"),
        ("2@5,quality=better", "unknown quality 'better'"),
        ("2@5,share=0", "share in (0, 1]"),
    ],
)
def test_bad_deployment_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_deployment(spec)
