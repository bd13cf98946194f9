"""A plan as text (terminal), Markdown (pull request comment) or JSON (tools)."""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from typing import Any

from modelfleet.diff import report
from modelfleet.diff.report import show, to_json
from planner.changes import PathChange, ResourceChange
from planner.findings import Findings, findings_of
from planner.grouping import STACK_WIDE, Grouped
from planner.placeholders import references_in
from planner.plan import Plan
from planner.policies import pretty
from planner.recorder import Registration
from planner.render import mask, plain
from planner.review import manifest_diff
from planner.risks import LEVELS, Risk
from planner.simulate import Simulation

SIGNS = {"create": "+", "update": "~", "replace": "±", "delete": "-"}
MARKS = {"info": "🔵", "warning": "🟠", "danger": "🔴"}
INPUTS_BUDGET = 30_000
"""Characters of changed inputs in Markdown: a pull request comment holds 65,536 in all."""


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
    ref = str(manifest.get("ref") or "working tree")
    full = str(manifest.get("commit") or "")
    commit = full[:12]
    if full and re.fullmatch(r"[0-9a-f]{7,40}", ref) and full.startswith(ref):  # a commit pin
        ref, commit = f"commit {commit}", ""
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
    lines = [head]
    for path in change.paths:
        lines += [f"      {line}" for line in path_lines(path)]
    return lines


def path_lines(change: PathChange) -> list[str]:
    """One changed input: `path: old → new`; a document (JSON, several lines) as a diff."""
    if change.on_apply:
        names = sorted({"${" + f"{n}.{p}" + "}" for n, p in references_in(change.new)})
        if _document(change.new) is None and "\n" not in str(change.new):
            return [f"{change.path}: {show(change.new)} (a new value on apply)"]
        return [f"{change.path}: a new value on apply (it names {', '.join(names)})"]
    old, new = _document(change.old), _document(change.new)
    if old is None or new is None:
        return [f"{change.path}: {show(change.old)} → {show(change.new)}"]
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
    return [f"{change.path}: (document; - before, + after)",
            *[f"  {line}" for line in list(diff)[2:]]]


def _document(value: Any) -> str | None:
    """A JSON document or a text of several lines, as lines to diff; None for a plain value."""
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return value if "\n" in value else None
    return json.dumps(parsed, indent=2, sort_keys=True) if isinstance(parsed, (dict, list)) \
        else None


def change_summary(changes: list[ResourceChange]) -> str:
    counts = Counter(change.op for change in changes)
    return (f"{counts['create']} to create, {counts['update']} to update, "
            f"{counts['replace']} to replace, {counts['delete']} to delete")


def render_text(plan: Plan, findings: Findings | None = None) -> str:
    """The terminal plan: header, summary and risks (with a base), resources by model, changes."""
    found = findings or findings_of(plan)
    grouped = Grouped.of(plan.head)
    lines = _header(plan)
    if found.compared:
        lines += ["", *summary_text(plan, found), "", *risks_text(found.risks)]
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


def summary_text(plan: Plan, found: Findings) -> list[str]:
    lines = [f"What this change does (against {plan.base_ref})"
             + (": nothing" if not found.summaries else "")]
    for summary in found.summaries:
        lines.append(f"  {summary.model}: {summary.headline}")
        lines += [f"    - {line}" for line in summary.lines]
    if found.unchanged:
        lines.append(f"  unchanged: {_some(found.unchanged)}")
    return lines


