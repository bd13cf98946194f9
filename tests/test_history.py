"""`history MODEL`: the commits that changed one model, with what they changed."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from tests.gitrepo import GitRepo

REF = "registry.example/{name}@sha256:" + "e" * 64


def manifest(fraud: str | None, churn: str = "2.0.0", replicas: int = 10) -> str:
    models = ""
    if fraud:
        models += f"""\
  - name: fraud
    team: risk
    version: {fraud}
    artifact: {{uri: "s3://training/fraud/model"}}
    image: {{ref: "{REF.format(name='fraud')}"}}
    serving: {{replicas: {{min: 2, max: {replicas}}}}}
"""
    models += f"""\
  - name: churn
    team: growth
    version: {churn}
    artifact: {{uri: "s3://training/churn/model"}}
    image: {{ref: "{REF.format(name='churn')}"}}
    batch: {{}}
"""
    return "apiVersion: modelfleet/v1\nmodels:\n" + models


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    steps = [
        ("churn only", manifest(None)),
        ("add fraud 1.0.0", manifest("1.0.0")),
        ("churn 2.1.0", manifest("1.0.0", churn="2.1.0")),
        ("fraud 1.1.0", manifest("1.1.0", churn="2.1.0")),
        ("broken edit", manifest("1.1.0", churn="2.1.0").replace("1.1.0", "one")),
        ("fix edit, fraud to 20 replicas", manifest("1.1.0", churn="2.1.0", replicas=20)),
        ("roll fraud back", manifest("1.0.0", churn="2.1.0", replicas=20)),
        ("retire fraud", manifest(None, churn="2.1.0")),
    ]
    for message, text in steps:
        repo.write("models.yaml", text)
        repo.commit(message)
    repo.write("README.md", "unrelated")
    repo.commit("docs only")
    return repo


def test_history_lists_only_the_commits_that_changed_the_model(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["history", "fraud", str(project.root / "models.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "History of model 'fraud' (6 commit(s), newest first)"
    summaries = [line.split("  ")[-1] for line in lines[1:] if not line.startswith("    ")]
    assert summaries == ["retire fraud", "roll fraud back", "fix edit, fraud to 20 replicas",
                         "broken edit", "fraud 1.1.0", "add fraud 1.0.0"]
    assert "    - removed (was 1.0.0)" in lines
    assert "    version: 1.1.0 → 1.0.0 (downgrade)" in lines
    assert "    serving.replicas.max: 10 → 20" in lines
    assert "    version: 1.0.0 → 1.1.0 (minor)" in lines
    assert "    + added at version 1.0.0" in lines
    assert any(line.startswith("    ! model invalid at this commit: ")
               and line.endswith("models.yaml:5: model 'fraud': version: 'one' is not a semantic "
                                 "version (MAJOR.MINOR.PATCH, e.g. 1.4.2)") for line in lines)


def test_history_as_json(project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    main(["history", "churn", str(project.root / "models.yaml"), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == "churn"
    assert [(c["summary"], c["status"]) for c in document["commits"]] == [
        ("churn 2.1.0", "changed"), ("churn only", "added")]
    assert document["commits"][0]["version"] == {"old": "2.0.0", "new": "2.1.0",
                                                 "change": "minor"}


def test_history_of_an_unknown_model_fails_clearly(project: GitRepo,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["history", "ranker", str(project.root / "models.yaml")])
    assert code == 1
    assert "model 'ranker' does not appear in the committed history" in capsys.readouterr().err
