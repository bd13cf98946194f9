"""The uploaded example artifact is what `scripts/train_example_model.py` writes, to the byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

COMMITTED = PROJECT / "artifacts/churn-scorer/model.joblib"


@pytest.mark.parametrize("threads", ["1", "2"])
def test_training_the_example_model_again_writes_the_committed_bytes(
        tmp_path: Path, threads: str) -> None:
    """Otherwise retraining changes the artifact under the same version (`artifact-mutated`).
    BLAS's thread count changes a float's last bits unless the script pins it."""
    target = tmp_path / "model.joblib"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
    subprocess.run([sys.executable, str(PROJECT / "scripts/train_example_model.py"),
                    str(target)], check=True, capture_output=True, env=env, timeout=120)
    assert target.read_bytes() == COMMITTED.read_bytes()
