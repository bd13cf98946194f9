"""XGBoost, LightGBM, ONNX and MLflow models: trained here, saved in their format, served.

Each format's model is trained (or built) in this file, saved as its library saves it,
loaded by the real server process and asked over tritonclient (HTTP JSON, HTTP binary
tensors, gRPC); the answers must equal the library's own predictions on the same rows
exactly (same datatype, same bits). Variants of each format are checked in process, the
refusals (unknown format, corrupt files, MLflow folders the server cannot load) as the one
line the server stops with, and job mode writes the same predictions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnx
import onnxruntime
import pytest
import xgboost
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelserver.batch import run_partition
from modelserver.metrics import Metrics
from modelserver.models import ArtifactError, load_predictor
from modelserver.settings import Settings
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from tests.modelserver_support import (
    call,
    free_port,
    server_env,
    server_process,
    wait_until,
)
from tests.test_conformance_triton import TRANSPORTS, Server, serve
from tests.test_modelserver_errors import post
from tests.test_modelserver_errors import requests as fuzz_requests
from tests.test_worker import aws, outputs, stop, worker

__all__ = ["aws"]  # the moto S3 and SQS server of the worker tests

RNG = np.random.default_rng(7)
X = RNG.normal(size=(150, 4))
BINARY = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
THREE = np.digitize(X[:, 0] - X[:, 2], [-0.5, 0.5]).astype(np.int64)
TARGET = X @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.1 * RNG.normal(size=len(X))
ROWS = np.array([[0.5, -1.0, 0.2, 0.0], [-2.0, 0.3, 1.0, 0.7], [1.5, 1.5, -0.5, 0.1],
                 [np.nan, 0.2, -0.3, 1.1], [0.0, 0.0, 0.0, 0.0]])
"""Rows to predict; NaN is a missing value to both tree libraries."""
SMALL: dict[str, Any] = {"n_estimators": 8, "max_depth": 3}
LIGHT: dict[str, Any] = {"n_estimators": 8, "num_leaves": 7, "min_child_samples": 5, "verbose": -1}


def same(got: np.ndarray, expected: Any) -> bool:
    """Equal values of the same dtype and shape (NaN equal to NaN)."""
    expected = np.asarray(expected)
    return (got.dtype == expected.dtype and got.shape == expected.shape
            and np.array_equal(got, expected, equal_nan=got.dtype.kind == "f"))


def mlmodel(folder: Path, flavors: dict[str, Any], signature: dict[str, Any] | None = None) \
        -> Path:
    """An `MLmodel` file as mlflow's `Model.save` writes it (YAML; the signature's inputs
    and outputs as JSON strings: mlflow/models/model.py, mlflow/types/schema.py)."""
    import yaml

    document: dict[str, Any] = {"artifact_path": "model", "flavors": flavors,
                                "mlflow_version": "3.18.0",
                                "model_uuid": "0c5d4c0ab3f34a4f9d7c1b3e8f27e5d1",
                                "utc_time_created": "2026-12-06 20:00:00.000000"}
    if signature is not None:
        document["signature"] = {key: json.dumps(value) for key, value in signature.items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text(yaml.safe_dump(document, default_flow_style=False))
    return folder


def pyfunc(loader: str, data: str) -> dict[str, Any]:
    """The `python_function` flavour every mlflow flavour adds (mlflow/pyfunc/__init__.py
    `add_to_model`)."""
    return {"loader_module": loader, "data": data, "env": {"conda": "conda.yaml",
                                                            "virtualenv": "python_env.yaml"},
            "python_version": "3.11.7"}


def double_columns(count: int) -> list[dict[str, Any]]:
    return [{"type": "double", "name": f"f{i}", "required": True} for i in range(count)]


def adder_graph(path: Path) -> Path:
    """An ONNX graph with two inputs: `a` FP32 [batch, 3] and `b` INT64 [batch, 3]; output
    `sum` FP32 [batch, 3] = a + float(b), and `rows` INT64 [1] = the batch size."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["a", "b_float"], ["sum"]),
         helper.make_node("Shape", ["a"], ["shape"], end=1),
         helper.make_node("Identity", ["shape"], ["rows"])],
        "adder",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 3])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("rows", TensorProto.INT64, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def logistic_onnx(path: Path, zipmap: bool = False) -> tuple[Path, LogisticRegression]:
    """scikit-learn's LogisticRegression converted by skl2onnx, input `input-0` FP32."""
    model = LogisticRegression().fit(X, BINARY)
    converted = convert_sklearn(model, initial_types=[("input-0", FloatTensorType([None, 4]))],
                                options={id(model): {"zipmap": zipmap}}, target_opset=17)
    sanitized = converted.graph.input[0].name  # skl2onnx writes input_0: named back
    converted.graph.input[0].name = "input-0"
    for node in converted.graph.node:
        node.input[:] = ["input-0" if name == sanitized else name for name in node.input]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converted.SerializeToString())
    return path, model


