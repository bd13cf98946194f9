"""The model server over HTTP on 127.0.0.1: the Open Inference Protocol, health, metrics, stop."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import json
import logging
import signal
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib import error, request

import numpy as np
import pytest
from modelserver import http as modelserver_http
from modelserver.http import ModelHTTPServer, ServerState
from modelserver.models import ArtifactError, load_predictor
from modelserver.settings import Settings, SettingsError

from tests.modelserver_support import (
    SlowEstimator,
    call,
    free_port,
    in_thread,
    save_model,
    scoring_program,
    server_env,
    server_process,
    trained_model,
    wait_until,
)

ROWS = [[0.5, -1.0, 0.2, 0.0], [-2.0, 0.3, 1.0, 0.7]]


@pytest.fixture(scope="module")
def model() -> Any:
    return trained_model()


@pytest.fixture
def server(model: Any, tmp_path: Path) -> Iterator[tuple[str, ServerState, Path]]:
    """An in-process server on a real socket; the model is loaded by the test."""
    path = save_model(model, tmp_path / "artifact")
    state = ServerState("churn", "1.2.0")
    http = ModelHTTPServer(("127.0.0.1", 0), state)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.port}", state, path
    http.drain(1)


@pytest.fixture
def loaded(server: tuple[str, ServerState, Path]) -> str:
    url, state, path = server
    state.predictor = load_predictor(str(path), path.parent / "cache")
    return url


def infer_request(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"id": "req-1", "inputs": [{"name": "input-0", "shape": [len(rows), 4],
                                       "datatype": "FP64", "data": rows}], **extra}


def test_liveness_before_the_model_is_loaded_and_readiness_after(
        server: tuple[str, ServerState, Path]) -> None:
    url, state, path = server
    assert call(f"{url}/v2/health/live").body == {"live": True}
    not_ready = call(f"{url}/v2/health/ready")
    assert (not_ready.status, not_ready.body) == (503, {"ready": False})
    assert call(f"{url}/v2/models/churn/ready").status == 503
    assert call(f"{url}/v2/models/churn/infer", infer_request(ROWS)).status == 503
    state.predictor = load_predictor(str(path), path.parent / "cache")
    assert call(f"{url}/v2/health/ready").body == {"ready": True}
    assert call(f"{url}/v2/models/churn/ready").body == {"name": "churn", "ready": True}


def test_infer_returns_typed_tensors_matching_the_model(loaded: str, model: Any) -> None:
    answer = call(f"{loaded}/v2/models/churn/infer", infer_request(ROWS))
    assert answer.status == 200
    body = answer.body
    assert (body["model_name"], body["model_version"], body["id"]) == ("churn", "1.2.0", "req-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["shape"] == [2]
    assert outputs["predict"]["data"] == model.predict(np.array(ROWS)).tolist()
    assert outputs["predict"]["datatype"] == "INT64"
    proba = outputs["predict_proba"]
    assert (proba["shape"], proba["datatype"]) == ([2, 2], "FP64")
    assert np.allclose(np.array(proba["data"]).reshape(2, 2), model.predict_proba(np.array(ROWS)))


def test_a_versioned_route_and_requested_outputs(loaded: str) -> None:
    answer = call(f"{loaded}/v2/models/churn/versions/1.2.0/infer",
                  infer_request(ROWS, outputs=[{"name": "predict_proba"}]))
    assert [o["name"] for o in answer.body["outputs"]] == ["predict_proba"]


def test_metadata(loaded: str) -> None:
    assert call(f"{loaded}/v2").body["name"] == "modelfleet-model-server"
    metadata = call(f"{loaded}/v2/models/churn").body
    assert metadata["name"] == "churn"
    assert metadata["versions"] == ["1.2.0"]
    assert metadata["platform"] == "sklearn"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                   {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}]


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"inputs": []}, 400, "'inputs' must be a non-empty list of tensors"),
    (infer_request([[1.0, 2.0, 3.0]]), 400, "shape [1, 4] holds 4 elements, but data has 3"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]},
     400, "input 'x': unknown datatype 'FP128'"),
    ({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
     400, "input 'input-0' has 3 elements on axis 1; the model takes 4"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     400, "unknown input 'x'; the model takes 'input-0'"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                  "data": ["a", "b", "c", "d"]}]}, 400, "input 'input-0': data is not FP32: 'a'"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "UINT8",
                  "data": [1, 2, 3, 300]}]}, 400, "input 'input-0': data is not UINT8"),
    ({"inputs": [{"name": "input-0", "shape": [0, 4], "datatype": "FP64", "data": []}]},
     400, "input 'input-0' is an empty batch"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "BOOL",
                  "data": [True, False, True, True]}]},
     400, "input 'input-0' is BOOL; the model takes FP64"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "INT64",
                  "data": [1.5, 2, 3, 4]}]}, 400, "input 'input-0': data is not INT64: 1.5"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                  "data": [1e300, 2, 3, 4]}]}, 400, "input 'input-0': data is not FP32: overflow"),
    (infer_request(ROWS, outputs=[{"name": "logits"}]), 400, "unknown output(s) logits"),
])
def test_bad_requests_get_protocol_errors(loaded: str, payload: dict[str, Any], status: int,
                                          message: str) -> None:
    answer = call(f"{loaded}/v2/models/churn/infer", payload)
    assert answer.status == status
    assert set(answer.body) == {"error"}
    assert message in answer.body["error"]


def test_not_json_unknown_model_and_unknown_route(loaded: str) -> None:
    raw = request.Request(f"{loaded}/v2/models/churn/infer", data=b"{not json", method="POST")
    with pytest.raises(error.HTTPError) as refused:
        request.urlopen(raw, timeout=5)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"].startswith("the request body is not JSON")
    assert call(f"{loaded}/v2/models/fraud/infer", infer_request(ROWS)).status == 404
    assert call(f"{loaded}/v2/models/churn/versions/9.9.9").status == 404
    assert call(f"{loaded}/v1/models/churn:predict").status == 404


def test_prometheus_metrics(loaded: str) -> None:
    call(f"{loaded}/v2/models/churn/infer", infer_request(ROWS))
    call(f"{loaded}/v2/models/churn/infer", {"inputs": []})
    text = call(f"{loaded}/metrics").text
    labels = 'model="churn",protocol="http",route="infer"'
    assert f'modelserver_requests_total{{code="200",{labels}}} 1.0' in text
    assert f'modelserver_requests_total{{code="400",{labels}}} 1.0' in text
    assert f'modelserver_request_duration_seconds_count{{{labels}}} 2.0' in text
    assert 'modelserver_requests_in_flight{model="churn"}' in text
    assert 'modelserver_rows_predicted_total{model="churn"} 2.0' in text
    assert 'modelserver_model_info{model="churn",version="1.2.0"} 1.0' in text


def test_a_request_is_counted_by_the_time_its_answer_arrives(
        loaded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scraper (or a client) that reads /metrics right after an answer finds it counted,
    even while the thread that sent the answer has not yet returned."""
    send = modelserver_http.send_reply

    async def send_then_linger(asgi_send: Any, reply: Any, close: bool) -> None:
        await send(asgi_send, reply, close)
        await asyncio.sleep(0.3)

    monkeypatch.setattr(modelserver_http, "send_reply", send_then_linger)
    labels = 'model="churn",protocol="http",route="infer"'
    for answered in (1, 2):
        call(f"{loaded}/v2/models/churn/infer", {"inputs": []})
        text = call(f"{loaded}/metrics").text
        assert f'modelserver_requests_total{{code="400",{labels}}} {answered}.0' in text


