"""The registry and the images under the mock runtime: security, retention, records, identity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from modelfleet.release.release import file_sha256
from planner.simulate import ProgramFailed, Simulation
from tests.deploy import changed, deploy
from tests.gitrepo import GitRepo

BUCKET = "aws:s3/bucket:Bucket"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
REPOSITORY = "aws:ecr/repository:Repository"
IMAGE = "docker:index/image:Image"
REF = "registry.example/ranker@sha256:" + "f" * 64


def manifest(fraud: str = "1.4.2", churn: str = "2.1.0", ranker: bool = True) -> str:
    text = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: {fraud}
    stage: approved
    artifact: {{uri: "s3://training-output/fraud/model.joblib"}}
    image:
      build: {{context: images/sklearn, args: {{PYTHON_VERSION: "3.11"}}}}
    serving: {{}}
  - name: churn
    team: growth
    version: {churn}
    artifact: {{path: artifacts/churn}}
    image: {{build: {{context: images/sklearn}}}}
    batch: {{}}
"""
    if ranker:
        text += f"""\
  - name: ranker
    team: growth
    version: 0.3.0
    artifact: {{path: artifacts/ranker.joblib}}
    image: {{ref: "{REF}"}}
    serving: {{}}
"""
    return text


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    repo.write("images/sklearn/Dockerfile", "FROM python:3.11-slim\n")
    repo.write("artifacts/churn/model.joblib", "churn weights v1")
    repo.write("artifacts/churn/config/features.json", '["tenure", "plan"]')
    repo.write("artifacts/ranker.joblib", "ranker weights")
    repo.write("models.yaml", manifest())
    repo.commit("three models")
    return repo


@pytest.fixture
def dev(project: GitRepo) -> Simulation:
    return deploy(project.root / "models.yaml")


def json_content(simulation: Simulation, name: str) -> dict[str, Any]:
    content = simulation.find(OBJECT, name).inputs["content"]
    return dict(json.loads(content))