@pytest.fixture(scope="module")
def xgb_binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """XGBClassifier (binary:logistic) saved as XGBoost JSON."""
    model = xgboost.XGBClassifier(**SMALL).fit(X, BINARY)
    path = tmp_path_factory.mktemp("xgb") / "model.json"
    model.save_model(str(path))
    for server in serve(path, "fraud"):
        yield server, model


@pytest.fixture(scope="module")
def lgb_multi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """LGBMClassifier (multiclass, 3 classes) saved as LightGBM's text model."""
    model = lightgbm.LGBMClassifier(**LIGHT).fit(X, THREE)
    path = tmp_path_factory.mktemp("lgb") / "model.txt"
    model.booster_.save_model(str(path))
    for server in serve(path, "tiers"):
        yield server, model


@pytest.fixture(scope="module")
def onnx_logistic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    path, _ = logistic_onnx(tmp_path_factory.mktemp("onnx") / "model.onnx")
    for server in serve(path, "churn-onnx"):
        yield server, path


@pytest.fixture(scope="module")
def onnx_adder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(adder_graph(tmp_path_factory.mktemp("adder") / "model.onnx"), "adder")


@pytest.fixture(scope="module")
def mlflow_xgb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """An MLflow folder: XGBRegressor as mlflow.xgboost saves it (model.xgb, UBJSON),
    with a column-based signature of four doubles."""
    folder = tmp_path_factory.mktemp("mlflow") / "model"
    model = xgboost.XGBRegressor(**SMALL).fit(X, TARGET)
    mlmodel(folder, {
        "python_function": pyfunc("mlflow.xgboost", "model.xgb"),
        "xgboost": {"code": None, "data": "model.xgb", "model_class":
                    "xgboost.sklearn.XGBRegressor", "model_format": "xgb",
                    "xgb_version": xgboost.__version__}},
        {"inputs": double_columns(4),
         "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1]}}],
         "params": None})
    model.save_model(str(folder / "model.xgb"))
    for server in serve(folder, "demand"):
        yield server, model


