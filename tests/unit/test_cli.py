"""The command line: help everywhere, exit codes, check-config."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.cli import EXIT_OK, EXIT_USAGE, main


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["broker"], ["check-config"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: streamdrift" in capsys.readouterr().out


def test_check_config_prints_the_resolved_config_and_derived_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[kafka]\nbootstrap_servers = "k:9092"\nsecrets = { "sasl.password" = "hunter2" }\n[models.fraud]\nfeatures = ["a", "b"]\n')
    assert main(["check-config", "--config", str(config)]) == EXIT_OK
    out = capsys.readouterr().out
    resolved = orjson.loads(out)
    assert resolved["kafka"]["bootstrap_servers"] == "k:9092"
    assert "hunter2" not in out
    derived = resolved["derived_thresholds"]
    # Fewer monitored features means fewer detectors to share the budget: each gets a looser threshold.
    assert derived["fraud"]["detectors"] < derived["(default)"]["detectors"]
    assert derived["fraud"]["page_hinkley_threshold"] < derived["(default)"]["page_hinkley_threshold"]


def test_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[detection]\nwarmup_events = -1\n")
    assert main(["check-config", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "detection.warmup_events" in err and str(config) in err


def test_run_without_a_cluster_is_a_usage_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("STREAMDRIFT_CONFIG", raising=False)
    assert main(["run"]) == EXIT_USAGE
    assert "bootstrap_servers is empty" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == EXIT_USAGE
