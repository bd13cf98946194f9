"""The project's own manifest and stack files in a fresh repository, as a team would have it.

The prod stacks pin the release tag `v2026.11.1`; the copy tags its first
commit with it, so the shipped stacks plan the same way on any clone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modelfleet.stacks import load_stack
from planner.simulate import Simulation
from tests.conftest import PROJECT
from tests.deploy import run_stack
from tests.gitrepo import GitRepo

RELEASE_TAG = "v2026.11.1"
PROJECT_FILES = ("Pulumi.yaml", "models.yaml", "stacks", "images", "artifacts")


def copy_project(root: Path) -> GitRepo:
    repo = GitRepo(root)
    for name in PROJECT_FILES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    repo.commit("modelfleet project")
    repo.tag(RELEASE_TAG)
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
