"""Shared fixtures. Manifests stay in the tests themselves, so cause and effect share a screen."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepo import GitRepo
from tests.kube.cluster import Cluster, start_cluster

PROJECT = Path(__file__).resolve().parent.parent
# The model server lives in images/, where its Dockerfiles copy it from.
if str(PROJECT / "images") not in sys.path:
    sys.path.insert(0, str(PROJECT / "images"))


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One real API server (and controller manager) per test process, with the CRDs installed.

    Tests that use it are grouped on one xdist worker (`xdist_group("kube")`), so a run
    starts one control plane.
    """
    yield from start_cluster(tmp_path_factory.mktemp("kube"))
