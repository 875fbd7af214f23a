"""`python -m bench`: every sub-command runs at its tiny size (`--quick`) and prints the
header and tables it promises. Figures are not checked: benchmarks are not timed tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench import peers
from bench.__main__ import main
from bench.throughput import WORKLOADS, as_messages, generate
from bench.workload import LABEL_DELAY_MS
from detector.core.pipeline import Pipeline
from detector.settings import load_settings
from tests.apache_kafka.broker import kafka_version


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Command: `python -m bench {' '.join(args)}`")
    assert "Date: " in out and "Machine: nproc " in out and "numpy " in out and "river " in out
    return out


def table_rows(out: str, first_header: str) -> list[list[str]]:
    """Cells of the rows of the Markdown table whose first header cell is `first_header`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


MEASUREMENTS = [
    "baseline: consume + orjson.loads",
    "end to end, exactly_once",
    "end to end, at_least_once",
]


def test_throughput_measures_every_workload_in_process_and_on_both_brokers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "throughput", "--quick", "--workers", "1")
    rows = table_rows(out, "workload")
    workloads = ["plain", "ids", "labels"]
    kafka = f"Apache Kafka {kafka_version()}"
    assert [row[:3] for row in rows] == [
        *([w, "in-process", "detector core, in-process"] for w in workloads),
        *([w, broker, m] for broker in ("Tansu", kafka) for w in workloads for m in MEASUREMENTS),
    ]
    assert all(
        float(row[5].replace(",", "")) > 0 and float(row[6].replace(",", "")) > 0 for row in rows
    )
    assert all(
        row[7].endswith("of the baseline (target ≥ 0.5×)") for row in rows if "end to end" in row[2]
    )
    against_plain = table_rows(
        out[out.index("| workload | broker | measurement | events/s ÷") :], "workload"
    )
    assert [row[:2] for row in against_plain] == [
        *([w, "in-process"] for w in workloads[1:]),
        *([w, broker] for broker in ("Tansu", kafka) for w in workloads[1:] for _ in MEASUREMENTS),
    ]


def test_throughput_with_workers_adds_one_process_workers_and_replicas_beside_a_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(
        capsys, "throughput", "--quick", "--workload", "ids", "--broker", "tansu", "--workers", "2"
    )
    rows = table_rows(out[out.index("Scale-out: ") :], "workload")
    layouts = [
        ["ids", "Tansu", guarantee, layout]
        for guarantee in ("exactly_once", "at_least_once")
        for layout in ("1 process", "2 workers", "2 replicas")
    ]
    baseline = ["ids", "Tansu", "baseline: consume + orjson.loads", "1 consumer"]
    assert [row[:4] for row in rows] == [*layouts, baseline]
    # the runs are timed from the first event processed: at most the whole stream
    assert all(int(row[4].replace(",", "")) <= 20_000 for row in rows)
    assert float(rows[-1][7]) > 0  # the baseline's CPU µs per event


def test_throughput_core_only_skips_the_broker(capsys: pytest.CaptureFixture[str]) -> None:
    out = bench(capsys, "throughput", "--quick", "--core-only", "--workload", "ids")
    rows = table_rows(out, "workload")
    assert [row[:3] for row in rows] == [["ids", "in-process", "detector core, in-process"]]
    assert "plain's" not in out  # nothing to compare with


def test_the_labels_workload_labels_a_share_of_its_predictions_later() -> None:
    stream = generate(WORKLOADS["labels"], 20_000)
    predictions = {
        orjson.loads(value)["id"]: orjson.loads(value) for _, value in stream.predictions
    }
    labels = [orjson.loads(value) for _, _, value in stream.labels]
    assert 0.27 < len(labels) / len(predictions) < 0.33
    for label in labels:
        delay = label["ts"] - predictions[label["id"]]["ts"]
        assert LABEL_DELAY_MS[0] <= delay < LABEL_DELAY_MS[1] and label["label"] in (0, 1)
    assert [ts for ts, _, _ in stream.labels] == sorted(label["ts"] for label in labels)
    assert generate(WORKLOADS["ids"], 1000).labels == []
    assert "id" not in orjson.loads(generate(WORKLOADS["plain"], 10).predictions[0][1])


def test_the_core_joins_the_labels_workload_s_labels_to_its_predictions() -> None:
    settings = load_settings(None)
    merged = as_messages(generate(WORKLOADS["labels"], 20_000), settings.topics)
    assert [m.timestamp()[1] for m in merged] == sorted(m.timestamp()[1] for m in merged)
    pipeline = Pipeline(settings)
    for start in range(0, len(merged), 5000):
        assert pipeline.process(merged[start : start + 5000]).dead_letters == []
    (model,) = pipeline.models()
    counts, _ = model.performance.take_counts()
    assert counts["joined"] > 0.9 * len(merged) * 0.3 / 1.3 and counts["unmatched"] == 0


