"""What only the cloud knows, shown by reference: `${registry-bucket.arn}`, never a made-up value.

A plan runs the program as a preview. Left unknown, an output stops every
`.apply` that reads it, so an IAM policy or a metadata document built from an
ARN would show as one opaque "(known after apply)". The planner's mock answers
each output the provider computes (ids, ARNs, generated names, URLs, digests)
with a reference `${<Pulumi resource name>.<output property>}`, in the manner of
Terraform's `aws_s3_bucket.x.arn`: the applies run, and the documents they
build can be read and compared, with the references inside. Inputs echo as given;
an output not listed here stays unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockResourceArgs

COMPUTED: dict[str, tuple[str, ...]] = {
    "aws:s3/bucket:Bucket": ("arn", "bucket", "bucketDomainName", "bucketRegionalDomainName",
                             "hostedZoneId", "region"),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("arn", "etag", "versionId"),
    "aws:kms/key:Key": ("arn", "keyId"),
    "aws:kms/alias:Alias": ("arn", "targetKeyArn"),
    "aws:ecr/repository:Repository": ("arn", "registryId", "repositoryUrl"),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("registryId",),
    "aws:iam/role:Role": ("arn", "name", "uniqueId", "createDate"),
    "aws:iam/rolePolicy:RolePolicy": ("name",),
    "aws:sqs/queue:Queue": ("arn", "url"),
    "docker:index/image:Image": ("repoDigest", "baseImageName"),
}
"""Per resource type, the outputs its provider computes (a property given as an input echoes)."""

CALL_RESULTS: dict[str, tuple[str, ...]] = {
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": (
        "authorizationToken", "expiresAt", "password", "proxyEndpoint", "userName"),
}
"""Per data-source function, the fields of its answer (all of them known to the cloud only)."""

PLACEHOLDER = re.compile(r"\$\{([^{}]+)\.([A-Za-z][A-Za-z0-9]*)\}")
"""`${name.property}`: Pulumi names may hold dots and slashes; property names hold neither."""


def reference(name: str, prop: str) -> str:
    """`${registry-bucket.arn}`."""
    return "${" + name + "." + prop + "}"


def references_in(value: Any) -> Iterator[tuple[str, str]]:
    """Every `(resource name, property)` referenced anywhere in a value (strings, dicts, lists)."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield match.group(1), match.group(2)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from references_in(item)


def placeholder_outputs(args: MockResourceArgs) -> dict[str, Any]:
    """The outputs a provider would compute for this resource, as references; `id` included.

    Engine-level resources (providers, stack references) get nothing: their
    outputs stay unknown, as in `pulumi preview`.
    """
    if args.typ.startswith("pulumi:"):
        return {}
    outputs: dict[str, Any] = {"id": reference(args.name, "id")}
    for prop in COMPUTED.get(args.typ, ()):
        if args.inputs.get(prop) in (None, ""):
            outputs[prop] = reference(args.name, prop)
    if args.typ.startswith("kubernetes:"):
        metadata = dict(args.inputs.get("metadata") or {})
        if not metadata.get("name"):
            metadata["name"] = reference(args.name, "metadata.name")
            outputs["metadata"] = metadata
    return outputs


def placeholder_call(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    """Data sources the program reads (an ECR login), answered by reference too."""
    function = args.token.split(":")[-1]
    return {field: reference(function, field) for field in CALL_RESULTS.get(args.token, ())}
