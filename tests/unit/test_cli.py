"""The command line: help everywhere, exit codes, check-config."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from detector.commands.cli import EXIT_OK, EXIT_USAGE, main


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["broker"], ["check-config"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: streamdrift" in capsys.readouterr().out


def test_check_config_prints_the_resolved_config_and_derived_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "k:9092"\nsecrets = { "sasl.password" = "hunter2" }\n[models.fraud]\nfeatures = ["a", "b"]\n'
    )
    assert main(["check-config", "--config", str(config)]) == EXIT_OK
    out = capsys.readouterr().out
    resolved = orjson.loads(out)
    assert resolved["kafka"]["bootstrap_servers"] == "k:9092"
    assert "hunter2" not in out
    derived = resolved["derived_thresholds"]
    # Fewer monitored features means fewer detectors to share the budget: each gets a looser threshold.
    assert derived["fraud"]["detectors"] < derived["(default)"]["detectors"]
    assert (
        derived["fraud"]["page_hinkley_threshold"] < derived["(default)"]["page_hinkley_threshold"]
    )


def test_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[detection]\nwarmup_events = -1\n")
    assert main(["check-config", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "detection.warmup_events" in err and str(config) in err


def test_run_without_a_cluster_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("STREAMDRIFT_CONFIG", raising=False)
    assert main(["run"]) == EXIT_USAGE
    assert "bootstrap_servers is empty" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == EXIT_USAGE


BAD_ENVIRONMENTS = {
    "json in a variable": (
        {"STREAMDRIFT_KAFKA__PROPERTIES": "{bad json"},
        "invalid setting kafka.properties in the STREAMDRIFT_ environment: STREAMDRIFT_KAFKA__PROPERTIES is not valid JSON (",
    ),
    "unknown variable": (
        {"STREAMDRIFT_PROCESING_GUARANTEE": "at_least_once"},
        "STREAMDRIFT_PROCESING_GUARANTEE is not a setting (did you mean STREAMDRIFT_PROCESSING_GUARANTEE?)",
    ),
    "unknown librdkafka property": (
        {"STREAMDRIFT_KAFKA__PROPERTIES": '{"no.such.property": 1}'},
        'invalid setting kafka.properties.no.such.property: librdkafka refuses the producer configuration: No such configuration property: "no.such.property"',
    ),
    "bad librdkafka value": (
        {"STREAMDRIFT_KAFKA__PROPERTIES": '{"security.protocol": "NOPE"}'},
        'invalid setting kafka.properties.security.protocol: librdkafka refuses the producer configuration: Invalid value "NOPE"',
    ),
    "bad value of an aliased property": (  # librdkafka names acks request.required.acks
        {"STREAMDRIFT_KAFKA__PROPERTIES": '{"acks": "banana"}'},
        'invalid setting kafka.properties.acks: librdkafka refuses the producer configuration: Invalid value for configuration property "request.required.acks"',
    ),
    "property that conflicts with the detector's own": (  # the producer is idempotent
        {"STREAMDRIFT_KAFKA__PROPERTIES": '{"acks": "1"}'},
        "invalid setting kafka.properties.acks: librdkafka refuses the producer configuration: Failed to create producer: `acks` must be set to `all`",
    ),
    "consumer property with a bad value": (
        {"STREAMDRIFT_KAFKA__PROPERTIES": '{"fetch.max.bytes": 1000}'},
        "invalid setting kafka.properties.fetch.max.bytes: librdkafka refuses the consumer configuration:",
    ),
    "no worker": (
        {"STREAMDRIFT_WORKERS": "0"},
        "invalid setting workers in the STREAMDRIFT_ environment: Input should be greater than or equal to 1",
    ),
    "dedicated settings librdkafka refuses together": (
        {"STREAMDRIFT_KAFKA__SESSION_TIMEOUT_MS": "400000"},
        "invalid kafka settings: librdkafka refuses the consumer configuration: Failed to create consumer: `max.poll.interval.ms`must be >= `session.timeout.ms`",
    ),
}


@pytest.mark.parametrize("command", ["run", "check-config", "demo", "backtest"])
@pytest.mark.parametrize("case", list(BAD_ENVIRONMENTS))
def test_every_configuration_error_exits_2_with_one_line(
    command: str, case: str, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    variables, expected = BAD_ENVIRONMENTS[case]
    for name, value in variables.items():
        environ.setenv(name, value)
    # never reached: the error comes first
    environ.setenv("STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main([command]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("streamdrift: ")
    assert expected in captured.err


def test_a_bad_librdkafka_property_in_the_file_exits_2_with_one_line(
    tmp_path: Path, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[kafka]\nproperties = { "ssl.endpoint.identification.algorithm" = "maybe" }\n'
    )
    assert main(["check-config", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "invalid setting kafka.properties.ssl.endpoint.identification.algorithm: librdkafka refuses"
        in err
    )


def test_a_refused_secret_is_named_but_its_value_is_not_shown(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a secret in the wrong place
    environ.setenv("STREAMDRIFT_KAFKA__SECRETS", '{"security.protocol": "hunter2"}')
    assert main(["check-config"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid setting kafka.secrets.security.protocol" in err and "hunter2" not in err


def test_check_config_accepts_real_librdkafka_properties_without_a_cluster(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ.setenv("STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS", "kafka.invalid:9093")
    environ.setenv(
        "STREAMDRIFT_KAFKA__PROPERTIES",
        '{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "linger.ms": 20}',
    )
    environ.setenv("STREAMDRIFT_KAFKA__SECRETS", '{"sasl.password": "hunter2"}')
    environ.setenv("STREAMDRIFT_SERVICE_HOST", "10.0.0.11")  # a Kubernetes service link
    environ.setenv("STREAMDRIFT_PORT_9477_TCP_ADDR", "10.0.0.11")
    assert main(["check-config"]) == EXIT_OK
    captured = capsys.readouterr()
    assert (
        orjson.loads(captured.out)["kafka"]["properties"]["sasl.mechanism"] == "SCRAM-SHA-512"
        and captured.err == ""
    )


def test_check_config_connects_to_nothing(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        environ.setenv(
            "STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{listener.getsockname()[1]}"
        )
        assert main(["check-config"]) == EXIT_OK
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # no connection waits to be accepted
            listener.accept()


def test_the_installed_command_prints_one_line_and_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STREAMDRIFT_")}
    env["STREAMDRIFT_KAFKA__PROPERTIES"] = "{bad json"
    command = Path(sys.executable).with_name("streamdrift")
    result = subprocess.run(
        [str(command), "check-config"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == EXIT_USAGE
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "streamdrift: invalid setting kafka.properties in the STREAMDRIFT_ environment: STREAMDRIFT_KAFKA__PROPERTIES is not valid JSON"
    )


@pytest.mark.parametrize("command", ["run", "check-config", "demo", "backtest"])
@pytest.mark.parametrize(
    "text,expected",
    [
        ('[metrics]\nport = "ninety"\n', "invalid setting metrics.port in "),
        ("[kafka]\nbootstrap_server = 'k:9092'\n", "invalid setting kafka.bootstrap_server in "),
    ],
)
def test_a_bad_file_exits_2_with_one_line(
    command: str,
    text: str,
    expected: str,
    tmp_path: Path,
    environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    assert main([command, "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and str(config) in err
