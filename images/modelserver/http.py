"""The HTTP server: Open Inference Protocol routes, health, metrics, and a graceful stop.

Liveness answers as soon as the process listens; readiness only once the
model is loaded, and again not once the server is draining. On SIGTERM it
stops accepting connections and waits for the requests in flight to finish.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelserver.binary import HEADER, split_body, to_bytes
from modelserver.protocol import (
    InferRequest,
    ProtocolError,
    datatype_of,
    decode_request,
    encode_tensor,
    select_outputs,
)
from modelserver.state import ServerState

MAX_BODY = 64 << 20
IDLE_SECONDS = 5.0
log = logging.getLogger("modelserver")

_MODEL_ROUTE = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$")
_DECODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress,
                                                  "deflate": zlib.decompress}

__all__ = ["ModelHTTPServer", "ServerState"]


@dataclass(frozen=True)
class Reply:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    header_length: int | None = None
    """The JSON header's size when binary tensors follow it."""


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
        inference = route == "infer"
        state.begin()
        if inference:
            state.metrics.inference_started()
        started = time.perf_counter()
        reply = Reply(HTTPStatus.INTERNAL_SERVER_ERROR, b"")
        try:
            reply = self._dispatch(method, path)
        except ProtocolError as error:
            reply = Reply(HTTPStatus(error.status), _error(str(error)))
        except Exception as error:
            log.exception("request failed")
            reply = Reply(HTTPStatus.INTERNAL_SERVER_ERROR, _error(f"internal error: {error}"))
        # Counted before the answer goes out: a client that reads /metrics right after its
        # answer must find its request counted.
        state.metrics.latency.labels(state.model_name, "http", route).observe(
            time.perf_counter() - started)
        state.metrics.requests.labels(state.model_name, "http", route,
                                      str(int(reply.status))).inc()
        try:
            self._send(reply)
        finally:
            if inference:  # in progress until its answer is written
                state.metrics.inference_finished()
            state.end()

    def _dispatch(self, method: str, path: str) -> Reply:
        state = self.server.state
        if method == "GET" and path == "/v2/health/live":
            return _json_reply({"live": True})
        if method == "GET" and path == "/v2/health/ready":
            return _json_reply({"ready": state.ready}, _ready_status(state))
        if method == "GET" and path == "/metrics":
            return Reply(HTTPStatus.OK, state.metrics.exposition(), "text/plain; version=0.0.4")
        if method == "GET" and path == "/v2":
            return _json_reply(state.server_metadata())
        match = _MODEL_ROUTE.match(path)
        if not match:
            return Reply(HTTPStatus.NOT_FOUND, _error(f"no route for {method} {path}"))
        state.check_model(match["name"], match["version"])
        rest = match["rest"]
        if method == "GET" and rest is None:
            return _json_reply(state.model_metadata())
        if method == "GET" and rest == "/ready":
            return _json_reply({"name": state.model_name, "ready": state.ready},
                               _ready_status(state))
        if method == "POST" and rest == "/infer":
            return self._infer()
        return Reply(HTTPStatus.METHOD_NOT_ALLOWED, _error(f"{method} is not allowed on {path}"))

    def _infer(self) -> Reply:
        state = self.server.state
        header, binary = split_body(self._body(), self.headers.get(HEADER))
        try:
            body = json.loads(header or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            what = "JSON header" if self.headers.get(HEADER) is not None else "body"
            raise ProtocolError(f"the request {what} is not JSON: {error}") from error
        request = decode_request(body, binary)
        return infer_reply(state.model_name, state.model_version, request, state.infer(request))

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise ProtocolError("Content-Length must be a whole number") from error
        if length > MAX_BODY:
            raise ProtocolError(f"request body of {length} bytes is over {MAX_BODY}", 413)
        raw = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "identity").lower()
        if encoding == "identity":
            return raw
        if encoding not in _DECODERS:
            raise ProtocolError(f"Content-Encoding '{encoding}' is not supported "
                                f"(gzip, deflate or identity)", 415)
        try:
            return _DECODERS[encoding](raw)
        except (OSError, zlib.error, EOFError) as error:
            raise ProtocolError(f"the body is not valid {encoding}: {error}") from error

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.header_length is not None:
            self.send_header(HEADER, str(reply.header_length))
        if self.server.state.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)


def infer_reply(model: str, version: str, request: InferRequest,
                outputs: dict[str, Any]) -> Reply:
    """The response: outputs as JSON `data`, or as binary tensors after the JSON header
    when the request asks (`binary_data` per output, `binary_data_output` for all)."""
    tensors: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for name, array, binary in select_outputs(outputs, request.outputs):
        if binary if binary is not None else request.binary_output:
            datatype = datatype_of(array)
            raw = to_bytes(array, datatype)
            tail.append(raw)
            tensors.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                            "parameters": {"binary_data_size": len(raw)}})
        else:
            tensors.append(encode_tensor(name, array))
    response: dict[str, Any] = {"model_name": model, "model_version": version,
                                "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    header = _json(response)
    if not tail:
        return Reply(HTTPStatus.OK, header)
    return Reply(HTTPStatus.OK, b"".join([header, *tail]), "application/octet-stream",
                 len(header))


def _ready_status(state: ServerState) -> HTTPStatus:
    return HTTPStatus.OK if state.ready else HTTPStatus.SERVICE_UNAVAILABLE


def _json_reply(value: Any, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    return Reply(status, _json(value))


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
