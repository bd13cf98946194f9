"""The policy pack: each policy catches a bad resource, and passes every resource we declare."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from tests.conftest import PROJECT
from tests.shipped import copy_project, run_shipped_stack

sys.path.insert(0, str(PROJECT / "policy"))
from policies import POLICIES

GOOD_POD: dict[str, Any] = {
    "automountServiceAccountToken": False,
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
        "name": "app", "image": "registry.example/app@sha256:" + "a" * 64,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"cpu": "1", "memory": "1Gi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
    }],
}


def options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=protect, ignore_changes=[], delete_before_replace=None,
                                 aliases=[], custom_timeouts=None,  # type: ignore[arg-type]
                                 additional_secret_outputs=[])


def violations(type_: str, props: dict[str, Any], protect: bool = False) -> dict[str, list[str]]:
    """Every violation, by policy name, that the pack reports for one resource."""
    args = ResourceValidationArgs(type_, props, f"urn:pulumi:test::p::{type_}::r", "r",
                                  options(protect), None)
    found: dict[str, list[str]] = {}
    for policy in POLICIES:
        messages: list[str] = []
        policy.validate(args, lambda message, urn=None, into=messages: into.append(message))
        if messages:
            found[policy.name] = messages
    return found


def deployment(pod: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"template": {"spec": pod}}}


def with_container(**changes: Any) -> dict[str, Any]:
    pod = {**GOOD_POD, "containers": [{**GOOD_POD["containers"][0], **changes}]}
    return deployment(pod)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return copy_project(tmp_path_factory.mktemp("policy") / "project")


@pytest.mark.parametrize("stack", ["dev", "prod", "growth-dev"])
def test_the_programs_own_resources_pass_every_policy(project: Any, stack: str) -> None:
    simulation = run_shipped_stack(project, stack)
    found = {f"{r.type} {r.name}": v for r in simulation.registrations if r.custom
             if (v := violations(r.type, r.inputs, r.protect))}
    assert found == {}
    assert len(simulation.registrations) > 50


@pytest.mark.parametrize(("policy", "type_", "props", "protect"), [
    ("s3-no-public-acl", "aws:s3/bucket:Bucket", {"acl": "public-read"}, False),
    ("s3-no-public-acl", "aws:s3/bucketAcl:BucketAcl", {"acl": "public-read-write"}, False),
    ("s3-public-access-blocked", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
     {"blockPublicAcls": True, "blockPublicPolicy": False, "ignorePublicAcls": True,
      "restrictPublicBuckets": True}, False),
    ("s3-policy-not-public", "aws:s3/bucketPolicy:BucketPolicy",
     {"policy": '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",'
                ' "Resource": "arn:aws:s3:::b/*"}]}'}, False),
    ("s3-encrypted-with-kms",
     "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
     {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}, False),
    ("s3-versioning-enabled", "aws:s3/bucketVersioning:BucketVersioning",
     {"versioningConfiguration": {"status": "Suspended"}}, False),
    ("s3-ownership-enforced", "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
     {"rule": {"objectOwnership": "ObjectWriter"}}, False),
    ("registry-protected", "aws:s3/bucket:Bucket", {"tags": {"managed-by": "modelfleet"}}, False),
    ("registry-protected", "aws:s3/bucket:Bucket",
     {"tags": {"managed-by": "modelfleet"}, "forceDestroy": True}, True),
    ("s3-current-resources", "aws:s3/bucketV2:BucketV2", {}, False),
    ("s3-current-resources", "aws:s3/bucket:Bucket", {"versioning": {"enabled": True}}, False),
    ("ecr-immutable-scanned-encrypted", "aws:ecr/repository:Repository",
     {"imageTagMutability": "MUTABLE", "imageScanningConfiguration": {"scanOnPush": True},
      "encryptionConfigurations": [{"encryptionType": "KMS"}]}, False),
    ("sqs-encrypted", "aws:sqs/queue:Queue", {"sqsManagedSseEnabled": False}, False),
    ("pods-not-privileged", "kubernetes:apps/v1:Deployment",
     with_container(securityContext={**GOOD_POD["containers"][0]["securityContext"],
                                     "privileged": True}), False),
    ("pods-not-privileged", "kubernetes:core/v1:Pod",
     {"spec": {**GOOD_POD, "hostNetwork": True}}, False),
    ("pods-not-privileged", "kubernetes:batch/v1:Job",
     deployment({**GOOD_POD, "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}), False),
    ("pods-hardened", "kubernetes:apps/v1:Deployment",
     with_container(image="registry.example/app:latest"), False),
    ("pods-hardened", "kubernetes:apps/v1:Deployment", with_container(resources={}), False),
    ("pods-hardened", "kubernetes:apps/v1:Deployment",
     deployment({**GOOD_POD, "automountServiceAccountToken": True}), False),
    ("deployments-probed", "kubernetes:apps/v1:Deployment",
     with_container(livenessProbe=None), False),
])
def test_each_policy_catches_a_bad_resource(policy: str, type_: str, props: dict[str, Any],
                                            protect: bool) -> None:
    assert policy in violations(type_, props, protect)


def test_a_well_formed_pod_of_someone_else_passes() -> None:
    assert violations("kubernetes:apps/v1:Deployment", deployment(GOOD_POD)) == {}


def test_a_plain_pod_fails_every_hardening_check() -> None:
    plain = deployment({"containers": [{"name": "app", "image": "nginx"}]})
    messages = violations("kubernetes:apps/v1:Deployment", plain)["pods-hardened"]
    assert len(messages) >= 7


def test_every_policy_is_mandatory() -> None:
    assert {policy.enforcement_level.value for policy in POLICIES} == {"mandatory"}


def test_a_value_known_only_after_the_update_stops_the_check_instead_of_failing() -> None:
    props = unknown_checking_proxy({"acl": UNKNOWN_STRING_VALUE})
    args = ResourceValidationArgs("aws:s3/bucket:Bucket", props, "urn", "r", options(), None)
    policy = next(p for p in POLICIES if p.name == "s3-no-public-acl")
    with pytest.raises(UnknownValueError):
        policy.validate(args, lambda *_: pytest.fail("no violation may be reported"))