def metadata(server: Server, transport: str) -> dict[str, Any]:
    if transport == "grpc":
        found: dict[str, Any] = server.grpc().get_model_metadata(server.model, as_json=True)
        for tensor in found["inputs"] + found["outputs"]:
            tensor["shape"] = [int(size) for size in tensor["shape"]]
        return found
    answer: dict[str, Any] = server.http().get_model_metadata(server.model)
    return answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_xgboost_json_classifier_answers_as_xgboost(xgb_binary: tuple[Server, Any],
                                                    transport: str) -> None:
    server, model = xgb_binary
    outputs = server.infer(transport, {"input-0": ROWS})
    assert same(outputs["predict"], model.predict(ROWS).astype(np.int64))
    assert same(outputs["predict_proba"], model.predict_proba(ROWS))
    found = metadata(server, transport)
    assert found["platform"] == "xgboost_json"
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["inputs"]] == [
        ("input-0", "FP32", [-1, 4])]
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["outputs"]] == [
        ("predict", "INT64", [-1]), ("predict_proba", "FP32", [-1, 2])]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_lightgbm_text_model_answers_as_lightgbm(lgb_multi: tuple[Server, Any],
                                                 transport: str) -> None:
    server, model = lgb_multi
    outputs = server.infer(transport, {"input-0": ROWS})
    assert same(outputs["predict"], model.predict(ROWS))
    assert same(outputs["predict_proba"], model.predict_proba(ROWS))
    found = metadata(server, transport)
    assert found["platform"] == "lightgbm"
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["inputs"]] == [
        ("input-0", "FP64", [-1, 4])]
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["outputs"]] == [
        ("predict", "INT64", [-1]), ("predict_proba", "FP64", [-1, 3])]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_onnx_model_answers_as_onnxruntime(onnx_logistic: tuple[Server, Path],
                                           transport: str) -> None:
    server, path = onnx_logistic
    rows = ROWS[[0, 1, 2, 4]].astype(np.float32)
    label, probabilities = onnxruntime.InferenceSession(str(path)).run(
        None, {"input-0": rows})
    outputs = server.infer(transport, {"input-0": rows})
    assert same(outputs["label"], label)
    assert same(outputs["probabilities"], probabilities)
    found = metadata(server, transport)
    assert found["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["inputs"]] == [
        ("input-0", "FP32", [-1, 4])]
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["outputs"]] == [
        ("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 2])]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_onnx_inputs_by_name_with_symbolic_dimensions(onnx_adder: Server,
                                                      transport: str) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    b = np.array([[1, -2, 3], [2**40, 0, -1]], dtype=np.int64)
    outputs = onnx_adder.infer(transport, {"b": b, "a": a})
    assert same(outputs["sum"], a + b.astype(np.float32))
    assert same(outputs["rows"], np.array([2], dtype=np.int64))
    found = metadata(onnx_adder, transport)
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["inputs"]] == [
        ("a", "FP32", [-1, 3]), ("b", "INT64", [-1, 3])]
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["outputs"]] == [
        ("sum", "FP32", [-1, 3]), ("rows", "INT64", [1])]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_onnx_request_without_every_named_input_is_a_400(onnx_adder: Server,
                                                         transport: str) -> None:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as refused:
        onnx_adder.infer(transport, {"a": np.zeros((1, 3), dtype=np.float32)})
    assert str(refused.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    assert "missing input 'b'; the model takes 'a', 'b'" in str(refused.value.message())
    with pytest.raises(InferenceServerException) as renamed:
        onnx_adder.infer(transport, {"input-0": np.zeros((1, 3), dtype=np.float32),
                                     "b": np.zeros((1, 3), dtype=np.int64)})
    assert "unknown input 'input-0'" in str(renamed.value.message())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mlflow_xgboost_folder_answers_as_xgboost(mlflow_xgb: tuple[Server, Any],
                                                  transport: str) -> None:
    server, model = mlflow_xgb
    outputs = server.infer(transport, {"input-0": ROWS})
    assert same(outputs["predict"], model.predict(ROWS))
    found = metadata(server, transport)
    assert found["platform"] == "mlflow_xgboost"
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["inputs"]] == [
        ("input-0", "FP64", [-1, 4])], "the signature's four double columns"
    assert [(t["name"], t["datatype"], t["shape"]) for t in found["outputs"]] == [
        ("predict", "FP32", [-1])]


def test_tree_model_requests_are_counted_per_protocol(xgb_binary: tuple[Server, Any]) -> None:
    server, _ = xgb_binary

    def count(protocol: str) -> float:
        text = call(f"http://127.0.0.1:{server.http_port}/metrics").text
        line = (f'modelserver_requests_total{{code="200",model="fraud",protocol="{protocol}",'
                f'route="infer"}} ')
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].removeprefix(line)) if found else 0.0

    before = count("http"), count("grpc")
    server.infer("grpc", {"input-0": ROWS})
    server.infer("http-binary", {"input-0": ROWS})
    assert (count("http"), count("grpc")) == (before[0] + 1, before[1] + 1)