def test_decode_compares_msgspec_with_orjson_on_equal_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "decode", "--quick")
    rows = table_rows(out, "decoding")
    assert [row[0].split(" ")[0] for row in rows] == [
        "orjson.loads",
        "msgspec",
        "streamdrift,",
        "streamdrift,",
    ]
    assert all(row[1] == "2,000" and float(row[2]) > 0 for row in rows)
    assert rows[0][4] == "1.00×"


def test_models_measures_each_number_of_models_held_and_unheld_against_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "models", "--quick", "--unheld")
    rows = table_rows(out, "models")
    held = "≤ 50,000 in all"
    assert [row[:3] for row in rows] == [
        [models, ids, how]
        for ids in ("no", "yes")
        for how in (held, "no")
        for models in ("1", "20")
    ]
    assert all(row[3] == "20,000" and float(row[5].replace(",", "")) > 0 for row in rows)
    assert [row[7] for row in rows if row[0] == "1"] == ["1.00×"] * 4


def test_models_interleaves_the_models_one_event_at_a_time() -> None:
    from bench.models import interleaved

    batches = list(interleaved(3, ids=True, events=12, topic="predictions"))
    assert [len(batch) for batch in batches] == [12]
    events = [orjson.loads(message.value() or b"") for message in batches[0]]
    assert [e["model"] for e in events[:4]] == [
        "model-0000",
        "model-0001",
        "model-0002",
        "model-0000",
    ]
    assert [e["ts"] for e in events[::3]] == [events[0]["ts"] + i for i in range(4)]
    assert all(len(e["features"]) == 4 and e["id"] for e in events)
    assert [message.offset() for message in batches[0]] == list(range(12))


def test_memory_reports_bytes_per_model_and_state_size(capsys: pytest.CaptureFixture[str]) -> None:
    rows = table_rows(bench(capsys, "memory", "--quick", "--allocated"), "models")
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("10", "5", "all (worst case)"),
        ("10", "5", "defaults"),
        ("20", "5", "no ids"),
    ]
    # every prediction of --quick's 1,200 waits in the worst case, the first 1,000 at the defaults
    assert [row[3] for row in rows] == ["1,200", "1,000", "0"]
    assert all(float(row[7]) > 0 and float(row[8]) > 0 and float(row[10]) > 0 for row in rows)
    # predictions waiting cost memory: the model with ids keeps more than the one without
    assert float(rows[0][8]) > float(rows[2][8])


def test_calibrate_prints_fits_budget_check_and_constants(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "calibrate", "--quick")
    assert "gives river's alarms on the same 30,000 values: True" in out
    assert table_rows(out, "delta")[-1][1] == "fit"
    assert table_rows(out, "budget /M events")[0][0] == "100"
    assert (
        "PAGE_HINKLEY_INTERCEPTS = {0.05: " in out
        and "ADWIN_RATE_PER_BLOCK = " in out
        and "ADWIN_RATE_EXPONENT = " in out
    )


def test_quality_covers_every_family_and_change(capsys: pytest.CaptureFixture[str]) -> None:
    out = bench(capsys, "quality", "--quick")
    changes = table_rows(out, "family")
    families = ["normal", "lognormal", "student_t2", "poisson", "bimodal", "categorical"]
    assert sorted({row[0] for row in changes}) == sorted(families)
    assert len(changes) == 5 * 4 + 3  # no spread change for categories
    stationary = table_rows(out.split("### Stationary")[1], "family")
    assert [row[0] for row in stationary] == families
    assert "### Targets" in out
    # the seasonal model, beside the design without adjustment on the same data: its cycles
    # are alarms there (2 days: the default design is still learning its week, so silent)
    seasonal = table_rows(out.split("### Seasonal traffic")[1], "design")
    assert [row[0] for row in seasonal] == ["seasonal (default)", "no seasonal adjustment"]
    assert float(seasonal[0][1]) == 0 < float(seasonal[1][1].replace(",", ""))


def test_quality_with_a_short_warmup_gives_each_stationary_stream_its_own_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "quality", "--quick", "--warmup-events", "100")
    assert "change after 100 warm-up" in out and "(100 stream(s), each with its own warm-up)" in out
    assert "### Seasonal traffic" not in out  # measured at the default warm-up only
    start_errors = [row[9] for row in table_rows(out, "family") if row[3] == "100%"]
    assert start_errors and all(error.isdigit() for error in start_errors)


