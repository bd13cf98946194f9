"""`stacks --affected BASE`: the stacks a pull request must preview, and only those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from tests.gitrepo import GitRepo
from tests.shipped import PINNED_COMMIT, copy_project, inside


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return copy_project(tmp_path / "project")


def affected(project: GitRepo, capsys: pytest.CaptureFixture[str]) -> list[str]:
    with inside(project.root):
        assert main(["stacks", "--affected", "HEAD", "--format", "json"]) == 0
    return list(json.loads(capsys.readouterr().out))


def edit(project: GitRepo, path: str, old: str, new: str) -> None:
    file = project.root / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))


def test_nothing_changed_affects_nothing(project: GitRepo,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert affected(project, capsys) == []


def test_a_growth_model_change_affects_the_stacks_that_follow_the_manifest_and_deploy_it(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "version: 2.1.0", "version: 2.2.0")
    assert affected(project, capsys) == ["dev", "growth-dev", "staging"]


def test_a_risk_model_change_does_not_affect_the_growth_stack(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "version: 1.4.2", "version: 1.4.3")
    assert affected(project, capsys) == ["dev", "staging"]


def test_an_override_for_prod_only_affects_no_dev_stack(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "serving: {replicas: {min: 3, max: 30}}",
         "serving: {replicas: {min: 4, max: 30}}")
    assert affected(project, capsys) == []


def test_a_stack_file_change_affects_that_stack(project: GitRepo,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "stacks/Pulumi.prod.yaml", PINNED_COMMIT, "v2026.12.1")
    assert affected(project, capsys) == ["prod"]


def test_a_program_change_affects_every_stack(project: GitRepo,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "images/sklearn.Dockerfile", "FROM", "# new base\nFROM")
    assert affected(project, capsys) == ["dev", "growth-dev", "prod", "risk-prod", "staging"]


def test_documentation_affects_nothing(project: GitRepo,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (project.root / "NOTES.md").write_text("release notes")
    assert affected(project, capsys) == []
