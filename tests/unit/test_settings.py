"""Configuration: environment over TOML file over defaults, strict file, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.settings import ConfigError, ProcessingGuarantee, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamdrift.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_contract(environ: pytest.MonkeyPatch) -> None:
    s = load_settings(None)
    assert s.processing_guarantee is ProcessingGuarantee.exactly_once
    assert (
        s.topics.predictions,
        s.topics.features,
        s.topics.labels,
        s.topics.alerts,
        s.topics.dlq,
    ) == (
        "predictions",
        "features",
        "labels",
        "drift-alerts",
        "drift-dlq",
    )
    assert s.auto_discover_models


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        '[kafka]\nbootstrap_servers = "file:9092"\ngroup_id = "from-file"\n[metrics]\nport = 1234\n',
    )
    monkeypatch.setenv("STREAMDRIFT_KAFKA__GROUP_ID", "from-env")
    monkeypatch.setenv("STREAMDRIFT_PROCESSING_GUARANTEE", "at_least_once")
    s = load_settings(path)
    assert (s.kafka.bootstrap_servers, s.kafka.group_id, s.metrics.port) == (
        "file:9092",
        "from-env",
        1234,
    )
    assert s.processing_guarantee is ProcessingGuarantee.at_least_once


def test_config_file_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "STREAMDRIFT_CONFIG", str(write(tmp_path, '[topics]\nalerts = "my-alerts"\n'))
    )
    assert load_settings(None).topics.alerts == "my-alerts"


def test_per_model_settings_and_detection_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[detection]
warmup_events = 800
[models.fraud]
owner = "team-risk"
runbook_url = "https://runbooks/fraud"
task = "classification"
features = ["amount", "country"]
fields = { features = "inputs" }
detection = { warmup_events = 500, cooldown_events = 10 }
""",
    )
    s = load_settings(path)
    assert s.model_settings("fraud").owner == "team-risk"
    assert s.detection_for("fraud").warmup_events == 500
    assert s.detection_for("fraud").cooldown_events == 10
    assert s.detection_for("other").warmup_events == 800
    assert (
        s.fields_for("fraud").features == "inputs" and s.fields_for("other").features == "features"
    )


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
    monkeypatch.setenv(
        "STREAMDRIFT_KAFKA__PROPERTIES", '{"security.protocol": "SASL_SSL", "sasl.username": "u"}'
    )
    s = load_settings(None)
    assert "hunter2" not in str(s.redacted())
    assert s.kafka.client_config()["sasl.password"] == "hunter2"
    assert s.kafka.client_config()["security.protocol"] == "SASL_SSL"


@pytest.mark.parametrize(
    "name,suggestion",
    [
        ("STREAMDRIFT_PROCESING_GUARANTEE", "STREAMDRIFT_PROCESSING_GUARANTEE"),
        ("STREAMDRIFT_METRIC__PORT", "STREAMDRIFT_METRICS__PORT"),
        ("STREAMDRIFT_KAFKA__BOOTSTRAP_SERVER", "STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS"),
        ("STREAMDRIFT_KAFKA_BOOTSTRAP_SERVERS", "STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS"),
        ("STREAMDRIFT_MODELS__fraud__OWNR", "STREAMDRIFT_MODELS__fraud__OWNER"),
        (
            "STREAMDRIFT_MODELS__fraud__DETECTON__WARMUP_EVENTS",
            "STREAMDRIFT_MODELS__fraud__DETECTION__WARMUP_EVENTS",
        ),
    ],
)
def test_a_variable_that_names_no_setting_is_an_error_with_a_suggestion(
    environ: pytest.MonkeyPatch, name: str, suggestion: str
) -> None:
    environ.setenv(name, "1")
    with pytest.raises(ConfigError) as error:
        load_settings(None)
    message = str(error.value)
    assert (
        f"{name} is not a setting (did you mean {suggestion}?)" in message and "\n" not in message
    )


def test_a_variable_below_a_plain_setting_is_unknown_without_a_guess(
    environ: pytest.MonkeyPatch,
) -> None:
    environ.setenv("STREAMDRIFT_METRICS__PORT__HTTP", "9000")
    with pytest.raises(ConfigError, match=r"STREAMDRIFT_METRICS__PORT__HTTP is not a setting$"):
        load_settings(None)


