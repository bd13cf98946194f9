"""Loading a model artifact into something that predicts, and the contract every format keeps.

The format is chosen from the artifact (`detect_format`): a file by its suffix (and,
for suffixes two libraries share, its first bytes), a folder by its contents (an
`MLmodel` file makes it an MLflow model). scikit-learn (joblib) and torch load here;
XGBoost, LightGBM, ONNX and MLflow each have a module in `modelserver.predictors`.
Every predictor lists its inputs and outputs (`TensorSpec`) from the model itself and
casts what it is given to the types its library computes in, so the batch modes,
which hand it FP64 rows, get the answers the protocol's clients get.

torch models are `torch.export` programs (`.pt2`, `torch.export.save`), whose
signature gives the inputs' names, datatypes and shapes; TorchScript files still
load, with a deprecation warning, while torch reads them. The artifact is verified
against `MODEL_SHA256` before anything is loaded: a server whose weights are not
the pinned ones refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelserver.protocol import ProtocolError, datatype_of
from modelserver.storage import fetch, sha256_of

SKLEARN_FILES = (".joblib", ".pkl", ".pickle")
EXPORTED_FILES = (".pt2",)
TORCHSCRIPT_FILES = (".pt", ".pth", ".torchscript")
TORCH_FILES = EXPORTED_FILES + TORCHSCRIPT_FILES
XGBOOST_FILES = (".json", ".ubj", ".xgb")
LIGHTGBM_FILES = (".lgb",)
SHARED_FILES = (".bst", ".txt", ".model")
"""Suffixes both tree libraries use (KServe's xgbserver and lgbserver both read `.bst`):
told apart by the first bytes (a LightGBM text model starts with `tree`)."""
ONNX_FILES = (".onnx",)
MLMODEL = "MLmodel"
FORMATS = ("sklearn", "torch", "xgboost", "lightgbm", "onnx", "mlflow")
SUFFIXES: dict[str, tuple[str, ...]] = {
    "sklearn": SKLEARN_FILES, "torch": TORCH_FILES, "onnx": ONNX_FILES,
    "xgboost": XGBOOST_FILES + SHARED_FILES, "lightgbm": LIGHTGBM_FILES + SHARED_FILES}
log = logging.getLogger("modelserver")


class ArtifactError(RuntimeError):
    """The artifact cannot be used: missing, unrecognised, or not the pinned one."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


class Predictor(Protocol):
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class SklearnPredictor:
    """An estimator with `predict` (and, when it has one, `predict_proba`).

    It takes one FP64 tensor [rows, features]; `predict` carries the datatype of
    the estimator's classes (FP64 for a regressor), `predict_proba` FP64 [rows, classes].
    """

    estimator: Any
    platform: str = "sklearn"
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        features = int(getattr(self.estimator, "n_features_in_", -1))
        self.inputs = [TensorSpec("input-0", "FP64", [-1, features])]
        classes = getattr(self.estimator, "classes_", None)
        label = datatype_of(np.asarray(classes)) if classes is not None else "FP64"
        self.outputs = [TensorSpec("predict", label, [-1])]
        if hasattr(self.estimator, "predict_proba"):
            count = len(classes) if classes is not None else -1
            self.outputs.append(TensorSpec("predict_proba", "FP64", [-1, count]))

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = _single(inputs)
        if features.ndim != 2:
            raise ProtocolError(f"expected a 2-dimensional input [rows, features], "
                                f"got shape {list(features.shape)}")
        expected = self.inputs[0].shape[1]
        if expected > 0 and features.shape[1] != expected:
            raise ProtocolError(f"expected {expected} features, got {features.shape[1]}")
        rows = features.astype(np.float64, copy=False)
        outputs = {"predict": np.asarray(self.estimator.predict(rows))}
        if hasattr(self.estimator, "predict_proba"):
            outputs["predict_proba"] = np.asarray(self.estimator.predict_proba(rows),
                                                  dtype=np.float64)
        return outputs


@dataclass
class TorchPredictor:
    """A TorchScript module: one FP32 tensor in, a tensor (or a tuple of them) out.

    TorchScript keeps no signature, so the metadata gives ranks of two and sizes of -1.
    """

    module: Any
    platform: str = "pytorch_torchscript"
    inputs: list[TensorSpec] = field(default_factory=lambda: [TensorSpec("input-0", "FP32",
                                                                          [-1, -1])])
    outputs: list[TensorSpec] = field(default_factory=lambda: [TensorSpec("output-0", "FP32",
                                                                           [-1, -1])])

    device: str = "cpu"

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(_single(inputs), dtype=np.float32))
        with torch.inference_mode():
            result = self.module(tensor.to(self.device))
        results = result if isinstance(result, (tuple, list)) else (result,)
        return {f"output-{i}": r.detach().cpu().numpy() for i, r in enumerate(results)}


