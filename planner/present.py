"""A plan as text (terminal), Markdown (pull request comment) or JSON (tools)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet import report
from modelfleet.diff import ManifestDiff, diff_models
from modelfleet.report import show, to_json
from modelfleet.updates import deployed_specs
from planner.changes import ResourceChange
from planner.plan import Plan
from planner.recorder import Registration
from planner.render import mask, plain
from planner.simulate import Simulation

STACK_WIDE = "(stack-wide)"
MODEL_TYPE = "modelfleet:fleet:Model"
SIGNS = {"create": "+", "update": "~", "replace": "±", "delete": "-"}


@dataclass(frozen=True)
class Grouped:
    """A simulation's resources by model, in registration order."""

    groups: dict[str, list[Registration]]
    by_urn: dict[str, Registration]

    @classmethod
    def of(cls, simulation: Simulation) -> Grouped:
        by_urn = simulation.by_urn()
        groups: dict[str, list[Registration]] = {}
        for registration in simulation.registrations:
            if registration.custom:
                groups.setdefault(model_of(registration.urn, by_urn), []).append(registration)
        ordered = {k: sorted(groups[k], key=lambda r: (r.type, r.name))
                   for k in sorted(groups, key=lambda g: (g != STACK_WIDE, g))}
        return cls(ordered, by_urn)

    def parent_name(self, registration: Registration) -> str | None:
        parent = self.by_urn.get(registration.parent)
        return parent.name if parent else None


def model_of(urn: str, by_urn: Mapping[str, Registration]) -> str:
    """The model a resource belongs to: the name of its `Model` ancestor."""
    current = by_urn.get(urn)
    while current is not None:
        if current.type == MODEL_TYPE:
            return current.name
        current = by_urn.get(current.parent)
    return STACK_WIDE


def manifest_diff(plan: Plan) -> ManifestDiff | None:
    if plan.base_ref is None:
        return None
    head, _ = deployed_specs(plan.head.outputs)
    before, _ = deployed_specs(plan.base.outputs) if plan.base else ([], [])
    environment = str(plan.stack.get("modelfleet:environment") or "") or None
    return diff_models(before, head, base_label=plan.base_ref, head_label="this change",
                       environment=environment)


def _options(registration: Registration) -> str:
    flags = [flag for flag, on in (("protected", registration.protect),
                                   ("retained on delete", registration.retain_on_delete),
                                   ("ignores " + ", ".join(registration.ignore_changes),
                                    bool(registration.ignore_changes))) if on]
    return f"  [{'; '.join(flags)}]" if flags else ""


def _counts(simulation: Simulation) -> Counter[str]:
    return Counter(r.type for r in simulation.registrations if r.custom)


def _header(plan: Plan) -> list[str]:
    stack = plan.stack
    manifest = plan.head.outputs.get("manifest", {})
    ref = manifest.get("ref") or "working tree"
    commit = str(manifest.get("commit") or "")[:12]
    lines = [f"Plan for stack {stack.name} (environment {stack.get('modelfleet:environment')}, "
             f"{manifest.get('file', 'models.yaml')} at {ref}"
             f"{f' ({commit})' if commit else ''})",
             f"Configuration: {stack.file}"]
    if stack.secrets:
        lines.append("Secrets (not decrypted): " + ", ".join(sorted(stack.secrets)))
    return lines


def _change_lines(change: ResourceChange) -> list[str]:
    head = f"{SIGNS[change.op]} {change.op:<8} {change.type} {change.name}"
    if change.op == "delete" and change.retained:
        head += "  (retained: the cloud resource is kept)"
    if change.op == "replace":
        head += f"  (forced by {', '.join(change.replaced_by)})"
    return [head] + [f"      {p.path}: {show(p.old)} → {show(p.new)}" for p in change.paths]


def change_summary(changes: list[ResourceChange]) -> str:
    counts = Counter(change.op for change in changes)
    return (f"{counts['create']} to create, {counts['update']} to update, "
            f"{counts['replace']} to replace, {counts['delete']} to delete")


