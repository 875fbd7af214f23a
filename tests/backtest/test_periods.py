"""`streamdrift periods` on files: this period against the last, with the live monitors' names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.simulate import Injection, Simulator
from tests.backtest.conftest import Command as Periods

START_MS = 1_764_064_800_000  # the simulator's first event time
PERIOD_EVENTS = 10_000  # predictions per period, 10 ms apart
REFERENCE = f"{START_MS}..{START_MS + 10 * PERIOD_EVENTS}"
CURRENT = f"{START_MS + 10 * PERIOD_EVENTS}..{START_MS + 20 * PERIOD_EVENTS}"
BOTH = ("--reference", REFERENCE, "--current", CURRENT)
UNTOUCHED = ("utilization", "age", "income", "country", "device")


def write_history(folder: Path, injections: tuple[Injection, ...]) -> tuple[Path, Path]:
    """Two periods of the simulated fraud model (and a little after, for late labels) as the
    simulator's files: events, and labels one minute after their predictions."""
    stream = Simulator(seed=5, injections=injections)
    batch = stream.batch(2 * PERIOD_EVENTS + 1000)
    events, labels = folder / "events.jsonl", folder / "labels.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in batch.predictions))
    labels.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in [*batch.labels, *stream.drain()]))
    return events, labels


def compared(periods: Periods, events: Path, labels: Path) -> dict[str, Any]:
    """The --json result of the two periods of a history."""
    code, out, err = periods(
        "--file",
        events,
        "--labels-file",
        labels,
        *BOTH,
        "--json",
    )
    assert code == 0, err
    result: dict[str, Any] = orjson.loads(out)
    return result


def by_monitor(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["monitor"]: m for m in result["monitors"] if m["model"] == "fraud"}


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`amount` shifted by one reference standard deviation in the current period only."""
    return write_history(
        tmp_path_factory.mktemp("shifted"),
        (Injection("mean_shift", "amount", start=PERIOD_EVENTS),),
    )


def test_the_shifted_feature_is_flagged_and_the_untouched_ones_are_not(
    periods: Periods, shifted: tuple[Path, Path]
) -> None:
    events, labels = shifted
    result = compared(periods, events, labels)
    monitors = by_monitor(result)
    amount = monitors["feature.amount"]
    assert amount["significant"] and amount["adjusted_p"] < 1e-12
    location = next(t for t in amount["tests"] if t["statistic"] == "location")
    assert location["current"] > 0.6 and location["shift_se"] > 10  # the mass moved up
    assert amount["current"]["mean"] > amount["reference"]["mean"]
    for name in UNTOUCHED:
        assert not monitors[f"feature.{name}"]["significant"], name
        assert monitors[f"feature.{name}"]["adjusted_p"] > 0.05, name
    assert not monitors["quality.missing.income"]["significant"]
    assert result["monitors"][0]["monitor"] == "feature.amount"  # most significant first
    assert result["periods"]["reference"]["predictions"] == {"fraud": PERIOD_EVENTS}
    assert result["periods"]["current"]["predictions"] == {"fraud": PERIOD_EVENTS}


def test_a_healthy_history_flags_nothing(periods: Periods, tmp_path: Path) -> None:
    events, labels = write_history(tmp_path, ())

    result = compared(periods, events, labels)
    assert result["flagged"] == []
    features = [m for m in result["monitors"] if m["monitor"].startswith("feature.")]
    assert len(features) == 6
    assert min(m["adjusted_p"] for m in features) > 0.05


def test_category_shares_and_accuracy_of_each_period(periods: Periods, tmp_path: Path) -> None:
    events, labels = write_history(
        tmp_path, (Injection("category_mix", "country", start=PERIOD_EVENTS),)
    )

    result = compared(periods, events, labels)
    country = by_monitor(result)["feature.country"]
    assert country["significant"]
    shares = country["shares"]
    assert shares["DE"][0] == pytest.approx(0.35, abs=0.02)  # the simulator's reference mix
    assert shares["BR"][0] == pytest.approx(0.04, abs=0.01)
    assert shares["BR"][1] > shares["BR"][0] + 0.1  # reversed order: the rarest became common
    assert set(country["top_changes"][:2]) == {"DE", "BR"}
    chi_square = next(t for t in country["tests"] if t["statistic"] == "shares")
    assert chi_square["degrees_of_freedom"] == 5 and chi_square["p"] < 1e-12
    assert not by_monitor(result)["feature.device"]["significant"]
    (performance,) = result["performance"]
    assert performance["measure"] == "accuracy"
    for name in ("reference", "current"):
        score = performance[name]
        # every prediction: labels come a minute later, read after the period's end
        assert score["labelled"] == PERIOD_EVENTS
        assert 0.6 < score["low"] < score["value"] < score["high"] < 1.0


def test_text_and_html_report(periods: Periods, shifted: tuple[Path, Path], tmp_path: Path) -> None:
    events, labels = shifted
    report = tmp_path / "periods.html"

    code, out, err = periods(
        "--file",
        events,
        "--labels-file",
        labels,
        *BOTH,
        "--report",
        report,
    )

    assert code == 0, err
    lines = out.splitlines()
    flagged = [line for line in lines if line.startswith("*")]
    assert flagged and "feature.amount" in flagged[0]
    assert not any(f"feature.{name} " in line for line in flagged for name in UNTOUCHED)
    assert "Category shares, reference -> current" in out and "fraud accuracy:" in out
    page = report.read_text()
    assert "<h1>streamdrift periods" in page and "feature.amount" in page
    assert "<h2>Category shares</h2>" in page and "<h2>Performance</h2>" in page
    assert "<script" not in page


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (f"{START_MS}..{START_MS + 2000}", f"{START_MS + 1000}..{START_MS + 3000}", "overlap"),
        (f"{START_MS + 1000}..{START_MS}", CURRENT, "its end must be after its start"),
        (f"{START_MS}..{START_MS}", CURRENT, "its end must be after its start"),
        (f"{START_MS}", CURRENT, "expected FROM..TO"),
        ("yesterday..today", CURRENT, "neither RFC 3339"),
        (
            "2025-11-01T00:00:00Z..2025-11-02T00:00:00Z",
            CURRENT,
            "no events in the reference period",
        ),
    ],
)
def test_bad_periods_exit_2_with_one_line(
    periods: Periods, shifted: tuple[Path, Path], reference: str, current: str, message: str
) -> None:
    events, _ = shifted

    code, out, err = periods("--file", events, "--reference", reference, "--current", current)

    assert code == 2 and out == ""
    (line,) = [line for line in err.splitlines() if line.strip() and "\r" not in line]
    assert line.startswith("streamdrift: ") and message in line
