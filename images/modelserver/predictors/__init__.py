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
LIBRARIES = {"sklearn": "scikit-learn", "torch": "torch", "xgboost": "xgboost",
             "lightgbm": "lightgbm", "onnx": "onnxruntime"}


def load(kind: str, path: Path) -> Predictor:
    """Loads `path` as format `kind`; raises ArtifactError when it cannot be served here."""
    try:
        return _load(kind, path)
    except ImportError as error:
        library = LIBRARIES.get(kind, kind)
        raise ArtifactError(f"{path.name}: a {kind} model needs {library}, which this image "
                            f"lacks ({error}); {IMAGES.get(kind, 'another image')} serves "
                            f"{kind} models") from error


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
