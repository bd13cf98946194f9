"""The model server's kept-alive HTTP/1.1 connections, over raw sockets on 127.0.0.1.

Every answer, error or not, leaves the connection usable for the client's next request or
says `Connection: close` and closes it (RFC 9112 section 9.3, RFC 9110 section 10.1.1):
a body the server did not need is still read, never taken for the next request.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pytest
import tritonclient.http as httpclient
from modelserver import http as modelserver_http
from modelserver.http import ModelHTTPServer, ServerState
from modelserver.models import load_predictor

from tests.modelserver_support import save_model, trained_model

GOOD = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                               "data": [[0.5, -1.0, 0.2, 0.0]]}]}).encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder = tmp_path_factory.mktemp("model")
    path = save_model(trained_model(), folder)
    state = ServerState("churn", "1.2.0")
    state.predictor = load_predictor(str(path), folder / "cache")
    server = ModelHTTPServer(("127.0.0.1", 0), state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "127.0.0.1", server.port
    finally:
        server.drain(1)


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body and "Transfer_Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_answer(stream: BinaryIO) -> Answer:
    status_line = stream.readline()
    assert status_line, "the server closed the connection without an answer"
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return Answer(status, headers, body)


def is_closed(connection: socket.socket, stream: BinaryIO) -> bool:
    """True when the server has closed its side: a read gives end of file, or a reset when
    the client had written after the server closed."""
    connection.settimeout(5)
    try:
        return stream.read(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def then_a_good_request_works(connection: socket.socket, stream: BinaryIO,
                              first: Answer) -> None:
    """After `first`, the connection either serves an inference or was closed as announced."""
    if first.closes:
        assert is_closed(connection, stream), "Connection: close, yet the connection stays open"
        return
    connection.sendall(request("POST", "/v2/models/churn/infer", GOOD))
    second = read_answer(stream)
    assert second.status == 200, second.body
    assert json.loads(second.body)["outputs"][0]["name"] == "predict"


@pytest.mark.parametrize(("path", "status"), [
    ("/v2/models/fraud/infer", 404),
    ("/v2/models/churn/versions/9.9.9/infer", 404),
    ("/v2/nothing/here", 404),
    ("/v2/models/churn/ready", 405),
])
def test_an_early_error_leaves_the_kept_alive_connection_usable(
        address: tuple[str, int], path: str, status: int) -> None:
    with socket.create_connection(address, timeout=10) as connection, \
            connection.makefile("rb") as stream:
        connection.sendall(request("POST", path, GOOD, Content_Type="application/json"))
        first = read_answer(stream)
        assert first.status == status
        assert "error" in json.loads(first.body)
        then_a_good_request_works(connection, stream, first)


def test_two_requests_sent_at_once_are_answered_in_order(address: tuple[str, int]) -> None:
    """Pipelined (RFC 9112 section 9.3.2): an error first, an inference second, one write."""
    with socket.create_connection(address, timeout=10) as connection, \
            connection.makefile("rb") as stream:
        connection.sendall(request("POST", "/v2/models/fraud/infer", GOOD)
                           + request("POST", "/v2/models/churn/infer", GOOD))
        assert read_answer(stream).status == 404
        assert read_answer(stream).status == 200


def test_a_chunked_body_is_read_or_the_connection_closed(address: tuple[str, int]) -> None:
    chunked = f"{len(GOOD):x}\r\n".encode() + GOOD + b"\r\n0\r\n\r\n"
    with socket.create_connection(address, timeout=10) as connection, \
            connection.makefile("rb") as stream:
        connection.sendall(request("POST", "/v2/models/churn/infer", chunked,
                                   Transfer_Encoding="chunked"))
        first = read_answer(stream)
        assert first.status == 200 or (first.status < 500 and first.closes), first
        then_a_good_request_works(connection, stream, first)


def test_a_body_over_the_limit_is_refused_and_the_connection_closed(
        address: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelserver_http, "MAX_BODY", 1000)
    with socket.create_connection(address, timeout=10) as connection, \
            connection.makefile("rb") as stream:
        connection.sendall(request("POST", "/v2/models/churn/infer", b"[" * 1500))
        first = read_answer(stream)
        assert first.status == 413
        assert "1000" in json.loads(first.body)["error"]
        then_a_good_request_works(connection, stream, first)


@pytest.mark.parametrize("path", ["/v2/models/fraud/infer", "/v2/models/churn/infer"])
def test_expect_100_continue(address: tuple[str, int], path: str) -> None:
    """The client sends its body after `100 Continue`; a final answer instead of it either
    closes the connection or still reads the body the client then sends."""
    with socket.create_connection(address, timeout=10) as connection, \
            connection.makefile("rb") as stream:
        connection.sendall(request("POST", path, Expect="100-continue",
                                   Content_Length=str(len(GOOD))))
        first = read_answer(stream)
        connection.sendall(GOOD)
        if first.status == 100:
            first = read_answer(stream)
        assert first.status == (200 if path.endswith("churn/infer") else 404)
        then_a_good_request_works(connection, stream, first)


def test_tritonclient_keeps_working_after_an_unknown_model(address: tuple[str, int]) -> None:
    """tritonclient reuses its connection: an error must not break the next inference
    (it reported "Parse error at offset 0" when the server left the body unread)."""
    import numpy as np

    client = httpclient.InferenceServerClient(f"{address[0]}:{address[1]}", concurrency=1)
    rows = httpclient.InferInput("input-0", [1, 4], "FP64")
    rows.set_data_from_numpy(np.array([[0.5, -1.0, 0.2, 0.0]]), binary_data=True)
    try:
        for _ in range(3):
            with pytest.raises(Exception, match="unknown model 'fraud'"):
                client.infer("fraud", [rows])
            assert client.infer("churn", [rows]).as_numpy("predict").shape == (1,)
    finally:
        client.close()

