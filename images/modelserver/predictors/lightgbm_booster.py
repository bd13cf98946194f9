"""LightGBM models in the text format of `Booster.save_model` (`.txt`, `.lgb`, `.bst`, ...).

The model file says what it is: its objective (`objective=` line, read back as
`Booster.params["objective"]`), number of features, and for multiclass objectives the
number of classes (`num_tree_per_iteration`). `binary`, `multiclass` and
`multiclassova` answer `predict` (the class index, INT64) and `predict_proba` (FP64
[rows, classes]) as lightgbm's `LGBMClassifier` does (4.7.0,
python-package/lightgbm/sklearn.py `predict`, `predict_proba`); a booster file keeps no
class labels, so classes are their indices 0..k-1 (the labels LightGBM trains on). Every
other objective answers `predict` FP64 [rows].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelserver.models import ArtifactError, TensorSpec
from modelserver.predictors.classes import binary_probabilities, labels
from modelserver.protocol import ProtocolError

CLASSIFIERS = ("binary", "multiclass", "multiclassova")
THREADS = 1
"""OpenMP threads per prediction: the server already predicts requests concurrently
(KServe's lgbserver defaults to 1 as well: python/lgbserver/lgbserver/__main__.py)."""


@dataclass
class LightGBMPredictor:
    """A booster: `input-0` FP64 [rows, features] (NaN is a missing value)."""

    booster: Any
    objective: str
    platform: str = "lightgbm"
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inputs = [TensorSpec("input-0", "FP64", [-1, int(self.booster.num_feature())])]
        if self.objective in CLASSIFIERS:
            classes = max(int(self.booster.num_model_per_iteration()), 2)
            self.outputs = [TensorSpec("predict", "INT64", [-1]),
                            TensorSpec("predict_proba", "FP64", [-1, classes])]
        else:
            self.outputs = [TensorSpec("predict", "FP64", [-1])]

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lightgbm.basic import LightGBMError

        rows = np.asarray(next(iter(inputs.values())), dtype=np.float64)
        try:
            raw = np.asarray(self.booster.predict(rows, num_threads=THREADS))
        except LightGBMError as error:
            raise ProtocolError(f"the model refused input 'input-0': {error}") from error
        if self.objective in CLASSIFIERS:
            probabilities = binary_probabilities(raw) if raw.ndim == 1 else raw
            return {"predict": labels(probabilities), "predict_proba": probabilities}
        return {"predict": raw}


def load_lightgbm(path: Path) -> LightGBMPredictor:
    """Loads a text model; raises ArtifactError when lightgbm cannot read it."""
    import lightgbm

    try:
        booster = lightgbm.Booster(model_file=str(path))
    except (lightgbm.basic.LightGBMError, UnicodeDecodeError, ValueError) as error:
        raise ArtifactError(f"{path.name} is not a LightGBM model: "
                            f"{str(error).splitlines()[0] if str(error) else error!r}") \
            from error
    objective = str(booster.params.get("objective", "regression")).split()[0]
    return LightGBMPredictor(booster, objective)
