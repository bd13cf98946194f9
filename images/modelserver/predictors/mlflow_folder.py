"""MLflow models: a folder with an `MLmodel` file, served by its flavour's native loader.

No `mlflow` package at run time: `MLmodel` is YAML, read as MLflow writes it (mlflow
`mlflow/models/model.py` `Model.save`/`Model.to_dict`: `flavors` maps each flavour to
the keyword arguments its `save_model` gave `add_flavor`; `signature` holds `inputs` and
`outputs` as JSON strings of `mlflow/types/schema.py` `ColSpec.to_dict`
(`{"type": "double", "name": ...}`) or `TensorSpec.to_dict`
(`{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}`)).

The flavours and the keys read (mlflow's `mlflow/<flavour>/__init__.py` `save_model`):

- `onnx`: `data` (`model.onnx`), run by onnxruntime as `.onnx` files are;
- `xgboost`: `data` (`model.xgb`, `.json`, `.ubj`), an XGBoost booster as its files are;
- `lightgbm`: `data`, `model.lgb` (a Booster's text model) or `model.pkl` (an `LGBM*`
  estimator, cloudpickled), served as its booster or as a scikit-learn estimator;
- `sklearn`: `pickled_model` (`model.pkl`), `serialization_format` pickle or cloudpickle;
- `pytorch`: `model_data` (`data`), its `model.pth` written by `torch.save(model)`,
  served as a TorchScript module is.

The first of these the folder has is used (that order: native files before pickles).
Any other flavour (`python_function` alone with its own `loader_module`,
`transformers`, `tensorflow`, ...) is refused by name. Pickles warn that loading runs
code from the artifact. MODEL_SHA256 pins the file the flavour loads, checked before it
is loaded (the `MLmodel` itself is read first: YAML's safe loader runs no code). The
signature's inputs are the metadata's inputs (names,
datatypes, shapes; a column-based signature is one matrix `[-1, columns]`), checked
against what the model takes; outputs are the model's own.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelserver.models import (
    MLMODEL,
    ArtifactError,
    Predictor,
    SklearnPredictor,
    TensorSpec,
    TorchPredictor,
    warn_pickle,
)
from modelserver.protocol import datatype_of

FLAVOURS = ("onnx", "xgboost", "lightgbm", "sklearn", "pytorch")
"""What this server loads, in the order it prefers them when a folder has several."""
COLUMN_TYPES = {"boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32",
                "double": "FP64"}
"""mlflow/types/schema.py `DataType` -> protocol datatypes (string, binary and datetime
columns do not fit the one numeric matrix these models take)."""


@dataclass
class MlflowPredictor:
    """The flavour's own predictor, described by the MLmodel signature's inputs."""

    native: Predictor
    platform: str
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outputs = self.native.outputs

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(self.inputs) == 1 and len(self.native.inputs) == 1:
            return self.native.predict({self.native.inputs[0].name: next(iter(inputs.values()))})
        return self.native.predict(inputs)


def load_mlflow(folder: Path) -> MlflowPredictor:
    """Loads an MLflow model folder; raises ArtifactError (one line) when it has no
    `MLmodel`, the file is not MLflow's YAML, or no flavour in it is one this server loads."""
    document, chosen, conf = read_mlmodel(folder)
    native = _load_flavour(chosen, flavour_file(chosen, conf, folder))
    inputs = signature_inputs(document.get("signature"), native.inputs)
    return MlflowPredictor(native, f"mlflow_{chosen}", inputs)


