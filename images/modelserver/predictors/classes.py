"""Class labels and probabilities from a tree booster's raw answer, as the libraries'
scikit-learn wrappers compute them, so a booster file answers like the estimator saved it."""

from __future__ import annotations

import numpy as np


def binary_probabilities(positive: np.ndarray) -> np.ndarray:
    """[rows] probabilities of class 1 -> [rows, 2]: (1 - p, p), in p's float type.

    xgboost 3.2.0 python-package/xgboost/sklearn.py `_cls_predict_proba`; lightgbm 4.7.0
    python-package/lightgbm/sklearn.py `LGBMClassifier.predict_proba` (np.vstack((1 - p, p)).T).
    """
    return np.asarray(np.vstack((1.0 - positive, positive)).T)


def labels(probabilities: np.ndarray) -> np.ndarray:
    """[rows, classes] -> INT64 [rows]: the most probable class (the first of a tie), as
    `np.argmax` in both wrappers' `predict`."""
    return np.asarray(np.argmax(probabilities, axis=1), dtype=np.int64)
