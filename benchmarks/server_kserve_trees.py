"""KServe's xgbserver or lgbserver model on KServe's ModelServer, for server_compare.py.

Runs in .venv-kserve (benchmarks/requirements-kserve.txt), never in the project's venv.
KServe publishes xgbserver and lgbserver only inside its images, not on PyPI, so their
model classes are restated here as KServe v0.20.0 (commit 1fb7810, the newest tag of the
source read) writes them in python/xgbserver/xgbserver/model.py and
python/lgbserver/lgbserver/model.py, on kserve 0.21.0's `Model`, `ModelServer` and its
`get_predict_input` / `get_predict_response` (kserve/utils/utils.py): the first input as
numpy, a DMatrix (XGBoost) or the array (LightGBM) with `nthread` 1 (both servers'
default, `__main__.py`), the booster's answer as output `output-0`. Read, not run against
KServe's own images.

    .venv-kserve/bin/python benchmarks/server_kserve_trees.py {xgboost|lightgbm} MODEL_DIR \
        HTTP_PORT GRPC_PORT
"""

from __future__ import annotations

import os
import sys
from typing import Any

import xgboost as xgb
from kserve import Model, ModelServer
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response
from lightgbm import Booster

NTHREAD = 1


def model_file(model_dir: str, extensions: tuple[str, ...]) -> str:
    """The one model file of the folder, as both servers' `load` picks it."""
    found = [os.path.join(model_dir, name) for name in os.listdir(model_dir)
             if name.endswith(extensions) and os.path.isfile(os.path.join(model_dir, name))]
    if not found:
        raise ModelMissingError(model_dir)
    if len(found) > 1:
        raise RuntimeError(f"More than one model file is detected: {found}")
    return found[0]


class XGBoostModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        with open(model_file(model_dir, (".bst", ".json", ".ubj")), "rb") as stream:
            self._booster = xgb.Booster(params={"nthread": NTHREAD},
                                        model_file=bytearray(stream.read()))
        self.ready = True

    def predict(self, payload: Any, headers: Any = None) -> Any:
        try:
            instances = get_predict_input(payload)
            dmatrix = xgb.DMatrix(instances, nthread=NTHREAD)
            result = self._booster.predict(dmatrix)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


class LightGBMModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self._booster = Booster(params={"nthread": NTHREAD},
                                model_file=model_file(model_dir, (".bst",)))
        self.ready = True

    def predict(self, payload: Any, headers: Any = None) -> Any:
        try:
            instances = get_predict_input(payload, columns=self._booster.feature_name())
            result = self._booster.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


if __name__ == "__main__":
    kind, model_dir = sys.argv[1], sys.argv[2]
    http_port, grpc_port = int(sys.argv[3]), int(sys.argv[4])
    model = XGBoostModel("churn", model_dir) if kind == "xgboost" else \
        LightGBMModel("churn", model_dir)
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1,
                enable_latency_logging=False).start([model])