def test_every_unknown_variable_is_counted(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("STREAMDRIFT_METRIC__PORT", "1")
    environ.setenv("STREAMDRIFT_PROCESING_GUARANTEE", "at_least_once")
    with pytest.raises(
        ConfigError, match=r"STREAMDRIFT_METRIC__PORT is not a setting .*\(and 1 more\)$"
    ):
        load_settings(None)


def test_nested_and_dict_valued_settings_take_any_key(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("STREAMDRIFT_KAFKA__PROPERTIES__client.id", "sidecar")
    environ.setenv("STREAMDRIFT_KAFKA__SECRETS__sasl.password", "hunter2")
    environ.setenv("STREAMDRIFT_MODELS__fraud__DETECTION__WARMUP_EVENTS", "500")
    environ.setenv("STREAMDRIFT_MODELS__fraud__FEATURES", '["amount"]')
    # names match without regard to case, as pydantic-settings reads them
    environ.setenv("streamdrift_metrics__port", "1234")
    s = load_settings(None)
    assert (
        s.kafka.client_config()["client.id"] == "sidecar"
        and s.kafka.client_config()["sasl.password"] == "hunter2"
    )
    assert s.detection_for("fraud").warmup_events == 500 and s.model_settings("fraud").features == [
        "amount"
    ]
    assert s.metrics.port == 1234


def test_kubernetes_service_links_and_the_config_path_are_not_settings(
    tmp_path: Path, environ: pytest.MonkeyPatch
) -> None:
    # What Kubernetes injects into every pod of a namespace with a Service named `streamdrift`.
    links = {
        "STREAMDRIFT_SERVICE_HOST": "10.0.0.11",
        "STREAMDRIFT_SERVICE_PORT": "9477",
        "STREAMDRIFT_SERVICE_PORT_METRICS": "9477",
        "STREAMDRIFT_PORT": "tcp://10.0.0.11:9477",
        "STREAMDRIFT_PORT_9477_TCP": "tcp://10.0.0.11:9477",
        "STREAMDRIFT_PORT_9477_TCP_PROTO": "tcp",
        "STREAMDRIFT_PORT_9477_TCP_PORT": "9477",
        "STREAMDRIFT_PORT_9477_TCP_ADDR": "10.0.0.11",
        "STREAMDRIFT_PORT_53_UDP_ADDR": "10.0.0.11",
        "STREAMDRIFT_CONFIG": str(write(tmp_path, "[metrics]\nport = 1234\n")),
    }
    for name, value in links.items():
        environ.setenv(name, value)
    assert load_settings(None).metrics.port == 1234


@pytest.mark.parametrize(
    "name",
    [
        "STREAMDRIFT_SERVICE_HOSTNAME",
        "STREAMDRIFT_PORT_9477",
        "STREAMDRIFT_PORT_9477_TCP_HOST",
        "STREAMDRIFT_CONFIG_FILE",
    ],
)
def test_only_the_exact_service_link_names_are_excepted(
    environ: pytest.MonkeyPatch, name: str
) -> None:
    environ.setenv(name, "x")
    with pytest.raises(ConfigError, match=f"{name} is not a setting"):
        load_settings(None)


@pytest.mark.parametrize(
    "name,value,setting",
    [
        ("STREAMDRIFT_KAFKA__PROPERTIES", "{bad json", "kafka.properties"),
        ("STREAMDRIFT_KAFKA__SECRETS", "", "kafka.secrets"),
        ("STREAMDRIFT_KAFKA", "{'group_id': 'x'}", "kafka"),
        ("STREAMDRIFT_MODELS__fraud__FEATURES", "amount,country", "models.fraud.features"),
        (
            "STREAMDRIFT_DETECTION__DISABLED_MONITORS",
            "feature.amount",
            "detection.disabled_monitors",
        ),
    ],
)
def test_json_that_does_not_parse_names_the_variable(
    environ: pytest.MonkeyPatch, name: str, value: str, setting: str
) -> None:
    environ.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(None)
    message = str(error.value)
    assert message.startswith(
        f"invalid setting {setting} in the STREAMDRIFT_ environment: {name} is not valid JSON ("
    )
    assert "\n" not in message
