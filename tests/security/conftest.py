"""Fixtures of the security tests: the embedded broker behind a TLS terminator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.tls import TlsBroker, ToolFailed, make_certificates


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A broker of its own, reachable only through TLS (stunnel4, from `make system-packages`)."""
    directory = tmp_path_factory.mktemp("tls")
    try:
        broker = TlsBroker(make_certificates(directory), directory).start()
    except ToolFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()
