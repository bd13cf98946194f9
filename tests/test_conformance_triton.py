"""Conformance: the real server process, as NVIDIA's tritonclient talks to it.

Over HTTP with JSON tensors, over HTTP with the binary tensor data extension
(tritonclient's default), and over gRPC: health, metadata, every datatype the
server carries, and the errors a client can cause, which must all be 4xx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.modelserver_support import (
    EVERY_DATATYPE,
    call,
    flip_program,
    free_port,
    labelled_model,
    save_model,
    server_env,
    server_process,
    trained_model,
)

TRANSPORTS = ["http-json", "http-binary", "grpc"]
ROWS = np.array([[0.5, -1.0, 0.2, 0.0], [-2.0, 0.3, 1.0, 0.7], [1.5, 1.5, -0.5, 0.1]])


@dataclass
class Server:
    model: str
    http_port: int
    grpc_port: int

    def http(self) -> httpclient.InferenceServerClient:
        return httpclient.InferenceServerClient(f"127.0.0.1:{self.http_port}")

    def grpc(self) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc_port}")

    def infer(self, transport: str, inputs: dict[str, np.ndarray],
              datatypes: dict[str, str] | None = None,
              outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """One inference with tritonclient; the outputs by name, as numpy arrays."""
        return self.infer_result(transport, inputs, datatypes, outputs)[0]

    def infer_result(self, transport: str, inputs: dict[str, np.ndarray],
                     datatypes: dict[str, str] | None = None,
                     outputs: list[str] | None = None,
                     model: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The outputs and the response as the client saw it (JSON, or the gRPC message)."""
        datatypes = datatypes or {}
        model = model or self.model
        if transport == "grpc":
            client: Any = self.grpc()
            module: Any = grpcclient
        else:
            client, module = self.http(), httpclient
        binary = transport != "http-json"
        tensors = []
        for name, array in inputs.items():
            tensor = module.InferInput(name, list(array.shape),
                                       datatypes.get(name, _datatype(array)))
            if transport == "grpc":
                tensor.set_data_from_numpy(array)
            else:
                tensor.set_data_from_numpy(array, binary_data=binary)
            tensors.append(tensor)
        requested = None
        if outputs is not None:
            requested = [module.InferRequestedOutput(name) if transport == "grpc" else
                         module.InferRequestedOutput(name, binary_data=binary)
                         for name in outputs]
        result = client.infer(model, tensors, outputs=requested, request_id="req-7")
        response = (result.get_response(as_json=True) if transport == "grpc"
                    else result.get_response())
        names = [o["name"] for o in response["outputs"]]
        return {name: result.as_numpy(name) for name in names}, response


def _datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return str(np_to_triton_dtype(array.dtype))


def serve(model_uri: Path, name: str) -> Iterator[Server]:
    """`python -m modelserver` on free ports, HTTP and gRPC; stopped by its PID at the end."""
    http_port, grpc_port = free_port(), free_port()
    env = server_env(str(model_uri), http_port, MODEL_NAME=name,
                     MODEL_GRPC_PORT=str(grpc_port))
    with server_process(env):
        yield Server(name, http_port, grpc_port)


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """scikit-learn, integer classes: input-0 FP64 [-1, 4] -> predict INT64, predict_proba."""
    yield from serve(save_model(trained_model(), tmp_path_factory.mktemp("churn")), "churn")


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """scikit-learn, string classes: predict is BYTES."""
    yield from serve(save_model(labelled_model(), tmp_path_factory.mktemp("labels")), "labels")


@pytest.fixture(scope="module")
def flip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A torch.export program taking one tensor of every numeric datatype."""
    yield from serve(flip_program(tmp_path_factory.mktemp("flip")), "flip")


def every_datatype_sample(rows: int = 2) -> dict[str, np.ndarray]:
    """Values at the edges of each datatype's range, [rows, 3] each."""
    sample = {}
    for datatype in EVERY_DATATYPE:
        dtype = np.dtype(datatype.lower().replace("fp", "float"))
        if dtype.kind == "b":
            column = np.array([True, False, True])
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            column = np.array([info.min, info.max, 7], dtype=dtype)
        else:
            column = np.array([-1.5, 0.25, np.finfo(dtype).max], dtype=dtype)
        sample[datatype.lower()] = np.stack([np.roll(column, i) for i in range(rows)])
    return sample


