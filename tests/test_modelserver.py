"""The model server over HTTP on 127.0.0.1: the Open Inference Protocol, health, metrics, stop."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib import error, request

import numpy as np
import pytest
from modelserver.http import ModelHTTPServer, ServerState
from modelserver.models import load_predictor

from tests.modelserver_support import (
    SlowEstimator,
    call,
    free_port,
    in_thread,
    save_model,
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
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"inputs": []}, 400, "'inputs' must be a non-empty list of tensors"),
    (infer_request([[1.0, 2.0, 3.0]]), 400, "shape [1, 4] holds 4 elements, but data has 3"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]},
     400, "unknown datatype 'FP128'"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
     400, "expected 4 features, got 3"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                  "data": ["a", "b", "c", "d"]}]}, 400, "data is not FP32"),
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
    assert 'modelserver_requests_total{code="200",model="churn",route="infer"} 1.0' in text
    assert 'modelserver_requests_total{code="400",model="churn",route="infer"} 1.0' in text
    assert 'modelserver_request_duration_seconds_count{model="churn",route="infer"} 2.0' in text
    assert 'modelserver_requests_in_flight{model="churn"}' in text
    assert 'modelserver_rows_predicted_total{model="churn"} 2.0' in text


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


def test_a_torchscript_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the torch image's tests need torch")
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
    scripted = torch.jit.script(module.eval())
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    predictor = load_predictor(str(path), tmp_path / "cache")
    rows = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]], dtype=np.float32)
    outputs = predictor.predict({"input-0": rows})
    expected = module(torch.from_numpy(rows)).detach().numpy()
    assert predictor.platform == "pytorch_torchscript"
    assert np.allclose(outputs["output-0"], expected)
