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

from modelfleet.release.release import context_digest, file_sha256
from planner.placeholders import references_in
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
KEPT_BY_THE_PROVIDER = frozenset({"docker:index/image:Image"})
"""Types whose delete leaves the cloud object in place: pulumi-docker's Image "does not
delete tags, locally or remotely, when destroyed" (its own documentation)."""


RENEWED_ON_UPDATE: dict[str, tuple[str, ...]] = {
    "docker:index/image:Image": ("repoDigest",),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("etag", "versionId"),
}
"""Outputs that take a new value when the resource is updated in place: a rebuilt image's
digest, a rewritten object's version. On a replacement every output is new."""


@dataclass(frozen=True)
class PathChange:
    """One input path of a resource: its value in the base and in the head."""

    path: str
    old: Any
    new: Any
    on_apply: bool = False
    """The text is the same, but it names an output this plan renews (a rebuilt image's
    digest, a replaced role's ARN): the value changes when the plan is applied."""


@dataclass(frozen=True)
class ResourceChange:
    """What the engine would do to one resource, and the inputs that make it do so."""

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
    """Every resource to create, update, replace or delete, in (type, name) order.

    A value that names an output the change renews (`${fraud-detector-image.repoDigest}`
    of a rebuilt image, any output of a replaced bucket) changes on apply although its
    text does not: it counts as a change (`PathChange.on_apply`), as `pulumi preview`
    counts it, and so on through whatever depends on it in turn.
    """
    before = {r.key: r for r in base if r.custom}
    after = {r.key: r for r in head if r.custom}
    both = before.keys() & after.keys()  # only these are compared (a build context is hashed)
    old_inputs = {key: comparable_inputs(before[key]) for key in both}
    new_inputs = {key: comparable_inputs(after[key]) for key in both}
    changes: dict[tuple[str, str], ResourceChange] = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            changes[key] = ResourceChange("create", key[0], key[1], new.urn)
        elif new is None and old is not None:
            changes[key] = ResourceChange("delete", key[0], key[1], old.urn,
                                          retained=old.retain_on_delete
                                          or key[0] in KEPT_BY_THE_PROVIDER)
        elif old is not None and new is not None:
            paths = tuple(PathChange(path, old_inputs[key].get(path), new_inputs[key].get(path))
                          for path in sorted(old_inputs[key].keys() | new_inputs[key].keys())
                          if old_inputs[key].get(path) != new_inputs[key].get(path))
            if paths:
                changes[key] = _classified(new, paths)
    _propagate(changes, after, old_inputs, new_inputs)
    return [changes[key] for key in sorted(changes)]


def renewed_outputs(change: ResourceChange) -> set[tuple[str, str]]:
    """`(name, property)` of the outputs that take new values; `(name, "*")`: all of them."""
    if change.op == "replace" and not change.type.startswith("kubernetes:"):
        return {(change.name, "*")}
    if change.op in ("update", "replace"):
        return {(change.name, prop) for prop in RENEWED_ON_UPDATE.get(change.type, ())}
    return set()


def _propagate(changes: dict[tuple[str, str], ResourceChange],
               after: dict[tuple[str, str], Registration],
               old_inputs: dict[tuple[str, str], dict[str, Any]],
               new_inputs: dict[tuple[str, str], dict[str, Any]]) -> None:
    # Where each resource's outputs are named in a value that is the same on both sides.
    naming: dict[str, list[tuple[tuple[str, str], str]]] = {}
    for key, inputs in new_inputs.items():
        old = old_inputs.get(key)
        if old is None:
            continue
        for path, value in inputs.items():
            if isinstance(value, str) and "${" in value and old.get(path) == value:
                for name in {name for name, _ in references_in(value)}:
                    naming.setdefault(name, []).append((key, path))
    renewed: set[tuple[str, str]] = set()
    pending = list(changes.values())
    while pending:  # each renewed output is followed once
        fresh = set()
        for change in pending:
            fresh |= renewed_outputs(change) - renewed
        renewed |= fresh
        touched: dict[tuple[str, str], list[str]] = {}
        for name in sorted({name for name, _ in fresh}):
            for key, path in naming.get(name, []):
                if _names_renewed(new_inputs[key][path], fresh):
                    touched.setdefault(key, []).append(path)
        pending = []
        for key, paths in sorted(touched.items()):
            current = changes.get(key)
            known = {p.path for p in current.paths} if current else set()
            extra = tuple(PathChange(path, new_inputs[key][path], new_inputs[key][path],
                                     on_apply=True) for path in sorted(set(paths) - known))
            if extra:
                merged = tuple(sorted((current.paths if current else ()) + extra,
                                      key=lambda p: p.path))
                changes[key] = _classified(after[key], merged)
                pending.append(changes[key])


def _names_renewed(value: Any, renewed: set[tuple[str, str]]) -> bool:
    return any((name, prop) in renewed or (name, "*") in renewed
               for name, prop in references_in(value))


def _classified(new: Registration, paths: tuple[PathChange, ...]) -> ResourceChange:
    forcing = tuple(p.path for p in paths if _forces_replacement(new, p.path))
    return ResourceChange("replace" if forcing else "update", new.type, new.name, new.urn,
                          paths, replaced_by=forcing)
