"""The HTTP server: Open Inference Protocol routes, health, metrics, and a graceful stop.

Liveness answers as soon as the process listens; readiness only once the
model is loaded, and again not once the server is draining. On SIGTERM it
stops accepting connections and waits for the requests in flight to finish.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelserver.metrics import Metrics
from modelserver.models import Predictor
from modelserver.protocol import ProtocolError, decode_request, encode_response

SERVER_NAME = "modelfleet-model-server"
SERVER_VERSION = "1.0.0"
MAX_BODY = 64 << 20
IDLE_SECONDS = 5.0
log = logging.getLogger("modelserver")

_MODEL_ROUTE = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$")


@dataclass
class ServerState:
    """What the handlers share: the model once loaded, and whether the server is stopping."""

    model_name: str
    model_version: str
    metrics: Metrics = field(default_factory=Metrics)
    predictor: Predictor | None = None
    draining: bool = False
    in_flight: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def ready(self) -> bool:
        return self.predictor is not None and not self.draining

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.in_flight == 0, timeout)


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        super().__init__(address, Handler)
        self.state = state

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def drain(self, grace_seconds: float) -> bool:
        """Stop taking connections, then wait for the requests in flight; True if all ended."""
        self.state.draining = True
        self.shutdown()
        finished = self.state.wait_idle(grace_seconds)
        self.server_close()
        return finished


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    server: ModelHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm holds the
        # body back until the client's delayed ACK, adding ~40 ms to every keep-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        route = _route_name(path)
        gauge = state.metrics.in_flight.labels(state.model_name)
        state.begin()
        if route == "infer":
            gauge.inc()
        started = time.perf_counter()
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        try:
            status, body, content_type = self._dispatch(method, path)
        except ProtocolError as error:
            status, body, content_type = HTTPStatus(error.status), _error(str(error)), "json"
        except Exception as error:
            log.exception("request failed")
            status, body, content_type = (HTTPStatus.INTERNAL_SERVER_ERROR,
                                          _error(f"internal error: {error}"), "json")
        finally:
            if route == "infer":
                gauge.dec()
        try:
            self._send(status, body, content_type)
        finally:
            state.metrics.latency.labels(state.model_name, route).observe(
                time.perf_counter() - started)
            state.metrics.requests.labels(state.model_name, route, str(int(status))).inc()
            state.end()

    def _dispatch(self, method: str, path: str) -> tuple[HTTPStatus, bytes, str]:
        state = self.server.state
        if method == "GET" and path == "/v2/health/live":
            return HTTPStatus.OK, _json({"live": True}), "json"
        if method == "GET" and path == "/v2/health/ready":
            status = HTTPStatus.OK if state.ready else HTTPStatus.SERVICE_UNAVAILABLE
            return status, _json({"ready": state.ready}), "json"
        if method == "GET" and path == "/metrics":
            return HTTPStatus.OK, state.metrics.exposition(), "text"
        if method == "GET" and path == "/v2":
            return HTTPStatus.OK, _json({"name": SERVER_NAME, "version": SERVER_VERSION,
                                         "extensions": []}), "json"
        match = _MODEL_ROUTE.match(path)
        if not match:
            return HTTPStatus.NOT_FOUND, _error(f"no route for {method} {path}"), "json"
        self._check_model(match["name"], match["version"])
        rest = match["rest"]
        if method == "GET" and rest is None:
            return HTTPStatus.OK, _json(self._metadata()), "json"
        if method == "GET" and rest == "/ready":
            status = HTTPStatus.OK if state.ready else HTTPStatus.SERVICE_UNAVAILABLE
            return status, _json({"name": state.model_name, "ready": state.ready}), "json"
        if method == "POST" and rest == "/infer":
            return HTTPStatus.OK, _json(self._infer()), "json"
        return HTTPStatus.METHOD_NOT_ALLOWED, _error(f"{method} is not allowed on {path}"), \
            "json"

    def _check_model(self, name: str, version: str | None) -> None:
        state = self.server.state
        if name != state.model_name:
            raise ProtocolError(f"unknown model '{name}'; this server serves "
                                f"'{state.model_name}'", 404)
        if version is not None and version != state.model_version:
            raise ProtocolError(f"unknown version '{version}' of '{name}'; this server serves "
                                f"{state.model_version}", 404)

    def _metadata(self) -> dict[str, Any]:
        state = self.server.state
        predictor = state.predictor
        return {
            "name": state.model_name,
            "versions": [state.model_version],
            "platform": predictor.platform if predictor else "",
            "inputs": [t.as_json() for t in predictor.inputs] if predictor else [],
            "outputs": [t.as_json() for t in predictor.outputs] if predictor else [],
        }

    def _infer(self) -> dict[str, Any]:
        state = self.server.state
        predictor = state.predictor
        if predictor is None:  # a request accepted before a stop is still answered
            raise ProtocolError(f"model '{state.model_name}' is not ready", 503)
        request = decode_request(self._body())
        outputs = predictor.predict(request.inputs)
        rows = next(iter(request.inputs.values())).shape[0] if request.inputs else 0
        state.metrics.rows.labels(state.model_name).inc(rows)
        return encode_response(state.model_name, state.model_version, request.id, outputs,
                               request.requested_outputs)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ProtocolError(f"request body of {length} bytes is over {MAX_BODY}", 413)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError as error:
            raise ProtocolError(f"the request body is not JSON: {error.msg}") from error

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if content_type == "json"
                         else "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        if self.server.state.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


def _route_name(path: str) -> str:
    """A bounded label for metrics: the route, not the raw path."""
    if path.endswith("/infer"):
        return "infer"
    if path.startswith("/v2/health/"):
        return path.removeprefix("/v2/health/")
    if path == "/metrics":
        return "metrics"
    return "metadata" if path.startswith("/v2") else "other"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(message: str) -> bytes:
    return _json({"error": message})
