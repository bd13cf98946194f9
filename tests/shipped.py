"""The project in a repository of its own, as a team would have it: a clone of this one.

The prod stacks pin a commit of this repository's history (tags do not travel with a
clone of a branch; commits do), so the copy is a clone, with the working tree's project
files committed on top: the shipped stacks plan the same way on any clone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import git
import pytest

from modelfleet.stacks.config import load_stack
from planner.simulate import Simulation
from tests.conftest import PROJECT
from tests.deploy import run_stack
from tests.gitrepo import GitRepo

PROJECT_FILES = ("Pulumi.yaml", "models.yaml", "stacks", "images", "artifacts")
PINNED_COMMIT = str(load_stack(PROJECT, "prod").get("modelfleet:manifestRef"))
"""The commit the production stacks deploy the manifest at."""


def copy_project(root: Path) -> GitRepo:
    """A clone of this repository with the working tree's project files committed on top."""
    git.Repo.clone_from(PROJECT, root)
    repo = GitRepo(root)
    for name in PROJECT_FILES:
        source, target = PROJECT / name, root / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    if repo.repo.is_dirty(untracked_files=True):
        repo.commit("the project as in the working tree")
    return repo


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run as `pulumi up` does: in the project's folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield


def run_shipped_stack(repo: GitRepo, name: str, *, preview: bool = False,
                      previous: Mapping[str, Any] | None = None) -> Simulation:
    stack = load_stack(repo.root, name)
    with inside(repo.root):
        return run_stack(stack.for_pulumi(), stack=name, preview=preview, previous=previous,
                         secret_keys=tuple(sorted(stack.secrets)))
