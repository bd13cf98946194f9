"""The model registry of a stack: one encrypted, versioned, private S3 bucket.

Data outlives the program: the bucket and its key are protected and retained
on delete, and so is every setting resource around the bucket, because
deleting `BucketVersioning` or `BucketPublicAccessBlock` would switch the
protection off on a bucket that is still there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.provenance import StackScope

BUCKET_PREFIX_MAX = 37  # AWS: bucket_prefix leaves room for a unique suffix of 26 characters


@dataclass(frozen=True)
class ModelRegistryArgs:
    scope: StackScope
    kms_key_arn: str | None = None
    """An existing KMS key to encrypt with; None: the registry makes its own, rotated yearly."""
    noncurrent_version_days: int = 90
    """Days an overwritten or deleted object version is kept before it expires."""
    abort_multipart_days: int = 7
    """Days after which incomplete multipart uploads are cleaned up."""


class ModelRegistry(pulumi.ComponentResource):
    """The stack's bucket for artifacts and metadata, with its key and its guard rails."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ModelRegistryArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:registry:ModelRegistry", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        guarded = pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(protect=True))
        tags = args.scope.aws_tags()

        key_arn = (pulumi.Output.from_input(args.kms_key_arn) if args.kms_key_arn
                   else registry_key(f"{name}-key", args.scope, tags, guarded))
        bucket = aws.s3.Bucket(f"{name}-bucket", bucket_prefix=bucket_prefix(args.scope),
                               force_destroy=False, tags=tags, opts=guarded)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.id,
            versioning_configuration={"status": "Enabled"}, opts=kept)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms", "kms_master_key_id": key_arn},
                    "bucket_key_enabled": True}],
            opts=kept)
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=kept)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"}, opts=kept)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bucket.id, rules=lifecycle_rules(args),
            opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(
                depends_on=[versioning])))
        aws.s3.BucketPolicy(
            f"{name}-policy", bucket=bucket.id, policy=bucket.arn.apply(tls_only_policy),
            opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(
                depends_on=[public_access])))

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.key_arn = key_arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "key_arn": self.key_arn})


def bucket_prefix(scope: StackScope) -> str:
    """`modelfleet-<stack>-`: distinct per stack, stable for the stack's life."""
    stack = re.sub(r"[^a-z0-9-]+", "-", scope.stack.lower()).strip("-")
    prefix = f"{scope.project.lower()}-{stack}"[: BUCKET_PREFIX_MAX - 1].rstrip("-")
    return prefix + "-"


def registry_key(name: str, scope: StackScope, tags: dict[str, str],
                 opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    key = aws.kms.Key(name, description=f"modelfleet registry of stack {scope.stack}",
                      enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=opts)
    aws.kms.Alias(f"{name}-alias", name=f"alias/{bucket_prefix(scope).rstrip('-')}",
                  target_key_id=key.key_id, opts=opts)
    return key.arn


def lifecycle_rules(args: ModelRegistryArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Expire only *noncurrent* versions: a model version's objects stay current forever."""
    everything = aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix="")
    return [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-noncurrent-versions", status="Enabled", filter=everything,
            noncurrent_version_expiration=aws.s3.
            BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=args.noncurrent_version_days)),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads", status="Enabled", filter=everything,
            abort_incomplete_multipart_upload=aws.s3.
            BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=args.abort_multipart_days)),
    ]


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })
