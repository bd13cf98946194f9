"""Every shipped stack plans on a fresh clone; an unknown pinned ref says where and what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import git
import pytest

from modelfleet.stacks.config import list_stacks
from tests.conftest import PROJECT
from tests.gitrepo import GitRepo
from tests.shipped import copy_project


def modelfleet(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelfleet", *args], cwd=folder,
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`git clone` of this repository's committed state: no tags, no working-tree files."""
    folder = tmp_path_factory.mktemp("clone") / "modelfleet"
    git.Repo.clone_from(PROJECT, folder, no_tags=True)
    return folder


@pytest.mark.parametrize("stack", list_stacks(PROJECT))
def test_every_shipped_stack_plans_on_a_fresh_clone(fresh_clone: Path, stack: str) -> None:
    assert git.Repo(fresh_clone).tags == []
    result = modelfleet(fresh_clone, "plan", "--stack", stack)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Plan for stack {stack} ")


def test_an_unknown_pinned_ref_names_the_stack_file_the_key_and_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project: GitRepo = copy_project(tmp_path / "project")
    stack = project.root / "stacks/Pulumi.prod-next.yaml"
    text = (project.root / "stacks/Pulumi.prod.yaml").read_text()
    pinned = next(line for line in text.splitlines() if "modelfleet:manifestRef:" in line)
    stack.write_text(text.replace(pinned, "  modelfleet:manifestRef: v2099.1.1"))
    line = text.splitlines().index(pinned) + 1
    result = modelfleet(project.root, "plan", "--stack", "prod-next")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (message, summary) = result.stderr.strip().splitlines()
    assert message.startswith(f"stacks/Pulumi.prod-next.yaml:{line}: modelfleet:manifestRef: "
                              "unknown git ref 'v2099.1.1'")
    assert "`git fetch --tags`" in message
    assert "misspelled" in message
    assert summary == "1 problem; nothing was planned"
