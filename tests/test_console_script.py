"""`modelfleet ...` from any folder inside the project, and `python -m modelfleet` as before.

The console script is checked as `scripts/install` makes it: the project installed
editable (`--no-deps`) into a venv. The test makes a throwaway venv of its own (the
shared one must not point at a copy of the project), with no pip of its own and the
test venv's site-packages on its path, as `--system-site-packages` would give; the
shared venv's pip installs into it. About 4 s.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import PROJECT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of the project's files, a venv with the project installed from the copy)."""
    base = tmp_path_factory.mktemp("console")
    copy, venv = base / "project", base / "venv"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        if not name.startswith("tests/") and (PROJECT / name).is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((PROJECT / name).read_bytes())
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (next(venv.glob("lib/python*/site-packages")) / "shared.pth").write_text(
        site.getsitepackages()[0] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"),
                    "install", "--quiet", "--no-deps", "--no-build-isolation", "--editable",
                    str(copy)], check=True, capture_output=True)
    return copy, venv


def command(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, env=env,
                          timeout=120)


def test_the_console_script_runs_from_a_subfolder_of_the_project(
        installed: tuple[Path, Path]) -> None:
    copy, venv = installed
    result = command([str(venv / "bin/modelfleet"), "validate"], cwd=copy / "images/modelserver")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "models.yaml: valid, 6 models; environments checked: dev, prod\n"
    listed = command([str(venv / "bin/modelfleet"), "stacks"], cwd=copy / "stacks")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == sorted(
        path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for path in (copy / "stacks").glob("Pulumi.*.yaml"))


def test_python_m_modelfleet_still_runs_from_the_project_folder(
        installed: tuple[Path, Path]) -> None:
    copy, _ = installed
    result = command([sys.executable, "-m", "modelfleet", "validate"], cwd=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("models.yaml: valid, 6 models")


def test_outside_any_project_a_command_that_needs_one_says_so(
        installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, venv = installed
    result = command([str(venv / "bin/modelfleet"), "stacks"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (f"error: {tmp_path}: no Pulumi.yaml here or in any folder above; "
                             "run inside the project\n")


def test_a_file_given_from_a_subfolder_is_relative_to_that_subfolder(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(PROJECT / "stacks")
    assert main(["validate", "../models.yaml"]) == 0
    assert capsys.readouterr().out.startswith("models.yaml: valid, 6 models")
    assert main(["validate", "models.yaml"]) == 1
    assert capsys.readouterr().err == "error: stacks/models.yaml: no such file\n"
    assert Path.cwd() == PROJECT / "stacks"
