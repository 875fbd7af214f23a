"""The HTTP side: /metrics (Prometheus text format), /healthz and /readyz, for GET and HEAD.

Nothing else is served, and no request can make the server hold much:

* another path is 404; another method is 405 (`Allow: GET, HEAD`), one HTTP does not know 501;
* a request line over MAX_REQUEST_LINE_BYTES is 414, headers over MAX_HEADER_BYTES in all are
  431 (the standard library alone allows 64 KiB per line and 100 header lines); request bodies
  are never read, and every connection is closed after one response;
* each connection has its own thread and an idle timeout, so a client that connects and stays
  silent or trickles bytes (slowloris) blocks no other request and holds its thread for at most
  the timeout per byte it sends;
* the /metrics body is bounded by the label caps: models (limits.max_models), monitors per
  model (limits.max_features_per_model), reasons (events.REASONS) and owned partitions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

PATHS = ("/metrics", "/healthz", "/readyz")
MAX_REQUEST_LINE_BYTES = 4096
MAX_HEADER_BYTES = 16384
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed
TEXT = "text/plain; charset=utf-8"


class HealthServer:
    """Serves the three endpoints from a daemon thread, one thread per connection.

    `readiness()` returns (ready, details); /readyz answers 200 or 503 with the details as JSON.
    `liveness()` returns (alive, why not); /healthz answers 200, or 503 with the reason.
    """

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        readiness: Callable[[], tuple[bool, dict[str, object]]],
        liveness: Callable[[], tuple[bool, str]] = lambda: (True, ""),
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.liveness = liveness
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = idle_timeout_s  # applied to the connection's socket
            raw_requestline: bytes  # set by the base class before parse_request

            def parse_request(self) -> bool:
                """The standard parsing, then the size limits (an error response when over)."""
                if not super().parse_request():
                    return False
                if len(self.raw_requestline) > MAX_REQUEST_LINE_BYTES:
                    self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                    return False
                if (
                    sum(len(name) + len(value) for name, value in self.headers.items())
                    > MAX_HEADER_BYTES
                ):
                    self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                    return False
                return True

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(HTTPStatus.OK, encoder(server.registry), content_type)
                elif path == "/healthz":
                    alive, why = server.liveness()
                    if alive:
                        self._send(HTTPStatus.OK, b"ok\n", TEXT)
                    else:
                        self._send(HTTPStatus.SERVICE_UNAVAILABLE, why.encode() + b"\n", TEXT)
                elif path == "/readyz":
                    ready, details = server.readiness()
                    body = orjson.dumps({"ready": ready, **details}) + b"\n"
                    self._send(
                        HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                        body,
                        "application/json",
                    )
                else:
                    self._not_found()

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] not in PATHS:
                    self._not_found()
                    return
                self._send(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    b"method not allowed: use GET or HEAD\n",
                    TEXT,
                    {"Allow": "GET, HEAD"},
                )

            do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = do_POST

            def _not_found(self) -> None:
                self._send(
                    HTTPStatus.NOT_FOUND, b"not found: try /metrics, /healthz or /readyz\n", TEXT
                )

            def _send(
                self,
                status: HTTPStatus,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="streamdrift-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
