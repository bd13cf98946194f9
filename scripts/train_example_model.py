"""Writes artifacts/churn-scorer/model.joblib: the small model the example manifest uploads.

A logistic regression on four synthetic customer features (tenure in months,
monthly spend, support tickets, days since last login). Deterministic: run it
again, on any machine with the pinned scikit-learn, numpy and joblib, and the file
is the same bytes. The solver's last bits depend on how many threads BLAS sums
with, so it runs on one thread and the fitted parameters are rounded to 10
significant digits (far below what changes a prediction).
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

FEATURES = ["tenure_months", "monthly_spend", "support_tickets", "days_since_login"]


def train(seed: int = 7, rows: int = 400) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(1, 72, rows), rng.normal(60, 20, rows),
                         rng.poisson(1.5, rows), rng.integers(0, 90, rows)]).astype(float)
    risk = -0.04 * x[:, 0] + 0.01 * x[:, 1] + 0.5 * x[:, 2] + 0.03 * x[:, 3]
    y = (risk + rng.normal(0, 0.5, rows) > np.median(risk)).astype(int)
    with threadpool_limits(limits=1):
        model = LogisticRegression(max_iter=1000).fit(x, y)
    model.coef_ = _rounded(model.coef_)
    model.intercept_ = _rounded(model.intercept_)
    return model


def _rounded(values: np.ndarray) -> np.ndarray:
    """`values` to 10 significant digits: the same on every machine."""
    return np.array([float(f"{value:.10g}") for value in values.ravel()]).reshape(values.shape)


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "artifacts/churn-scorer/model.joblib"
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    target.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(train(), target)
    print(f"wrote {target} ({target.stat().st_size} bytes); features: {', '.join(FEATURES)}")
