"""The CLI as users run it: a separate process from the project's folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT


def run(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelfleet", *args], cwd=cwd,
                          capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"})


def test_the_example_manifest_is_valid() -> None:
    result = run("validate", "models.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "models.yaml: valid, 6 models; environments checked: dev, prod\n"


def test_an_invalid_manifest_exits_1_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("apiVersion: modelfleet/v1\nmodels:\n  - name: x\n    version: [\n")
    result = run("validate", str(bad))
    assert result.returncode == 1
    assert "invalid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    result = run("diff", "--format", "yaml")
    assert result.returncode == 2
    assert "invalid choice: 'yaml'" in result.stderr


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`python -m modelfleet schema | head -1`: the reader closes the pipe before the end."""
    process = subprocess.Popen([sys.executable, "-m", "modelfleet", "schema"], cwd=PROJECT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"})
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    try:
        stderr = process.stderr.read().decode()
        returncode = process.wait(timeout=60)
    finally:
        process.kill()
    assert stderr == ""
    assert returncode == 141


def test_an_environment_nothing_knows_gets_a_note_not_an_error() -> None:
    typo = run("validate", "--environment", "prdo")
    assert typo.returncode == 0
    assert typo.stderr == ("note: no model overrides environment 'prdo' and no stack deploys it "
                           "(known: dev, prod, staging); it is taken with the defaults alone; "
                           "did you mean 'prod'?\n")
    staging = run("diff", "--environment", "staging", "--base", "HEAD")
    assert staging.returncode == 0
    assert "note:" not in staging.stderr, "a stack deploys staging, with the defaults alone"