@dataclass
class ExportedPredictor:
    """A `torch.export` program: its inputs by name, its outputs as output-0, output-1...

    Names, datatypes and shapes come from the program's signature; a dimension the
    program was exported as dynamic is -1.
    """

    module: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str = "pytorch_torch_export"
    device: str = "cpu"

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from modelserver.protocol import DATATYPES

        tensors = []
        for spec in self.inputs:
            if spec.name not in inputs:
                raise ProtocolError(f"missing input '{spec.name}'")
            array = np.ascontiguousarray(inputs[spec.name], dtype=DATATYPES[spec.datatype])
            tensors.append(torch.from_numpy(array).to(self.device))
        with torch.inference_mode():
            result = self.module(*tensors)
        results = result if isinstance(result, (tuple, list)) else (result,)
        return {spec.name: r.detach().cpu().numpy()
                for spec, r in zip(self.outputs, results, strict=True)}


def exported_predictor(path: Path, device: str) -> ExportedPredictor:
    """Loads a `.pt2` program; raises ArtifactError when it is not one this server can run."""
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise ArtifactError(f"{path.name} is not a torch.export program: {error}") from error
    from torch.export.passes import move_to_device_pass

    program = move_to_device_pass(program, device)  # the GPU when the pod has one
    nodes = {node.name: node for node in program.graph.nodes}
    inputs = [_tensor_spec(name, nodes[name].meta.get("val"), path)
              for name in program.graph_signature.user_inputs]
    (output,) = [node for node in program.graph.nodes if node.op == "output"]
    values = output.meta.get("val")
    values = values if isinstance(values, (tuple, list)) else (values,)
    count = len(program.graph_signature.user_outputs)
    outputs = [_tensor_spec(f"output-{i}", value, path) for i, value in
               enumerate(values[:count])]
    return ExportedPredictor(program.module(), inputs, outputs, device=device)


def _tensor_spec(name: str, value: Any, path: Path) -> TensorSpec:
    import torch

    if not isinstance(value, torch.Tensor):
        raise ArtifactError(f"{path.name}: '{name}' is not a tensor; the server serves "
                            f"programs whose inputs and outputs are tensors")
    datatypes = {torch.bool: "BOOL", torch.uint8: "UINT8", torch.uint16: "UINT16",
                 torch.uint32: "UINT32", torch.uint64: "UINT64", torch.int8: "INT8",
                 torch.int16: "INT16", torch.int32: "INT32", torch.int64: "INT64",
                 torch.float16: "FP16", torch.float32: "FP32", torch.float64: "FP64"}
    if value.dtype not in datatypes:
        raise ArtifactError(f"{path.name}: '{name}' is {value.dtype}, which the protocol "
                            f"cannot carry")
    shape = [int(size) if isinstance(size, int) else -1 for size in value.shape]
    return TensorSpec(name, datatypes[value.dtype], shape)