def _some(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def risks_text(risks: list[Risk]) -> list[str]:
    if not risks:
        return ["Risks: none"]
    lines = [f"Risks: {_risk_counts(risks)}"]
    for risk in risks:
        lines.append(f"  {risk.level:<7}  {risk.model or STACK_WIDE}  {risk.kind}: {risk.message}")
        if "before" in risk.details and "after" in risk.details:
            lines.append("      before → after (- before only, + after only):")
            lines += [f"        {line}" for line in policy_diff(risk.details["before"],
                                                                risk.details["after"])]
    return lines


def policy_diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Both documents in one, a statement a line: unchanged lines once, the rest marked."""
    old, new = _statement_lines(before), _statement_lines(after)
    return [line for line in difflib.ndiff(old, new) if not line.startswith("? ")]


def _statement_lines(policy: dict[str, Any]) -> list[str]:
    statements = policy.get("Statement")
    listed = statements if isinstance(statements, list) else [statements]
    rest = json.dumps({k: v for k, v in policy.items() if k != "Statement"})
    return [rest[:-1] + (", " if rest != "{}" else "") + '"Statement": [',
            *[f"  {json.dumps(statement)}" for statement in listed], "]}"]


def _risk_counts(risks: list[Risk]) -> str:
    counts = Counter(risk.level for risk in risks)
    return ", ".join(f"{counts[level]} {level}" for level in reversed(LEVELS) if counts[level])


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


def render_markdown(plan: Plan, findings: Findings | None = None) -> str:
    """The pull request comment: summary and risks first, the resource table collapsed."""
    found = findings or findings_of(plan)
    stack = plan.stack
    counts = _counts(plan.head)
    lines = [f"## modelfleet plan: `{stack.name}`", "", *[f"{line}  " for line in _header(plan)],
             ""]
    if found.compared:
        lines += [*summary_markdown(plan, found), *risks_markdown(found.risks)]
        lines += _changes_markdown(plan)
    lines += ["<details><summary>Resources by type "
              f"({sum(counts.values())} in all)</summary>", "",
              "| count | type |", "| ---: | --- |"]
    lines += [f"| {count} | `{type_}` |" for type_, count in sorted(counts.items())]
    lines += ["", "</details>", ""]
    warnings = plan.head.messages("warning")
    if warnings:
        lines += ["**Warnings**", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(lines)


def summary_markdown(plan: Plan, found: Findings) -> list[str]:
    lines = [f"### What this change does (against `{plan.base_ref}`)", ""]
    if not found.summaries:
        lines += ["Nothing: no resource changes.", ""]
    for summary in found.summaries:
        lines.append(f"- **{summary.model}**: {_md(summary.headline)}")
        lines += [f"  - {_md(line)}" for line in summary.lines]
    if found.unchanged:
        lines.append(f"- unchanged: {_some([f'`{name}`' for name in found.unchanged])}")
    return [*lines, ""]


def risks_markdown(risks: list[Risk]) -> list[str]:
    if not risks:
        return ["### Risks", "", "None.", ""]
    lines = [f"### Risks: {_risk_counts(risks)}", "", "| level | model | kind | what |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {MARKS[r.level]} {r.level} | {f'`{r.model}`' if r.model else STACK_WIDE} "
              f"| `{r.kind}` | {_cell(r.message)} |" for r in risks]
    for risk in risks:
        if "before" in risk.details and "after" in risk.details:
            name = risk.details["resource"]["name"]
            lines += ["", f"<details open><summary>{risk.kind}: <code>{name}</code> before and "
                          "after</summary>", "", "Changed statements (- before only, + after "
                          "only):", "", "```diff",
                      *policy_diff(risk.details["before"], risk.details["after"]), "```", "",
                      "Before:", "", "```json",
                      pretty(risk.details["before"]), "```", "", "After:", "", "```json",
                      pretty(risk.details["after"]), "```", "", "</details>"]
    return [*lines, ""]


def _changes_markdown(plan: Plan) -> list[str]:
    changes = plan.changes
    lines = [f"<details><summary>Resources: <b>{change_summary(changes)}</b> against "
             f"<code>{plan.base_ref}</code></summary>", ""]
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
        inputs = [line for change in changes for line in _change_lines(change)]
        kept: list[str] = []
        size = 0
        for line in inputs:
            size += len(line) + 1
            if size > INPUTS_BUDGET:
                kept.append(f"… cut here: {len(inputs) - len(kept)} more lines; "
                            "`--format text` or `--format json` shows every input")
                break
            kept.append(line)
        lines += ["", "Every changed input:", "", "```", *kept, "```"]
    lines += ["", "</details>", ""]
    semantic = manifest_diff(plan)
    if semantic is not None:
        lines += [report.render_markdown(semantic)]
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_document(plan: Plan, findings: Findings | None = None) -> dict[str, Any]:
    """The stable JSON document: summary and risks, stack, resources, changes, manifest diff."""
    found = findings or findings_of(plan)
    grouped = Grouped.of(plan.head)
    semantic = manifest_diff(plan)
    return {
        "stack": plan.stack.name,
        "environment": plan.stack.get("modelfleet:environment"),
        "base": plan.base_ref,
        "summary": [summary.to_json() for summary in found.summaries],
        "risks": [risk.to_json() for risk in found.risks],
        "resources": [
            {"type": r.type, "name": r.name, "parent": grouped.parent_name(r),
             "model": None if model == STACK_WIDE else model,
             "inputs": mask(plain(r.inputs), r.secrets)}
            for model, registrations in grouped.groups.items() for r in registrations],
        "changes": [
            {"op": c.op, "type": c.type, "name": c.name, "paths": [p.path for p in c.paths],
             **({"onApply": [p.path for p in c.paths if p.on_apply]}
                if any(p.on_apply for p in c.paths) else {}),
             **({"retained": True} if c.retained else {})}
            for c in plan.changes],
        "manifest": to_json(semantic) if semantic is not None else None,
        "warnings": plan.head.messages("warning"),
    }


def render_json(plan: Plan, findings: Findings | None = None) -> str:
    """`to_document` as indented JSON."""
    return json.dumps(to_document(plan, findings), indent=2, sort_keys=False, default=str) + "\n"