def test_liveness_readiness_and_server_metadata(churn: Server) -> None:
    http, grpc = churn.http(), churn.grpc()
    for client in (http, grpc):
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn")
        assert client.is_model_ready("churn", "1.2.0")
        assert not client.is_model_ready("churn", "9.9.9")
    assert http.get_server_metadata() == {"name": "modelfleet-model-server", "version": "1.1.0",
                                          "extensions": ["binary_tensor_data"]}
    grpc_metadata = grpc.get_server_metadata(as_json=True)
    assert grpc_metadata["name"] == "modelfleet-model-server"
    assert grpc_metadata["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_datatype_round_trips(flip: Server, transport: str) -> None:
    sample = every_datatype_sample()
    # Named outputs come back as JSON data over http-json (tritonclient asks for binary
    # outputs when it names none).
    names = [f"output-{index}" for index in range(len(EVERY_DATATYPE))]
    outputs, response = flip.infer_result(transport, sample, outputs=names)
    if transport == "http-json":
        assert all("data" in output for output in response["outputs"])
    elif transport == "http-binary":
        assert all("binary_data_size" in output["parameters"] for output in response["outputs"])
    assert response["id"] == "req-7"
    assert (response["model_name"], response["model_version"]) == ("flip", "1.2.0")
    for index, datatype in enumerate(EVERY_DATATYPE):
        sent = sample[datatype.lower()]
        got = outputs[f"output-{index}"]
        assert got.dtype == sent.dtype, datatype
        assert got.shape == sent.shape, datatype
        assert np.array_equal(got, sent[::-1]), datatype
        listed = response["outputs"][index]
        assert (listed["datatype"], [int(d) for d in listed["shape"]]) == (datatype, [2, 3])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bytes_outputs(labels: Server, transport: str) -> None:
    model = labelled_model()
    outputs = labels.infer(transport, {"input-0": ROWS}, outputs=["predict"])
    # tritonclient gives JSON strings as str, binary BYTES elements as bytes.
    got = [item.decode() if isinstance(item, bytes) else item for item in outputs["predict"]]
    assert got == model.predict(ROWS).tolist()
    assert isinstance(outputs["predict"][0], str if transport == "http-json" else bytes)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sklearn_outputs_match_the_model(churn: Server, transport: str) -> None:
    model = trained_model()
    outputs = churn.infer(transport, {"input-0": ROWS})
    assert outputs["predict"].tolist() == model.predict(ROWS).tolist()
    assert outputs["predict"].dtype == np.int64
    assert np.allclose(outputs["predict_proba"], model.predict_proba(ROWS))


def _matches(listed: list[Any], actual: tuple[int, ...]) -> bool:
    return len(listed) == len(actual) and all(
        int(want) in (-1, got) for want, got in zip(listed, actual, strict=True))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("model", ["churn", "labels", "flip"])
def test_metadata_lists_what_responses_carry(request: pytest.FixtureRequest, model: str,
                                             transport: str) -> None:
    server: Server = request.getfixturevalue(model)
    if transport == "grpc":
        metadata = server.grpc().get_model_metadata(server.model, as_json=True)
    else:
        metadata = server.http().get_model_metadata(server.model)
    assert metadata["name"] == server.model
    assert metadata["versions"] == ["1.2.0"]
    sample = every_datatype_sample(rows=3) if model == "flip" else {}
    inputs = {}
    for tensor in metadata["inputs"]:
        if model == "flip":
            inputs[tensor["name"]] = sample[tensor["name"]]
        else:
            width = [int(d) for d in tensor["shape"]][1]
            dtype = np.dtype(tensor["datatype"].lower().replace("fp", "float"))
            inputs[tensor["name"]] = np.ones((3, width), dtype=dtype)
    outputs, response = server.infer_result(transport, inputs)
    assert [t["name"] for t in metadata["outputs"]] == [o["name"] for o in response["outputs"]]
    for listed, carried in zip(metadata["outputs"], response["outputs"], strict=True):
        assert listed["datatype"] == carried["datatype"], listed["name"]
        assert _matches(listed["shape"], outputs[listed["name"]].shape), (listed, carried)


def test_http_and_grpc_share_the_metrics(labels: Server) -> None:
    def count(protocol: str, code: int) -> float:
        text = call(f"http://127.0.0.1:{labels.http_port}/metrics").text
        line = (f'modelserver_requests_total{{code="{code}",model="labels",'
                f'protocol="{protocol}",route="infer"}} ')
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].removeprefix(line)) if found else 0.0

    before = {(p, c): count(p, c) for p in ("http", "grpc") for c in (200, 400)}
    labels.infer("grpc", {"input-0": ROWS})
    labels.infer("http-binary", {"input-0": ROWS})
    _refused(lambda: labels.infer("grpc", {"input-0": ROWS[:, :2]}))
    assert count("grpc", 200) == before[("grpc", 200)] + 1
    assert count("grpc", 400) == before[("grpc", 400)] + 1
    assert count("http", 200) == before[("http", 200)] + 1


