"""The HTTP server: Open Inference Protocol routes, health, metrics, and a graceful stop.

Liveness answers as soon as the process listens; readiness only once the
model is loaded, and again not once the server is draining. On SIGTERM it
stops accepting connections and waits for the requests in flight to finish.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import logging
import queue
import re
import socket
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import numpy as np
import orjson
import uvicorn
import uvloop

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

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Reply:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    header_length: int | None = None
    """The JSON header's size when binary tensors follow it."""


LOOP_STOP_SECONDS = 5.0
"""The longest `drain` waits for the event loop's thread to end, whatever the grace."""


class ModelHTTPServer:
    """The protocol over HTTP/1.1 on `address` (port 0 picks a free one).

    uvicorn (httptools, on a uvloop event loop in the thread that calls `serve_forever`)
    reads and frames requests: a body an early answer did not need is still read off a
    kept-alive connection, chunked bodies and `Expect: 100-continue` work as RFC 9112
    says. Health, readiness, metadata and metrics are answered on the event loop; each
    inference (decoding, the model, encoding) runs on one inference thread, in arrival
    order, so a slow model never holds up a probe and requests are served first come,
    first served (a thread per connection let the GIL pick, and the tail grew:
    README, "Where the time goes").
    """

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        self.state = state
        self.socket = socket.create_server(address, backlog=1024)
        self.inference = InferenceThread()
        self.server = uvicorn.Server(uvicorn.Config(
            Application(state, self.inference), http="httptools", lifespan="off",
            access_log=False, log_config=None, server_header=False, date_header=False,
            proxy_headers=False,
            timeout_keep_alive=int(IDLE_SECONDS)))
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self.serving = threading.Event()
        self.stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def serve_forever(self) -> None:
        """Serves until `drain`; blocks the calling thread."""
        loop = uvloop.new_event_loop()
        self.serving.set()
        try:
            loop.run_until_complete(self.server.serve(sockets=[self.socket]))
        finally:
            loop.close()
            self.stopped.set()

    def drain(self, grace_seconds: float) -> bool:
        """Stop taking connections, then wait for the requests in flight; True if all ended."""
        self.state.draining = True
        self.server.should_exit = True
        finished = self.state.wait_idle(grace_seconds)
        if self.serving.is_set():
            # uvicorn notices `should_exit` within its 0.1 s tick. The process must not end
            # with the uvloop loop still running in its daemon thread: a native event loop
            # torn down by interpreter exit can crash the process (seen: SIGSEGV after a
            # model failed to load, where the exit status must be 1).
            finished = self.stopped.wait(max(grace_seconds, LOOP_STOP_SECONDS)) and finished
        else:
            self.socket.close()
        self.inference.stop()
        return finished


class Application:
    """The ASGI application (asgiref's HTTP scope, spec 2.x): routes, bodies, replies."""

    def __init__(self, state: ServerState, inference: InferenceThread) -> None:
        self.state = state
        self.inference = inference

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        state = self.state
        method: str = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        headers = Headers(scope["headers"])
        inference = method == "POST" and path.endswith("/infer")
        state.begin()
        if inference:  # in progress (metrics.RequestSeconds) until its answer is written
            state.metrics.inference_started()
        try:
            close = False
            try:
                reply = await self._answer(method, path, headers, receive)
            except ProtocolError as error:
                reply = count(state, _route_name(path), headers.started,
                              Reply(HTTPStatus(error.status), _error(str(error))))
                close = error.status in (411, 413)
            except ClientGoneError:
                return
            if not headers.body_read and headers.expects_continue:
                close = True  # RFC 9110 10.1.1: the client may or may not send the body now
            await send_reply(send, reply, close or state.draining)
        finally:
            if inference:
                state.metrics.inference_finished()
            state.end()

    async def _answer(self, method: str, path: str, headers: Headers,
                      receive: Receive) -> Reply:
        state = self.state
        started = headers.started
        match = _MODEL_ROUTE.match(path)
        if not (method == "POST" and match and match["rest"] == "/infer"):
            return count(state, _route_name(path), started, _dispatch(state, method, path, match))
        state.check_model(match["name"], match["version"])
        body = await read_body(headers, receive)
        return await self.inference.run(infer_answer, state, headers, body, started)


class InferenceThread:
    """One thread that runs inferences in the order they arrive and hands each answer back
    to the event loop that asked.

    Answers finished while the loop is busy go back together with one wake-up of the loop
    (`call_soon_threadsafe`) instead of one each, as `run_in_executor` would.
    """

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.done: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = \
            collections.deque()
        self.waking = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._work, name="infer", daemon=True)
        self.thread.start()

    def run(self, work: Callable[..., Reply], *args: Any) -> asyncio.Future[Reply]:
        """`work(*args)` on the inference thread; the future is the event loop's."""
        self.loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = self.loop.create_future()
        self.jobs.put((future, work, args))
        return future

    def stop(self) -> None:
        self.jobs.put(None)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            future, work, args = job
            try:
                self.done.append((future, work(*args), None))
            except BaseException as error:  # handed to the request that asked
                self.done.append((future, None, error))
            if not self.waking and self.loop is not None:
                self.waking = True
                with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                    self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        self.waking = False
        while self.done:
            future, result, error = self.done.popleft()
            if future.done():  # cancelled: the client went away
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


class ClientGoneError(Exception):
    """The client went away before its request was read."""


