"""A model version names one artifact forever: a changed artifact under the same version is
refused where approval is required and warned about elsewhere."""

from __future__ import annotations

import pytest

from planner.simulate import ProgramFailed, Simulation
from tests.deploy import deploy
from tests.gitrepo import GitRepo

SHA_A, SHA_B = "a" * 64, "b" * 64
REF = "registry.example/models@sha256:" + "f" * 64


def manifest(fraud_artifact: str, churn_version: str = "2.1.0") -> str:
    return f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.4.2
    stage: approved
    artifact: {fraud_artifact}
    image: {{ref: "{REF}"}}
    serving: {{}}
  - name: churn
    team: growth
    version: {churn_version}
    stage: approved
    artifact: {{path: artifacts/churn}}
    image: {{ref: "{REF}"}}
    batch: {{}}
"""


PINNED = '{uri: "s3://training/fraud.joblib", versionId: "v1", sha256: "' + SHA_A + '"}'


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    repo.write("artifacts/churn/model.joblib", "churn weights")
    repo.write("models.yaml", manifest(PINNED))
    repo.commit("fraud pinned, churn uploaded")
    return repo


def redeploy(project: GitRepo, first: Simulation, *, approved: bool) -> Simulation:
    config = {"modelfleet:requireApproved": "true"} if approved else {}
    return deploy(project.root / "models.yaml", previous=first.outputs, config=config)


def warnings(simulation: Simulation) -> list[str]:
    return [m for m in simulation.messages("warning") if "already names another" in m]


@pytest.mark.parametrize(("artifact", "changed"), [
    ('{uri: "s3://training/fraud.joblib", versionId: "v2", sha256: "' + SHA_A + '"}',
     "artifact.versionId v1 → v2"),
    ('{uri: "s3://training/fraud.joblib", versionId: "v1", sha256: "' + SHA_B + '"}',
     f"artifact.sha256 {SHA_A} → {SHA_B}"),
    ('{uri: "s3://training/fraud-retrained.joblib", versionId: "v1", sha256: "' + SHA_A + '"}',
     "artifact.uri s3://training/fraud.joblib → s3://training/fraud-retrained.joblib"),
])
def test_a_changed_artifact_under_the_same_version_is_refused_where_approval_is_required(
        project: GitRepo, artifact: str, changed: str) -> None:
    first = deploy(project.root / "models.yaml")
    project.write("models.yaml", manifest(artifact))
    with pytest.raises(ProgramFailed) as failure:
        redeploy(project, first, approved=True)
    assert failure.value.simulation.messages("error") == [
        f"modelfleet: model 'fraud' version 1.4.2 already names another artifact: {changed}. "
        "A version names one artifact forever: bump the version."]
    assert str(failure.value) == "1 model version(s) would name another artifact; bump their " \
                                 "versions"


def test_a_record_from_before_candidates_were_recorded_still_guards_the_stable_version(
        project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    outputs = dict(first.outputs)
    outputs["manifest"] = {k: v for k, v in outputs["manifest"].items() if k != "versions"}
    outputs.pop("versionHistory")
    project.write("models.yaml", manifest(PINNED.replace('"v1"', '"v2"')))
    again = deploy(project.root / "models.yaml", previous=outputs)
    assert warnings(again) == [
        "modelfleet: model 'fraud' version 1.4.2 already names another artifact: "
        "artifact.versionId v1 → v2. A version names one artifact forever: bump the version."]


def test_elsewhere_it_is_a_warning_and_the_update_goes_on(project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    project.write("models.yaml", manifest(PINNED.replace('"v1"', '"v2"')))
    again = redeploy(project, first, approved=False)
    assert warnings(again) == [
        "modelfleet: model 'fraud' version 1.4.2 already names another artifact: "
        "artifact.versionId v1 → v2. A version names one artifact forever: bump the version."]
    assert again.outputs["models"]["fraud"]["version"] == "1.4.2"


def test_new_content_in_an_uploaded_path_under_the_same_version_is_caught(
        project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    project.write("artifacts/churn/model.joblib", "churn weights, retrained")
    with pytest.raises(ProgramFailed) as failure:
        redeploy(project, first, approved=True)
    (error,) = failure.value.simulation.messages("error")
    assert error.startswith("modelfleet: model 'churn' version 2.1.0 already names another "
                            "artifact: uploaded files changed: model.joblib (sha256 ")
    assert error.endswith("A version names one artifact forever: bump the version.")


def test_a_version_bump_with_a_new_artifact_is_fine(project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    project.write("artifacts/churn/model.joblib", "churn weights, retrained")
    project.write("models.yaml", manifest(PINNED, churn_version="2.2.0"))
    again = redeploy(project, first, approved=True)
    assert warnings(again) == []
    assert again.messages("error") == []


def test_an_unchanged_redeploy_says_nothing_about_artifacts(project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    again = redeploy(project, first, approved=True)
    assert warnings(again) == []
    assert again.messages("error") == []


def test_a_record_from_before_artifact_identities_is_compared_by_what_the_manifest_said(
        project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    outputs = dict(first.outputs)
    outputs["manifest"] = {k: v for k, v in outputs["manifest"].items()
                           if k not in ("artifacts", "versions")}
    outputs.pop("versionHistory")
    project.write("models.yaml", manifest(PINNED.replace('"v1"', '"v2"')))
    again = deploy(project.root / "models.yaml", previous=outputs)
    assert warnings(again) == [
        "modelfleet: model 'fraud' version 1.4.2 already names another artifact: "
        "artifact.versionId v1 → v2. A version names one artifact forever: bump the version."]


GATEWAY = {"modelfleet:gateway": "gateway-system/models"}


def with_candidate(artifact: str, version: str = "1.5.0", stable: str = "1.4.2",
                   stable_artifact: str = PINNED) -> str:
    text = manifest(stable_artifact).replace("version: 1.4.2", f"version: {stable}", 1)
    return text.replace("    serving: {}\n", f"""\
    serving:
      candidates:
        - name: challenger
          version: {version}
          artifact: {artifact}
          weight: 10
