"""Shared fixtures. Manifests stay in the tests themselves, so cause and effect share a screen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.gitrepo import GitRepo

PROJECT = Path(__file__).resolve().parent.parent
# The model server lives in images/, where its Dockerfiles copy it from.
if str(PROJECT / "images") not in sys.path:
    sys.path.insert(0, str(PROJECT / "images"))


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")