def test_peers_runs_streamdrift_and_labels_recorded_figures_without_installing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = bench(capsys, "peers", "--quick", "--no-install", "--venv", str(tmp_path / "absent"))
    tools = [row[0] for row in table_rows(out, "tool")]
    assert tools[0] == "streamdrift core (this run)"
    assert all("recorded" in tool for tool in tools[1:]) and len(tools) == 3
    assert "NannyML not run: no NannyML in" in out
    assert not (tmp_path / "absent").exists()


def test_peers_data_has_the_shift_where_it_is_described(tmp_path: Path) -> None:
    sizes = peers.QUICK
    peers.write_data(sizes, tmp_path / "data.npz")
    data = np.load(tmp_path / "data.npz")
    names = [str(n) for n in data["names"]]
    assert len(names) == 23 and [str(n) for n in data["categorical"]] == ["c0", "c1", "c2"]
    assert all(
        len(data[f"analysis.{n}"]) == sizes.analysis
        and len(data[f"reference.{n}"]) == sizes.reference
        for n in names
    )
    shifted = data[f"analysis.{peers.SHIFTED}"]
    sd = data[f"reference.{peers.SHIFTED}"].std()
    moved = shifted[sizes.change :].mean() - shifted[: sizes.change].mean()
    assert 0.35 * sd < moved < 0.65 * sd


def test_estimated_measures_streamdrift_s_estimates_without_installing_the_peer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = bench(capsys, "estimated", "--quick", "--no-install", "--venv", str(tmp_path / "absent"))
    rows = table_rows(out, "estimate")
    assert [row[0] for row in rows] == [
        "streamdrift, mean confidence (the estimate before calibration)",
        "streamdrift, calibrated from the labels that came",
    ]
    assert "NannyML not run: no NannyML in" in out
    assert not (tmp_path / "absent").exists()


def test_no_sub_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "throughput" in capsys.readouterr().out


def test_backtest_times_the_core_the_replay_and_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "backtest", "--quick")
    rows = table_rows(out, "measurement")
    kinds = ["detector core, in-process", "backtest replay", "backtest command"]
    inputs = ["predictions file", "predictions and labels files"]
    assert [row[0] for row in rows] == [f"{kind}, {files}" for files in inputs for kind in kinds]
    assert all(row[1] == "20,000" and float(row[3].replace(",", "")) > 0 for row in rows)
    assert rows[0][4] == rows[3][4] == "1.00×"  # each input against its own core
    peaks = [float(rows[i][6].replace(",", "")) for i in (2, 5)]
    assert min(peaks) > 0  # the commands' peak resident size (MiB)
    assert "detected 1" in out  # the simulated shift is found


def ab_against_a_copy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *options: str
) -> tuple[str, list[list[str]]]:
    """`bench ab` with a copy of this tree as the base: its output and its rounds' rows, after
    checking that one round ran each side."""
    shutil.copytree(Path(__file__).parents[2] / "detector", tmp_path / "detector")
    out = bench(capsys, "ab", str(tmp_path), "--quick", *options)
    rows = table_rows(out, "round")
    assert [row[:2] for row in rows] == [["1", "A (base)"], ["1", "B (this tree)"]]
    return out, rows


def test_ab_compares_another_tree_s_core_with_this_one_s(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, rows = ab_against_a_copy(capsys, tmp_path, "--workload", "shift")
    assert rows[0][5] == rows[1][5] and int(rows[0][5]) > 0  # the same alerts, and some
    assert "Median B ÷ A: events per CPU-s" in out
    import detector.core.pipeline

    assert Path(detector.core.pipeline.__file__).is_relative_to(Path(__file__).parents[2])


def test_models_backtest_runs_the_command_over_each_number_of_models(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = bench(capsys, "models", "--quick", "--backtest")
    rows = table_rows(out, "models (backtest)")
    assert [row[:2] for row in rows] == [["1", "20,000"], ["20", "20,000"]]
    assert all(float(row[4].replace(",", "")) > 0 for row in rows)
    assert rows[0][5] == "1.00×"


def test_ab_with_many_models_holds_their_events_and_times_after_their_warm_up(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, rows = ab_against_a_copy(capsys, tmp_path, "--models", "3")
    assert rows[0][5] == rows[1][5]  # the same alerts
    assert "`bench models`' with 3 models, held; 20,000 events timed" in out