# In process: the other variants of each format, through the same loader.

def test_xgboost_variants_answer_as_xgboost(tmp_path: Path) -> None:
    multi = xgboost.XGBClassifier(**SMALL).fit(X, THREE)
    multi.save_model(str(tmp_path / "multi.ubj"))
    predictor = load_predictor(str(tmp_path / "multi.ubj"), tmp_path)
    outputs = predictor.predict({"input-0": ROWS})
    assert predictor.platform == "xgboost_ubjson"
    assert same(outputs["predict"], multi.predict(ROWS).astype(np.int64))
    assert same(outputs["predict_proba"], multi.predict_proba(ROWS))
    assert predictor.outputs[1].shape == [-1, 3]

    regressor = xgboost.XGBRegressor(**SMALL).fit(X, TARGET)
    regressor.save_model(str(tmp_path / "model.bst"))  # UBJSON under KServe's suffix
    predictor = load_predictor(str(tmp_path / "model.bst"), tmp_path)
    assert same(predictor.predict({"input-0": ROWS})["predict"], regressor.predict(ROWS))
    assert [(t.name, t.datatype, t.shape) for t in predictor.outputs] == [
        ("predict", "FP32", [-1])]

    stopped = xgboost.XGBClassifier(n_estimators=40, max_depth=2, early_stopping_rounds=2,
                                    learning_rate=0.9)
    stopped.fit(X[:100], BINARY[:100], eval_set=[(X[100:], BINARY[100:])], verbose=False)
    assert stopped.best_iteration < 39
    stopped.save_model(str(tmp_path / "stopped.json"))
    predictor = load_predictor(str(tmp_path / "stopped.json"), tmp_path)
    assert same(predictor.predict({"input-0": ROWS})["predict_proba"],
                stopped.predict_proba(ROWS)), "the best iteration, as XGBClassifier uses"


def test_lightgbm_variants_answer_as_lightgbm(tmp_path: Path) -> None:
    binary = lightgbm.LGBMClassifier(**LIGHT).fit(X, BINARY)
    binary.booster_.save_model(str(tmp_path / "model.bst"))  # KServe lgbserver's suffix
    predictor = load_predictor(str(tmp_path / "model.bst"), tmp_path)
    outputs = predictor.predict({"input-0": ROWS})
    assert same(outputs["predict"], binary.predict(ROWS))
    assert same(outputs["predict_proba"], binary.predict_proba(ROWS))

    regressor = lightgbm.LGBMRegressor(**LIGHT).fit(X, TARGET)
    regressor.booster_.save_model(str(tmp_path / "model.lgb"))
    predictor = load_predictor(str(tmp_path / "model.lgb"), tmp_path)
    assert same(predictor.predict({"input-0": ROWS})["predict"], regressor.predict(ROWS))
    assert [(t.name, t.datatype, t.shape) for t in predictor.outputs] == [
        ("predict", "FP64", [-1])]


def test_onnx_zipmap_outputs_are_left_out_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, model = logistic_onnx(tmp_path / "zipmap.onnx", zipmap=True)
    with caplog.at_level(logging.WARNING, "modelserver"):
        predictor = load_predictor(str(path), tmp_path)
    assert [t.name for t in predictor.outputs] == ["output_label"]
    assert "output 'output_probability' is seq(map(int64,tensor(float)))" in caplog.text
    rows = ROWS[[0, 1, 2]].astype(np.float32)
    assert same(predictor.predict({"input-0": rows})["output_label"], model.predict(rows))


class Scorer:
    """A torch module class importable by `torch.load` (mlflow.pytorch pickles modules)."""


def _torch_module() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Softmax(dim=1)).eval()


