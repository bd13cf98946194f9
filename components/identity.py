"""A workload's identity: a Kubernetes ServiceAccount bound to an IAM role through IRSA.

The role trusts exactly one service account in one namespace, through the
cluster's OIDC provider; what it may do is one inline policy, written by the
caller from the least it needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.provenance import Provenance

STS_AUDIENCE = "sts.amazonaws.com"
Statements = Callable[[Sequence[Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    provenance: Provenance
    cluster: ClusterSettings
    service_account: str
    component: str
    """`server`, `worker`: labels the service account like the pods that use it."""
    policy_inputs: Sequence[pulumi.Input[Any]]
    """Values (ARNs, bucket names) the statements are written from, once known."""
    statements: Statements
    """Builds the role's permissions from the resolved `policy_inputs`."""


class WorkloadIdentity(pulumi.ComponentResource):
    """IAM role + inline policy + annotated ServiceAccount."""

    role_arn: pulumi.Output[str]
    service_account_name: pulumi.Output[str]

    def __init__(self, name: str, args: WorkloadIdentityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:identity:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(trust_policy(args.cluster, args.service_account)),
            description=f"{args.component} of model {args.provenance.model} (modelfleet)",
            max_session_duration=3600,
            tags=args.provenance.aws_tags(),
            opts=child)
        aws.iam.RolePolicy(
            f"{name}-policy", role=role.id,
            policy=pulumi.Output.all(*args.policy_inputs).apply(
                lambda values: json.dumps({"Version": "2012-10-17",
                                           "Statement": args.statements(values)})),
            opts=child)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.service_account, namespace=args.cluster.object_namespace,
                labels=args.provenance.labels(args.component),
                annotations={"eks.amazonaws.com/role-arn": role.arn,
                             **args.provenance.annotations()}),
            automount_service_account_token=False,
            opts=child)
        self.role_arn = role.arn
        self.service_account_name = account.metadata.name
        self.register_outputs({"role_arn": self.role_arn,
                               "service_account_name": self.service_account_name})


def trust_policy(cluster: ClusterSettings, service_account: str) -> dict[str, Any]:
    """Only this service account, in this namespace, with tokens meant for STS."""
    issuer = cluster.oidc_provider_url
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": cluster.oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{cluster.namespace}:{service_account}",
                f"{issuer}:aud": STS_AUDIENCE,
            }},
        }],
    }


def read_prefix(bucket: str, prefix: str, sid: str) -> list[dict[str, Any]]:
    """Read objects under `prefix` of `bucket`, and list that prefix only."""
    return [
        {"Sid": f"{sid}Objects", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"},
        {"Sid": f"{sid}List", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
    ]


def read_uri(uri: str, sid: str, version_id: str | None = None) -> list[dict[str, Any]]:
    """Read one artifact given as `s3://bucket/key` (or everything below `key/`).

    With `version_id` (a pinned S3 object version): only `s3:GetObjectVersion` on that
    key, under the condition `s3:VersionId` equals the pin, and no `s3:GetObject`, so the
    role can read the pinned version and no other (not the current one either). A GET or
    HEAD that names a version needs `s3:GetObjectVersion` and not `s3:GetObject` (Amazon
    S3 API Reference, GetObject and HeadObject, "Permissions"); `s3:VersionId` is the
    condition key of `s3:GetObjectVersion` that filters by object version (Service
    Authorization Reference, "Actions, resources, and condition keys for Amazon S3").
    The model server asks for nothing else: boto3's `download_file` with `VersionId` is a
    HEAD and ranged GETs of that version. Read, not run: no IAM evaluates policies here.
    """
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if key.endswith("/"):
        return read_prefix(bucket, key, sid)
    if version_id:
        return [{"Sid": f"{sid}Version", "Effect": "Allow", "Action": ["s3:GetObjectVersion"],
                 "Resource": f"arn:aws:s3:::{bucket}/{key}",
                 "Condition": {"StringEquals": {"s3:VersionId": version_id}}}]
    return [{"Sid": f"{sid}Object", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": f"arn:aws:s3:::{bucket}/{key}"}]


def decrypt_with(key_arn: str) -> dict[str, Any]:
    return {"Sid": "DecryptRegistryObjects", "Effect": "Allow",
            "Action": ["kms:Decrypt"], "Resource": key_arn}
