"""A change, model by model: each model's resources before and after, its changes, its record.

What the summary and the risk flags read: the two simulations (base and head)
split by model, the resource changes that concern each model, and what the
program exported of it (`manifest.deployed`, `manifest.builds`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.diff.compare import FieldChange, ManifestDiff, ModelDiff, diff_models
from modelfleet.release.updates import deployed_specs, recorded_versions, whole_numbers
from planner.changes import ResourceChange
from planner.grouping import STACK_WIDE, Grouped, model_of
from planner.plan import Plan
from planner.policies import POLICY_INPUTS, PolicyChange, compare, document
from planner.recorder import Registration
from planner.render import plain
from planner.simulate import Simulation


@dataclass(frozen=True)
class ModelView:
    """One model (or the stack-wide resources) on both sides of a change."""

    name: str
    base: list[Registration] = field(default_factory=list)
    head: list[Registration] = field(default_factory=list)
    changes: list[ResourceChange] = field(default_factory=list)
    old: dict[str, Any] | None = None
    """The model as the base deployed it (as written in the manifest), if it did."""
    new: dict[str, Any] | None = None
    old_build: str | None = None
    """Digest of what the base built its image from (context files and build args)."""
    new_build: str | None = None
    diff: ModelDiff | None = None
    old_versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each version the base deployed (stable and candidates): its artifact's identity."""
    new_versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stack_wide(self) -> bool:
        return self.name == STACK_WIDE

    @property
    def old_version(self) -> str | None:
        return str(self.old["version"]) if self.old else None

    @property
    def new_version(self) -> str | None:
        return str(self.new["version"]) if self.new else None

    @property
    def version_changed(self) -> bool:
        """False for an unchanged version, which must keep naming the same artifact and image."""
        return self.old_version != self.new_version

    def before(self, type_: str, name: str) -> Registration | None:
        """The resource as the base declared it, if it did."""
        return next((r for r in self.base if r.type == type_ and r.name == name), None)

    def after(self, type_: str, name: str) -> Registration | None:
        """The resource as the head declares it, if it does."""
        return next((r for r in self.head if r.type == type_ and r.name == name), None)

    def fields(self, prefix: str) -> list[FieldChange]:
        """The model's manifest changes at paths under `prefix` (`artifact.`, `image.ref`)."""
        return [f for f in self.diff.changes if f.path.startswith(prefix)] if self.diff else []


@dataclass(frozen=True)
class DocumentChange:
    """An IAM policy document of a resource that changes: both versions and how."""

    change: ResourceChange
    input: str
    """`policy` or `assumeRolePolicy`."""
    before: dict[str, Any]
    after: dict[str, Any]
    diff: PolicyChange


def document_changes(view: ModelView) -> Iterator[DocumentChange]:
    """Every policy document of the model's updated or replaced resources that differs."""
    for change in view.changes:
        if change.op not in ("update", "replace"):
            continue
        before = view.before(change.type, change.name)
        after = view.after(change.type, change.name)
        if before is None or after is None:
            continue
        for key in POLICY_INPUTS:
            old = document(plain(before.inputs.get(key)))
            new = document(plain(after.inputs.get(key)))
            if old is not None and new is not None and old != new:
                yield DocumentChange(change, key, old, new, compare(old, new))


def manifest_diff(plan: Plan) -> ManifestDiff | None:
    """The models' own field-by-field diff, from what each side exported it deployed."""
    if plan.base_ref is None:
        return None
    head, _ = deployed_specs(plan.head.outputs)
    before, _ = deployed_specs(plan.base.outputs) if plan.base else ([], [])
    environment = str(plan.stack.get("modelfleet:environment") or "") or None
    return diff_models(before, head, base_label=plan.base_ref, head_label="this change",
                       environment=environment)


def model_views(plan: Plan) -> list[ModelView]:
    """Every model either side deploys, and the stack-wide resources, stack-wide first."""
    head = Grouped.of(plan.head)
    base = Grouped.of(plan.base) if plan.base else Grouped({}, {})
    old_record, new_record = _record(plan.base), _record(plan.head)
    old_versions, new_versions = recorded_versions(old_record), recorded_versions(new_record)
    diffs = {d.name: d for d in (manifest_diff(plan) or ManifestDiff("", "", None, ())).models}
    changes: dict[str, list[ResourceChange]] = {}
    for change in plan.changes:
        owner = model_of(change.urn, base.by_urn if change.op == "delete" else head.by_urn)
        changes.setdefault(owner, []).append(change)
    names = set(head.groups) | set(base.groups) | set(changes)
    return [ModelView(
        name=name, base=base.groups.get(name, []), head=head.groups.get(name, []),
        changes=changes.get(name, []),
        old=_deployed(old_record, name), new=_deployed(new_record, name),
        old_build=_build(old_record, name), new_build=_build(new_record, name),
        diff=diffs.get(name), old_versions=old_versions.get(name, {}),
        new_versions=new_versions.get(name, {}))
        for name in sorted(names, key=lambda n: (n != STACK_WIDE, n))]


def production(plan: Plan) -> bool:
    """A stack that deploys approved models only is production."""
    return str(plan.stack.get("modelfleet:requireApproved")).lower() == "true"


def _record(simulation: Simulation | None) -> Mapping[str, Any]:
    record = simulation.outputs.get("manifest") if simulation else None
    return record if isinstance(record, Mapping) else {}


def _deployed(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    deployed = record.get("deployed")
    model = deployed.get(name) if isinstance(deployed, Mapping) else None
    return dict(whole_numbers(model)) if isinstance(model, Mapping) else None


def _build(record: Mapping[str, Any], name: str) -> str | None:
    builds = record.get("builds")
    digest = builds.get(name) if isinstance(builds, Mapping) else None
    return str(digest) if digest else None