def test_a_sha256_mismatch_refuses_to_start(model: Any, tmp_path: Path) -> None:
    path = save_model(model, tmp_path)
    port = free_port()
    env = server_env(str(path), port, MODEL_SHA256="0" * 64)
    with server_process(env, wait_ready=False) as process:
        process.wait(timeout=60)
        stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 1
    assert "sha256 mismatch for model.joblib" in stderr
    assert "refusing to start" in stderr


def test_a_matching_sha256_starts(model: Any, tmp_path: Path) -> None:
    path = save_model(model, tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    port = free_port()
    with server_process(server_env(str(path), port, MODEL_SHA256=digest)):
        assert call(f"http://127.0.0.1:{port}/v2/health/ready").status == 200


def test_sigterm_finishes_requests_in_flight(model: Any, tmp_path: Path) -> None:
    path = save_model(SlowEstimator(model, delay=1.5), tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with server_process(server_env(str(path), port)) as process:
        thread, result = in_thread(call, f"{url}/v2/models/churn/infer",
                                   {"inputs": [{"name": "input-0", "shape": [1, 4],
                                                "datatype": "FP64", "data": ROWS[0]}]})
        wait_until(lambda: 'modelserver_requests_in_flight{model="churn"} 1.0'
                   in call(f"{url}/metrics").text)
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert result["value"].status == 200, "the request in flight is answered"
        assert result["value"].body["outputs"][0]["data"] == [int(model.predict([ROWS[0]])[0])]
        assert process.wait(timeout=30) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_torch_export_program_describes_itself(tmp_path: Path) -> None:
    import torch

    path, module = scoring_program(tmp_path / "artifact")
    predictor = load_predictor(str(path.parent), tmp_path / "cache", flavor="torch")
    assert predictor.platform == "pytorch_torch_export"
    assert [t.as_json() for t in predictor.inputs] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, 3]}]
    assert [t.as_json() for t in predictor.outputs] == [
        {"name": "output-0", "datatype": "FP32", "shape": [-1, 2]}]
    rows = np.array([[0.1, 0.2, 0.3]], dtype=np.float64)  # batch workers send FP64 rows
    with torch.inference_mode():
        expected = module(torch.from_numpy(rows.astype(np.float32))).numpy()
    assert np.allclose(predictor.predict({"features": rows})["output-0"], expected)