def test_mlflow_flavours_load_natively(tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    import pickle

    import torch

    sk = LogisticRegression().fit(X, BINARY)
    folder = mlmodel(tmp_path / "sklearn", {
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
        "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle",
                    "sklearn_version": "1.9.1"}},
        {"inputs": double_columns(4), "outputs": [{"type": "long"}]})
    (folder / "model.pkl").write_bytes(pickle.dumps(sk))
    with caplog.at_level(logging.WARNING, "modelserver"):
        predictor = load_predictor(str(folder), tmp_path / "cache")
    assert "model.pkl is a pickle: loading it runs code from the artifact" in caplog.text
    assert predictor.platform == "mlflow_sklearn"
    assert same(predictor.predict({"input-0": ROWS[:3]})["predict"], sk.predict(ROWS[:3]))

    estimator = lightgbm.LGBMClassifier(**LIGHT).fit(X, THREE)
    folder = mlmodel(tmp_path / "lgb-pkl", {"lightgbm": {
        "data": "model.pkl", "model_class": "lightgbm.sklearn.LGBMClassifier"}})
    (folder / "model.pkl").write_bytes(pickle.dumps(estimator))
    predictor = load_predictor(str(folder), tmp_path / "cache")
    assert same(predictor.predict({"input-0": ROWS})["predict_proba"],
                estimator.predict_proba(ROWS))

    folder = mlmodel(tmp_path / "lgb", {"lightgbm": {"data": "model.lgb",
                                                     "model_class": "lightgbm.basic.Booster"}})
    estimator.booster_.save_model(str(folder / "model.lgb"))
    predictor = load_predictor(str(folder), tmp_path / "cache")
    assert same(predictor.predict({"input-0": ROWS})["predict"], estimator.predict(ROWS))

    folder = mlmodel(tmp_path / "onnx", {
        "python_function": pyfunc("mlflow.onnx", "model.onnx"),
        "onnx": {"data": "model.onnx", "onnx_version": onnx.__version__, "providers": [
            "CUDAExecutionProvider", "CPUExecutionProvider"]}},
        {"inputs": [{"type": "tensor", "name": "a", "tensor-spec": {"dtype": "float32",
                                                                    "shape": [-1, 3]}},
                    {"type": "tensor", "name": "b", "tensor-spec": {"dtype": "int64",
                                                                    "shape": [-1, 3]}}]})
    adder_graph(folder / "model.onnx")
    predictor = load_predictor(str(folder), tmp_path / "cache")
    assert [(t.name, t.datatype, t.shape) for t in predictor.inputs] == [
        ("a", "FP32", [-1, 3]), ("b", "INT64", [-1, 3])]
    a, b = np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.int64)
    assert same(predictor.predict({"a": a, "b": b})["sum"], a + 1)

    module = _torch_module()
    folder = mlmodel(tmp_path / "torch", {
        "python_function": pyfunc("mlflow.pytorch", "data"),
        "pytorch": {"model_data": "data", "pytorch_version": str(torch.__version__)}},
        {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32",
                                                        "shape": [-1, 4]}}]})
    (folder / "data").mkdir()
    torch.save(module, str(folder / "data" / "model.pth"))
    predictor = load_predictor(str(folder), tmp_path / "cache")
    assert [(t.name, t.datatype, t.shape) for t in predictor.inputs] == [
        ("input-0", "FP32", [-1, 4])], "the signature's tensor, not TorchScript's [-1, -1]"
    rows = ROWS[:3].astype(np.float32)
    assert same(predictor.predict({"input-0": rows})["output-0"],
                module(torch.from_numpy(rows)).detach().numpy())


# Refusals: one line, before anything is served.

