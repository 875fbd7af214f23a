"""The metrics and health server under hostile clients: the bind address is configurable, only
three paths with GET and HEAD are served, oversized requests are refused, and silent or slow
connections neither block other requests nor stay open."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from detector.http.endpoints import MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES, HealthServer
from detector.http.metrics import Metrics
from tests.kafka_helpers import wait_until

HOST = "127.0.0.2"  # a loopback address other than the default one
IDLE_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def server() -> Iterator[HealthServer]:
    readiness = (False, {"connected": False})
    running = HealthServer(
        HOST,
        0,
        Metrics(CollectorRegistry()).registry,
        lambda: readiness,
        idle_timeout_s=IDLE_TIMEOUT_S,
    ).start()
    try:
        yield running
    finally:
        running.stop()


def request(
    server: HealthServer, method: str, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(HOST, server.port, timeout=10)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_it_listens_only_on_the_configured_address(server: HealthServer) -> None:
    assert request(server, "GET", "/healthz").status == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_three_endpoints_answer(server: HealthServer, method: str) -> None:
    statuses = {
        path: request(server, method, path).status
        for path in ("/metrics", "/healthz", "/readyz", "/metrics?x=1")
    }
    assert statuses == {"/metrics": 200, "/healthz": 200, "/readyz": 503, "/metrics?x=1": 200}


@pytest.mark.parametrize(
    "path", ["/", "/admin", "/metrics/", "/../etc/passwd", "/debug/pprof", "/healthz/../metrics"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_other_paths_are_not_found(server: HealthServer, method: str, path: str) -> None:
    assert request(server, method, path).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_not_allowed(server: HealthServer, method: str) -> None:
    response = request(server, method, "/metrics")
    assert (response.status, response.getheader("Allow")) == (405, "GET, HEAD")


def test_methods_http_does_not_know_are_not_implemented(server: HealthServer) -> None:
    assert request(server, "BREW", "/metrics").status == 501


def test_oversized_requests_are_refused(server: HealthServer) -> None:
    assert request(server, "GET", "/metrics?" + "a" * MAX_REQUEST_LINE_BYTES).status == 414
    assert request(server, "GET", "/" + "a" * 70_000).status == 414
    big = {f"X-Filler-{i}": "v" * 1000 for i in range(MAX_HEADER_BYTES // 1000 + 1)}
    assert request(server, "GET", "/metrics", big).status == 431
    many = {f"X-{i}": "v" for i in range(150)}
    assert request(server, "GET", "/metrics", many).status == 431
    assert request(server, "GET", "/metrics").status == 200  # still serving


def test_silent_and_slow_connections_do_not_block_others(server: HealthServer) -> None:
    idle = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(20)]
    for sock in idle[::2]:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    try:
        assert request(server, "GET", "/healthz").status == 200
        for sock in idle:
            wait_until(
                lambda sock=sock: closed_by_peer(sock), 10, "the server to close an idle connection"
            )
    finally:
        for sock in idle:
            sock.close()


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_health_reports_a_stalled_process_with_its_reason() -> None:
    stalled = HealthServer(
        HOST,
        0,
        Metrics(CollectorRegistry()).registry,
        lambda: (False, {}),
        lambda: (False, "stalled: 130s"),
        idle_timeout_s=IDLE_TIMEOUT_S,
    ).start()
    try:
        connection = http.client.HTTPConnection(HOST, stalled.port, timeout=10)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert (response.status, response.read()) == (503, b"stalled: 130s\n")
        connection.close()
    finally:
        stalled.stop()
