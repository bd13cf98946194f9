"""CrossGuard policies for modelfleet stacks: nothing lost (invariant 3), secure by default (5).

They check every resource of the stack, modelfleet's own and anyone else's: a
public bucket or a privileged pod is a mandatory violation whoever declares it.
Properties arrive in camelCase; a value only the cloud knows (in a preview)
stops a check silently instead of failing it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

MANDATORY = EnforcementLevel.MANDATORY
ReportViolation = Callable[..., None]
"""`report(message)`; the pack's callback also takes an optional URN."""
Validation = Callable[[ResourceValidationArgs, ReportViolation], None]

BUCKET = "aws:s3/bucket:Bucket"
WORKLOADS = {
    "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet", "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod",
}
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
DEPRECATED_S3 = {
    "aws:s3/bucketV2:BucketV2", "aws:s3/bucketObject:BucketObject",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
    "aws:s3/bucketAclV2:BucketAclV2",
}


def for_types(types: Iterable[str], check: Validation) -> Validation:
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type in wanted:
            check(args, report)

    return validate


def _as_policy(document: Any) -> Mapping[str, Any]:
    if isinstance(document, str):
        try:
            parsed = json.loads(document)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return document if isinstance(document, Mapping) else {}


def _statements(document: Any) -> list[Mapping[str, Any]]:
    statements = _as_policy(document).get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    return [s for s in statements if isinstance(s, Mapping)]


# --- S3: invariant 3 (nothing lost) and 5 (secure by default) --------------------------------

def bucket_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    acl = args.props.get("acl")
    if acl in PUBLIC_ACLS:
        report(f"bucket ACL '{acl}' makes objects public")


def public_access_blocked(args: ResourceValidationArgs, report: ReportViolation) -> None:
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [key for key in keys if args.props.get(key) is not True]
    if off:
        report(f"public access must be blocked entirely; not set: {', '.join(off)}")


def bucket_policy_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for statement in _statements(args.props.get("policy")):
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, Mapping)
                                        and principal.get("AWS") in ("*", ["*"]))
        if statement.get("Effect") == "Allow" and everyone and not statement.get("Condition"):
            report("a bucket policy statement allows everyone ('Principal: *') without a "
                   "condition")


