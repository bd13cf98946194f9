"""`plan`: the offline answer to `pulumi preview` on the shipped stacks, with or without a base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import main
from planner.changes import resource_changes
from planner.plan import plan_stack
from planner.recorder import Registration
from tests.gitrepo import GitRepo
from tests.shipped import PINNED_COMMIT, copy_project, inside, run_shipped_stack
from tests.validators import is_custom, kubernetes_versions, run_checkov, schema_errors

SHIPPED = ["dev", "growth-dev", "prod", "risk-prod", "staging"]


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return copy_project(tmp_path / "project")


def plan(project: GitRepo, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with inside(project.root):
        code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def document(project: GitRepo, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = plan(project, capsys, *args, "--format", "json")
    assert code == 0, err
    return dict(json.loads(out))


def test_plan_lists_every_resource_the_program_declares(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    planned = document(project, capsys, "--stack", "dev")
    deployed = run_shipped_stack(project, "dev")
    assert sorted((r["type"], r["name"]) for r in planned["resources"]) == sorted(
        r.key for r in deployed.registrations if r.custom)
    assert planned["stack"] == "dev"
    assert planned["changes"] == []
    fraud = [r for r in planned["resources"] if r["model"] == "fraud-detector"]
    assert {r["type"] for r in fraud} >= {"kubernetes:apps/v1:Deployment",
                                          "aws:ecr/repository:Repository"}
    deployment = next(r for r in fraud if r["type"] == "kubernetes:apps/v1:Deployment")
    assert deployment["parent"] == "fraud-detector"


def test_text_plan_groups_by_model_and_counts_by_type(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(project, capsys, "--stack", "risk-prod")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ("Plan for stack risk-prod (environment prod, models.yaml at commit "
                        f"{PINNED_COMMIT[:12]})")
    assert "model fraud-detector 1.4.2 (team risk)" in lines
    assert "model churn-scorer" not in out
    assert "     1  kubernetes:apps/v1:Deployment" in lines
    assert any(line.startswith("Total: ") for line in lines)


def test_what_only_the_cloud_knows_is_shown_by_reference(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    planned = document(project, capsys, "--stack", "dev")
    by_key = {(r["type"], r["name"]): r["inputs"] for r in planned["resources"]}
    built = by_key[("kubernetes:apps/v1:Deployment", "fraud-detector")]
    container = built["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "${fraud-detector-image.repoDigest}"
    prebuilt = by_key[("kubernetes:apps/v1:Deployment", "product-recommender")]
    assert prebuilt["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "registry.example.com/ml/recommender@sha256:")
    policy = json.loads(by_key[("aws:s3/bucketPolicy:BucketPolicy", "registry-policy")]["policy"])
    assert policy["Statement"][0]["Resource"] == ["${registry-bucket.arn}",
                                                  "${registry-bucket.arn}/*"]
    metadata = json.loads(by_key[("aws:s3/bucketObjectv2:BucketObjectv2",
                                  "churn-scorer-metadata")]["content"])
    assert metadata["image"] == "${churn-scorer-image.repoDigest}"
    assert metadata["artifact"]["uri"] == \
        "s3://${registry-bucket.bucket}/models/churn-scorer/2.1.0/artifact/"
    # Inputs echo as given; only what the provider computes is a reference.
    queue = by_key[("aws:sqs/queue:Queue", "churn-scorer-queue")]
    assert queue["name"] == "modelfleet-dev-churn-scorer"
    assert json.loads(queue["redrivePolicy"])["deadLetterTargetArn"] == \
        "${churn-scorer-queue-dlq.arn}"
    assert "(known after apply)" not in json.dumps(planned)
    assert not any(value.endswith("-id") for value in _strings(planned["resources"]))


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_base_head_right_after_a_commit_reports_no_change(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(project, capsys, "--stack", "dev", "--base", "HEAD")
    assert code == 0
    assert "Summary: no changes" in out.splitlines()
    assert "Summary: no changes (6 models unchanged)" in out.splitlines()
    assert document(project, capsys, "--stack", "prod", "--base", "HEAD")["changes"] == []


def test_a_one_model_version_bump_reports_only_that_models_changes(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    models.write_text(models.read_text().replace("version: 2.1.0", "version: 2.2.0"))
    planned = document(project, capsys, "--stack", "dev", "--base", "HEAD")
    touched = {change["name"] for change in planned["changes"]}
    assert touched
    assert all(name.startswith("churn-scorer") or name == "registry-index-object"
               for name in touched), touched
    ops = {(c["type"], c["name"]): c["op"] for c in planned["changes"]}
    assert ops[("kubernetes:apps/v1:Deployment", "churn-scorer-worker")] == "update"
    assert ops[("aws:s3/bucketObjectv2:BucketObjectv2", "churn-scorer-metadata")] == "replace"
    worker = next(c for c in planned["changes"] if c["name"] == "churn-scorer-worker"
                  and c["type"] == "kubernetes:apps/v1:Deployment")
    assert "spec.template.metadata.labels.app.kubernetes.io/version" in worker["paths"]
    manifest = planned["manifest"]
    assert manifest["summary"] == "1 changed (1 minor), 5 unchanged"


def test_pinned_stacks_do_not_move_with_the_working_tree(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    models.write_text(models.read_text().replace("version: 2.1.0", "version: 2.2.0"))
    assert document(project, capsys, "--stack", "prod", "--base", "HEAD")["changes"] == []


def test_moving_a_stack_to_another_namespace_is_a_replacement(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    stack = project.root / "stacks/Pulumi.risk-prod.yaml"
    stack.write_text(stack.read_text().replace("namespace: risk-prod", "namespace: risk-live"))
    planned = document(project, capsys, "--stack", "risk-prod", "--base", "HEAD")
    kubernetes = [c for c in planned["changes"] if c["type"].startswith("kubernetes:")
                  and not c["type"].startswith("kubernetes:core/v1:Namespace")]
    assert kubernetes
    assert {c["op"] for c in kubernetes} == {"replace"}


def test_a_changed_selector_or_bucket_name_is_a_replacement() -> None:
    def registration(type_: str, inputs: dict[str, Any]) -> Registration:
        return Registration(type=type_, name="x", urn=f"urn::{type_}::x", parent="",
                            custom=True, inputs=inputs)

    deployment = "kubernetes:apps/v1:Deployment"
    (change,) = resource_changes(
        [registration(deployment, {"spec": {"selector": {"matchLabels": {"a": "1"}}}})],
        [registration(deployment, {"spec": {"selector": {"matchLabels": {"a": "2"}}}})])
    assert (change.op, change.replaced_by) == ("replace", ("spec.selector.matchLabels.a",))
    bucket = "aws:s3/bucket:Bucket"
    (change,) = resource_changes([registration(bucket, {"bucketPrefix": "a-"})],
                                 [registration(bucket, {"bucketPrefix": "b-"})])
    assert change.op == "replace"
    (change,) = resource_changes([registration(bucket, {"tags": {"v": "1"}})],
                                 [registration(bucket, {"tags": {"v": "2"}})])
    assert change.op == "update"


def test_a_removed_model_is_deleted_but_its_registry_data_retained(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    text = models.read_text()
    start = text.index("  # On a GPU")
    models.write_text(text[:start] + text[text.index("  # A large language model"):])
    planned = document(project, capsys, "--stack", "dev", "--base", "HEAD")
    deletes = {c["name"]: c.get("retained", False) for c in planned["changes"]
               if c["op"] == "delete"}
    assert deletes["image-tagger-repo"] is True
    assert deletes["image-tagger-metadata"] is True
    assert deletes["image-tagger"] is False  # the Deployment goes
    assert planned["manifest"]["counts"]["removed"] == 1


def test_markdown_for_a_pull_request(project: GitRepo,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    models.write_text(models.read_text().replace("version: 1.4.2", "version: 1.4.9"))
    code, out, _ = plan(project, capsys, "--stack", "dev", "--base", "HEAD", "--format",
                        "markdown")
    assert code == 0
    assert out.startswith("## modelfleet plan: `dev`")
    assert "to update" in out
    assert "| ~ | `fraud-detector` | 1.4.2 → **1.4.9** | patch, 1 field(s) |" in out
    assert "**replaced** (key)" in out


def test_secrets_are_shown_never_decrypted(project: GitRepo,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    stack = project.root / "stacks/Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace(
        "modelfleet:kubeconfig: ml-dev",
        "modelfleet:kubeconfig:\n    secure: v1:AAAAAAAAAAAAAAAA:ZW5jcnlwdGVk"))
    code, out, _ = plan(project, capsys, "--stack", "dev")
    assert code == 0
    assert "Secrets (not decrypted): modelfleet:kubeconfig" in out
    planned = document(project, capsys, "--stack", "dev")
    (provider,) = [r for r in planned["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    assert "ZW5jcnlwdGVk" not in json.dumps(planned)


def test_a_bad_manifest_plans_nothing(project: GitRepo,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    text = models.read_text()
    line = text[:text.index("port: 9000")].count("\n") + 1
    models.write_text(text.replace("port: 9000", "port: 90"))
    code, out, err = plan(project, capsys, "--stack", "dev")
    assert code == 1
    assert out == ""
    assert f"models.yaml:{line}: model 'product-recommender': serving.port: must be at least " \
           "1024, got 90" in err.replace("(environment 'dev'): ", "")
    assert err.rstrip().endswith("nothing was planned")


def test_an_unknown_stack_fails_clearly(project: GitRepo,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(project, capsys, "--stack", "qa")
    assert code == 1
    assert err.startswith("error: no stack 'qa': stacks/Pulumi.qa.yaml does not exist")


def test_progress_is_reported(project: GitRepo) -> None:
    messages: list[str] = []
    with inside(project.root):
        plan_stack(project.root, "dev", base="HEAD", progress=messages.append)
    assert messages[-1].startswith("base HEAD: ")
    assert any(message.startswith("plan: ") for message in messages)


def test_rendered_objects_of_every_shipped_stack_pass_the_validators(
        project: GitRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rendered = tmp_path / "rendered"
    for stack in SHIPPED:
        code, _, err = plan(project, capsys, "--stack", stack, "--render", str(rendered / stack))
        assert code == 0, err
        assert "rendered " in err
    objects = [(path, yaml.safe_load(path.read_text()))
               for path in sorted(rendered.rglob("kubernetes/*.yaml"))]
    assert len(objects) > 50
    problems = [f"{path.parent.parent.name}/{path.name} {version}: {error}"
                for path, obj in objects if not is_custom(obj)
                for version in kubernetes_versions() for error in schema_errors(obj, version)]
    assert problems == []
    aws = list(rendered.rglob("aws/*.json"))
    assert all(json.loads(path.read_text())["type"].startswith("aws:") for path in aws)
    report = run_checkov(rendered)
    assert [f"{c['check_id']} {c['file_path']}" for c in report["failed"]] == []
    assert len(report["passed"]) > 500


def test_only_a_content_change_uploads_an_artifact_again(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    model = project.root / "artifacts/churn-scorer/model.joblib"
    model.touch()  # a new timestamp, the same bytes: nothing to upload
    assert document(project, capsys, "--stack", "dev", "--base", "HEAD")["changes"] == []
    model.write_bytes(model.read_bytes() + b"\0")
    changes = document(project, capsys, "--stack", "dev", "--base", "HEAD")["changes"]
    # The metadata record lists each uploaded file's sha256: it is rewritten too.
    assert [(c["op"], c["name"], c["paths"]) for c in changes] == [
        ("update", "churn-scorer-artifact/model.joblib", ["source.sha256"]),
        ("update", "churn-scorer-metadata", ["content"])]
