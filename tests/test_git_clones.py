"""Git as CI and people have it: shallow clones, a moved manifest, no local `main`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
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
  modelfleet:manifest: {manifest}
  modelfleet:manifestRef: {ref}
  modelfleet:oidcProviderArn: arn:aws:iam::123456789012:oidc-provider/example
  modelfleet:oidcProviderUrl: oidc.example/id/1
"""


def manifest(fraud: str, churn: str | None = None) -> str:
    text = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: {fraud}
    artifact: {{uri: "s3://training/fraud/model"}}
    image: {{ref: "{REF.format(name='fraud')}"}}
    batch: {{}}
"""
    if churn:
        text += f"""\
  - name: churn
    team: growth
    version: {churn}
    artifact: {{uri: "s3://training/churn/model"}}
    image: {{ref: "{REF.format(name='churn')}"}}
    batch: {{}}
"""
    return text


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(code: int, err: str) -> str:
    """The one message of a refusal: exit 1, one line, no traceback."""
    assert code == 1, err
    assert len(err.splitlines()) == 1, err
    return err.strip()


@pytest.fixture
def three_commits(repo: GitRepo) -> GitRepo:
    repo.write("Pulumi.yaml", PROJECT_FILE)
    repo.write("stacks/Pulumi.dev.yaml", STACK.format(manifest="models.yaml", ref="''"))
    repo.write("models.yaml", manifest("1.0.0"))
    repo.commit("fraud 1.0.0")
    repo.write("models.yaml", manifest("1.1.0"))
    repo.commit("fraud 1.1.0")
    repo.write("models.yaml", manifest("1.1.0", churn="2.0.0"))
    repo.commit("add churn")
    return repo


def shallow_clone(source: GitRepo, target: Path, depth: int = 1) -> Path:
    subprocess.run(["git", "clone", "--quiet", f"--depth={depth}", f"file://{source.root}",
                    str(target)], check=True, capture_output=True)
    return target


# shallow clones


def test_diff_beyond_a_shallow_clone_says_so_and_how_to_deepen_it(
        three_commits: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = shallow_clone(three_commits, tmp_path / "clone")
    code, _, err = run(capsys, "diff", str(clone / "models.yaml"), "--base", "HEAD~1")
    message = one_line(code, err)
    assert "shallow clone" in message
    assert "`git fetch --unshallow`" in message
    assert "`fetch-depth: 0`" in message


def test_stacks_affected_and_plan_base_beyond_a_shallow_clone_say_so(
        three_commits: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    clone = shallow_clone(three_commits, tmp_path / "clone")
    monkeypatch.chdir(clone)
    for command in (["stacks", "--affected", "HEAD~1"],
                    ["plan", "--stack", "dev", "--base", "HEAD~1"]):
        code, _, err = run(capsys, *command)
        assert "`git fetch --unshallow`" in one_line(code, err), command


def test_a_ref_a_shallow_clone_does_not_have_mentions_the_shallow_clone(
        three_commits: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three_commits.repo.create_tag("v1", ref="HEAD~1")  # outside the clone's one commit
    clone = shallow_clone(three_commits, tmp_path / "clone")
    code, _, err = run(capsys, "diff", str(clone / "models.yaml"), "--base", "v1")
    message = one_line(code, err)
    assert "this clone is shallow" in message
    assert "`git fetch --tags`" in message


def test_history_marks_where_a_shallow_clone_cuts_it(
        three_commits: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = shallow_clone(three_commits, tmp_path / "clone", depth=2)
    code, out, err = run(capsys, "history", "fraud", str(clone / "models.yaml"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].endswith("fraud 1.1.0")
    assert lines[2] == ("    … history cut here (shallow clone): already at version 1.1.0; "
                        "`git fetch --unshallow` shows the commits before")
    assert "added" not in out
    code, out, _ = run(capsys, "history", "churn", str(clone / "models.yaml"))
    assert "    + added at version 2.0.0" in out.splitlines()


# a renamed manifest


@pytest.fixture
def moved(three_commits: GitRepo) -> GitRepo:
    three_commits.tag("before-move")
    (three_commits.root / "deploy").mkdir()
    three_commits.repo.git.mv("models.yaml", "deploy/models.yaml")
    three_commits.commit("move the manifest")
    three_commits.write("deploy/models.yaml", manifest("1.2.0", churn="2.0.0"))
    three_commits.commit("fraud 1.2.0")
    return three_commits


def test_history_follows_a_renamed_manifest(
        moved: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "history", "fraud", str(moved.root / "deploy/models.yaml"))
    assert code == 0, err
    assert "    version: 1.1.0 → 1.2.0 (minor)" in out
    assert "    version: 1.0.0 → 1.1.0 (minor)" in out
    assert "    + added at version 1.0.0" in out


def test_diff_against_a_ref_before_the_move_finds_the_models(
        moved: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "diff", str(moved.root / "deploy/models.yaml"),
                         "--base", "before-move")
    assert code == 0, err
    assert "as models.yaml" in out.splitlines()[0]
    assert "~ fraud 1.1.0 → 1.2.0 (minor)" in out
    assert "added" not in out


def test_rollback_to_a_ref_before_the_move_restores_the_model(
        moved: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = moved.root / "deploy/models.yaml"
    code, _, err = run(capsys, "rollback", "fraud", "--to", "before-move", str(file))
    assert code == 0, err
    assert file.read_text() == manifest("1.1.0", churn="2.0.0")


# a branch with no local head


def test_a_stack_following_main_resolves_origin_main_in_a_detached_checkout(
        three_commits: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = git.Repo.clone_from(three_commits.root, tmp_path / "clone")
    clone.git.checkout("--detach", "HEAD~1")
    clone.git.branch("-D", "main")
    assert "main" not in [head.name for head in clone.heads]
    code, out, err = run(capsys, "diff", str(tmp_path / "clone/models.yaml"), "--base", "main")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Manifest diff main (")
    assert "- churn 2.0.0 (removed;" in out


def test_a_branch_neither_local_nor_remote_tracking_is_named_in_the_message(
        three_commits: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three_commits.repo.git.branch("release")
    clone = shallow_clone(three_commits, tmp_path / "clone")  # one branch, as CI fetches
    code, _, err = run(capsys, "diff", str(clone / "models.yaml"), "--base", "release")
    message = one_line(code, err)
    assert "no local branch 'release' and no remote-tracking branch 'origin/release'" in message
    assert "`git fetch origin release:refs/remotes/origin/release`" in message