def test_a_program_wins_over_torchscript_in_one_artifact(tmp_path: Path) -> None:
    path, _ = scoring_program(tmp_path / "artifact")
    (path.parent / "a-legacy.pt").write_bytes(b"TorchScript that must not be loaded")
    predictor = load_predictor(str(path.parent), tmp_path / "cache", flavor="torch")
    assert predictor.platform == "pytorch_torch_export"


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_a_torchscript_model_loads_with_a_warning(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
    scripted = torch.jit.script(module.eval())
    path = tmp_path / "model.pt"
    scripted.save(str(path))  # type: ignore[no-untyped-call]
    with caplog.at_level(logging.WARNING, logger="modelserver"):
        predictor = load_predictor(str(path), tmp_path / "cache")
    assert "model.pt is TorchScript, which torch deprecates" in caplog.text
    rows = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]], dtype=np.float32)
    outputs = predictor.predict({"input-0": rows})
    expected = module(torch.from_numpy(rows)).detach().numpy()
    assert predictor.platform == "pytorch_torchscript"
    assert np.allclose(outputs["output-0"], expected)


def test_a_file_that_is_not_a_program_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "model.pt2"
    path.write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match=r"model\.pt2 is not a torch\.export program"):
        load_predictor(str(path), tmp_path / "cache")


def binary_request(url: str, header: dict[str, Any], tail: bytes,
                   header_length: int | None = None) -> tuple[int, dict[str, str], bytes]:
    """POSTs a JSON header and binary tensors, as the binary tensor data extension does."""
    head = json.dumps(header).encode()
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    connection.request("POST", "/v2/models/churn/infer", head + tail, {
        "Inference-Header-Content-Length": str(len(head) if header_length is None
                                               else header_length)})
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    # Header names are case-insensitive (RFC 9110 section 5.1); servers send them as they like.
    return answer.status, {name.title(): value for name, value in answer.getheaders()}, body


def test_binary_tensors_in_and_out(loaded: str, model: Any) -> None:
    rows = np.array(ROWS)
    header = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                          "parameters": {"binary_data_size": rows.nbytes}}],
              "outputs": [{"name": "predict", "parameters": {"binary_data": True}},
                          {"name": "predict_proba", "parameters": {"binary_data": False}}]}
    status, headers, body = binary_request(loaded, header, rows.astype("<f8").tobytes())
    assert status == 200
    size = int(headers["Inference-Header-Content-Length"])
    response = json.loads(body[:size])
    predict, proba = response["outputs"]
    assert predict == {"name": "predict", "datatype": "INT64", "shape": [2],
                       "parameters": {"binary_data_size": 16}}
    assert np.frombuffer(body[size:], dtype="<i8").tolist() == model.predict(rows).tolist()
    assert np.allclose(np.array(proba["data"]).reshape(2, 2), model.predict_proba(rows))


