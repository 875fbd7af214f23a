"""Configuration: environment over TOML file over defaults, strict file, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.settings import ConfigError, ProcessingGuarantee, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamdrift.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("STREAMDRIFT_"):
            monkeypatch.delenv(name)
    s = load_settings(None)
    assert s.processing_guarantee is ProcessingGuarantee.exactly_once
    assert (s.topics.predictions, s.topics.features, s.topics.labels, s.topics.alerts, s.topics.dlq) == (
        "predictions", "features", "labels", "drift-alerts", "drift-dlq",
    )
    assert s.auto_discover_models


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[kafka]\nbootstrap_servers = "file:9092"\ngroup_id = "from-file"\n[metrics]\nport = 1234\n')
    monkeypatch.setenv("STREAMDRIFT_KAFKA__GROUP_ID", "from-env")
    monkeypatch.setenv("STREAMDRIFT_PROCESSING_GUARANTEE", "at_least_once")
    s = load_settings(path)
    assert (s.kafka.bootstrap_servers, s.kafka.group_id, s.metrics.port) == ("file:9092", "from-env", 1234)
    assert s.processing_guarantee is ProcessingGuarantee.at_least_once


def test_config_file_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMDRIFT_CONFIG", str(write(tmp_path, '[topics]\nalerts = "my-alerts"\n')))
    assert load_settings(None).topics.alerts == "my-alerts"


def test_per_model_settings_and_detection_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, """
[detection]
warmup_events = 800
[models.fraud]
owner = "team-risk"
runbook_url = "https://runbooks/fraud"
task = "classification"
features = ["amount", "country"]
fields = { features = "inputs" }
detection = { warmup_events = 500, cooldown_events = 10 }
""")
    s = load_settings(path)
    assert s.model_settings("fraud").owner == "team-risk"
    assert s.detection_for("fraud").warmup_events == 500
    assert s.detection_for("fraud").cooldown_events == 10
    assert s.detection_for("other").warmup_events == 800
    assert s.fields_for("fraud").features == "inputs" and s.fields_for("other").features == "features"


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("[kafka]\nbogus = 1\n", "kafka.bogus"),
        ("[detection]\nwarmup_events = 3\n", "detection.warmup_events"),
        ('processing_guarantee = "twice"\n', "processing_guarantee"),
        ("[models.m]\ndetection = { nope = 1 }\n", "models.m.detection"),
        ('[models.m]\nfields = { model = "x" }\n', "models.m.fields"),
        ('[kafka]\nproperties = { "group.id" = "x" }\n', "kafka.properties"),
        ("[kafka\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    message = str(error.value)
    assert fragment in message and "\n" not in message and str(tmp_path) in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_secrets_are_masked_but_passed_to_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMDRIFT_KAFKA__SECRETS", '{"sasl.password": "hunter2"}')
    monkeypatch.setenv("STREAMDRIFT_KAFKA__PROPERTIES", '{"security.protocol": "SASL_SSL", "sasl.username": "u"}')
    s = load_settings(None)
    assert "hunter2" not in str(s.redacted())
    assert s.kafka.client_config()["sasl.password"] == "hunter2"
    assert s.kafka.client_config()["security.protocol"] == "SASL_SSL"
