"""KServe's Python ModelServer serving a scikit-learn joblib file, for server_compare.py.

Runs in .venv-kserve (benchmarks/requirements-kserve.txt), never in the project's venv.
The model answers the Open Inference Protocol as modelfleet's server does for the same
estimator: `predict` and `predict_proba` for input `input-0` [rows, features], built the
way KServe's own sklearnserver builds its response (kserve.utils.utils).

    .venv-kserve/bin/python benchmarks/server_kserve_model.py MODEL.joblib HTTP_PORT GRPC_PORT
"""

from __future__ import annotations

import sys
from typing import Any

import joblib
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.utils.utils import generate_uuid


class SKLearnModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.estimator = joblib.load(path)
        self.ready = True

    def predict(self, payload: InferRequest, headers: Any = None) -> InferResponse:
        rows = payload.inputs[0].as_numpy()
        outputs = []
        for name, values in (("predict", np.asarray(self.estimator.predict(rows))),
                             ("predict_proba", self.estimator.predict_proba(rows))):
            output = InferOutput(name=name, shape=list(values.shape),
                                 datatype="INT64" if values.dtype.kind == "i" else "FP64")
            output.set_data_from_numpy(values, binary_data=payload.use_binary_outputs)
            outputs.append(output)
        return InferResponse(model_name=self.name, infer_outputs=outputs,
                             response_id=payload.id or generate_uuid())


if __name__ == "__main__":
    model_path, http_port, grpc_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1,
                enable_latency_logging=False).start([SKLearnModel("churn", model_path)])
