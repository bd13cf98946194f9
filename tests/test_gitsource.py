"""Reading the manifest from git: any ref, the working tree, and clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cli.main import main
from modelfleet.git.source import FileAbsentError, read_manifest
from modelfleet.manifest.load import check_source
from modelfleet.manifest.problems import ManifestError, SourceError
from tests.gitrepo import GitRepo


def manifest(version: str, extra: str = "") -> str:
    return f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: {version}
    artifact: {{path: artifacts/fraud}}
    image: {{ref: "registry.example/fraud@sha256:{'c' * 64}"}}
    serving: {{}}
{extra}"""


@pytest.fixture
def history(repo: GitRepo) -> dict[str, str]:
    """Three commits (1.0.0, 1.1.0 tagged v1, 2.0.0 on main) and their shas."""
    repo.write("artifacts/fraud/model.joblib", "weights")
    shas = {}
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        repo.write("models.yaml", manifest(version))
        shas[version] = repo.commit(f"fraud {version}")
        if version == "1.1.0":
            repo.tag("v1")
    return shas


@pytest.mark.parametrize(("ref", "version"), [
    ("main", "2.0.0"), ("HEAD", "2.0.0"), ("v1", "1.1.0"), ("HEAD~2", "1.0.0"), ("HEAD^", "1.1.0"),
])
def test_reads_the_manifest_at_any_ref(repo: GitRepo, history: dict[str, str], ref: str,
                                       version: str) -> None:
    source = read_manifest(repo.root / "models.yaml", ref)
    assert f"version: {version}\n" in source.text
    assert source.commit is not None
    assert source.commit.sha == history[version]
    assert source.digest == "sha256:" + hashlib.sha256(source.text.encode()).hexdigest()


def test_reads_at_a_full_commit_sha(repo: GitRepo, history: dict[str, str]) -> None:
    source = read_manifest(repo.root / "models.yaml", history["1.0.0"])
    assert "version: 1.0.0" in source.text
    assert source.label == f"{history['1.0.0']} ({history['1.0.0'][:12]})"


def test_working_tree_reports_head_and_whether_it_differs(repo: GitRepo,
                                                          history: dict[str, str]) -> None:
    clean = read_manifest(repo.root / "models.yaml")
    assert clean.commit is not None
    assert clean.commit.sha == history["2.0.0"]
    assert not clean.dirty
    repo.write("models.yaml", manifest("2.0.1"))
    edited = read_manifest(repo.root / "models.yaml")
    assert edited.dirty
    assert edited.label == "working tree (uncommitted changes)"
    assert clean.digest != edited.digest


def test_working_tree_outside_git_has_no_commit(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(manifest("1.0.0"))
    source = read_manifest(tmp_path / "models.yaml")
    assert source.commit is None


def test_a_ref_outside_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(manifest("1.0.0"))
    with pytest.raises(SourceError, match=r"not inside a git repository"):
        read_manifest(tmp_path / "models.yaml", "HEAD")


@pytest.mark.parametrize("ref", ["v9", "no-such-branch", "HEAD~7", "0123456789abcdef"])
def test_an_unknown_ref_is_a_clear_error(repo: GitRepo, history: dict[str, str],
                                         ref: str) -> None:
    with pytest.raises(SourceError, match=rf"unknown git ref '{ref}'"):
        read_manifest(repo.root / "models.yaml", ref)


def test_a_file_absent_at_a_ref_is_a_clear_error(repo: GitRepo, history: dict[str, str]) -> None:
    repo.write("teams/vision.yaml", manifest("0.1.0"))
    repo.commit("vision manifest")
    with pytest.raises(FileAbsentError, match=r"teams/vision.yaml does not exist at 'v1' "
                                              r"\(commit [0-9a-f]{12}\)"):
        read_manifest(repo.root / "teams/vision.yaml", "v1")


def test_local_paths_are_checked_at_the_ref_not_in_the_working_tree(
        repo: GitRepo, history: dict[str, str]) -> None:
    repo.remove("artifacts/fraud/model.joblib")
    repo.commit("drop the artifact")
    repo.write("artifacts/fraud/model.joblib", "weights, back but uncommitted")
    check_source(read_manifest(repo.root / "models.yaml"))  # the working tree has it
    check_source(read_manifest(repo.root / "models.yaml", "v1"))  # v1 has it
    with pytest.raises(ManifestError) as error:
        check_source(read_manifest(repo.root / "models.yaml", "HEAD"))
    assert "artifact.path: 'artifacts/fraud' does not exist" in str(error.value)


def test_cli_reports_source_errors_without_traceback(repo: GitRepo, history: dict[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diff", str(repo.root / "models.yaml"), "--base", "v7"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: unknown git ref 'v7'")
    assert "(`git fetch --tags`; a clone of a branch brings no tags)" in err
    assert "Traceback" not in err