def read_mlmodel(folder: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The `MLmodel` document, the flavour this server loads it by, and that flavour's keys.

    Reading is safe before the artifact is verified: YAML's safe loader runs no code.
    """
    import yaml

    mlmodel = folder / MLMODEL
    if not mlmodel.is_file():
        raise ArtifactError(f"{folder.name}: no {MLMODEL} file; an MLflow model is a folder "
                            f"with one")
    try:
        document = yaml.safe_load(mlmodel.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{MLMODEL} is not YAML: {str(error).splitlines()[0]}") from error
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict) or not flavors:
        raise ArtifactError(f"{MLMODEL} lists no flavors")
    chosen = next((name for name in FLAVOURS if isinstance(flavors.get(name), dict)), None)
    if chosen is None:
        raise ArtifactError(f"{MLMODEL}: flavour {_describe(flavors)} is not one this server "
                            f"loads ({', '.join(FLAVOURS)})")
    return document, chosen, flavors[chosen]


def model_file(folder: Path) -> Path:
    """The file the folder's flavour loads (the weights MODEL_SHA256 pins)."""
    _, chosen, conf = read_mlmodel(folder)
    return flavour_file(chosen, conf, folder)


def flavour_file(flavour: str, conf: dict[str, Any], folder: Path) -> Path:
    """The file a flavour's keys name (`data`, `pickled_model`, `model_data`/model.pth)."""
    serialization = conf.get("serialization_format", "cloudpickle")
    if flavour == "sklearn" and serialization not in ("pickle", "cloudpickle"):
        raise ArtifactError(f"{MLMODEL}: sklearn serialization_format '{serialization}' "
                            f"is not one this server loads (pickle, cloudpickle)")
    key = {"sklearn": "pickled_model", "pytorch": "model_data"}.get(flavour, "data")
    path = _file(folder, conf, key, flavour)
    if flavour == "pytorch" and path.is_dir():
        path = path / "model.pth"
        if not path.is_file():
            raise ArtifactError(f"{MLMODEL}: flavour 'pytorch' has no model.pth in "
                                f"{conf.get(key)}")
    return path


def _describe(flavors: dict[str, Any]) -> str:
    names = [name for name in flavors if name != "python_function"]
    if names:
        return ", ".join(f"'{name}'" for name in names)
    pyfunc = flavors.get("python_function") or {}
    loader = pyfunc.get("loader_module") if isinstance(pyfunc, dict) else None
    return f"'python_function' (loader_module {loader or 'mlflow.pyfunc.model'})"


def _file(folder: Path, conf: dict[str, Any], key: str, flavour: str) -> Path:
    relative = conf.get(key)
    if not isinstance(relative, str) or not relative:
        raise ArtifactError(f"{MLMODEL}: flavour '{flavour}' has no '{key}'")
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.exists():
        raise ArtifactError(f"{MLMODEL}: flavour '{flavour}' {key} '{relative}' is not in "
                            f"the model folder")
    return path


def _unpickle(path: Path, what: str) -> Any:
    warn_pickle(path)
    try:
        with path.open("rb") as stream:
            return pickle.load(stream)  # an MLflow pickle: warned above
    except Exception as error:  # unpickling raises whatever the bytes make it raise
        raise ArtifactError(f"{path.name} is not a pickled {what}: {error}") from error


def _load_flavour(flavour: str, data: Path) -> Predictor:
    from modelserver.predictors import load

    if flavour in ("onnx", "xgboost"):
        return load(flavour, data)
    if flavour == "lightgbm":
        if data.suffix == ".pkl":
            return SklearnPredictor(_unpickle(data, "LightGBM estimator"))
        return load("lightgbm", data)
    if flavour == "sklearn":
        return SklearnPredictor(_unpickle(data, "scikit-learn estimator"))
    return _load_pytorch(data)


def _load_pytorch(path: Path) -> Predictor:
    import torch

    warn_pickle(path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        module = torch.load(str(path), map_location=device, weights_only=False)
    except Exception as error:  # unpickling raises whatever the bytes make it raise
        raise ArtifactError(f"{path.name} is not a saved torch module: {error}") from error
    module.eval()
    return TorchPredictor(module, platform="mlflow_pytorch", device=device)


def signature_inputs(signature: Any, native: list[TensorSpec]) -> list[TensorSpec]:
    """The inputs an MLmodel `signature` lists, as the model's tensors; the model's own
    inputs when there is no signature. Raises ArtifactError when they disagree."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return native
    try:
        specs = json.loads(signature["inputs"])
    except (TypeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{MLMODEL}: signature inputs are not JSON: {error}") from error
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ArtifactError(f"{MLMODEL}: signature inputs are not a list of specs")
    if all(spec.get("type") == "tensor" for spec in specs):
        return _tensor_inputs(specs, native)
    return [_column_input(specs, native)]


def _column_input(columns: list[dict[str, Any]], native: list[TensorSpec]) -> TensorSpec:
    if len(native) != 1:
        raise ArtifactError(f"{MLMODEL}: the signature lists columns, the model takes "
                            f"{len(native)} inputs")
    types = []
    for index, column in enumerate(columns):
        datatype = COLUMN_TYPES.get(str(column.get("type")))
        if datatype is None:
            raise ArtifactError(f"{MLMODEL}: signature column '{column.get('name', index)}' "
                                f"is {column.get('type')}; the model takes one numeric matrix")
        types.append(datatype)
    model = native[0]
    width = model.shape[1] if len(model.shape) == 2 else -1
    if width >= 0 and width != len(columns):
        raise ArtifactError(f"{MLMODEL}: the signature lists {len(columns)} columns; the "
                            f"model takes {width} features")
    datatype = types[0] if len(set(types)) == 1 else "FP64"
    return TensorSpec(model.name, datatype, [-1, len(columns)])


def _tensor_inputs(specs: list[dict[str, Any]], native: list[TensorSpec]) -> list[TensorSpec]:
    if len(specs) != len(native):
        raise ArtifactError(f"{MLMODEL}: the signature lists {len(specs)} input tensors; the "
                            f"model takes {len(native)}")
    inputs = []
    for spec, model in zip(specs, native, strict=True):
        tensor = spec.get("tensor-spec") or {}
        name = spec.get("name") or model.name
        if len(native) > 1 and name != model.name:
            raise ArtifactError(f"{MLMODEL}: signature input '{name}' is not the model's "
                                f"'{model.name}'")
        try:
            datatype = datatype_of(np.empty(0, dtype=np.dtype(tensor.get("dtype"))))
        except TypeError as error:
            raise ArtifactError(f"{MLMODEL}: signature input '{name}' has dtype "
                                f"{tensor.get('dtype')!r}: {error}") from error
        shape = [int(size) if int(size) >= 0 else -1 for size in tensor.get("shape") or []]
        inputs.append(TensorSpec(str(name), datatype, shape))
    return inputs