def encrypted_with_kms(args: ResourceValidationArgs, report: ReportViolation) -> None:
    rules = args.props.get("rules") or []
    algorithms = [(rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
                  for rule in rules]
    if not algorithms or any(a not in ("aws:kms", "aws:kms:dsse") for a in algorithms):
        report("objects must be encrypted with KMS (sseAlgorithm aws:kms)")


def versioning_enabled(args: ResourceValidationArgs, report: ReportViolation) -> None:
    status = (args.props.get("versioningConfiguration") or {}).get("status")
    if status != "Enabled":
        report(f"bucket versioning must be Enabled, not {status}: old versions are the "
               "registry's history")


def ownership_enforced(args: ResourceValidationArgs, report: ReportViolation) -> None:
    ownership = (args.props.get("rule") or {}).get("objectOwnership")
    if ownership != "BucketOwnerEnforced":
        report(f"object ownership must be BucketOwnerEnforced (ACLs off), not {ownership}")


def registry_kept(args: ResourceValidationArgs, report: ReportViolation) -> None:
    tags = args.props.get("tags") or {}
    if tags.get("managed-by") != "modelfleet":
        return
    if not args.opts.protect:
        report("the model registry bucket must be protected so that no destroy deletes it")
    if args.props.get("forceDestroy"):
        report("the model registry bucket must not be force-destroyable")


def no_deprecated_s3(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type in DEPRECATED_S3:
        report(f"{args.resource_type} is deprecated in pulumi-aws 7; use the current resource")
    elif args.resource_type == BUCKET:
        inline = {"versioning", "lifecycleRules", "serverSideEncryptionConfiguration", "acl",
                  "policy", "website", "corsRules"} & set(args.props.keys())
        if inline:
            report(f"inline bucket settings are deprecated: {', '.join(sorted(inline))}")


# --- ECR and SQS -------------------------------------------------------------------------------

def repository_safe(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if props.get("imageTagMutability") not in ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION"):
        report("image tags must be immutable")
    if not (props.get("imageScanningConfiguration") or {}).get("scanOnPush"):
        report("images must be scanned on push")
    if not props.get("encryptionConfigurations"):
        report("the repository must declare its encryption")
    if props.get("forceDelete"):
        report("a repository of model images must not be force-deletable")


def queue_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.props.get("sqsManagedSseEnabled") and not args.props.get("kmsMasterKeyId"):
        report("queues must be encrypted (SSE-SQS or KMS)")


# --- Kubernetes pods ---------------------------------------------------------------------------

def pod_spec(args: ResourceValidationArgs) -> Mapping[str, Any]:
    props = args.props
    if args.resource_type == "kubernetes:core/v1:Pod":
        return props.get("spec") or {}
    spec = props.get("spec") or {}
    if args.resource_type == "kubernetes:batch/v1:CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def pod_not_privileged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """What no pod of any stack may do: these break out of the container."""
    spec = pod_spec(args)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            report(f"pods must not share the node's namespaces ({key})")
    for volume in spec.get("volumes") or []:
        if volume.get("hostPath") is not None:
            report(f"volume '{volume.get('name')}' mounts a path of the node (hostPath)")
    for container in containers(spec):
        security = container.get("securityContext") or {}
        name = container.get("name")
        if security.get("privileged"):
            report(f"container '{name}' is privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            report(f"container '{name}' must set allowPrivilegeEscalation: false")
        added = set((security.get("capabilities") or {}).get("add") or [])
        if added & {"SYS_ADMIN", "NET_ADMIN", "ALL", "SYS_PTRACE", "SYS_MODULE"}:
            report(f"container '{name}' adds dangerous capabilities {sorted(added)}")


def pod_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Invariant 5: non-root, read-only root, no capabilities, seccomp, sized, pinned."""
    spec = pod_spec(args)
    pod_security = spec.get("securityContext") or {}
    if spec.get("automountServiceAccountToken") is not False:
        report("pods must not mount a Kubernetes API token they do not need "
               "(automountServiceAccountToken: false)")
    for container in containers(spec):
        name = container.get("name")
        security = container.get("securityContext") or {}
        if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
            report(f"container '{name}' must run as non-root (runAsNonRoot: true)")
        if security.get("readOnlyRootFilesystem") is not True:
            report(f"container '{name}' must have a read-only root filesystem")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            report(f"container '{name}' must drop all capabilities")
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {})
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            report(f"container '{name}' must use the RuntimeDefault seccomp profile")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set((resources.get(kind) or {}).keys())
            if missing:
                report(f"container '{name}' has no {kind} for {', '.join(sorted(missing))}")
        image = container.get("image") or ""
        if "@sha256:" not in image:
            report(f"container '{name}' must pull its image by digest, not '{image}'")


def deployment_probed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for container in pod_spec(args).get("containers") or []:
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                report(f"container '{container.get('name')}' has no {probe}")


def _policy(name: str, description: str, types: Iterable[str],
            check: Validation) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description,
                                    enforcement_level=MANDATORY,
                                    validate=for_types(types, check))


POLICIES = [
    _policy("s3-no-public-acl", "Buckets are never public through ACLs.",
            [BUCKET, "aws:s3/bucketAcl:BucketAcl"], bucket_not_public),
    _policy("s3-public-access-blocked", "Public access is blocked in full.",
            ["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"], public_access_blocked),
    _policy("s3-policy-not-public", "Bucket policies do not allow everyone.",
            ["aws:s3/bucketPolicy:BucketPolicy"], bucket_policy_not_public),
    _policy("s3-encrypted-with-kms", "Objects are encrypted with KMS.",
            ["aws:s3/bucketServerSideEncryptionConfiguration:"
             "BucketServerSideEncryptionConfiguration"], encrypted_with_kms),
    _policy("s3-versioning-enabled", "Buckets keep old object versions.",
            ["aws:s3/bucketVersioning:BucketVersioning"], versioning_enabled),
    _policy("s3-ownership-enforced", "The bucket owner owns every object; ACLs are off.",
            ["aws:s3/bucketOwnershipControls:BucketOwnershipControls"], ownership_enforced),
    _policy("registry-protected", "The model registry survives `pulumi destroy`.",
            [BUCKET], registry_kept),
    _policy("s3-current-resources", "No deprecated S3 resources or inline bucket settings.",
            [BUCKET, *DEPRECATED_S3], no_deprecated_s3),
    _policy("ecr-immutable-scanned-encrypted", "Model repositories are safe to pull from.",
            ["aws:ecr/repository:Repository"], repository_safe),
    _policy("sqs-encrypted", "Queues are encrypted.", ["aws:sqs/queue:Queue"], queue_encrypted),
    _policy("pods-not-privileged", "No pod may escape its container.", WORKLOADS,
            pod_not_privileged),
    _policy("pods-hardened", "Pods are non-root, read-only, sized and pinned by digest.",
            WORKLOADS, pod_hardened),
    _policy("deployments-probed", "Long-running pods are probed.",
            ["kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"],
            deployment_probed),
]
