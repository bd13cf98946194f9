"""`promote` and `rollback`: release steps as reviewed edits of the manifest, on real git repos.

Each test checks what a reviewer would: the file changed inside one model only
(the text before its first line and after its last line byte for byte the same),
comments elsewhere kept, the printed diff, and that the result validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from cli.main import main
from modelfleet.rollout.promote import promote_text
from tests.gitrepo import GitRepo

REF = "registry.example.com/ml/{name}@sha256:" + "4e" * 32

FRAUD_142 = """\
  - name: fraud-detector       # risk's online scorer
    team: risk
    version: 1.4.2             # what prod serves
    artifact:
      uri: s3://training-output/fraud/1.4.2/model.joblib
      sha256: 9f2c5e0a4b7d1c3e8f6a2b9d0c4e7f1a3b5d8c2e6f0a9b4d7c1e3f5a8b2d6c0e
    image:
      build: {context: images, dockerfile: images/sklearn.Dockerfile}
    serving:
      port: 8080
      env: {LOG_LEVEL: info}   # fraud's own comment
"""

FRAUD_150 = """\
  - name: fraud-detector       # risk's online scorer
    team: risk
    version: 1.5.0             # bumped after the October retrain
    artifact: {uri: s3://training-output/fraud/1.5.0/model.joblib}
    image:
      build: {context: images, dockerfile: images/sklearn.Dockerfile}
    serving:
      port: 8080
      replicas: {min: 3, max: 12}
"""

FRAUD_WITH_CANDIDATES = """\
  - name: fraud-detector       # risk's online scorer
    team: risk
    version: 1.4.2             # what prod serves
    artifact:
      uri: s3://training-output/fraud/1.4.2/model.joblib
      sha256: 9f2c5e0a4b7d1c3e8f6a2b9d0c4e7f1a3b5d8c2e6f0a9b4d7c1e3f5a8b2d6c0e
    image:
      build: {context: images, dockerfile: images/sklearn.Dockerfile}
    serving:
      port: 8080
      candidates:                 # each one a Deployment fraud-detector-<name>
        - name: challenger        # 10% canary
          version: 1.5.0
          artifact: {uri: s3://training-output/fraud/1.5.0/model.joblib, sha256: <SHA>}
          weight: 10
        - name: shadow
          version: 1.6.0-rc.1
          artifact:
            path: artifacts/fraud-1.6.0
          image:
            ref: <REF>
          mirror: 100
      env: {LOG_LEVEL: info}   # fraud's own comment
""".replace("<SHA>", "ab" * 32).replace("<REF>", REF.format(name="fraud"))

CHURN = """\
  - name: churn-scorer         # growth's batch job
    team: growth
    version: 2.1.0             # keep in step with the export schema
    artifact:
      uri: s3://training-output/churn/2.1.0/model.joblib
    image: {ref: "<REF>"}
    batch:
      maxWorkers: 20           # the queue drains overnight
""".replace("<REF>", REF.format(name="churn"))

RANKER = """\
  - name: ranker
    team: search
    version: 0.9.0
    artifact: {uri: s3://training-output/ranker/0.9.0/model.pt}
    image: {ref: "<REF>"}
    serving: {port: 9000}
""".replace("<REF>", REF.format(name="ranker"))

HEADER = """\
# yaml-language-server: $schema=schema/manifest.schema.json
# The fleet. Reviewers: every change here is deployed on merge.
apiVersion: modelfleet/v1
defaults:
  serving:
    replicas: {min: 2, max: 10}   # house default
models:
"""

FOOTER = """\
# end of the fleet; keep this line
"""


def manifest(*entries: str) -> str:
    """Models separated by a blank line and a comment, as a team writes them."""
    body = "\n  # ----\n".join(entries)
    return HEADER + body + "\n" + FOOTER


def around(text: str, model: str) -> tuple[str, str, str]:
    """(text before the model's first line, the model's lines, text after its last line).

    The entry runs from its `- name:` line to the line before the next blank line:
    that is how the manifests above are written.
    """
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines)
                 if line.split("#")[0].strip() == f"- name: {model}")
    last = next((i for i in range(first, len(lines)) if not lines[i].strip()), len(lines))
    return "".join(lines[:first]), "".join(lines[first:last]), "".join(lines[last:])


def project(repo: GitRepo, text: str) -> Path:
    """A repository with a build context and an uploaded artifact, and the manifest."""
    repo.write("images/sklearn.Dockerfile", "FROM python:3.11-slim\n")
    repo.write("artifacts/fraud-1.6.0/model.joblib", "weights\n")
    return repo.write("models.yaml", text)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def model_data(text: str, name: str) -> dict[str, Any]:
    document = YAML(typ="safe").load(text)
    found: dict[str, Any] = next(m for m in document["models"] if m["name"] == name)
    return found


def refused(code: int, err: str) -> bool:
    """Exit 1 with exactly one line on stderr, and no traceback."""
    return code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err


# rollback


def test_rollback_restores_the_entry_as_written_at_the_ref(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(FRAUD_142, CHURN))
    repo.commit("fraud 1.4.2")
    repo.tag("v1")
    later = manifest(FRAUD_150, CHURN.replace("maxWorkers: 20", "maxWorkers: 30"))
    file.write_text(later)
    repo.commit("fraud 1.5.0; churn to 30 workers")

    code, out, err = run(capsys, "rollback", "fraud-detector", "--to", "v1", str(file))

    assert code == 0, err
    after = file.read_text()
    head, entry, tail = around(after, "fraud-detector")
    assert entry == FRAUD_142  # the item as written at v1, comments included
    assert (head, tail) == around(later, "fraud-detector")[::2]
    assert "maxWorkers: 30           # the queue drains overnight" in tail  # today's churn
    assert "~ fraud-detector 1.5.0 → 1.4.2 (downgrade)" in out
    assert "version: 1.5.0 → 1.4.2" in out
    assert "churn-scorer" not in out
    assert repo.repo.is_dirty()  # edited, not committed
    assert run(capsys, "validate", str(file))[0] == 0


def test_rollback_keeps_uncommitted_changes_to_other_models(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(FRAUD_142, CHURN))
    repo.commit("fraud 1.4.2")
    file.write_text(manifest(FRAUD_150, CHURN))
    repo.commit("fraud 1.5.0")
    edited = manifest(FRAUD_150, CHURN.replace("# keep in step", "# NOT COMMITTED: keep in step"))
    file.write_text(edited)

    code, _, err = run(capsys, "rollback", "fraud-detector", "--to", "HEAD~1", str(file))

    assert code == 0, err
    after = file.read_text()
    assert around(after, "fraud-detector")[1] == FRAUD_142
    assert after.replace(FRAUD_142, FRAUD_150) == edited


def test_rollback_puts_back_a_model_removed_since_after_its_old_neighbour(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(FRAUD_142, CHURN, RANKER))
    repo.commit("three models")
    repo.tag("v1")
    without = manifest(FRAUD_142, RANKER)
    file.write_text(without)
    repo.commit("retire churn")

    code, out, err = run(capsys, "rollback", "churn-scorer", "--to", "v1", str(file))

    assert code == 0, err
    after = file.read_text()
    assert after == manifest(FRAUD_142, CHURN, RANKER)  # its separator comment came back too
    assert "+ churn-scorer 2.1.0 (added)" in out
    assert run(capsys, "validate", str(file))[0] == 0


def test_rollback_of_a_removed_model_keeps_the_comment_lines_above_it(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    noted = ("  # Owned by growth; the export schema is pinned in data-contracts#412.\n"
             "  # Do not raise maxWorkers before the warehouse quota is.\n" + CHURN)
    file = project(repo, HEADER + FRAUD_142 + noted + FOOTER)
    repo.commit("churn with its notes")
    file.write_text(HEADER + FRAUD_142 + FOOTER)
    repo.commit("retire churn")

    code, _, err = run(capsys, "rollback", "churn-scorer", "--to", "HEAD~1", str(file))

    assert code == 0, err
    assert file.read_text() == HEADER + FRAUD_142 + noted + FOOTER


def test_rollback_reindents_an_entry_when_the_list_indentation_changed(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    flush_left = "".join(line[2:] + "\n" for line in (FRAUD_142 + "\n" + CHURN).splitlines())
    file = project(repo, HEADER + flush_left + FOOTER)
    repo.commit("models written flush left")
    repo.tag("v1")
    file.write_text(manifest(FRAUD_150, CHURN))
    repo.commit("indented, fraud 1.5.0")

    code, _, err = run(capsys, "rollback", "fraud-detector", "--to", "v1", str(file))

    assert code == 0, err
    assert around(file.read_text(), "fraud-detector")[1] == FRAUD_142
    assert run(capsys, "validate", str(file))[0] == 0


def test_rollback_keeps_windows_line_breaks(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    def crlf(text: str) -> bytes:
        return text.replace("\n", "\r\n").encode()

    file = project(repo, "")
    file.write_bytes(crlf(manifest(FRAUD_142, CHURN, RANKER)))
    repo.commit("three models, CRLF")
    file.write_bytes(crlf(manifest(FRAUD_150, RANKER)))
    repo.commit("fraud 1.5.0, churn retired")

    for model in ("fraud-detector", "churn-scorer"):
        code, _, err = run(capsys, "rollback", model, "--to", "HEAD~1", str(file))
        assert code == 0, err

    assert file.read_bytes() == crlf(manifest(FRAUD_142, CHURN, RANKER))


def test_rollback_to_a_ref_without_the_model_fails_and_leaves_the_file(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(CHURN))
    repo.commit("churn only")
    repo.tag("v1")
    file.write_text(manifest(FRAUD_142, CHURN))
    repo.commit("add fraud")
    before = file.read_bytes()

    code, out, err = run(capsys, "rollback", "fraud-detector", "--to", "v1", str(file))

    assert refused(code, err), err
    assert "model 'fraud-detector' is not in" in err
    assert "at v1 (" in err
    assert out == ""
    assert file.read_bytes() == before


@pytest.mark.parametrize(("ref", "message"), [
    ("v9", "unknown git ref 'v9'"),
    ("v0", "does not exist at 'v0'"),
])
def test_rollback_to_a_bad_ref_fails_with_one_line(
        repo: GitRepo, capsys: pytest.CaptureFixture[str], ref: str, message: str) -> None:
    repo.write("README.md", "before the manifest\n")
    repo.commit("readme")
    repo.tag("v0")
    file = project(repo, manifest(FRAUD_142))
    repo.commit("fraud")
    before = file.read_bytes()

    code, _, err = run(capsys, "rollback", "fraud-detector", "--to", ref, str(file))

    assert refused(code, err), err
    assert message in err
    assert file.read_bytes() == before


def test_rollback_refuses_to_lose_uncommitted_changes_to_the_model(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(FRAUD_142))
    repo.commit("fraud 1.4.2")
    file.write_text(manifest(FRAUD_150))
    repo.commit("fraud 1.5.0")
    file.write_text(manifest(FRAUD_150.replace("max: 12", "max: 16")))
    before = file.read_bytes()

    code, _, err = run(capsys, "rollback", "fraud-detector", "--to", "HEAD~1", str(file))

    assert refused(code, err), err
    assert "uncommitted changes" in err
    assert file.read_bytes() == before


def test_rollback_to_the_same_entry_changes_nothing(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(FRAUD_142, CHURN))
    repo.commit("fraud")
    file.write_text(manifest(FRAUD_142, CHURN.replace("2.1.0", "2.2.0")))
    repo.commit("churn 2.2.0")
    before = file.read_bytes()

    code, out, err = run(capsys, "rollback", "fraud-detector", "--to", "HEAD~1", str(file))

    assert code == 0, err
    assert out == (f"no change: model 'fraud-detector' is already as in {file} at HEAD~1 "
                   f"({repo.repo.commit('HEAD~1').hexsha[:12]}); nothing was written\n")
    assert file.read_bytes() == before


def test_rollback_whose_result_does_not_validate_writes_nothing(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    uploaded = FRAUD_142.replace("uri: s3://training-output/fraud/1.4.2/model.joblib",
                                 "path: artifacts/fraud-1.4.2")
    file = project(repo, manifest(uploaded))
    repo.write("artifacts/fraud-1.4.2/model.joblib", "old weights\n")
    repo.commit("fraud 1.4.2, uploaded from git")
    file.write_text(manifest(FRAUD_150))
    repo.remove("artifacts/fraud-1.4.2/model.joblib")
    repo.commit("fraud 1.5.0 from S3; old weights dropped from git")
    before = file.read_bytes()

    code, out, err = run(capsys, "rollback", "fraud-detector", "--to", "HEAD~1", str(file))

    assert code == 1
    assert "artifacts/fraud-1.4.2" in err
    assert err.endswith("nothing was done\n")
    assert out == ""
    assert file.read_bytes() == before


def test_a_problem_the_file_already_had_elsewhere_does_not_block_a_rollback(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    file = project(repo, manifest(FRAUD_142, RANKER))
    repo.commit("fraud 1.4.2")
    broken_ranker = RANKER.replace("{uri: s3://training-output/ranker/0.9.0/model.pt}",
                                   "{path: artifacts/ranker}")  # not in this checkout
    file.write_text(manifest(FRAUD_150, broken_ranker))
    repo.commit("fraud 1.5.0; ranker from a local folder")

    code, out, err = run(capsys, "rollback", "fraud-detector", "--to", "HEAD~1", str(file))

    assert code == 0, err
    assert around(file.read_text(), "fraud-detector")[1] == FRAUD_142
    assert "still has 1 problem(s) it had before this change" in err
    assert "~ fraud-detector 1.5.0 → 1.4.2 (downgrade)" in out


def test_rollback_needs_a_ref(repo: GitRepo) -> None:
    file = project(repo, manifest(FRAUD_142))
    with pytest.raises(SystemExit) as exit_:
        main(["rollback", "fraud-detector", str(file)])
    assert exit_.value.code == 2


# promote: the edit itself


def test_promote_gives_the_model_the_candidates_version_artifact_and_image(repo: GitRepo) -> None:
    text = manifest(CHURN, FRAUD_WITH_CANDIDATES, RANKER)
    project(repo, text)
    repo.commit("fraud with a canary and a shadow")

    edited = promote_text(text, "models.yaml", "fraud-detector", "shadow")

    fraud = model_data(edited.text, "fraud-detector")
    assert fraud["version"] == "1.6.0-rc.1"
    assert fraud["artifact"] == {"path": "artifacts/fraud-1.6.0"}
    assert fraud["image"] == {"ref": REF.format(name="fraud")}
    assert [c["name"] for c in fraud["serving"]["candidates"]] == ["challenger"]
    head, entry, tail = around(edited.text, "fraud-detector")
    assert (head, tail) == around(text, "fraud-detector")[::2]
    assert "    version: 1.6.0-rc.1             # what prod serves\n" in entry
    assert "        - name: challenger        # 10% canary\n" in entry
    assert "      env: {LOG_LEVEL: info}   # fraud's own comment\n" in entry
    assert model_data(edited.text, "churn-scorer") == model_data(text, "churn-scorer")
    # A shadow's answers were never served: the step says so.
    assert edited.warnings == (
        "model 'fraud-detector': candidate 'shadow' was a shadow (mirror 100%): it saw live "
        "requests but none of its answers was served; this promotion gives it all traffic at "
        "once (a `weight` step first would serve some of them)",)


def test_promoting_the_last_candidate_removes_the_candidates_key(repo: GitRepo) -> None:
    text = manifest(FRAUD_WITH_CANDIDATES, CHURN)
    project(repo, text)
    repo.commit("fraud with a canary and a shadow")

    once = promote_text(text, "models.yaml", "fraud-detector", "challenger").text
    twice = promote_text(once, "models.yaml", "fraud-detector", "shadow").text

    fraud = model_data(once, "fraud-detector")
    assert fraud["version"] == "1.5.0"
    assert fraud["artifact"] == {"uri": "s3://training-output/fraud/1.5.0/model.joblib",
                                 "sha256": "ab" * 32}
    assert fraud["image"]["build"]["dockerfile"] == "images/sklearn.Dockerfile"  # kept
    assert "candidates" not in model_data(twice, "fraud-detector")["serving"]
    assert "candidates" not in around(twice, "fraud-detector")[1]
    assert model_data(twice, "fraud-detector")["serving"] == {
        "port": 8080, "env": {"LOG_LEVEL": "info"}}
    assert around(twice, "fraud-detector")[2] == around(text, "fraud-detector")[2]


def test_promote_within_flow_style_lists(repo: GitRepo) -> None:
    fraud = FRAUD_142.replace("      env: {LOG_LEVEL: info}   # fraud's own comment\n", (
        "      candidates: [{name: a, version: 1.5.0, artifact: {uri: s3://b/a}, weight: 5},\n"
        "                   {name: b, version: 1.6.0, artifact: {uri: s3://b/b}, weight: 5}]\n"))
    text = manifest(fraud, CHURN)
    project(repo, text)
    repo.commit("two weighted candidates in flow style")

    first = promote_text(text, "models.yaml", "fraud-detector", "b").text
    second = promote_text(first, "models.yaml", "fraud-detector", "a").text

    assert model_data(first, "fraud-detector")["serving"]["candidates"] == [
        {"name": "a", "version": "1.5.0", "artifact": {"uri": "s3://b/a"}, "weight": 5}]
    assert model_data(first, "fraud-detector")["version"] == "1.6.0"
    assert model_data(second, "fraud-detector")["serving"] == {"port": 8080}
    assert around(second, "fraud-detector")[::2] == around(text, "fraud-detector")[::2]


def test_promote_warns_of_an_environment_that_keeps_its_own_version(repo: GitRepo) -> None:
    fraud = FRAUD_WITH_CANDIDATES + "    environments:\n      prod: {version: 1.4.1}\n"
    project(repo, manifest(fraud))
    repo.commit("prod pinned")

    edited = promote_text(manifest(fraud), "models.yaml", "fraud-detector", "challenger")

    assert edited.warnings == (
        "model 'fraud-detector': environments.prod sets its own version 1.4.1, so prod does "
        "not get the promoted version; edit or remove that override",)
    assert model_data(edited.text, "fraud-detector")["environments"] == {
        "prod": {"version": "1.4.1"}}


# promote: the command


@pytest.mark.parametrize(("args", "message"), [
    (["ranker", "challenger"], "model 'ranker' is not in"),
    (["fraud-detector", "champion"],
     "model 'fraud-detector' has no candidate 'champion' in serving.candidates "
     "(its candidates: challenger, shadow)"),
    (["churn-scorer", "challenger"], "(it has none)"),
])
def test_promote_of_an_unknown_model_or_candidate_fails_and_leaves_the_file(
        repo: GitRepo, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    file = project(repo, manifest(FRAUD_WITH_CANDIDATES, CHURN))
    repo.commit("fraud with candidates")
    before = file.read_bytes()

    code, out, err = run(capsys, "promote", *args, str(file))

    assert refused(code, err), err
    assert message in err
    assert out == ""
    assert file.read_bytes() == before


ENVIRONMENT_CANDIDATES = {
    "declared only for one environment": (
        FRAUD_142, "prod", "canary", 5, "declared only in environments.prod"),
    "declared again by an environment": (
        FRAUD_WITH_CANDIDATES, "dev", "challenger", 50,
        "environments.dev.serving.candidates also declares 'challenger'"),
}


@pytest.mark.parametrize("case", sorted(ENVIRONMENT_CANDIDATES))
def test_promote_of_a_candidate_an_environment_declares_is_refused(
        repo: GitRepo, capsys: pytest.CaptureFixture[str], case: str) -> None:
    base, environment, candidate, weight, message = ENVIRONMENT_CANDIDATES[case]
    fraud = base + (
        "    environments:\n"
        f"      {environment}:\n"
        "        serving:\n"
        f"          candidates: [{{name: {candidate}, version: 1.5.0, "
        f"artifact: {{uri: s3://b/c}}, weight: {weight}}}]\n")
    file = project(repo, manifest(fraud))
    repo.commit(f"a candidate in {environment}")
    before = file.read_bytes()

    code, _, err = run(capsys, "promote", "fraud-detector", candidate, str(file))

    assert refused(code, err), err
    assert message in err
    assert file.read_bytes() == before


def test_promote_edits_the_file_prints_the_diff_and_the_result_validates(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    text = manifest(CHURN, FRAUD_WITH_CANDIDATES, RANKER)
    file = project(repo, text)
    repo.commit("fraud with a canary and a shadow")

    code, out, err = run(capsys, "promote", "fraud-detector", "challenger", str(file))

    assert code == 0, err
    after = file.read_text()
    assert around(after, "fraud-detector")[::2] == around(text, "fraud-detector")[::2]
    assert model_data(after, "fraud-detector")["version"] == "1.5.0"
    assert "~ fraud-detector 1.4.2 → 1.5.0 (minor)" in out
    assert "version: 1.4.2 → 1.5.0" in out
    assert repo.repo.is_dirty()
    assert run(capsys, "validate", str(file))[0] == 0