def test_bucket_is_versioned_encrypted_private_and_owner_enforced(dev: Simulation) -> None:
    versioning = dev.find("aws:s3/bucketVersioning:BucketVersioning", "registry-versioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    key = dev.find("aws:kms/key:Key", "registry-key")
    assert key.inputs["enableKeyRotation"] is True
    encryption = dev.find("aws:s3/bucketServerSideEncryptionConfiguration:"
                          "BucketServerSideEncryptionConfiguration", "registry-encryption")
    (rule,) = encryption.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": key.outputs["arn"]}
    assert rule["bucketKeyEnabled"] is True
    block = dev.find("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                     "registry-public-access").inputs
    assert [block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                               "restrictPublicBuckets")] == [True] * 4
    ownership = dev.find("aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                         "registry-ownership")
    assert ownership.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_bucket_policy_denies_every_request_without_tls(dev: Simulation) -> None:
    bucket = dev.find(BUCKET, "registry-bucket")
    policy = dev.find("aws:s3/bucketPolicy:BucketPolicy", "registry-policy")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    arn = bucket.outputs["arn"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [arn, f"{arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    public_access = dev.find("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                             "registry-public-access")
    assert public_access.urn in policy.dependencies


def test_lifecycle_expires_only_noncurrent_versions_and_stale_uploads(
        project: GitRepo, dev: Simulation) -> None:
    lifecycle = dev.find("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                         "registry-lifecycle")
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    assert set(rules) == {"expire-noncurrent-versions", "abort-incomplete-multipart-uploads"}
    assert all(rule["status"] == "Enabled" and "filter" in rule for rule in rules.values())
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {
        "noncurrentDays": 90}
    assert "expiration" not in rules["expire-noncurrent-versions"]
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 7}
    versioning = dev.find("aws:s3/bucketVersioning:BucketVersioning", "registry-versioning")
    assert versioning.urn in lifecycle.dependencies

    custom = deploy(project.root / "models.yaml",
                    config={"modelfleet:noncurrentVersionDays": "30"})
    rules = custom.find("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                        "registry-lifecycle").inputs["rules"]
    assert rules[0]["noncurrentVersionExpiration"] == {"noncurrentDays": 30}


def test_a_key_from_config_replaces_the_stacks_own(project: GitRepo) -> None:
    arn = "arn:aws:kms:eu-west-1:123456789012:key/organisation-key"
    simulation = deploy(project.root / "models.yaml", config={"modelfleet:kmsKeyArn": arn})
    assert simulation.of_type("aws:kms/key:Key") == []
    encryption = simulation.find("aws:s3/bucketServerSideEncryptionConfiguration:"
                                 "BucketServerSideEncryptionConfiguration", "registry-encryption")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"][
        "kmsMasterKeyId"] == arn
    for repository in simulation.of_type(REPOSITORY):
        assert repository.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": arn}]


def test_data_survives_destroy_and_removal(dev: Simulation) -> None:
    for name in ("registry-bucket",):
        bucket = dev.find(BUCKET, name)
        assert (bucket.protect, bucket.retain_on_delete) == (True, True)
        assert bucket.inputs["forceDestroy"] is False
    key = dev.find("aws:kms/key:Key", "registry-key")
    assert (key.protect, key.retain_on_delete) == (True, True)
    guard_rails = [r for r in dev.registrations if r.type.startswith("aws:s3/bucket")
                   and r.type not in (BUCKET, OBJECT)]
    assert len(guard_rails) == 6
    assert all(r.retain_on_delete for r in guard_rails), "deleting these would unguard the bucket"
    repositories = dev.of_type(REPOSITORY)
    assert repositories
    assert all(r.retain_on_delete and r.inputs["forceDelete"] is False for r in repositories)
    objects = dev.of_type(OBJECT)
    assert objects
    assert all(r.retain_on_delete for r in objects)


def test_one_scanned_immutable_encrypted_repository_per_model(dev: Simulation) -> None:
    repositories = {r.inputs["name"]: r.inputs for r in dev.of_type(REPOSITORY)}
    assert sorted(repositories) == ["modelfleet/dev/churn", "modelfleet/dev/fraud",
                                    "modelfleet/dev/ranker"]
    key_arn = dev.find("aws:kms/key:Key", "registry-key").outputs["arn"]
    for inputs in repositories.values():
        assert inputs["imageTagMutability"] == "IMMUTABLE"
        assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert inputs["encryptionConfigurations"] == [{"encryptionType": "KMS",
                                                       "kmsKey": key_arn}]
    policies = dev.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(policies) == 3
    for policy in policies:
        (rule,) = json.loads(policy.inputs["policy"])["rules"]
        assert rule["selection"]["tagStatus"] == "untagged", "tagged images are model versions"
        assert rule["action"] == {"type": "expire"}


def test_build_pushes_a_version_tag_with_ecr_credentials_and_deploys_the_digest(
        dev: Simulation) -> None:
    image = dev.find(IMAGE, "fraud-image")
    repository = dev.find(REPOSITORY, "fraud-repo")
    url = repository.outputs["repositoryUrl"]
    build_digest = dev.outputs["manifest"]["builds"]["fraud"].removeprefix("sha256:")
    assert image.inputs["imageName"] == f"{url}:1.4.2-{build_digest[:12]}", \
        "tagged with the version and what it is built from: a runtime change gets a tag of its own"
    build = image.inputs["build"]
    assert build["args"] == {"PYTHON_VERSION": "3.11", "MODEL_NAME": "fraud",
                             "MODEL_VERSION": "1.4.2"}
    assert build["platform"] == "linux/amd64"
    assert build["context"].endswith("images/sklearn")
    assert build["dockerfile"] == build["context"] + "/Dockerfile"
    assert image.inputs["registry"] == {"server": url, "username": "AWS",
                                        "password": "ecr-token"}
    assert image.inputs["buildOnPreview"] is False
    record = json_content(dev, "fraud-metadata")
    assert record["image"] == image.outputs["repoDigest"]
    assert "@sha256:" in record["image"]


def test_platform_comes_from_stack_config(project: GitRepo) -> None:
    arm = deploy(project.root / "models.yaml", config={"modelfleet:imagePlatform": "linux/arm64"})
    assert arm.find(IMAGE, "fraud-image").inputs["build"]["platform"] == "linux/arm64"


def test_a_prebuilt_ref_passes_through_unbuilt(dev: Simulation) -> None:
    assert sorted(r.name for r in dev.of_type(IMAGE)) == ["churn-image", "fraud-image"]
    assert json_content(dev, "ranker-metadata")["image"] == REF
    assert dev.outputs["models"]["ranker"]["image"] == REF


def test_a_local_folder_is_uploaded_file_by_file_under_the_version(dev: Simulation) -> None:
    uploads = {r.inputs["key"]: r for r in dev.of_type(OBJECT)
               if r.name.startswith("churn-artifact")}
    assert sorted(uploads) == ["models/churn/2.1.0/artifact/config/features.json",
                               "models/churn/2.1.0/artifact/model.joblib"]
    model = uploads["models/churn/2.1.0/artifact/model.joblib"]
    assert Path(model.inputs["source"].path).read_text() == "churn weights v1"
    assert model.inputs["checksumAlgorithm"] == "SHA256"
    record = json_content(dev, "churn-metadata")
    assert record["artifact"]["uri"].endswith("/models/churn/2.1.0/artifact/")
    assert [f["key"] for f in record["artifact"]["files"]] == ["config/features.json",
                                                               "model.joblib"]


def test_a_local_file_is_uploaded_and_is_the_model_uri(dev: Simulation) -> None:
    upload = dev.find(OBJECT, "ranker-artifact/ranker.joblib")
    assert upload.inputs["key"] == "models/ranker/0.3.0/artifact/ranker.joblib"
    record = json_content(dev, "ranker-metadata")
    bucket = dev.find(BUCKET, "registry-bucket").outputs["bucket"]
    assert record["artifact"]["uri"] == (
        f"s3://{bucket}/models/ranker/0.3.0/artifact/ranker.joblib")
    assert len(record["artifact"]["sha256"]) == 64


def test_a_referenced_artifact_is_not_copied(dev: Simulation) -> None:
    assert not [r for r in dev.of_type(OBJECT) if r.name.startswith("fraud-artifact")]
    assert json_content(dev, "fraud-metadata")["artifact"]["uri"] == (
        "s3://training-output/fraud/model.joblib")


def test_metadata_records_the_version_and_where_it_came_from(project: GitRepo,
                                                             dev: Simulation) -> None:
    record = json_content(dev, "fraud-metadata")
    sha = project.repo.head.commit.hexsha
    assert dev.find(OBJECT, "fraud-metadata").inputs["key"] == "models/fraud/1.4.2/metadata.json"
    assert {k: record[k] for k in ("name", "version", "team", "stage", "environment")} == {
        "name": "fraud", "version": "1.4.2", "team": "risk", "stage": "approved",
        "environment": "dev"}
    assert record["manifest"]["commit"] == sha
    text = (project.root / "models.yaml").read_text()
    assert record["manifest"]["digest"] == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_index_lists_every_model_with_its_version_and_metadata(project: GitRepo,
                                                               dev: Simulation) -> None:
    index = json_content(dev, "registry-index-object")
    assert dev.find(OBJECT, "registry-index-object").inputs["key"] == "index.json"
    assert [(m["name"], m["version"], m["metadata"]) for m in index["models"]] == [
        ("fraud", "1.4.2", "models/fraud/1.4.2/metadata.json"),
        ("churn", "2.1.0", "models/churn/2.1.0/metadata.json"),
        ("ranker", "0.3.0", "models/ranker/0.3.0/metadata.json")]
    assert {m["commit"] for m in index["models"]} == {project.repo.head.commit.hexsha}
    assert index["models"][2]["image"] == REF
    records = {r.urn for r in dev.of_type(OBJECT) if r.name.endswith("-metadata")}
    assert len(records) == 3
    assert records <= set(dev.find(OBJECT, "registry-index-object").dependencies), \
        "the index is written after the records it names"


def test_every_taggable_aws_resource_carries_provenance(project: GitRepo,
                                                        dev: Simulation) -> None:
    sha = project.repo.head.commit.hexsha
    tagged = [r for r in dev.registrations if "tags" in r.inputs]
    assert {r.type for r in tagged} >= {BUCKET, "aws:kms/key:Key", REPOSITORY, OBJECT}
    for registration in tagged:
        tags = registration.inputs["tags"]
        assert tags["managed-by"] == "modelfleet"
        assert tags["environment"] == "dev"
        model = registration.name.split("-")[0]
        if model in ("fraud", "churn", "ranker"):
            assert tags["model"] == model
            assert tags["team"] in ("risk", "growth")
            assert tags["manifest-commit"] == sha
            assert tags["version"]


def test_a_version_bump_changes_that_models_image_tag_metadata_and_the_index_only(
        project: GitRepo, dev: Simulation) -> None:
    project.write("models.yaml", manifest(fraud="1.5.0"))
    project.commit("fraud 1.5.0")
    bumped = deploy(project.root / "models.yaml")
    assert {r.key for r in bumped.registrations} == {r.key for r in dev.registrations}, \
        "same Pulumi names: nothing is replaced by name"
    touched = changed(dev, bumped)
    assert {(IMAGE, "fraud-image"), (OBJECT, "fraud-metadata"),
            (OBJECT, "registry-index-object")} <= touched
    assert {name for _, name in touched} - {"registry-index-object"} <= {
        r.name for r in dev.registrations if r.name.startswith("fraud")}, \
        "a bump of fraud touches fraud's resources (which carry its version) and the index"
    registry = {r.key for r in dev.registrations if r.name.startswith("registry-")}
    assert touched & registry == {(OBJECT, "registry-index-object")}
    image = bumped.find(IMAGE, "fraud-image").inputs
    assert image["imageName"].rpartition(":")[2].startswith("1.5.0-")
    assert bumped.find(REPOSITORY, "fraud-repo").inputs["name"] == "modelfleet/dev/fraud"
    assert bumped.find(OBJECT, "fraud-metadata").inputs["key"] == \
        "models/fraud/1.5.0/metadata.json"


def test_a_version_bump_of_an_uploaded_artifact_writes_new_keys(project: GitRepo,
                                                                dev: Simulation) -> None:
    project.write("models.yaml", manifest(churn="2.2.0"))
    project.commit("churn 2.2.0")
    bumped = deploy(project.root / "models.yaml")
    keys = sorted(r.inputs["key"] for r in bumped.of_type(OBJECT)
                  if r.name.startswith("churn-artifact"))
    assert keys == ["models/churn/2.2.0/artifact/config/features.json",
                    "models/churn/2.2.0/artifact/model.joblib"]
    previous = [r for r in dev.of_type(OBJECT) if r.name.startswith("churn-artifact")]
    assert all(r.retain_on_delete for r in previous), \
        "a key change replaces the object; the 2.1.0 object must be kept, not deleted"
    assert all(not name.startswith("fraud") for _, name in changed(dev, bumped))


def test_an_unchanged_manifest_changes_nothing(project: GitRepo, dev: Simulation) -> None:
    project.write("README.md", "unrelated commit")
    project.commit("docs")
    assert changed(dev, deploy(project.root / "models.yaml")) == set()


def test_a_change_to_another_model_leaves_this_models_provenance_alone(
        project: GitRepo, dev: Simulation) -> None:
    project.write("models.yaml", manifest(churn="2.2.0"))
    project.commit("churn 2.2.0")
    after = deploy(project.root / "models.yaml")
    assert not {key for key in changed(dev, after) if key[1].startswith(("fraud", "ranker"))}
    churn_tags = after.find(REPOSITORY, "churn-repo").inputs["tags"]
    assert churn_tags["manifest-commit"] == project.repo.head.commit.hexsha
    fraud_tags = after.find(REPOSITORY, "fraud-repo").inputs["tags"]
    assert fraud_tags["manifest-commit"] == project.repo.head.commit.parents[0].hexsha


def test_removing_a_model_keeps_its_objects_and_repository(project: GitRepo,
                                                           dev: Simulation) -> None:
    project.write("models.yaml", manifest(ranker=False))
    project.commit("retire ranker")
    after = deploy(project.root / "models.yaml")
    declared = {r.key for r in after.registrations}
    gone = {key for key in changed(dev, after) if key not in declared}
    assert ("modelfleet:fleet:Model", "ranker") not in declared
    assert {name for _, name in gone} == {r.name for r in dev.registrations if r.custom
                                          and r.name.startswith("ranker")}
    data = {(REPOSITORY, "ranker-repo"), (OBJECT, "ranker-artifact/ranker.joblib"),
            (OBJECT, "ranker-metadata")}
    assert data <= gone
    for type_, name in data:
        assert dev.find(type_, name).retain_on_delete, f"{name} would be deleted"
    # Besides its own resources, only what lists every model: the index, and the stack's
    # alert rules and dashboard, which drop its rule group and its row.
    assert {name for _, name in changed(dev, after)} - {n for _, n in gone} == {
        "registry-index-object", "monitoring-rules", "monitoring-dashboard"}


def test_two_stacks_get_distinct_bucket_names(project: GitRepo) -> None:
    dev = deploy(project.root / "models.yaml", stack="dev", environment="dev")
    prod = deploy(project.root / "models.yaml", stack="prod", environment="prod")
    prefixes = {sim.find(BUCKET, "registry-bucket").inputs["bucketPrefix"] for sim in (dev, prod)}
    assert prefixes == {"modelfleet-dev-", "modelfleet-prod-"}
    repositories = {r.inputs["name"] for sim in (dev, prod) for r in sim.of_type(REPOSITORY)}
    assert len(repositories) == 6


def test_a_pinned_ref_uploads_and_builds_that_refs_files(project: GitRepo) -> None:
    project.tag("v1")
    project.write("artifacts/churn/model.joblib", "churn weights v2, uncommitted")
    pinned = deploy(project.root / "models.yaml", config={"modelfleet:manifestRef": "v1"})
    upload = pinned.find(OBJECT, "churn-artifact/model.joblib")
    assert Path(upload.inputs["source"].path).read_text() == "churn weights v1"
    context = pinned.find(IMAGE, "churn-image").inputs["build"]["context"]
    assert ".modelfleet/checkout/" in context
    assert (Path(context) / "Dockerfile").read_text() == "FROM python:3.11-slim\n"


def test_no_deprecated_aws_resource_is_declared(dev: Simulation) -> None:
    deprecated = {"aws:s3/bucketV2:BucketV2", "aws:s3/bucketObject:BucketObject",
                  "aws:s3/bucketVersioningV2:BucketVersioningV2",
                  "aws:s3/bucketServerSideEncryptionConfigurationV2:"
                  "BucketServerSideEncryptionConfigurationV2",
                  "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"}
    assert not {r.type for r in dev.registrations} & deprecated
    bucket = dev.find(BUCKET, "registry-bucket").inputs
    assert not {"versioning", "lifecycleRules", "serverSideEncryptionConfiguration",
                "policy", "acl"} & bucket.keys(), "inline bucket settings are deprecated"


def test_an_artifact_that_does_not_match_its_pin_is_refused(project: GitRepo) -> None:
    project.write("models.yaml", manifest().replace(
        "artifact: {path: artifacts/ranker.joblib}",
        f"artifact: {{path: artifacts/ranker.joblib, sha256: '{'0' * 64}'}}"))
    with pytest.raises(ProgramFailed) as failure:
        deploy(project.root / "models.yaml")
    assert isinstance(failure.value.error, pulumi.RunError)
    assert failure.value.simulation.registrations == [], "nothing may be declared"
    actual = file_sha256(project.root / "artifacts/ranker.joblib")
    assert failure.value.simulation.messages("error") == [
        f"{project.root / 'models.yaml'}:20: model 'ranker' (environment 'dev'): "
        f"artifact.sha256: 'artifacts/ranker.joblib' has sha256 {actual}, "
        f"not the pinned {'0' * 64}"]


PINNED_VERSION = "3HL4kqtJlcpXroDTDmJ.wLeqS7qPk2Zt"


def test_a_pinned_object_version_reaches_metadata_env_and_role(repo: GitRepo) -> None:
    repo.write("images/sklearn/Dockerfile", "FROM python:3.11-slim\n")
    repo.write("models.yaml", f"""\
apiVersion: modelfleet/v1
models:
  - name: churn
    team: growth
    version: 2.1.0
    artifact: {{uri: "s3://training-output/churn/model.joblib", versionId: "{PINNED_VERSION}"}}
    image: {{build: {{context: images/sklearn}}}}
    batch:
      runs: [{{id: nightly, input: "s3://exports/day/", partitions: 2}}]
""")
    repo.commit("churn pinned to one object version")
    simulation = deploy(repo.root / "models.yaml")
    record = json_content(simulation, "churn-metadata")
    assert record["artifact"] == {"uri": "s3://training-output/churn/model.joblib",
                                  "sha256": None, "files": [], "versionId": PINNED_VERSION}
    for kind, name in (("apps/v1:Deployment", "churn-worker"), ("batch/v1:Job", "churn-nightly")):
        pod = simulation.find(f"kubernetes:{kind}", name).inputs["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert env["MODEL_URI"] == "s3://training-output/churn/model.joblib"
        assert env["MODEL_OBJECT_VERSION"] == PINNED_VERSION
    policy = json.loads(simulation.find("aws:iam/rolePolicy:RolePolicy",
                                        "churn-worker-policy").inputs["policy"])
    versioned = [s for s in policy["Statement"] if "s3:GetObjectVersion" in s["Action"]]
    assert versioned == [{"Sid": "ReadArtifactVersion", "Effect": "Allow",
                          "Action": ["s3:GetObjectVersion"],
                          "Resource": "arn:aws:s3:::training-output/churn/model.joblib",
                          "Condition": {"StringEquals": {"s3:VersionId": PINNED_VERSION}}}]
    assert not [s for s in policy["Statement"] if "s3:GetObject" in s["Action"]
                and "training-output" in json.dumps(s["Resource"])], \
        "the current object (any version but the pin) is not readable"


def test_an_unpinned_artifact_gets_no_object_version_anywhere(dev: Simulation) -> None:
    assert "versionId" not in json_content(dev, "fraud-metadata")["artifact"]
    for registration in dev.registrations:
        assert "MODEL_OBJECT_VERSION" not in json.dumps(registration.inputs, default=str)
        assert "s3:GetObjectVersion" not in json.dumps(registration.inputs, default=str)
