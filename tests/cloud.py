"""What AWS would answer, for tests that need applies to run: names, ARNs, URLs, digests.

Only tests use this. The offline planner deliberately invents nothing and
leaves these outputs unknown.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockResourceArgs

ACCOUNT = "123456789012"
REGION = "eu-west-1"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def simulate_outputs(args: MockResourceArgs,
                     previous_outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Outputs AWS, Docker and Kubernetes would report; `previous_outputs` are the stack's
    outputs from its last update, as a StackReference to itself reads them."""
    inputs = args.inputs
    if args.typ == "pulumi:pulumi:StackReference":
        return {"outputs": previous_outputs or {}, "secretOutputNames": []}
    if args.typ == "aws:s3/bucket:Bucket":
        name = inputs.get("bucket") or inputs.get("bucketPrefix", "") + "0123abcd"
        return {"bucket": name, "arn": f"arn:aws:s3:::{name}"}
    if args.typ == "aws:kms/key:Key":
        return {"arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{args.name}", "keyId": args.name}
    if args.typ == "aws:ecr/repository:Repository":
        return {"repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{inputs['name']}",
                "registryId": ACCOUNT,
                "arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{inputs['name']}"}
    if args.typ == "docker:index/image:Image":
        repository = str(inputs["imageName"]).rsplit(":", 1)[0]
        return {"repoDigest": f"{repository}@sha256:{_digest(inputs.get('build'))}"}
    if args.typ == "aws:iam/role:Role":
        return {"arn": f"arn:aws:iam::{ACCOUNT}:role/{args.name}", "name": args.name}
    if args.typ == "aws:sqs/queue:Queue":
        name = inputs.get("name", args.name)
        return {"url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
                "arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"}
    if args.typ.startswith("kubernetes:"):
        metadata = dict(inputs.get("metadata") or {})
        metadata.setdefault("name", args.name)
        return {"metadata": metadata}
    return {}


def respond_to_call(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
        return {"userName": "AWS", "password": "ecr-token", "authorizationToken": "QVdTOnRva2Vu",
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
                "expiresAt": "2026-11-29T00:00:00Z", "id": REGION, "region": REGION,
                "registryId": args.args.get("registryId", ACCOUNT)}
    if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "ci",
                "id": ACCOUNT}
    return {}
