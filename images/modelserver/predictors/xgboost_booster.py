"""XGBoost models saved by `Booster.save_model` or `XGBModel.save_model` (JSON, UBJSON).

The booster's own configuration says what it is: its objective
(`learner.objective.name` in `Booster.save_config()`), number of features and of
classes. Classifiers (`binary:logistic`, `multi:softprob`) answer `predict` (the class,
INT64) and `predict_proba` (FP32 [rows, classes]) exactly as xgboost's `XGBClassifier`
does; `multi:softmax` and `binary:hinge` answer the class; every other objective
(regression, ranking, survival, `binary:logitraw` margins) answers `predict` FP32, one
column per target when there are several. Rules read from xgboost 3.2.0,
python-package/xgboost/sklearn.py (`XGBClassifier.predict`, `predict_proba`,
`_cls_predict_proba`) and run in tests/test_modelserver_formats.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelserver.models import ArtifactError, TensorSpec
from modelserver.predictors.classes import binary_probabilities, labels
from modelserver.protocol import ProtocolError

PROBABILITIES = ("binary:logistic", "multi:softprob")
"""Objectives whose raw answer is class probabilities."""
CLASS_ANSWERS = ("multi:softmax", "binary:hinge")
"""Objectives whose raw answer is the class itself (as a float)."""
THREADS = 1
"""Threads per prediction: the server already predicts requests concurrently (KServe's
xgbserver defaults to 1 as well: python/xgbserver/xgbserver/__main__.py DEFAULT_NTHREAD)."""


@dataclass
class XGBoostPredictor:
    """A booster: `input-0` FP32 [rows, features] (xgboost computes in float32; FP64 rows
    are cast, as `DMatrix` and `inplace_predict` do; NaN is a missing value)."""

    booster: Any
    objective: str
    classes: int
    targets: int
    iterations: tuple[int, int]
    """`iteration_range` for predictions: the best iteration when early stopping kept one."""
    platform: str = "xgboost_json"
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inputs = [TensorSpec("input-0", "FP32", [-1, int(self.booster.num_features())])]
        if self.objective in PROBABILITIES:
            self.outputs = [TensorSpec("predict", "INT64", [-1]),
                            TensorSpec("predict_proba", "FP32", [-1, self.classes])]
        elif self.objective in CLASS_ANSWERS:
            self.outputs = [TensorSpec("predict", "INT64", [-1])]
        else:
            shape = [-1, self.targets] if self.targets > 1 else [-1]
            self.outputs = [TensorSpec("predict", "FP32", shape)]

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            with np.errstate(over="raise", invalid="raise"):
                rows = np.asarray(next(iter(inputs.values())), dtype=np.float32)
        except FloatingPointError as error:
            raise ProtocolError(f"input 'input-0': values do not fit FP32, which xgboost "
                                f"computes in: {error}") from error
        raw = np.asarray(self.booster.inplace_predict(rows, iteration_range=self.iterations))
        if self.objective in PROBABILITIES:
            probabilities = binary_probabilities(raw) if raw.ndim == 1 else raw
            return {"predict": labels(probabilities), "predict_proba": probabilities}
        if self.objective in CLASS_ANSWERS:
            return {"predict": raw.astype(np.int64)}
        return {"predict": raw}


def load_xgboost(path: Path) -> XGBoostPredictor:
    """Loads a JSON or UBJSON booster; raises ArtifactError when xgboost cannot read it."""
    import xgboost

    try:
        booster = xgboost.Booster(params={"nthread": THREADS}, model_file=str(path))
        config = json.loads(booster.save_config())
    except xgboost.core.XGBoostError as error:
        raise ArtifactError(f"{path.name} is not an XGBoost model: "
                            f"{str(error).splitlines()[0]}") from error
    learner = config["learner"]
    parameters = learner["learner_model_param"]
    best = booster.attr("best_iteration")
    iterations = (0, int(best) + 1) if best is not None else (0, 0)
    platform = "xgboost_json" if path.suffix == ".json" else "xgboost_ubjson"
    return XGBoostPredictor(booster, learner["objective"]["name"],
                            max(int(parameters.get("num_class", "0")), 2),
                            int(parameters.get("num_target", "1")), iterations, platform)
