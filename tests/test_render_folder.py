"""`plan --render DIR`: the folder holds exactly one render, and nothing else is overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from tests.gitrepo import GitRepo

REF = "registry.example/{name}@sha256:" + "e" * 64
PROJECT_FILE = "name: modelfleet\nruntime: python\nstackConfigDir: stacks\n"
STACK = """\
config:
  aws:region: eu-west-1
  modelfleet:environment: dev
  modelfleet:namespace: models-dev
  modelfleet:oidcProviderArn: arn:aws:iam::123456789012:oidc-provider/example
  modelfleet:oidcProviderUrl: oidc.example/id/1
"""


def model(name: str) -> str:
    return f"""\
  - name: {name}
    team: risk
    version: 1.0.0
    artifact: {{uri: "s3://training/{name}/model"}}
    image: {{ref: "{REF.format(name=name)}"}}
    serving: {{}}
"""


@pytest.fixture
def project(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    repo.write("Pulumi.yaml", PROJECT_FILE)
    repo.write("stacks/Pulumi.dev.yaml", STACK)
    repo.write("models.yaml", "apiVersion: modelfleet/v1\nmodels:\n" + model("fraud")
               + model("churn"))
    repo.commit("two models")
    monkeypatch.chdir(repo.root)
    return repo


def render(capsys: pytest.CaptureFixture[str], folder: Path) -> tuple[int, str]:
    code = main(["plan", "--stack", "dev", "--render", str(folder)])
    return code, capsys.readouterr().err


def test_a_second_render_leaves_no_file_of_a_removed_model(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project.root / "rendered"
    assert render(capsys, folder)[0] == 0
    assert (folder / "kubernetes/deployment-churn.yaml").exists()
    project.write("models.yaml", "apiVersion: modelfleet/v1\nmodels:\n" + model("fraud"))

    code, err = render(capsys, folder)

    assert code == 0, err
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert not [name for name in files if "churn" in name]
    assert "kubernetes/deployment-fraud.yaml" in files


@pytest.mark.parametrize("existing", ["a file", "a folder with a file of its own"])
def test_a_render_refuses_what_it_did_not_write_with_one_line(
        project: GitRepo, capsys: pytest.CaptureFixture[str], existing: str) -> None:
    target = project.root / "out"
    if existing == "a file":
        target.write_text("notes\n")
        kept = target
    else:
        kept = target / "kubernetes/mine.yaml"
        kept.parent.mkdir(parents=True)
        kept.write_text("kind: ConfigMap\n")

    code, err = render(capsys, target)

    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {target}: ")
    assert kept.read_text() in ("notes\n", "kind: ConfigMap\n")
    assert not (target / "kubernetes/deployment-fraud.yaml").exists()


def test_a_render_goes_into_an_empty_folder(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    (project.root / "empty").mkdir()
    code, err = render(capsys, project.root / "empty")
    assert code == 0, err
    assert (project.root / "empty/kubernetes/deployment-churn.yaml").exists()