""", 1)


CANDIDATE = '{uri: "s3://training/fraud-1.5.0.joblib", sha256: "' + SHA_A + '"}'


def test_a_candidates_version_is_as_permanent_as_the_stable_ones(project: GitRepo) -> None:
    project.write("models.yaml", with_candidate(CANDIDATE))
    first = deploy(project.root / "models.yaml", config=GATEWAY)
    project.write("models.yaml", with_candidate(CANDIDATE.replace(SHA_A, SHA_B)))
    with pytest.raises(ProgramFailed) as failure:
        deploy(project.root / "models.yaml", previous=first.outputs,
               config={**GATEWAY, "modelfleet:requireApproved": "true"})
    assert failure.value.simulation.messages("error") == [
        "modelfleet: model 'fraud' version 1.5.0 (candidate 'challenger') already names another "
        f"artifact: artifact.sha256 {SHA_A} → {SHA_B}. A version names one artifact forever: "
        "bump the version."]


def test_promoting_a_candidate_keeps_its_artifact_and_is_no_conflict(project: GitRepo) -> None:
    project.write("models.yaml", with_candidate(CANDIDATE))
    first = deploy(project.root / "models.yaml", config=GATEWAY)
    project.write("models.yaml", manifest(CANDIDATE).replace("version: 1.4.2", "version: 1.5.0"))
    again = deploy(project.root / "models.yaml", previous=first.outputs,
                   config={**GATEWAY, "modelfleet:requireApproved": "true"})
    assert again.messages("error") == []
    assert warnings(again) == []


def test_an_old_stable_version_back_as_a_candidate_must_bring_its_artifact(
        project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml", config=GATEWAY)
    project.write("models.yaml", with_candidate(CANDIDATE, version="1.4.2", stable="1.5.0",
                                                stable_artifact=CANDIDATE))
    again = deploy(project.root / "models.yaml", previous=first.outputs, config=GATEWAY)
    assert warnings(again) == [
        "modelfleet: model 'fraud' version 1.4.2 (candidate 'challenger') already names another "
        "artifact: artifact.uri s3://training/fraud.joblib → s3://training/fraud-1.5.0.joblib; "
        "artifact.versionId v1 → (none). A version names one artifact forever: bump the "
        "version."]


def test_a_version_removed_for_a_while_still_names_its_artifact(project: GitRepo) -> None:
    project.write("models.yaml", with_candidate(CANDIDATE))
    first = deploy(project.root / "models.yaml", config=GATEWAY)
    project.write("models.yaml", manifest(PINNED))
    second = deploy(project.root / "models.yaml", previous=first.outputs, config=GATEWAY)
    assert warnings(second) == []
    assert second.outputs["versionHistory"]["fraud"]["1.5.0"] == {
        "uri": "s3://training/fraud-1.5.0.joblib", "sha256": SHA_A}
    project.write("models.yaml", with_candidate(CANDIDATE.replace(SHA_A, SHA_B)))
    third = deploy(project.root / "models.yaml", previous=second.outputs, config=GATEWAY)
    assert warnings(third) == [
        "modelfleet: model 'fraud' version 1.5.0 (candidate 'challenger') already names another "
        f"artifact: artifact.sha256 {SHA_A} → {SHA_B}. A version names one artifact forever: "
        "bump the version."]


def test_a_record_from_before_versions_were_recorded_still_guards_candidates(
        project: GitRepo) -> None:
    project.write("models.yaml", with_candidate(CANDIDATE))
    first = deploy(project.root / "models.yaml", config=GATEWAY)
    outputs = dict(first.outputs)
    outputs["manifest"] = {k: v for k, v in outputs["manifest"].items()
                           if k not in ("artifacts", "versions")}
    outputs.pop("versionHistory")
    project.write("models.yaml", with_candidate(CANDIDATE.replace(SHA_A, SHA_B)))
    again = deploy(project.root / "models.yaml", previous=outputs, config=GATEWAY)
    assert warnings(again) == [
        "modelfleet: model 'fraud' version 1.5.0 (candidate 'challenger') already names another "
        f"artifact: artifact.sha256 {SHA_A} → {SHA_B}. A version names one artifact forever: "
        "bump the version."]


def test_a_version_keeps_its_build_and_a_rebuild_from_another_context_is_a_runtime_change(
        project: GitRepo) -> None:
    """A server fix under an unchanged version: the image gets a tag of its own (version and
    build digest), the artifact stays, and the update says what it is, not "bump"."""
    project.write("images/Dockerfile", "FROM python:3.11-slim\n")
    built = manifest(PINNED).replace(f'image: {{ref: "{REF}"}}', "image: {build: {context: "
                                     "images}}", 1)
    project.write("models.yaml", built)
    first = deploy(project.root / "models.yaml")
    project.write("models.yaml", manifest(PINNED))
    second = deploy(project.root / "models.yaml", previous=first.outputs)
    assert second.outputs["versionHistory"]["fraud"]["1.4.2"]["build"] == \
        first.outputs["manifest"]["builds"]["fraud"]
    project.write("images/Dockerfile", "FROM python:3.11-slim\nRUN true\n")
    project.write("models.yaml", built)
    third = deploy(project.root / "models.yaml", previous=second.outputs)
    new_build = third.outputs["manifest"]["builds"]["fraud"].removeprefix("sha256:")
    assert [line for line in third.messages("info") if "warning:" in line] == [
        "modelfleet: warning: model 'fraud': runtime change: its image build context or build "
        f"arguments changed (new tag 1.4.2-{new_build[:12]}) under version 1.4.2, whose "
        "artifact stays; its pods roll onto the new image. Check the new runtime as you would "
        "a new version (a candidate, or a stack before this one)."]
    assert warnings(third) == [], "the artifact is the version's content: it did not change"
    assert third.outputs["versionHistory"]["fraud"]["1.4.2"]["build"] == f"sha256:{new_build}"


def test_an_image_built_with_the_model_inside_must_bump_its_version(project: GitRepo) -> None:
    """A build context that holds the uploaded artifact carries the model: a new image is
    new content under the same version."""
    project.write("Dockerfile", "FROM python:3.11-slim\n")
    carried = manifest(PINNED).replace(f'image: {{ref: "{REF}"}}\n    batch',
                                       "image: {build: {context: .}}\n    batch", 1)
    assert "context: ." in carried
    project.write("models.yaml", carried)
    first = deploy(project.root / "models.yaml")
    project.write("Dockerfile", "FROM python:3.11-slim\nRUN true\n")
    second = deploy(project.root / "models.yaml", previous=first.outputs)
    assert [line for line in second.messages("info") if "warning:" in line] == [
        "modelfleet: warning: model 'churn': its image build context or build arguments "
        "changed (new tag 2.1.0-"
        + second.outputs["manifest"]["builds"]["churn"].removeprefix("sha256:")[:12]
        + ") but its version 2.1.0 did not, and the image carries the model (its build "
        "context . holds its artifact path artifacts/churn): version 2.1.0 would name other "
        "content. Bump the version."]


def test_a_new_prebuilt_runtime_under_the_same_version_is_a_runtime_change(
        project: GitRepo) -> None:
    """An `image.ref` digest bump (a new vLLM, a new server) while the weights stay."""
    first = deploy(project.root / "models.yaml")
    bumped = REF.replace("f" * 64, "e" * 64)
    project.write("models.yaml", manifest(PINNED).replace(REF, bumped, 1))
    second = deploy(project.root / "models.yaml", previous=first.outputs)
    assert [line for line in second.messages("info") if "warning:" in line] == [
        f"modelfleet: warning: model 'fraud': runtime change: its image.ref changed ({REF} → "
        f"{bumped}) under version 1.4.2, whose artifact stays; its pods roll onto the new "
        "image. Check the new runtime as you would a new version (a candidate, or a stack "
        "before this one)."]


def test_the_history_keeps_an_uploaded_artifact_as_one_digest_and_still_guards_it(
        project: GitRepo) -> None:
    first = deploy(project.root / "models.yaml")
    project.write("models.yaml", manifest(PINNED, churn_version="2.2.0"))
    second = deploy(project.root / "models.yaml", previous=first.outputs)
    kept = second.outputs["versionHistory"]["churn"]["2.1.0"]
    assert set(kept) == {"filesDigest"}, "one digest per version, whatever the files"
    project.write("artifacts/churn/model.joblib", "churn weights, retrained")
    project.write("models.yaml", manifest(PINNED))
    third = deploy(project.root / "models.yaml", previous=second.outputs)
    (line,) = warnings(third)
    assert line.startswith("modelfleet: model 'churn' version 2.1.0 already names another "
                           "artifact: uploaded files changed (files digest sha256 ")


def test_a_promoted_candidates_image_would_be_built_again_and_the_update_says_so(
        project: GitRepo) -> None:
    project.write("images/Dockerfile", "FROM python:3.11-slim\n")
    build = "image: {build: {context: images}}"
    project.write("models.yaml", with_candidate(CANDIDATE).replace(
        f'image: {{ref: "{REF}"}}', build, 1))
    first = deploy(project.root / "models.yaml", config=GATEWAY)
    promoted = manifest(CANDIDATE).replace("version: 1.4.2", "version: 1.5.0", 1).replace(
        f'image: {{ref: "{REF}"}}', build, 1)
    project.write("models.yaml", promoted)
    again = deploy(project.root / "models.yaml", previous=first.outputs, config=GATEWAY)
    tag = again.outputs["manifest"]["builds"]["fraud"].removeprefix("sha256:")[:12]
    assert [line for line in again.messages("info") if "warning:" in line] == [
        "modelfleet: warning: model 'fraud': version 1.5.0 moves here from another slot "
        "(promoted, rolled back, or a candidate again), so its image is built again, but this "
        f"stack pushed tag 1.5.0-{tag} before and image tags are immutable: unless the build "
        "reproduces that image byte for byte, the push is refused. Set `image.ref` to the "
        "pushed image (`<repository>@sha256:…`, see `registry show`) for this step, or bump "
        "the version."]
    unchanged = deploy(project.root / "models.yaml", previous=again.outputs, config=GATEWAY)
    assert [line for line in unchanged.messages("info") if "warning:" in line] == []


def pinned_files(weights_sha: str) -> str:
    return ('{uri: "s3://training/fraud/1.4.2/", files: [{path: config.json, sha256: "' + SHA_A
            + '", size: 512}, {path: model.safetensors, sha256: "' + weights_sha
            + '", size: 4096}]}')


def test_a_pinned_file_with_new_content_under_the_same_version_is_refused(
        project: GitRepo) -> None:
    """`artifact lock` run again after the weights were rewritten in place under 1.4.2."""
    project.write("models.yaml", manifest(pinned_files(SHA_A)))
    first = deploy(project.root / "models.yaml")
    project.write("models.yaml", manifest(pinned_files(SHA_B)))
    with pytest.raises(ProgramFailed) as failure:
        redeploy(project, first, approved=True)
    (error,) = failure.value.simulation.messages("error")
    assert error.startswith("modelfleet: model 'fraud' version 1.4.2 already names another "
                            "artifact: artifact.files changed (files digest sha256 ")
    project.write("models.yaml", manifest(pinned_files(SHA_A)))
    assert warnings(redeploy(project, first, approved=True)) == []  # the same pins: no change
