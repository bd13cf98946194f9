"""Resource-level differences between two plans: create, update, replace, delete.

Inputs are compared path by path, as the engine would after `ignore_changes`.
A change to a property the cloud cannot change in place (a Deployment's
selector, a bucket's name, an object's key) is a replacement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelfleet.release import context_digest, file_sha256
from planner.recorder import Registration
from planner.render import SECRET, plain

KUBERNETES_IDENTITY = ("metadata.name", "metadata.namespace", "apiVersion", "kind")
REPLACED_ON: dict[str, tuple[str, ...]] = {
    # pulumi-kubernetes' own table (provider/pkg/provider/diff.go, forceNew): a change of
    # any other path is sent as an update, which the API server may still refuse.
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:apps/v1:DaemonSet": ("spec.selector",),
    "kubernetes:apps/v1:StatefulSet": ("spec.podManagementPolicy", "spec.revisionHistoryLimit",
                                       "spec.selector", "spec.serviceName",
                                       "spec.volumeClaimTemplates"),
    "kubernetes:batch/v1:Job": ("spec.completions", "spec.parallelism", "spec.selector",
                                "spec.template"),
    "kubernetes:core/v1:Service": ("spec.clusterIP",),
    "kubernetes:core/v1:Secret": ("type",),
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec.accessModes", "spec.selector",
                                                 "spec.storageClassName", "spec.volumeName"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("bucket", "key"),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("repository",),
    "aws:sqs/queue:Queue": ("name", "namePrefix", "fifoQueue"),
    "aws:sqs/queuePolicy:QueuePolicy": ("queueUrl",),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "namePrefix", "role"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion"),
    "aws:kms/alias:Alias": ("name",),
}
BUCKET_SETTINGS = ("bucket", "expectedBucketOwner")


@dataclass(frozen=True)
class PathChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceChange:
    op: str
    """create, update, replace or delete."""
    type: str
    name: str
    urn: str
    paths: tuple[PathChange, ...] = ()
    retained: bool = False
    """For a delete: the resource is retained on delete, so the cloud keeps it."""
    replaced_by: tuple[str, ...] = field(default=())
    """For a replace: the changed paths that force it."""


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`{"spec": {"ports": [{"port": 80}]}}` -> `("spec.ports[0].port", 80)`."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def comparable_inputs(registration: Registration) -> dict[str, Any]:
    """Inputs as the engine diffs them: ignored properties left out, secrets masked, and
    local files (assets, build contexts) by content rather than by where they were read."""
    inputs = {k: v for k, v in plain(registration.inputs).items()
              if k not in registration.ignore_changes}
    if registration.type == "docker:index/image:Image" and isinstance(inputs.get("build"), dict):
        inputs["build"] = _build_by_content(inputs["build"])
    flat = {path: value for path, value in flatten(inputs) if not path.endswith(".asset")}
    for path in list(flat):
        if any(path == s or path.startswith((f"{s}.", f"{s}[")) for s in registration.secrets):
            flat[path] = SECRET
    return flat


def _build_by_content(build: dict[str, Any]) -> dict[str, Any]:
    context, dockerfile = build.get("context"), build.get("dockerfile")
    out = dict(build)
    if isinstance(context, str) and Path(context).is_dir():
        out["context"] = context_digest(Path(context), {})
    if isinstance(dockerfile, str) and Path(dockerfile).is_file():
        out["dockerfile"] = "sha256:" + file_sha256(Path(dockerfile))
    return out


def _forces_replacement(registration: Registration, path: str) -> bool:
    rules = list(REPLACED_ON.get(registration.type, ()))
    rules += registration.replace_on_changes
    if registration.type.startswith("kubernetes:"):
        rules += KUBERNETES_IDENTITY
    if registration.type.startswith("aws:s3/bucket") and registration.type != \
            "aws:s3/bucket:Bucket":
        rules += BUCKET_SETTINGS
    return any(path == rule or path.startswith((f"{rule}.", f"{rule}[")) for rule in rules)


def resource_changes(base: Iterable[Registration],
                     head: Iterable[Registration]) -> list[ResourceChange]:
    before = {r.key: r for r in base if r.custom}
    after = {r.key: r for r in head if r.custom}
    changes: list[ResourceChange] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            changes.append(ResourceChange("create", key[0], key[1], new.urn))
        elif new is None and old is not None:
            changes.append(ResourceChange("delete", key[0], key[1], old.urn,
                                          retained=old.retain_on_delete))
        elif old is not None and new is not None:
            change = _update(old, new)
            if change is not None:
                changes.append(change)
    return changes


def _update(old: Registration, new: Registration) -> ResourceChange | None:
    before, after = comparable_inputs(old), comparable_inputs(new)
    paths = tuple(PathChange(path, before.get(path), after.get(path))
                  for path in sorted(before.keys() | after.keys())
                  if before.get(path) != after.get(path))
    if not paths:
        return None
    forcing = tuple(p.path for p in paths if _forces_replacement(new, p.path))
    return ResourceChange("replace" if forcing else "update", new.type, new.name, new.urn,
                          paths, replaced_by=forcing)