def render_text(plan: Plan) -> str:
    grouped = Grouped.of(plan.head)
    lines = _header(plan)
    for group, registrations in grouped.groups.items():
        title = group if group == STACK_WIDE else f"model {group}"
        deployed = plan.head.outputs.get("manifest", {}).get("deployed", {}).get(group)
        if deployed:
            title += f" {deployed.get('version')} (team {deployed.get('team')})"
        lines += ["", title]
        lines += [f"  {r.type:<62} {r.name}{_options(r)}" for r in registrations]
    counts = _counts(plan.head)
    lines += ["", "Resources by type"]
    lines += [f"  {count:>4}  {type_}" for type_, count in sorted(counts.items())]
    lines.append(f"Total: {sum(counts.values())} resources in {len(grouped.groups)} groups")
    lines += _warnings(plan)
    if plan.base_ref is not None:
        lines += ["", *_changes_text(plan)]
    return "\n".join(lines) + "\n"


def _warnings(plan: Plan) -> list[str]:
    warnings = plan.head.messages("warning")
    return ["", "Warnings from the program:", *[f"  {w}" for w in warnings]] if warnings else []


def _changes_text(plan: Plan) -> list[str]:
    changes = plan.changes
    lines = [f"Changes against {plan.base_ref}"
             + (" (the stack did not exist there)" if plan.base_missing else "")]
    for change in changes:
        lines += [f"  {line}" for line in _change_lines(change)]
    lines.append(f"Summary: {change_summary(changes)}" if changes else "Summary: no changes")
    semantic = manifest_diff(plan)
    if semantic is not None:
        lines += ["", *report.render_text(semantic).splitlines()]
    return lines


def render_markdown(plan: Plan) -> str:
    stack = plan.stack
    counts = _counts(plan.head)
    lines = [f"## modelfleet plan: `{stack.name}`", "", *[f"{line}  " for line in _header(plan)],
             ""]
    if plan.base_ref is not None:
        changes = plan.changes
        lines += [f"**{change_summary(changes)}** against `{plan.base_ref}`", ""]
        if changes:
            lines += ["| | resource | changed |", "| --- | --- | --- |"]
            for change in changes:
                note = ", ".join(p.path for p in change.paths[:4])
                if len(change.paths) > 4:
                    note += f", … ({len(change.paths)} in all)"
                if change.op == "replace":
                    note = f"**replaced** ({', '.join(change.replaced_by)})"
                if change.op == "delete" and change.retained:
                    note = "retained: the cloud resource is kept"
                lines.append(f"| {SIGNS[change.op]} {change.op} | `{change.type}` "
                             f"`{change.name}` | {note} |")
            lines += ["", "<details><summary>Every changed input</summary>", "", "```"]
            for change in changes:
                lines += _change_lines(change)
            lines += ["```", "", "</details>", ""]
        semantic = manifest_diff(plan)
        if semantic is not None:
            lines += [report.render_markdown(semantic)]
    lines += ["<details><summary>Resources by type "
              f"({sum(counts.values())} in all)</summary>", "",
              "| count | type |", "| ---: | --- |"]
    lines += [f"| {count} | `{type_}` |" for type_, count in sorted(counts.items())]
    lines += ["", "</details>", ""]
    warnings = plan.head.messages("warning")
    if warnings:
        lines += ["**Warnings**", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(lines)


def to_document(plan: Plan) -> dict[str, Any]:
    """The stable JSON document: stack, resources, changes (and the manifest's own diff)."""
    grouped = Grouped.of(plan.head)
    semantic = manifest_diff(plan)
    return {
        "stack": plan.stack.name,
        "environment": plan.stack.get("modelfleet:environment"),
        "base": plan.base_ref,
        "resources": [
            {"type": r.type, "name": r.name, "parent": grouped.parent_name(r),
             "model": None if model == STACK_WIDE else model,
             "inputs": mask(plain(r.inputs), r.secrets)}
            for model, registrations in grouped.groups.items() for r in registrations],
        "changes": [
            {"op": c.op, "type": c.type, "name": c.name, "paths": [p.path for p in c.paths],
             **({"retained": True} if c.retained else {})}
            for c in plan.changes],
        "manifest": to_json(semantic) if semantic is not None else None,
        "warnings": plan.head.messages("warning"),
    }


def render_json(plan: Plan) -> str:
    return json.dumps(to_document(plan), indent=2, sort_keys=False, default=str) + "\n"