def _refused(attempt: Callable[[], Any]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as refused:
        attempt()
    return refused.value


ERRORS = [
    # (inputs, datatypes, outputs, HTTP status, gRPC status, words in the message)
    ({"input-0": ROWS[:, :3]}, None, None, "400", "INVALID_ARGUMENT",
     "input 'input-0' has 3 elements on axis 1; the model takes 4"),
    ({"input-0": np.array([[b"a", b"b", b"c", b"d"]], dtype=np.object_)}, None, None, "400",
     "INVALID_ARGUMENT", "input 'input-0' is BYTES; the model takes FP64"),
    ({"input-0": np.zeros((0, 4))}, None, None, "400", "INVALID_ARGUMENT",
     "input 'input-0' is an empty batch"),
    ({"features": ROWS}, None, None, "400", "INVALID_ARGUMENT",
     "unknown input 'features'; the model takes 'input-0'"),
    ({"input-0": np.array([[np.nan, 1.0, 2.0, 3.0]])}, None, None, "400", "INVALID_ARGUMENT",
     "the model refused input 'input-0': Input X contains NaN"),
    ({"input-0": ROWS.ravel()}, None, None, "400", "INVALID_ARGUMENT",
     "input 'input-0' has shape [12]; the model takes [-1, 4]"),
    ({"input-0": ROWS}, None, ["logits"], "400", "INVALID_ARGUMENT",
     "unknown output(s) logits"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("inputs", "datatypes", "outputs", "http_status", "grpc_status",
                          "message"), ERRORS)
def test_client_errors_are_4xx_naming_the_input(
        churn: Server, transport: str, inputs: dict[str, np.ndarray],
        datatypes: dict[str, str] | None, outputs: list[str] | None, http_status: str,
        grpc_status: str, message: str) -> None:
    error = _refused(lambda: churn.infer(transport, inputs, datatypes, outputs))
    expected = f"StatusCode.{grpc_status}" if transport == "grpc" else http_status
    assert str(error.status()) == expected
    assert message in str(error.message())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_missing_input_unknown_model_and_unknown_version(flip: Server, churn: Server,
                                                         transport: str) -> None:
    sample = every_datatype_sample()
    del sample["fp16"]
    error = _refused(lambda: flip.infer(transport, sample))
    assert "missing input 'fp16'" in str(error.message())
    assert str(error.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    error = _refused(lambda: churn.infer_result(transport, {"input-0": ROWS}, model="fraud"))
    assert str(error.status()) in ("404", "StatusCode.NOT_FOUND")
    assert "unknown model 'fraud'" in str(error.message())
    client = churn.grpc() if transport == "grpc" else churn.http()
    error = _refused(lambda: client.get_model_metadata("churn", "9.9.9"))
    assert str(error.status()) in ("404", "StatusCode.NOT_FOUND")


@pytest.mark.parametrize("transport", ["http-binary", "grpc"])
def test_an_unknown_datatype_is_refused(churn: Server, transport: str) -> None:
    """BF16 travels only in binary form; this server does not carry it."""
    import ml_dtypes

    rows = np.zeros((1, 4), dtype=ml_dtypes.bfloat16)
    module: Any = grpcclient if transport == "grpc" else httpclient
    tensor = module.InferInput("input-0", [1, 4], "BF16")
    tensor.set_data_from_numpy(rows)
    client = churn.grpc() if transport == "grpc" else churn.http()
    error = _refused(lambda: client.infer("churn", [tensor]))
    assert str(error.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    assert "unknown datatype 'BF16'" in str(error.message())
