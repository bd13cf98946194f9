"""What a reviewer reads first: the summary per model, the risk flags, and the CI gate.

Each test commits a change to a copy of the project in a real repository and
plans the stack against the commit before it (`--base HEAD~1`), as the pull
request workflow plans against the base branch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from planner.plan import plan_stack
from planner.present import render_markdown, render_text
from tests.gitrepo import GitRepo
from tests.shipped import PINNED_COMMIT, copy_project, inside

RISK_EXIT = 3


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return copy_project(tmp_path / "project")


def edit(project: GitRepo, relative: str, old: str, new: str, message: str) -> None:
    path = project.root / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {relative}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    project.commit(message)


def plan(project: GitRepo, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    with inside(project.root):
        code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def document(project: GitRepo, capsys: pytest.CaptureFixture[str], stack: str = "dev",
             base: str = "HEAD~1") -> dict[str, Any]:
    code, out, err = plan(project, capsys, "--stack", stack, "--base", base, "--format", "json")
    assert code == 0, err
    return dict(json.loads(out))


def by_model(planned: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {summary["model"]: summary for summary in planned["summary"]}


def kinds(planned: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(risk["level"], risk["model"], risk["kind"]) for risk in planned["risks"]]


def test_a_gpu_models_version_bump_says_its_pods_restart_and_that_serving_stops(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    """The tagger holds a GPU and runs at least one replica: by default it rolls without a
    surge pod (no spare GPU needed), so at one replica it stops serving for a moment."""
    edit(project, "models.yaml", "version: 1.0.0", "version: 1.1.0", "image-tagger 1.1.0")
    planned = document(project, capsys)

    (summary,) = planned["summary"]
    assert summary["model"] == "image-tagger"
    assert summary["version"] == {"old": "1.0.0", "new": "1.1.0"}
    assert summary["headline"] == "rolls from 1.0.0 to 1.1.0"
    restart, image, artifact = summary["lines"]
    assert restart.startswith("server pods restart (Deployment image-tagger): 1 old pod "
                              "stopped at a time before its replacement is ready")
    assert "maxSurge 0, maxUnavailable 1; 1 to 4 replicas" in restart
    assert image.startswith("image rebuilt for 1.1.0")
    assert artifact == "artifact unchanged"
    # Ten resources carry the new version in labels, annotations or tags: not news.
    assert len([c for c in planned["changes"] if c["name"].startswith("image-tagger")]) >= 9
    assert not any(word in line for line in summary["lines"]
                   for word in ("label", "annotation", "tags", "manifest-commit"))

    assert kinds(planned) == [("warning", "image-tagger", "serving-stops")]
    message = planned["risks"][0]["message"]
    assert "stop serving during the rollout" in message
    assert "minimum of 1 replica" in message


def test_a_gpu_model_that_surges_needs_spare_gpus(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "      startupSeconds: 1200",
         "      startupSeconds: 1200\n      rollout: {maxSurge: 1, maxUnavailable: 0}",
         "image-tagger: surge one pod")
    edit(project, "models.yaml", "version: 1.0.0", "version: 1.1.0", "image-tagger 1.1.0")
    planned = document(project, capsys)
    (summary,) = planned["summary"]
    assert summary["model"] == "image-tagger"
    assert kinds(planned) == [("warning", "image-tagger", "gpu-surge")]
    message = planned["risks"][0]["message"]
    assert "hold 1 GPU each and roll with maxSurge 1" in message
    assert "needs 1 spare GPU at 1 replica" in message


def test_summary_and_risks_come_first_in_text_and_markdown(
        project: GitRepo) -> None:
    edit(project, "models.yaml", "version: 1.0.0", "version: 1.1.0", "image-tagger 1.1.0")
    with inside(project.root):
        planned = plan_stack(project.root, "dev", base="HEAD~1")
    text = render_text(planned)
    summary, risks = text.index("What this change does"), text.index("Risks: 1 warning")
    assert summary < risks < text.index("(stack-wide)") < text.index("Changes against HEAD~1")
    assert "  image-tagger: rolls from 1.0.0 to 1.1.0\n    - server pods restart" in text
    assert "  warning  image-tagger  serving-stops: server pods" in text

    markdown = render_markdown(planned)
    summary, risks = markdown.index("### What this change does"), markdown.index("### Risks")
    table = markdown.index("<details><summary>Resources: <b>")
    assert summary < risks < table, "the resource table stays below, collapsed"
    assert "- **image-tagger**: rolls from 1.0.0 to 1.1.0" in markdown
    assert "| 🟠 warning | `image-tagger` | `serving-stops` |" in markdown


def test_a_long_markdown_plan_is_cut_before_a_comment_would_overflow(
        project: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(project, "models.yaml", "version: 1.0.0", "version: 1.1.0", "image-tagger 1.1.0")
    with inside(project.root):
        planned = plan_stack(project.root, "dev", base="HEAD~1")
    whole = render_markdown(planned)
    monkeypatch.setattr("planner.present.INPUTS_BUDGET", 400)
    cut = render_markdown(planned)
    assert "… cut here: " not in whole
    assert "… cut here: " in cut
    assert len(cut) < len(whole)
    assert cut.index("### Risks") < cut.index("… cut here: "), "summary and risks stay whole"


def test_new_scaling_bounds_are_one_line_and_restart_nothing(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "serving: {replicas: {min: 1, max: 2}, env",
         "serving: {replicas: {min: 1, max: 3}, env", "fraud-detector: a third replica in dev")
    planned = document(project, capsys)
    (summary,) = planned["summary"]
    assert summary["model"] == "fraud-detector"
    assert summary["lines"] == [
        "scaling of fraud-detector: 1 to 2 replicas on cpu at 70% → 1 to 3 replicas on cpu "
        "at 70%",
        # its candidate runs with the model's serving settings
        "scaling of fraud-detector-challenger: 1 to 2 replicas on cpu at 70% → 1 to 3 "
        "replicas on cpu at 70%"]
    assert planned["risks"] == []


def test_a_reordered_env_is_no_change(project: GitRepo,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "env: {LOG_LEVEL: info}",
         'env: {LOG_LEVEL: info, BATCH_SIZE: "32"}', "fraud-detector: batch size")
    edit(project, "models.yaml", 'env: {LOG_LEVEL: info, BATCH_SIZE: "32"}',
         'env: {BATCH_SIZE: "32", LOG_LEVEL: info}', "fraud-detector: env in order")
    planned = document(project, capsys)
    assert planned["summary"] == []
    assert planned["risks"] == []
    assert planned["changes"] == []
    # ...and the commit before it, which adds a variable, is one summary line, no risk.
    added = document(project, capsys, base="HEAD~2")
    assert [s["model"] for s in added["summary"]] == ["fraud-detector"]
    assert "also changes serving.env.BATCH_SIZE (unset) → 32" in \
        by_model(added)["fraud-detector"]["lines"]
    assert added["risks"] == []


def test_a_respelled_quantity_is_no_change(project: GitRepo,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", 'resources: {cpu: "1", memory: 2Gi}\n      env',
         "resources: {cpu: 1000m, memory: 2Gi}\n      env", "fraud-detector: cpu in millicores")
    planned = document(project, capsys)
    assert planned["summary"] == []
    assert planned["risks"] == []


def test_an_artifact_pin_changed_under_the_same_version_is_a_danger(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "sha256: 9f2c5e0a", "sha256: 0f2c5e0a", "fraud: new pin")
    planned = document(project, capsys)
    assert kinds(planned) == [("danger", "fraud-detector", "artifact-mutated")]
    message = planned["risks"][0]["message"]
    assert "artifact.sha256 9f2c5e0a" in message
    assert "the version stays 1.4.2: a version must name one artifact forever" in message
    lines = by_model(planned)["fraud-detector"]["lines"]
    assert any(line.startswith("artifact changed: sha256 9f2c5e0a") for line in lines)
    assert "image unchanged" in lines


def test_new_content_of_an_uploaded_artifact_under_the_same_version_is_a_danger(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    model = project.root / "artifacts/churn-scorer/model.joblib"
    model.write_bytes(model.read_bytes() + b"\0")
    project.commit("churn-scorer: retrained, same version")
    planned = document(project, capsys)
    assert kinds(planned) == [("danger", "churn-scorer", "artifact-mutated")]
    assert "uploaded file model.joblib" in planned["risks"][0]["message"]
    assert "uploaded artifact changed: new content of model.joblib" in \
        by_model(planned)["churn-scorer"]["lines"]


def test_a_changed_build_context_under_the_same_version_rebuilds_and_is_a_danger(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    dockerfile = project.root / "images/torch.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\n# rebuilt\n")
    project.commit("torch image: a comment")
    planned = document(project, capsys)
    # Only the GPU model builds from torch.Dockerfile (the context ignores Dockerfiles).
    # The tagger and its shadow candidate build from it, and both roll without a surge pod.
    # The candidate's image is tagged with its own version: rebuilt under it, refused too.
    assert kinds(planned) == [("danger", "image-tagger", "image-mutated"),
                              ("danger", "image-tagger", "image-mutated"),
                              ("warning", "image-tagger", "serving-stops"),
                              ("warning", "image-tagger", "serving-stops")]
    assert any(r["message"].startswith("candidate 'shadow' version 1.1.0-rc.1 was built before "
                                       "from another build context")
               for r in planned["risks"][:2]), planned["risks"][:2]
    assert sorted(r["message"].split("(Deployment ")[1].split(")")[0]
                  for r in planned["risks"][2:]) == ["image-tagger", "image-tagger-shadow"]
    # The digest is new although no input of the Deployment changed in text: it rolls.
    (deployment,) = [c for c in planned["changes"] if c["name"] == "image-tagger"
                     and c["type"] == "kubernetes:apps/v1:Deployment"]
    assert deployment["paths"] == deployment["onApply"] == [
        "spec.template.spec.containers[0].image"]
    (summary,) = planned["summary"]
    assert summary["headline"] == "changes at version 1.0.0 (the version stays)"
    assert summary["lines"][0].startswith("server pods restart (Deployment image-tagger)")
    assert "image rebuilt: its build context or build arguments changed" in summary["lines"]


def test_a_run_reading_another_bucket_widens_the_worker_policy(
        project: GitRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    edit(project, "models.yaml", "      messagesPerWorker: 20\n",
         "      messagesPerWorker: 20\n      runs:\n"
         '        - {id: rescore, input: "s3://partner-exports/2026-12/", partitions: 4}\n',
         "product-recommender: rescore partner exports")
    planned = document(project, capsys)
    (widened,) = [r for r in planned["risks"] if r["kind"] == "iam-widened"]
    assert (widened["level"], widened["model"]) == ("warning", "product-recommender")
    assert widened["resource"] == {"type": "aws:iam/rolePolicy:RolePolicy",
                                   "name": "product-recommender-worker-policy",
                                   "input": "policy"}
    assert widened["granted"] == [
        "s3:GetObject on arn:aws:s3:::partner-exports/2026-12/*",
        's3:ListBucket on arn:aws:s3:::partner-exports when '
        '{"StringLike": {"s3:prefix": ["2026-12/*"]}}']
    before, after = widened["before"], widened["after"]
    assert len(after["Statement"]) == len(before["Statement"]) + 2
    consume = after["Statement"][0]
    assert consume["Resource"] == "${product-recommender-queue.arn}"
    assert "arn:aws:s3:::${registry-bucket.bucket}/models/product-recommender/*" in \
        after["Statement"][1]["Resource"]
    assert ("danger", "product-recommender", "deletion") not in kinds(planned)
    lines = by_model(planned)["product-recommender"]["lines"]
    assert "starts run product-recommender-rescore: 4 partitions, 4 at a time" in lines

    code, text, _ = plan(project, capsys, "--stack", "dev", "--base", "HEAD~1")
    assert code == 0
    shown = text[text.index("iam-widened"):text.index("\n\n", text.index("iam-widened"))]
    lines = shown.splitlines()
    assert lines[1] == "      before → after (- before only, + after only):"
    added = [line for line in lines if line.startswith("        + ")]
    assert len(added) == 2
    assert all("arn:aws:s3:::partner-exports" in line for line in added)
    assert not any(line.startswith("        - ") for line in lines)
    assert shown.count('"Resource": "${product-recommender-queue.arn}"') == 1  # unchanged, once
    code, markdown, _ = plan(project, capsys, "--stack", "dev", "--base", "HEAD~1",
                             "--format", "markdown", "--render", str(tmp_path / "rendered"))
    assert "<code>product-recommender-worker-policy</code> before and after" in markdown
    assert '```diff\n  {"Version": "2012-10-17", "Statement": [\n' in markdown
    assert '\n+   {"Sid": "ReadRunInput0Objects", ' in markdown
    assert markdown.count("${product-recommender-queue.arn}") >= 2
    rendered = json.loads((tmp_path / "rendered/aws/RolePolicy-product-recommender-worker-"
                                      "policy.json").read_text())
    assert json.loads(rendered["inputs"]["policy"]) == after


def test_removing_a_model_flags_what_is_deleted_and_says_what_is_kept(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    text = models.read_text()
    models.write_text(text[:text.index("  # On a GPU")]
                      + text[text.index("  # A large language model"):])
    project.commit("retire image-tagger")
    planned = document(project, capsys)
    summary = by_model(planned)["image-tagger"]
    assert summary["change"] == "removed"
    assert summary["headline"] == "removed (was 1.0.0)"
    kept = next(line for line in summary["lines"] if line.startswith("retains"))
    assert "Repository image-tagger-repo" in kept
    assert "BucketObjectv2 image-tagger-metadata" in kept
    (deletion,) = planned["risks"]
    assert (deletion["level"], deletion["kind"]) == ("danger", "deletion")
    assert "Deployment image-tagger" in deletion["message"]
    assert "Repository image-tagger-repo" not in deletion["message"]


def test_a_production_release_is_flagged_with_its_single_replica_model(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    project.tag("v2026.11.2")
    edit(project, "stacks/Pulumi.prod.yaml", f"manifestRef: {PINNED_COMMIT}",
         "manifestRef: v2026.11.2", "prod runs the current release")
    edit(project, "models.yaml", "version: 1.0.0", "version: 1.1.0", "image-tagger 1.1.0")
    project.tag("v2026.12.0")
    edit(project, "stacks/Pulumi.prod.yaml", "manifestRef: v2026.11.2",
         "manifestRef: v2026.12.0", "promote v2026.12.0 to prod")
    planned = document(project, capsys, stack="prod")
    assert [s["model"] for s in planned["summary"]] == ["image-tagger"]
    # The tagger and its shadow each run one GPU pod at least, rolled without a surge pod.
    assert kinds(planned) == [("danger", "image-tagger", "serving-stops"),
                              ("warning", "image-tagger", "single-replica"),
                              ("warning", "image-tagger", "single-replica"),
                              ("info", None, "production")]
    assert "1 model change (image-tagger)" in planned["risks"][-1]["message"]


def test_fail_on_danger_fails_exactly_when_a_danger_is_flagged(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", "version: 1.0.0", "version: 1.1.0", "image-tagger 1.1.0")
    code, out, err = plan(project, capsys, "--stack", "dev", "--base", "HEAD~1",
                          "--fail-on", "danger")
    assert code == 0, err  # a warning only
    assert "Risks: 1 warning" in out
    code, out, err = plan(project, capsys, "--stack", "dev", "--base", "HEAD~1",
                          "--fail-on", "warning", "--format", "markdown")
    assert code == RISK_EXIT
    assert out.startswith("## modelfleet plan: `dev`"), "the plan is printed before failing"
    assert err.strip() == \
        "1 risk(s) at or above 'warning': warning serving-stops (image-tagger)"

    edit(project, "models.yaml", "sha256: 9f2c5e0a", "sha256: 0f2c5e0a", "fraud: new pin")
    code, out, err = plan(project, capsys, "--stack", "dev", "--base", "HEAD~1",
                          "--fail-on", "danger")
    assert code == RISK_EXIT
    assert "danger   fraud-detector  artifact-mutated:" in out
    assert "danger artifact-mutated (fraud-detector)" in err
    code, _, _ = plan(project, capsys, "--stack", "dev", "--base", "HEAD~1")
    assert code == 0, "without --fail-on, risks are reported, not enforced"


def test_fail_on_takes_a_level(project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        plan(project, capsys, "--stack", "dev", "--fail-on", "severe")
    assert usage.value.code == 2
    assert "invalid choice: 'severe'" in capsys.readouterr().err


def test_a_change_of_scaling_metric_hands_the_autoscaler_over_without_a_danger(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "models.yaml", 'resources: {cpu: "1", memory: 2Gi}\n      env',
         'resources: {cpu: "1", memory: 2Gi}\n      scaleMetric: rps\n      scaleTarget: 50\n'
         "      env", "fraud-detector: scale on requests per second")
    planned = document(project, capsys)
    deletions = [r for r in planned["risks"] if r["kind"] == "deletion"]
    # The candidate takes the model's serving settings: its autoscaler is handed over too.
    assert [(r["level"], r["model"]) for r in deletions] == [("warning", "fraud-detector")] * 2
    assert sorted(r["message"] for r in deletions) == sorted(
        f"deletes HorizontalPodAutoscaler {name}: ScaledObject {name}, created in this update, "
        "takes over scaling the same Deployment (a change of scaling metric)"
        for name in ("fraud-detector", "fraud-detector-challenger"))


def test_a_removed_candidates_image_is_not_counted_as_lost(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    text = (project.root / "models.yaml").read_text()
    start = text.index("      candidates:              # a canary")
    end = text.index("    environments:", start)
    edit(project, "models.yaml", text[start:end], "", "fraud-detector: the challenger is gone")
    planned = document(project, capsys)
    (deletion,) = [r for r in planned["risks"] if r["kind"] == "deletion"]
    assert "Deployment fraud-detector-challenger" in deletion["message"]
    assert "Image " not in deletion["message"], "pulumi-docker never deletes a pushed tag"