@pytest.mark.parametrize(("header", "tail", "header_length", "message"), [
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                  "parameters": {"binary_data_size": 32}}]}, b"\0" * 16, None,
     "input 'input-0': binary_data_size 32 runs past the end of the body (16 bytes left)"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                  "parameters": {"binary_data_size": 24}}]}, b"\0" * 24, None,
     "input 'input-0': shape [1, 4] holds 4 elements, but data has 3"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                  "parameters": {"binary_data_size": 30}}]}, b"\0" * 30, None,
     "input 'input-0': 30 bytes is not a whole number of FP64 elements"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                  "parameters": {"binary_data_size": 32}}]}, b"\0" * 40, None,
     "8 bytes after the JSON header belong to no input"),
    ({"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES",
                  "parameters": {"binary_data_size": 6}}]}, b"\x05\0\0\0ab", None,
     "input 'input-0': a BYTES element of 5 bytes runs past the tensor's binary_data_size"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                  "parameters": {"binary_data_size": 32}}]}, b"\0" * 32, 10_000,
     "Inference-Header-Content-Length 10000 is not within the body"),
])
def test_malformed_binary_requests_are_400(loaded: str, header: dict[str, Any], tail: bytes,
                                           header_length: int | None, message: str) -> None:
    status, _, body = binary_request(loaded, header, tail, header_length)
    assert status == 400
    assert message in json.loads(body)["error"]


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress),
                                                    ("deflate", zlib.compress)])
def test_compressed_request_bodies(loaded: str, encoding: str, compress: Any) -> None:
    body = compress(json.dumps(infer_request(ROWS)).encode())
    raw = request.Request(f"{loaded}/v2/models/churn/infer", data=body, method="POST",
                          headers={"Content-Encoding": encoding})
    with request.urlopen(raw, timeout=5) as answer:
        assert json.loads(answer.read())["outputs"][0]["shape"] == [2]
    broken = request.Request(f"{loaded}/v2/models/churn/infer", data=b"not " + encoding.encode(),
                             method="POST", headers={"Content-Encoding": encoding})
    with pytest.raises(error.HTTPError) as refused:
        request.urlopen(broken, timeout=5)
    assert refused.value.code == 400


def test_sigterm_drains_grpc_too(model: Any, tmp_path: Path) -> None:
    import tritonclient.grpc as grpcclient

    path = save_model(SlowEstimator(model, delay=1.5), tmp_path)
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    with server_process(server_env(str(path), port, MODEL_GRPC_PORT=str(grpc_port))) as process:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
        tensor.set_data_from_numpy(np.array(ROWS[:1]))
        thread, result = in_thread(client.infer, "churn", [tensor])
        wait_until(lambda: 'modelserver_requests_in_flight{model="churn"} 1.0'
                   in call(f"{url}/metrics").text)
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert result["value"].as_numpy("predict").tolist() == model.predict(ROWS[:1]).tolist()
        assert process.wait(timeout=30) == 0
    for closed in (port, grpc_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", closed), timeout=1).close()


def test_a_grpc_port_in_use_refuses_to_start(model: Any, tmp_path: Path) -> None:
    path = save_model(model, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = server_env(str(path), free_port(), MODEL_GRPC_PORT=str(busy))
        with server_process(env, wait_ready=False) as process:
            process.wait(timeout=60)
            stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 1
    assert f"gRPC cannot listen on port {busy}" in stderr


def test_grpc_port_setting() -> None:
    base = {"MODEL_NAME": "churn", "MODEL_URI": "/m"}
    assert Settings.from_environment(base).grpc_port == 8081
    assert Settings.from_environment({**base, "MODEL_GRPC_PORT": "0"}).grpc_port == 0
    with pytest.raises(SettingsError, match="MODEL_GRPC_PORT must be a whole number"):
        Settings.from_environment({**base, "MODEL_GRPC_PORT": "grpc"})
    with pytest.raises(SettingsError, match="MODEL_GRPC_PORT must be a port"):
        Settings.from_environment({**base, "MODEL_GRPC_PORT": "70000"})
