"""Fixtures of the backtest tests: a simulated history with known drifts, written as files by the
producers' own command line, and the backtest and periods commands run in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from detector.commands.cli import main as streamdrift
from producers.__main__ import main as producers
from tests.backtest.support import EVENTS, INJECTIONS, History

Command = Callable[..., tuple[int, str, str]]
Backtest = Command


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A simulated fraud model: a mean shift of `amount` and a category mix change of `country`."""
    folder = tmp_path_factory.mktemp("history")
    files = History(folder / "events.jsonl", folder / "labels.jsonl", folder / "truth.json")
    injections = [argument for spec in INJECTIONS for argument in ("--inject", spec)]
    code = producers(
        [
            "simulate",
            "--events",
            str(EVENTS),
            "--seed",
            "3",
            *injections,
            "--out",
            str(files.events),
            "--labels-out",
            str(files.labels),
            "--truth",
            str(files.truth),
        ]
    )
    assert code == 0
    return files


def command(name: str, capsys: pytest.CaptureFixture[str]) -> Command:
    """`streamdrift NAME ARGS` in this process: (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = streamdrift([name, *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def backtest(capsys: pytest.CaptureFixture[str]) -> Command:
    return command("backtest", capsys)


@pytest.fixture
def periods(capsys: pytest.CaptureFixture[str]) -> Command:
    return command("periods", capsys)
