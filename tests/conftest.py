"""Shared fixtures. Manifests stay in the tests themselves, so cause and effect share a screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepo import GitRepo

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")
