"""The semantic diff: between refs and the working tree, per environment, in three formats."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from modelfleet.diff.compare import Status, diff_models
from modelfleet.manifest.parse import parse_manifest
from modelfleet.manifest.resolve import resolve
from modelfleet.manifest.schema import ModelSpec
from modelfleet.manifest.semver import VersionChange, classify
from tests.gitrepo import GitRepo

REF = "registry.example/{name}@sha256:" + "d" * 64


def model(name: str, version: str, team: str = "risk", section: str = "serving: {}",
          extra: str = "") -> str:
    return f"""\
  - name: {name}
    team: {team}
    version: {version}
    artifact: {{uri: "s3://training/{name}/model.joblib"}}
    image: {{ref: "{REF.format(name=name)}"}}
    {section}
{extra}"""


def manifest(*models: str, defaults: str = "") -> str:
    return "apiVersion: modelfleet/v1\n" + defaults + "models:\n" + "".join(models)


def specs(text: str, environment: str | None = None) -> tuple[ModelSpec, ...]:
    return resolve(parse_manifest(text, "models.yaml"), environment).models


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("old", "new", "kind"), [
    ("1.4.2", "2.0.0", VersionChange.MAJOR),
    ("1.4.2", "1.5.0", VersionChange.MINOR),
    ("1.4.2", "1.4.3", VersionChange.PATCH),
    ("1.4.2", "1.4.1", VersionChange.DOWNGRADE),
    ("2.0.0", "1.9.9", VersionChange.DOWNGRADE),
    ("1.5.0-rc.1", "1.5.0", VersionChange.PRERELEASE),
    ("1.5.0", "1.5.0-rc.1", VersionChange.DOWNGRADE),
    ("1.5.0-rc.2", "1.5.0-rc.10", VersionChange.PRERELEASE),
    ("1.5.0-rc.10", "1.5.0-rc.2", VersionChange.DOWNGRADE),
    ("1.5.0+build.1", "1.5.0+build.2", VersionChange.BUILD),
])
def test_version_changes_are_classified(old: str, new: str, kind: VersionChange) -> None:
    assert classify(old, new) is kind


def test_added_removed_and_changed_models_with_field_paths() -> None:
    base = manifest(model("fraud", "1.4.2"), model("legacy", "0.3.0"), model("churn", "2.0.0"))
    head = manifest(
        model("fraud", "1.5.0", section="serving: {replicas: {max: 20}}"),
        model("churn", "2.0.0"),
        model("tagger", "0.1.0", team="vision"))
    diff = diff_models(specs(base), specs(head))
    assert [(m.name, m.status) for m in diff.models] == [
        ("fraud", Status.CHANGED), ("legacy", Status.REMOVED), ("tagger", Status.ADDED)]
    fraud = diff.models[0]
    assert fraud.version_change is VersionChange.MINOR
    assert [(c.path, c.old, c.new) for c in fraud.changes] == [
        ("version", "1.4.2", "1.5.0"), ("serving.replicas.max", 10, 20)]
    assert diff.unchanged == ("churn",)
    assert diff.summary() == "1 added, 1 removed, 1 changed (1 minor), 1 unchanged"


def test_a_change_of_defaults_shows_on_every_model_it_reaches() -> None:
    before = "defaults:\n  serving: {resources: {memory: 1Gi}}\n"
    after = "defaults:\n  serving: {resources: {memory: 2Gi}}\n"
    models = (model("fraud", "1.0.0"), model("churn", "1.0.0", section="batch: {}"))
    diff = diff_models(specs(manifest(*models, defaults=before)),
                       specs(manifest(*models, defaults=after)))
    assert [(m.name, [(c.path, c.old, c.new) for c in m.changes]) for m in diff.models] == [
        ("fraud", [("serving.resources.memory", "1Gi", "2Gi")])]
    assert diff.unchanged == ("churn",)


def test_the_diff_is_per_environment() -> None:
    override = "    environments:\n      prod:\n        serving: {replicas: {min: 4, max: 40}}\n"
    base = manifest(model("fraud", "1.0.0"))
    head = manifest(model("fraud", "1.0.0", extra=override))
    assert diff_models(specs(base), specs(head)).empty
    assert diff_models(specs(base, "dev"), specs(head, "dev")).empty
    prod = diff_models(specs(base, "prod"), specs(head, "prod"), environment="prod")
    assert [(c.path, c.old, c.new) for c in prod.models[0].changes] == [
        ("serving.replicas.min", 2, 4), ("serving.replicas.max", 10, 40)]


def test_gaining_a_section_is_one_change_with_its_settings() -> None:
    diff = diff_models(specs(manifest(model("fraud", "1.0.0"))),
                       specs(manifest(model("fraud", "1.0.0", extra="    batch: {}\n"))))
    (change,) = diff.models[0].changes
    assert change.path == "batch"
    assert change.old is None
    assert change.new["maxReceiveCount"] == 5


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    """v1: fraud 1.4.2 + legacy; main: fraud 1.5.0, legacy removed, churn added."""
    repo.write("models.yaml", manifest(model("fraud", "1.4.2"), model("legacy", "0.3.0")))
    repo.commit("first models")
    repo.tag("v1")
    repo.write("models.yaml", manifest(model("fraud", "1.5.0"), model("churn", "2.0.0",
                                                                        section="batch: {}")))
    repo.commit("fraud 1.5.0, churn, no legacy")
    return repo


def test_cli_diff_between_two_refs(project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", str(project.root / "models.yaml"),
                       "--base", "v1", "--head", "main")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Manifest diff v1 (")
    assert lines[1:] == [
        "+ churn 2.0.0 (added)",
        "~ fraud 1.4.2 → 1.5.0 (minor)",
        "    version: 1.4.2 → 1.5.0",
        "- legacy 0.3.0 (removed; its artifacts and images stay in the registry)",
        "Summary: 1 added, 1 removed, 1 changed (1 minor), 0 unchanged",
    ]


def test_cli_diff_defaults_to_head_against_the_working_tree(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.root / "models.yaml"
    code, out, _ = run(capsys, "diff", str(path))
    assert code == 0
    assert out.splitlines()[-1] == "Summary: no changes (2 models unchanged)"
    path.write_text(path.read_text().replace("1.5.0", "1.5.1"))
    _, out, _ = run(capsys, "diff", str(path))
    assert "~ fraud 1.5.0 → 1.5.1 (patch)" in out
    assert "→ working tree (uncommitted changes)" in out.splitlines()[0]


def test_cli_diff_json_is_a_stable_document(project: GitRepo,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "diff", str(project.root / "models.yaml"), "--base", "v1",
                    "--head", "HEAD", "--format", "json", "--environment", "prod")
    document = json.loads(out)
    assert document["environment"] == "prod"
    assert document["counts"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 0}
    fraud = next(m for m in document["models"] if m["name"] == "fraud")
    assert fraud == {
        "name": "fraud", "status": "changed",
        "version": {"old": "1.4.2", "new": "1.5.0", "change": "minor"},
        "changes": [{"path": "version", "old": "1.4.2", "new": "1.5.0"}],
    }


def test_cli_diff_markdown_for_a_pull_request(project: GitRepo,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "diff", str(project.root / "models.yaml"), "--base", "v1",
                    "--head", "HEAD", "--format", "markdown")
    assert out.startswith("### Model manifest diff: v1 (")
    assert "**1 added, 1 removed, 1 changed (1 minor), 0 unchanged**" in out
    assert "| ~ | `fraud` | 1.4.2 → **1.5.0** | minor, 1 field(s) |" in out
    assert "| `version` | `1.4.2` | `1.5.0` |" in out
    assert "| - | `legacy` | ~~0.3.0~~ | removed (its artifacts and images stay in the " \
           "registry) |" in out


def test_cli_diff_when_the_base_has_no_manifest_counts_everything_added(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("README.md", "hello")
    repo.commit("empty project")
    repo.write("models.yaml", manifest(model("fraud", "1.0.0")))
    code, out, err = run(capsys, "diff", str(repo.root / "models.yaml"))
    assert code == 0
    assert "models.yaml does not exist at 'HEAD'" in err
    assert "+ fraud 1.0.0 (added)" in out


def test_cli_diff_of_an_invalid_head_fails_with_its_problems(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.root / "models.yaml"
    path.write_text(path.read_text().replace("1.5.0", "1.5"))
    code, out, err = run(capsys, "diff", str(path))
    assert code == 1
    assert out == ""
    assert "model 'fraud': version:" in err


def test_cli_diff_reports_a_downgrade(project: GitRepo,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "diff", str(project.root / "models.yaml"), "--base", "HEAD",
                    "--head", "v1", "--format", "markdown")
    assert "⚠️ downgrade" in out


def test_cli_without_file_uses_models_yaml_in_the_current_folder(
        project: GitRepo, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    code, out, _ = run(capsys, "diff", "--base", "v1")
    assert code == 0
    assert "~ fraud 1.4.2 → 1.5.0 (minor)" in out
    assert run(capsys, "validate")[1] == "models.yaml: valid, 2 models\n"