def corrupt(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


REFUSALS = [
    ("model.h5", b"\x89HDF", r"model\.h5: unknown model format \(known: .*\.onnx"),
    ("model.json", b'{"learner": 1', r"model\.json is not an XGBoost model"),
    ("model.ubj", b"\x00\x01\x02", r"model\.ubj is not an XGBoost model"),
    ("model.txt", b"tree\nversion=v4\nnum_class=x\n", r"model\.txt is not a LightGBM model"),
    ("model.bst", b"\x00garbage", r"model\.bst: unknown model format"),
    ("model.onnx", b"\x08\x07garbage", r"model\.onnx is not an ONNX model onnxruntime can run"),
    ("mlflow/MLmodel", b"flavors: [unclosed", r"MLmodel is not YAML"),
    ("mlflow/MLmodel", b"flavors:\n  transformers: {task: text-generation}\n",
     r"MLmodel: flavour 'transformers' is not one this server loads \(onnx, xgboost"),
    ("mlflow/MLmodel", b"flavors:\n  python_function: {loader_module: churn.loader}\n",
     r"flavour 'python_function' \(loader_module churn\.loader\) is not one this server"),
    ("mlflow/MLmodel", b"flavors:\n  xgboost: {data: ../../etc/passwd}\n",
     r"flavour 'xgboost' data '\.\./\.\./etc/passwd' is not in the model folder"),
    ("mlflow/MLmodel", b"flavors:\n  sklearn: {pickled_model: m.pkl, serialization_format: "
     b"skops}\n", r"sklearn serialization_format 'skops' is not one this server loads"),
]


@pytest.mark.parametrize(("name", "content", "message"), REFUSALS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(REFUSALS)])
def test_an_artifact_the_server_cannot_load_is_refused_by_name(
        tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = corrupt(tmp_path, name, content)
    target = path.parent if path.name == "MLmodel" else path
    with pytest.raises(ArtifactError, match=message):
        load_predictor(str(target), tmp_path / "cache")


def test_mlflow_signature_that_disagrees_with_the_model_is_refused(tmp_path: Path) -> None:
    folder = mlmodel(tmp_path / "model", {"xgboost": {"data": "model.json"}},
                     {"inputs": double_columns(5)})
    xgboost.XGBRegressor(**SMALL).fit(X, TARGET).save_model(str(folder / "model.json"))
    with pytest.raises(ArtifactError, match="the signature lists 5 columns; the model takes 4"):
        load_predictor(str(folder), tmp_path / "cache")


def test_an_mlflow_image_given_a_folder_without_mlmodel_says_so(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    xgboost.XGBRegressor(**SMALL).fit(X, TARGET).save_model(str(tmp_path / "m" / "model.xgb"))
    with pytest.raises(ArtifactError, match="m: no MLmodel file; an MLflow model is a folder"):
        load_predictor(str(tmp_path / "m"), tmp_path / "cache", flavor="mlflow")
    with pytest.raises(ArtifactError, match=r"model\.xgb holds a model of format 'xgboost'; "
                                            r"this image serves sklearn, mlflow"):
        load_predictor(str(tmp_path / "m"), tmp_path / "cache", flavor="sklearn,mlflow")


def test_a_format_whose_library_the_image_lacks_names_the_image_that_has_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xgboost.XGBRegressor(**SMALL).fit(X, TARGET).save_model(str(tmp_path / "model.json"))
    folder = mlmodel(tmp_path / "mlflow", {"xgboost": {"data": "model.json"}})
    (folder / "model.json").write_bytes((tmp_path / "model.json").read_bytes())
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as in the sklearn image
    for path in (tmp_path / "model.json", folder):
        with pytest.raises(ArtifactError, match=r"model\.json: a xgboost model needs the Python "
                           r"package 'xgboost', which this image lacks; "
                           r"images/trees\.Dockerfile has it"):
            load_predictor(str(path), tmp_path / "cache")


def test_a_corrupt_model_stops_the_server_with_one_line(tmp_path: Path) -> None:
    path = corrupt(tmp_path, "model.onnx", b"not a protobuf")
    with server_process(server_env(str(path), free_port()), wait_ready=False) as process:
        process.wait(timeout=60)
        stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 1
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stderr
    assert "model.onnx is not an ONNX model onnxruntime can run" in errors[0]
    assert "Traceback" not in stderr


def test_the_pinned_sha256_of_an_mlflow_folder_is_its_flavours_file(tmp_path: Path) -> None:
    folder = mlmodel(tmp_path / "model", {"python_function": pyfunc("mlflow.sklearn", "x"),
                                          "sklearn": {"pickled_model": "model.pkl"}})
    (folder / "model.pkl").write_bytes(b"a pickle that must never be loaded")
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for model\.pkl"):
        load_predictor(str(folder), tmp_path / "cache", sha256="0" * 64)
    pinned = hashlib.sha256(b"a pickle that must never be loaded").hexdigest()
    with pytest.raises(ArtifactError, match=r"model\.pkl is not a pickled scikit-learn"):
        load_predictor(str(folder), tmp_path / "cache", sha256=pinned)


# Job and worker modes: the batch path hands every format FP64 rows and writes its answers.

def format_model(fmt: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    """Each format's model saved into `folder`, and the library's own answers for BATCH."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "xgboost":
        model = xgboost.XGBClassifier(**SMALL).fit(X, THREE)
        path = folder / "model.ubj"
        model.save_model(str(path))
        return path, {"predict": model.predict(BATCH), "predict_proba":
                      model.predict_proba(BATCH)}
    if fmt == "lightgbm":
        regressor = lightgbm.LGBMRegressor(**LIGHT).fit(X, TARGET)
        path = folder / "model.txt"
        regressor.booster_.save_model(str(path))
        return path, {"predict": regressor.predict(BATCH)}
    if fmt == "onnx":
        path, _ = logistic_onnx(folder / "model.onnx")
        label, probabilities = onnxruntime.InferenceSession(str(path)).run(
            None, {"input-0": BATCH.astype(np.float32)})
        return path, {"label": label, "probabilities": probabilities}
    mlmodel(folder, {"lightgbm": {"data": "model.lgb"}})
    classifier = lightgbm.LGBMClassifier(**LIGHT).fit(X, BINARY)
    classifier.booster_.save_model(str(folder / "model.lgb"))
    return folder, {"predict": classifier.predict(BATCH),
                    "predict_proba": classifier.predict_proba(BATCH)}


BATCH = ROWS[[0, 1, 2, 4]]
"""Batch rows: JSON lines carry no NaN."""
FORMATS = ["xgboost", "lightgbm", "onnx", "mlflow"]


def assert_lines_hold(lines: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert [line["id"] for line in lines] == [f"r{i}" for i in range(len(BATCH))]
    for name, values in expected.items():
        written = np.array([line[name] for line in lines], dtype=np.asarray(values).dtype)
        assert same(written, np.asarray(values)), name


def rows_jsonl() -> str:
    return "\n".join(json.dumps({"id": f"r{i}", "features": row.tolist()})
                     for i, row in enumerate(BATCH))


@pytest.mark.parametrize("fmt", FORMATS)
def test_job_mode_writes_the_libraries_predictions(tmp_path: Path, fmt: str) -> None:
    """One partition, as `python -m modelserver` runs it in job mode (in process: the
    worker test below runs the real process)."""
    path, expected = format_model(fmt, tmp_path / "model")
    rows = tmp_path / "input" / "rows.jsonl"
    rows.parent.mkdir(parents=True, exist_ok=True)
    rows.write_text(rows_jsonl())
    settings = Settings(model_name="churn", model_version="1.2.0", model_uri=str(path),
                        mode="job", input_uri=str(rows),
                        output_uri=str(tmp_path / "output") + "/", partitions=1)
    run_partition(settings, load_predictor(str(path), tmp_path / "cache"), Metrics())
    written = (tmp_path / "output" / "part-00000.jsonl").read_text().splitlines()
    assert_lines_hold([json.loads(line) for line in written], expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_worker_mode_answers_a_queued_input_with_the_libraries_predictions(
        aws: dict[str, str], tmp_path: Path, fmt: str) -> None:
    """The model from an S3 prefix (an MLflow folder's every object), rows from S3, the
    input named by an SQS message: as a worker pod runs."""
    import boto3

    world = {"s3": boto3.client("s3"), "sqs": boto3.client("sqs"), "bucket": f"formats-{fmt}",
             "cache": tmp_path / "cache"}
    world["s3"].create_bucket(Bucket=world["bucket"], CreateBucketConfiguration={
        "LocationConstraint": aws["AWS_REGION"]})
    world["queue"] = world["sqs"].create_queue(QueueName=f"formats-{fmt}")["QueueUrl"]
    path, expected = format_model(fmt, tmp_path / "model")
    files = [p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file()]
    base = path if path.is_dir() else path.parent
    for file in files:
        world["s3"].upload_file(str(file), world["bucket"],
                                f"models/churn/1.2.0/{file.relative_to(base)}")
    world["s3"].put_object(Bucket=world["bucket"], Key="inputs/rows.jsonl",
                           Body=rows_jsonl().encode())
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps(
        {"input": f"s3://{world['bucket']}/inputs/rows.jsonl"}))
    process = worker(world, aws, f"s3://{world['bucket']}/models/churn/1.2.0/")
    try:
        wait_until(lambda: len(outputs(world)) == 1 or process.poll() is not None, timeout=60)
    finally:
        code, log = stop(process) if process.poll() is None else (
            process.returncode, process.stderr.read() if process.stderr else "")
    assert code == 0, log
    (lines,) = outputs(world).values()
    assert_lines_hold(lines, expected)


# Fuzz: whatever a client sends, each format answers 200 or a 4xx with a message.

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Each format's model (four features, input `input-0`) behind an in-process HTTP server."""
    from modelserver.http import ModelHTTPServer
    from modelserver.state import ServerState

    folder = tmp_path_factory.mktemp("fuzzed")
    xgboost.XGBClassifier(**SMALL).fit(X, THREE).save_model(str(folder / "model.ubj"))
    lightgbm.LGBMClassifier(**LIGHT).fit(X, BINARY).booster_.save_model(
        str(folder / "model.txt"))
    logistic_onnx(folder / "model.onnx")
    mlflow = mlmodel(folder / "mlflow", {"xgboost": {"data": "model.json"}},
                     {"inputs": double_columns(4)})
    xgboost.XGBRegressor(**SMALL).fit(X, TARGET).save_model(str(mlflow / "model.json"))
    servers = {}
    for fmt, path in (("xgboost", folder / "model.ubj"), ("lightgbm", folder / "model.txt"),
                      ("onnx", folder / "model.onnx"), ("mlflow", mlflow)):
        state = ServerState("churn", "1.2.0")
        state.predictor = load_predictor(str(path), folder / "cache")
        servers[fmt] = ModelHTTPServer(("127.0.0.1", 0), state)
        threading.Thread(target=servers[fmt].serve_forever, daemon=True).start()
    try:
        yield {fmt: f"127.0.0.1:{server.port}" for fmt, server in servers.items()}
    finally:
        for server in servers.values():
            server.drain(1)


@pytest.mark.parametrize("fmt", ["xgboost", "lightgbm", "onnx", "mlflow"])
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=fuzz_requests, tail=st.binary(max_size=32))
def test_no_request_gets_a_5xx_from_any_format(fuzzed: dict[str, str], fmt: str,
                                               request: dict[str, Any], tail: bytes) -> None:
    head = json.dumps(request).encode()
    headers = {"Content-Type": "application/json"}
    if tail:
        headers["Inference-Header-Content-Length"] = str(len(head))
    status, body = post(fuzzed[fmt], head + tail, headers)
    assert status < 500, body
    if status >= 400:
        assert set(json.loads(body)) == {"error"}


@pytest.mark.parametrize("fmt", ["xgboost", "lightgbm", "onnx", "mlflow"])
def test_the_fuzzed_formats_answer_a_good_request(fuzzed: dict[str, str], fmt: str) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                        "data": ROWS[:2].ravel().tolist()}]}
    status, answer = post(fuzzed[fmt], json.dumps(body).encode(), {})
    assert status == 200, answer
    infinite = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                            "data": [1e300, 0.0, 0.0, 0.0]}]}
    status, answer = post(fuzzed[fmt], json.dumps(infinite).encode(), {})
    if fmt in ("xgboost", "mlflow", "onnx"):  # FP32 models: 1e300 does not fit
        assert status == 400, answer
        assert b"FP32" in answer
    else:
        assert status == 200, answer
