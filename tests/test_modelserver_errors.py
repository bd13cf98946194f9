"""No request a client can send makes the server answer 5xx (or gRPC INTERNAL/UNKNOWN).

Hypothesis builds inference requests from every part a client controls (names,
shapes, datatypes, values including NaN and huge numbers, parameters, binary
tails and header lengths, gRPC contents and raw bytes) and sends them to the
real servers; any 5xx fails the test and prints the request that caused it.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelserver.http import ModelHTTPServer
from modelserver.models import load_predictor
from modelserver.protocol import DATATYPES
from modelserver.state import ServerState
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.modelserver_support import (
    free_port,
    save_model,
    server_env,
    server_process,
    trained_model,
)

DATATYPE_NAMES = [*DATATYPES, "BF16", "FP128", "fp64", ""]
NUMERIC = [name for name in DATATYPES if name not in ("BOOL", "BYTES")]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4))
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=24)
parameters = st.fixed_dictionaries({}, optional={
    "binary_data_size": st.one_of(st.integers(-1, 80), scalars),
    "binary_data": st.one_of(st.booleans(), scalars),
    "classification": st.one_of(st.integers(0, 3), scalars)})
any_tensor = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["input-0", "x", ""]), scalars),
     "shape": st.one_of(st.lists(st.integers(-2, 6), max_size=3), scalars),
     "datatype": st.one_of(st.sampled_from(DATATYPE_NAMES), scalars)},
    optional={"data": nested, "parameters": st.one_of(parameters, scalars)})


@st.composite
def plausible_tensor(draw: st.DrawFn) -> dict[str, Any]:
    """A tensor of the model's name and rank, with values and sizes that may still be wrong."""
    rows = draw(st.integers(0, 3))
    width = draw(st.sampled_from([4, 4, 4, 3]))
    values = draw(st.sampled_from([st.floats(allow_nan=True, allow_infinity=True),
                                   st.integers(-(2**65), 2**65), st.integers(-300, 300),
                                   st.booleans(), st.text(max_size=3)]))
    return {"name": "input-0", "shape": [rows, width],
            "datatype": draw(st.sampled_from(NUMERIC + ["BOOL", "BYTES"])),
            "data": draw(st.lists(values, min_size=rows * width, max_size=rows * width))}


outputs = st.lists(st.fixed_dictionaries(
    {"name": st.sampled_from(["predict", "predict_proba", "logits"])},
    optional={"parameters": st.one_of(parameters, scalars)}), max_size=3)
requests = st.fixed_dictionaries(
    {"inputs": st.one_of(st.tuples(plausible_tensor()).map(list),
                         st.lists(st.one_of(any_tensor, plausible_tensor()), max_size=3),
                         scalars)},
    optional={"outputs": st.one_of(outputs, scalars), "id": scalars,
              "parameters": st.one_of(st.fixed_dictionaries(
                  {}, optional={"binary_data_output": st.booleans()}), scalars)})


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("model")
    path = save_model(trained_model(), folder)
    state = ServerState("churn", "1.2.0")
    state.predictor = load_predictor(str(path), folder / "cache")
    server = ModelHTTPServer(("127.0.0.1", 0), state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.drain(1)


def post(address: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.request("POST", "/v2/models/churn/infer", body, headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=requests, tail=st.binary(max_size=48),
       header_length=st.one_of(st.none(), st.integers(-3, 400), st.just("12x")))
def test_no_http_request_gets_a_5xx(http_url: str, request: dict[str, Any], tail: bytes,
                                    header_length: int | str | None) -> None:
    head = json.dumps(request).encode()
    headers = {"Content-Type": "application/json"}
    if header_length is not None or tail:
        headers["Inference-Header-Content-Length"] = str(
            len(head) if header_length is None else header_length)
    status, body = post(http_url, head + tail, headers)
    assert status < 500, body
    if status >= 400:
        assert set(json.loads(body)) == {"error"}


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=64))
def test_no_http_body_gets_a_5xx(http_url: str, body: bytes) -> None:
    status, answer = post(http_url, body, {"Content-Type": "application/json"})
    assert status < 500, answer


@pytest.fixture(scope="module")
def grpc_stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = save_model(trained_model(), tmp_path_factory.mktemp("model"))
    port, grpc_port = free_port(), free_port()
    with server_process(server_env(str(path), port, MODEL_GRPC_PORT=str(grpc_port))), \
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


contents_fields = st.sampled_from(["bool_contents", "int_contents", "int64_contents",
                                   "uint_contents", "uint64_contents", "fp32_contents",
                                   "fp64_contents", "bytes_contents"])


@st.composite
def grpc_requests(draw: st.DrawFn) -> Any:
    request = service_pb2.ModelInferRequest(
        model_name=draw(st.sampled_from(["churn", "churn", "fraud"])),
        id=draw(st.text(max_size=4)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["input-0", "input-0", "x"])),
            datatype=draw(st.sampled_from(DATATYPE_NAMES)),
            shape=draw(st.lists(st.integers(-1, 5), max_size=3)))
        if raw:
            request.raw_input_contents.append(draw(st.binary(max_size=80)))
        else:
            field = draw(contents_fields)
            values: Any = {"bool_contents": st.booleans(),
                           "int_contents": st.integers(-(2**31), 2**31 - 1),
                           "int64_contents": st.integers(-(2**63), 2**63 - 1),
                           "uint_contents": st.integers(0, 2**32 - 1),
                           "uint64_contents": st.integers(0, 2**64 - 1),
                           "fp32_contents": st.floats(width=32),
                           "fp64_contents": st.floats(),
                           "bytes_contents": st.binary(max_size=6)}[field]
            getattr(tensor.contents, field).extend(draw(st.lists(values, max_size=12)))
    if raw and draw(st.booleans()):
        request.raw_input_contents.append(b"\0" * 8)
    for name in draw(st.lists(st.sampled_from(["predict", "logits"]), max_size=2)):
        request.outputs.add(name=name)
    return request


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=grpc_requests())
def test_no_grpc_request_gets_internal(grpc_stub: Any, request: Any) -> None:
    future = grpc_stub.ModelInfer.future(request, timeout=10)
    code = future.code()
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.NOT_FOUND), (code, future.details())
    if code == grpc.StatusCode.OK:
        response = future.result()
        assert len(response.raw_output_contents) == len(response.outputs)
        assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").size >= 1


def test_the_fuzzed_model_answers_a_good_request(http_url: str, tmp_path: Path) -> None:
    """The requests above reach a working model: a valid one is answered 200."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                        "data": [0.5, -1.0, 0.2, 0.0]}]}
    status, answer = post(http_url, json.dumps(body).encode(), {})
    assert status == 200, answer
