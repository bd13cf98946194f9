"""Loading a model artifact into something that predicts: scikit-learn (joblib) or torch.

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


def find_model_file(path: Path, flavor: str | None) -> Path:
    """The artifact itself, or the model file in an artifact folder."""
    if path.is_file():
        return path
    suffixes = {"sklearn": SKLEARN_FILES, "torch": TORCH_FILES}.get(
        flavor or "", SKLEARN_FILES + TORCH_FILES)
    # A .pt2 program before a TorchScript file of the same artifact, then by name.
    candidates = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes),
                        key=lambda p: (p.suffix not in EXPORTED_FILES, str(p)))
    if not candidates:
        raise ArtifactError(f"no model file ({', '.join(suffixes)}) in {path}")
    return candidates[0]


def load_predictor(uri: str, cache_dir: Path, sha256: str | None = None,
                   flavor: str | None = None) -> Predictor:
    """Fetch, verify and load the model at `uri`."""
    try:
        local = fetch(uri, cache_dir)
    except Exception as error:
        raise ArtifactError(str(error)) from error
    model_file = find_model_file(local, flavor)
    if sha256:
        actual = sha256_of(model_file)
        if actual != sha256:
            raise ArtifactError(f"sha256 mismatch for {model_file.name}: the artifact has "
                                f"{actual}, MODEL_SHA256 pins {sha256}; refusing to start")
    kind = flavor or ("torch" if model_file.suffix in TORCH_FILES else "sklearn")
    if kind == "torch":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"  # a GPU when the pod has one
        if model_file.suffix not in TORCHSCRIPT_FILES:
            return exported_predictor(model_file, device)
        log.warning("%s is TorchScript, which torch deprecates: export the model with "
                    "torch.export.export and torch.export.save (.pt2)", model_file.name)
        module = torch.jit.load(str(model_file), map_location=device)  # type: ignore[no-untyped-call]
        module.eval()
        return TorchPredictor(module, device=device)
    import joblib

    return SklearnPredictor(joblib.load(model_file))
