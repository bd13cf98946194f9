"""Validators nobody here wrote: kubernetes-validate (official OpenAPI schemas) and checkov."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
import pytest
from packaging.version import Version
from referencing import Registry, Resource

from tests.conftest import PROJECT

OLDEST_SUPPORTED = "1.32"
"""The oldest Kubernetes the rendered objects must be valid for (preStop `sleep` needs 1.30+)."""
CHECKOV_CONFIG = PROJECT / ".checkov.yaml"


CUSTOM_API_GROUPS = ("keda.sh/", "gateway.networking.k8s.io/", "flagger.app/",
                     "monitoring.coreos.com/", "inference.networking.k8s.io/")
"""Kinds of CRDs, which kubernetes-validate has no schema for: the real API server checks
them against their CRDs (tests/test_kube_*.py), KEDA's and the InferencePool's also
tests/kubernetes_crds.py."""


def is_custom(obj: dict[str, Any]) -> bool:
    return str(obj["apiVersion"]).startswith(CUSTOM_API_GROUPS)


def kubernetes_versions() -> list[str]:
    return [OLDEST_SUPPORTED, kv.major_minor(kv.latest_version())]


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Every error of `obj` against the strict official schema (not just the first).

    A built-in kind without a schema is an error: kubernetes-validate would only warn.
    """
    try:
        kv.validate(obj, version, strict=True)
    except kv.SchemaNotFoundError as missing:
        return [missing.message]
    except kv.ValidationError:
        pass  # kubernetes-validate stops at the first error; collect them all below
    else:
        return []
    release = [v for v in kv.all_versions() if Version(v) <= Version(version + ".99")][-1]
    folder = f"kubernetes-json-schema/v{release}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    schema = kv.schema_contents(f"{folder}/{obj['kind'].lower()}-{api}.json", version)
    definitions = kv.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '(object)'}: {error.message}"
            for error in validator.iter_errors(obj)]


def checkov_command() -> list[str]:
    """checkov from its own virtual environment (its pins clash with the project's)."""
    candidates = [os.environ.get("MODELFLEET_CHECKOV", ""),
                  str(PROJECT / ".venv-checkov/bin/checkov"), shutil.which("checkov") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return [candidate]
    if os.environ.get("CI"):
        pytest.fail("checkov is not installed; scripts/install puts it in .venv-checkov")
    pytest.skip("checkov is not installed here; run scripts/install (CI always runs it)")


def run_checkov(folder: Path) -> dict[str, Any]:
    """checkov's JSON report for every file in `folder`, offline, with the project's skips."""
    result = subprocess.run(
        [*checkov_command(), "--directory", str(folder), "--framework", "kubernetes",
         "--skip-download", "--output", "json", "--config-file", str(CHECKOV_CONFIG)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    if result.returncode not in (0, 1) or not result.stdout.strip().startswith(("{", "[")):
        raise AssertionError(f"checkov did not run: {result.returncode}\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    merged: dict[str, Any] = {"passed": [], "failed": [], "skipped": []}
    for part in reports:
        results = part.get("results", {})
        merged["passed"] += results.get("passed_checks", [])
        merged["failed"] += results.get("failed_checks", [])
        merged["skipped"] += results.get("skipped_checks", [])
    return merged