class Headers:
    """A request's headers (names lower case, as uvicorn gives them) and body state."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.started = time.perf_counter()
        self.values = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}
        self.body_read = False
        self.expects_continue = self.values.get("expect", "").lower() == "100-continue"

    def get(self, name: str) -> str | None:
        return self.values.get(name.lower())


async def read_body(headers: Headers, receive: Receive) -> bytes:
    """The request body, at most MAX_BODY bytes; raises ProtocolError (400, 413)."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError as error:
            raise ProtocolError("Content-Length must be a whole number") from error
        if length > MAX_BODY:
            raise ProtocolError(f"request body of {length} bytes is over {MAX_BODY}", 413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ProtocolError(f"request body of more than {MAX_BODY} bytes is over "
                                f"{MAX_BODY}", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            headers.body_read = True
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def infer_answer(state: ServerState, headers: Headers, raw: bytes, started: float) -> Reply:
    """One inference from its body, counted in the metrics; runs on the inference thread."""
    try:
        header_length = headers.get(HEADER)
        header, binary = split_body(_decoded(raw, headers.get("content-encoding")),
                                    header_length)
        try:
            body = parse_json(header or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            what = "JSON header" if header_length is not None else "body"
            raise ProtocolError(f"the request {what} is not JSON: {error}") from error
        request = decode_request(body, binary)
        reply = infer_reply(state.model_name, state.model_version, request,
                            state.infer(request))
    except ProtocolError as error:
        reply = Reply(HTTPStatus(error.status), _error(str(error)))
    except Exception as error:
        log.exception("request failed")
        reply = Reply(HTTPStatus.INTERNAL_SERVER_ERROR, _error(f"internal error: {error}"))
    return count(state, "infer", started, reply)


def _decoded(raw: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "identity").lower()
    if encoding == "identity":
        return raw
    if encoding not in _DECODERS:
        raise ProtocolError(f"Content-Encoding '{encoding}' is not supported "
                            f"(gzip, deflate or identity)", 415)
    try:
        return _DECODERS[encoding](raw)
    except (OSError, zlib.error, EOFError) as error:
        raise ProtocolError(f"the body is not valid {encoding}: {error}") from error


def _dispatch(state: ServerState, method: str, path: str,
              match: re.Match[str] | None) -> Reply:
    """Every route but inference: health, metrics, metadata (on the event loop)."""
    try:
        if method == "GET" and path == "/v2/health/live":
            return _json_reply({"live": True})
        if method == "GET" and path == "/v2/health/ready":
            return _json_reply({"ready": state.ready}, _ready_status(state))
        if method == "GET" and path == "/metrics":
            return Reply(HTTPStatus.OK, state.metrics.exposition(), "text/plain; version=0.0.4")
        if method == "GET" and path == "/v2":
            return _json_reply(state.server_metadata())
        if not match:
            return Reply(HTTPStatus.NOT_FOUND, _error(f"no route for {method} {path}"))
        state.check_model(match["name"], match["version"])
        rest = match["rest"]
        if method == "GET" and rest is None:
            return _json_reply(state.model_metadata())
        if method == "GET" and rest == "/ready":
            return _json_reply({"name": state.model_name, "ready": state.ready},
                               _ready_status(state))
        return Reply(HTTPStatus.METHOD_NOT_ALLOWED, _error(f"{method} is not allowed on {path}"))
    except ProtocolError as error:
        return Reply(HTTPStatus(error.status), _error(str(error)))
    except Exception as error:
        log.exception("request failed")
        return Reply(HTTPStatus.INTERNAL_SERVER_ERROR, _error(f"internal error: {error}"))


def count(state: ServerState, route: str, started: float, reply: Reply) -> Reply:
    """Counts an answer and observes its duration (seconds) before it goes out: a client
    that reads /metrics right after its answer must find its request counted."""
    state.answered("http", route, int(reply.status), time.perf_counter() - started)
    return reply


async def send_reply(send: Send, reply: Reply, close: bool) -> None:
    headers = [(b"content-type", reply.content_type.encode()),
               (b"content-length", str(len(reply.body)).encode())]
    if reply.header_length is not None:
        headers.append((HEADER.lower().encode(), str(reply.header_length).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": int(reply.status), "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def infer_reply(model: str, version: str, request: InferRequest,
                outputs: dict[str, Any]) -> Reply:
    """The response: outputs as JSON `data`, or as binary tensors after the JSON header
    when the request asks (`binary_data` per output, `binary_data_output` for all)."""
    tensors: list[dict[str, Any]] = []
    tail: list[bytes] = []
    chosen = select_outputs(outputs, request.outputs)
    for name, array, binary in chosen:
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
    header = _json(response, exact_floats=all(_finite(array) for _, array, _ in chosen))
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


def parse_json(text: bytes) -> Any:
    """JSON as Python values, with orjson (several times the standard library's speed on
    numbers). What orjson refuses but the standard library reads (NaN and Infinity,
    integers beyond 64 bits) is read by the standard library, so such values still reach
    the checks that name the tensor; raises json.JSONDecodeError (or UnicodeDecodeError,
    RecursionError) when neither reads it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json(value: Any, exact_floats: bool = True) -> bytes:
    """Compact JSON. orjson writes NaN and Infinity as null: values with those go through
    the standard library, which writes them as Python's json module (and tritonclient)
    read them (`exact_floats=False`)."""
    if exact_floats:
        try:
            return orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits
            pass
    return json.dumps(value, separators=(",", ":")).encode()


def _finite(array: Any) -> bool:
    """False when a float tensor holds NaN or an infinity."""
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def _error(message: str) -> bytes:
    return _json({"error": message})
