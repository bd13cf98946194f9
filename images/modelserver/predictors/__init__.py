"""A predictor per model format, each in its own module, chosen by `load`.

`modelserver.models` detects the format and keeps the contract (`Predictor`,
`TensorSpec`, `ArtifactError`); a module here knows one library: how to load its
files, what the model says about its inputs and outputs, and how to call it. Each
library is imported only when its format is loaded, so an image carries only the
libraries of the formats it serves.
"""

from __future__ import annotations

from pathlib import Path

from modelserver.models import ArtifactError, Predictor

IMAGES = {"sklearn": "images/sklearn.Dockerfile", "torch": "images/torch.Dockerfile",
          "xgboost": "images/trees.Dockerfile", "lightgbm": "images/trees.Dockerfile",
          "onnx": "images/onnx.Dockerfile"}
"""The image that carries each format's library (README: The model server)."""
MODULES = {"sklearn": "sklearn", "joblib": "sklearn", "torch": "torch", "xgboost": "xgboost",
           "lightgbm": "lightgbm", "onnxruntime": "onnx"}
"""A library's top-level module -> the format whose image carries it."""


def load(kind: str, path: Path) -> Predictor:
    """Loads `path` as format `kind`; raises ArtifactError when it cannot be served here,
    naming the library this image lacks and the image that has it."""
    try:
        return _load(kind, path)
    except ImportError as error:
        missing = (error.name or "").split(".")[0]
        image = IMAGES.get(MODULES.get(missing, ""))
        where = f"; {image} has it" if image else ""
        raise ArtifactError(f"{path.name}: a {kind} model needs the Python package "
                            f"'{missing or error}', which this image lacks{where}") from error


def _load(kind: str, path: Path) -> Predictor:
    if kind == "xgboost":
        from modelserver.predictors.xgboost_booster import load_xgboost

        return load_xgboost(path)
    if kind == "lightgbm":
        from modelserver.predictors.lightgbm_booster import load_lightgbm

        return load_lightgbm(path)
    if kind == "onnx":
        from modelserver.predictors.onnx_graph import load_onnx

        return load_onnx(path)
    if kind == "mlflow":
        from modelserver.predictors.mlflow_folder import load_mlflow

        return load_mlflow(path)
    from modelserver.models import load_sklearn, load_torch

    if kind == "torch":
        return load_torch(path)
    if kind == "sklearn":
        return load_sklearn(path)
    raise ArtifactError(f"{path.name}: unknown model format '{kind}'")