def _single(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    if len(inputs) != 1:
        raise ProtocolError(f"the model takes one input tensor, got {len(inputs)}")
    return next(iter(inputs.values()))


def warn_pickle(path: Path) -> None:
    """Logs that loading `path` runs code from the artifact: pickle (and joblib, cloudpickle,
    `torch.load`) rebuild objects by calling what the file names."""
    log.warning("%s is a pickle: loading it runs code from the artifact; serve only "
                "artifacts you trust (pinned by MODEL_SHA256)", path.name)


def allowed_formats(flavor: str | None) -> tuple[str, ...]:
    """The formats MODEL_FLAVOR allows (comma-separated; an image names what its libraries
    load); every format when it is not set. Raises ArtifactError for a name not in FORMATS."""
    if not flavor:
        return FORMATS
    names = tuple(name.strip() for name in flavor.split(",") if name.strip())
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ArtifactError(f"MODEL_FLAVOR names unknown format '{unknown[0]}' "
                            f"(known: {', '.join(FORMATS)})")
    return names


def format_of_file(path: Path) -> str | None:
    """The format of one model file from its suffix (and first bytes for a shared suffix)."""
    suffix = path.suffix.lower()
    if suffix in SHARED_FILES:
        with path.open("rb") as stream:
            head = stream.read(8)
        if head.startswith(b"tree"):
            return "lightgbm"
        return "xgboost" if head.startswith(b"{") else None
    for name, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            return name
    return None


def detect_format(path: Path, flavor: str | None = None) -> tuple[str, Path]:
    """The artifact's format and the path to load: the file itself, or for a folder the
    MLflow model (a folder with an `MLmodel` file) or its one model file (a `.pt2` program
    before a TorchScript file of the same artifact, then by name).

    Raises ArtifactError naming the file when the format is unknown, not one MODEL_FLAVOR
    allows, or a folder holds no model.
    """
    allowed = allowed_formats(flavor)
    if path.is_dir():
        mlmodels = sorted((p for p in path.rglob(MLMODEL) if p.is_file()),
                          key=lambda p: len(p.parts))
        if mlmodels:  # the MLflow model itself, or a folder that holds one
            return _allowed("mlflow", mlmodels[0].parent, allowed), mlmodels[0].parent
        found = [(p, format_of_file(p)) for p in sorted(path.rglob("*")) if p.is_file()]
        # A folder may hold other JSON or text files: only XGBoost's own count as models.
        found = [(p, kind if kind != "xgboost" or _xgboost_bytes(p) else None)
                 for p, kind in found]
        candidates = [(p, kind) for p, kind in found if kind in allowed]
        candidates.sort(key=lambda item: (item[0].suffix not in EXPORTED_FILES, str(item[0])))
        if candidates:
            return candidates[0][1] or "", candidates[0][0]
        if allowed == ("mlflow",):
            raise ArtifactError(f"{path.name}: no {MLMODEL} file; an MLflow model is a "
                                f"folder with one")
        for model_file, kind in found:
            if kind:
                _allowed(kind, model_file, allowed)  # a model, of a format not served here
        suffixes = sorted({s for name in allowed for s in SUFFIXES.get(name, ())})
        raise ArtifactError(f"no model file ({', '.join(suffixes)}) and no {MLMODEL} "
                            f"in {path}")
    kind = format_of_file(path)
    if kind is None:
        known = sorted({s for suffixes in SUFFIXES.values() for s in suffixes})
        raise ArtifactError(f"{path.name}: unknown model format (known: {', '.join(known)}, "
                            f"or a folder with an {MLMODEL} file)")
    return _allowed(kind, path, allowed), path


def _xgboost_bytes(path: Path) -> bool:
    """Whether a file starts as XGBoost's JSON and UBJSON models do: an object whose
    first key is `learner` (xgboost 3.2.0, src/learner.cc LearnerIO::SaveModel)."""
    with path.open("rb") as stream:
        return b"learner" in stream.read(24)


def _allowed(kind: str, path: Path, allowed: tuple[str, ...]) -> str:
    if kind not in allowed:
        raise ArtifactError(f"{path.name} holds a model of format '{kind}'; this image "
                            f"serves {', '.join(allowed)} (MODEL_FLAVOR)")
    return kind


def find_model_file(path: Path, flavor: str | None) -> Path:
    """The artifact itself, or the model file (or MLflow folder) in an artifact folder."""
    return detect_format(path, flavor)[1]


def load_predictor(uri: str, cache_dir: Path, sha256: str | None = None,
                   flavor: str | None = None) -> Predictor:
    """Fetch, verify and load the model at `uri`.

    Raises ArtifactError (the server refuses to start, with that one line) when the
    artifact cannot be fetched, is not the pinned one, or is not a model this server loads.
    """
    try:
        local = fetch(uri, cache_dir)
    except Exception as error:
        raise ArtifactError(str(error)) from error
    kind, model_file = detect_format(local, flavor)
    if sha256:
        pinned = _pinned_file(model_file)
        actual = sha256_of(pinned)
        if actual != sha256:
            raise ArtifactError(f"sha256 mismatch for {pinned.name}: the artifact has "
                                f"{actual}, MODEL_SHA256 pins {sha256}; refusing to start")
    return load_format(kind, model_file)


def _pinned_file(model_file: Path) -> Path:
    """The file MODEL_SHA256 pins: the model file, or the one an MLflow folder's flavour
    loads (its weights)."""
    if model_file.is_dir():
        from modelserver.predictors.mlflow_folder import model_file as mlflow_model_file

        return mlflow_model_file(model_file)
    return model_file


def load_format(kind: str, model_file: Path) -> Predictor:
    """Loads `model_file` as a model of format `kind` (one of FORMATS).

    Raises ArtifactError when the file is not a model of that format (corrupt, truncated)
    or the image lacks the format's library.
    """
    from modelserver.predictors import load

    return load(kind, model_file)


def load_sklearn(model_file: Path) -> SklearnPredictor:
    """A joblib (or pickle) file holding a scikit-learn estimator; warns that it runs code."""
    import joblib

    warn_pickle(model_file)
    try:
        return SklearnPredictor(joblib.load(model_file))
    except Exception as error:  # joblib raises whatever unpickling the bytes raises
        raise ArtifactError(f"{model_file.name} is not a joblib file: {error}") from error


def load_torch(model_file: Path) -> Predictor:
    """A `.pt2` program, or a TorchScript file (loaded with a deprecation warning)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # a GPU when the pod has one
    if model_file.suffix not in TORCHSCRIPT_FILES:
        return exported_predictor(model_file, device)
    log.warning("%s is TorchScript, which torch deprecates: export the model with "
                "torch.export.export and torch.export.save (.pt2)", model_file.name)
    try:
        module = torch.jit.load(str(model_file), map_location=device)  # type: ignore[no-untyped-call]
    except Exception as error:
        raise ArtifactError(f"{model_file.name} is not a TorchScript file: {error}") from error
    module.eval()
    return TorchPredictor(module, device=device)
