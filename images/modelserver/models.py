"""Loading a model artifact into something that predicts: scikit-learn (joblib) or TorchScript.

The artifact is verified against `MODEL_SHA256` before anything is loaded:
a server whose weights are not the pinned ones refuses to start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelserver.protocol import ProtocolError
from modelserver.storage import fetch, sha256_of

SKLEARN_FILES = (".joblib", ".pkl", ".pickle")
TORCH_FILES = (".pt", ".pth", ".torchscript")


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
    """An estimator with `predict` (and, when it has one, `predict_proba`)."""

    estimator: Any
    platform: str = "sklearn"
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        features = int(getattr(self.estimator, "n_features_in_", -1))
        self.inputs = [TensorSpec("input-0", "FP64", [-1, features])]
        self.outputs = [TensorSpec("predict", "FP64", [-1])]
        if hasattr(self.estimator, "predict_proba"):
            classes = len(getattr(self.estimator, "classes_", [])) or -1
            self.outputs.append(TensorSpec("predict_proba", "FP64", [-1, classes]))

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
            outputs["predict_proba"] = np.asarray(self.estimator.predict_proba(rows))
        return outputs


@dataclass
class TorchPredictor:
    """A TorchScript module: one input tensor in, a tensor (or a tuple of them) out."""

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
    candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)
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
        module = torch.jit.load(str(model_file), map_location=device)  # type: ignore[no-untyped-call]
        module.eval()
        return TorchPredictor(module, device=device)
    import joblib

    return SklearnPredictor(joblib.load(model_file))
