"""Estimators that the model server loads in the Prometheus tests (kept light to import:
the server process unpickles them)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

FAIL = 999.0
"""A first feature of this value makes `PacedEstimator` fail as a broken dependency would."""


class PacedEstimator:
    """Predicts like `model`, taking `delay` seconds per batch, as a real model takes time;
    a row whose first feature is `FAIL` raises ConnectionError, which the server answers
    with a 500 (a server-side failure, not the client's mistake)."""

    def __init__(self, model: Any, delay: float) -> None:
        self.model = model
        self.delay = delay
        self.n_features_in_ = model.n_features_in_

    def predict(self, rows: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        if np.any(rows[:, 0] == FAIL):
            raise ConnectionError("the feature store did not answer")
        return np.asarray(self.model.predict(rows))
