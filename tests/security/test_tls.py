"""TLS and SASL to the broker: the embedded broker behind stunnel (advertised on the TLS port).

The detector works with security.protocol=SSL and the CA from its settings; plaintext against
the TLS port, an untrusted CA, a certificate for another host and rejected credentials each end
the process with one clear line and exit 1 instead of retrying forever."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from detector.kafka.topics import ClusterRefused
from producers.simulate import Injection, Simulator
from producers.sinks import KafkaSink
from producers.stream import Batch
from tests.kafka_helpers import KafkaNames, ServiceThread, create_topics, start_cli
from tests.security.tls import TlsBroker

pytestmark = pytest.mark.broker

SECRET = "s3cr3t-sasl-password-never-logged"


def names_at(bootstrap: str) -> KafkaNames:
    return KafkaNames(bootstrap=bootstrap, suffix=uuid.uuid4().hex[:10])


def failed_run(env: dict[str, str]) -> tuple[int, list[str]]:
    """`streamdrift run` that is expected to give up: its exit code and stderr lines."""
    process = start_cli(["run"], env)
    try:
        _, stderr = process.communicate(timeout=90)
    finally:
        process.kill()
    return process.returncode, stderr.decode().splitlines()


def refused_in_thread(names: KafkaNames, **kafka: Any) -> str:
    """Run the detector in a thread; return the message it stopped with (it must be a refusal)."""
    detector = ServiceThread(names.settings(kafka=kafka)).start()
    detector.thread.join(timeout=90)
    assert not detector.thread.is_alive(), "the detector kept retrying instead of giving up"
    assert isinstance(detector.error, ClusterRefused), detector.error
    return str(detector.error)


def test_the_detector_consumes_and_commits_over_tls(tls_broker: TlsBroker) -> None:
    names = names_at(tls_broker.bootstrap)
    settings = names.settings(kafka={"properties": tls_broker.client_properties()})
    create_topics(settings)
    events = Simulator(
        model="m", seed=1, injections=(Injection("mean_shift", "amount", start=5000),)
    ).events(8000)
    sink = KafkaSink(settings.kafka.client_config(), names.predictions, None)
    sink.write(Batch(events, []))
    sink.close()
    detector = ServiceThread(settings)
    alerts: list[dict[str, Any]] = []
    detector.service.alert_listeners.append(lambda alert, event: alerts.append(event))
    with detector:
        detector.wait_processed(len(events))
    assert [a["data"]["monitor"] for a in alerts if a["type"].endswith("detected")][:1] == [
        "feature.amount"
    ]
    assert (
        detector.service.registry.get_sample_value("streamdrift_commits_total") or 0
    ) >= 1  # transactions over TLS


def test_plaintext_against_the_tls_port_is_one_clear_error(tls_broker: TlsBroker) -> None:
    code, lines = failed_run(names_at(tls_broker.bootstrap).env())
    errors = [line for line in lines if " ERROR " in line]
    assert code == 1
    assert len(errors) == 1 and "speaks TLS but security.protocol is plaintext" in errors[0], lines
    assert not [line for line in lines if line.startswith("%") or "Traceback" in line], (
        "librdkafka or Python noise on stderr"
    )


def test_an_untrusted_ca_is_one_clear_error(tls_broker: TlsBroker) -> None:
    properties = tls_broker.client_properties(tls_broker.certificates.other_ca)
    env = names_at(tls_broker.bootstrap).env(STREAMDRIFT_KAFKA__PROPERTIES=json.dumps(properties))
    code, lines = failed_run(env)
    errors = [line for line in lines if " ERROR " in line]
    assert code == 1
    assert (
        len(errors) == 1
        and "TLS handshake failed" in errors[0]
        and "certificate verify failed" in errors[0]
        and "ssl.ca.location" in errors[0]
    ), lines
    assert not [line for line in lines if line.startswith("%") or "Traceback" in line]


def test_the_broker_certificate_must_name_the_host(tls_broker: TlsBroker) -> None:
    message = refused_in_thread(
        names_at(tls_broker.wrong_host_bootstrap), properties=tls_broker.client_properties()
    )
    assert "TLS handshake failed" in message and "ssl.endpoint.identification.algorithm" in message


def test_tls_to_a_plaintext_listener_is_a_clear_error(tls_broker: TlsBroker) -> None:
    message = refused_in_thread(
        names_at(f"127.0.0.1:{tls_broker.plain_port}"), properties=tls_broker.client_properties()
    )
    assert "does not speak TLS but security.protocol is ssl" in message


def test_sasl_settings_pass_through_and_a_rejected_login_is_fatal(tls_broker: TlsBroker) -> None:
    """The embedded broker has no SASL users: its refusal names the mechanism the detector sent."""
    properties = {
        **tls_broker.client_properties(),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "detector",
    }
    message = refused_in_thread(
        names_at(tls_broker.bootstrap), properties=properties, secrets={"sasl.password": SECRET}
    )
    assert (
        "authentication failed" in message
        and "SASL PLAIN" in message
        and "sasl.username" in message
    )
    assert SECRET not in message
