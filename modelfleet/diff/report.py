"""A manifest diff as text (terminal, Pulumi log), Markdown (pull request) or JSON (tools)."""

from __future__ import annotations

import json
from typing import Any

from modelfleet.diff.compare import FieldChange, ManifestDiff, ModelDiff, Status

_SIGN = {Status.ADDED: "+", Status.REMOVED: "-", Status.CHANGED: "~"}
KEPT_NOTE = "its artifacts and images stay in the registry"


def plural(count: int, noun: str) -> str:
    """`1 replica`, `2 replicas`: a count and its noun, for messages."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def show(value: Any) -> str:
    """A value as the manifest would write it."""
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _scope(diff: ManifestDiff) -> str:
    env = f", environment {diff.environment}" if diff.environment else ""
    return f"{diff.base} → {diff.head}{env}"


def _headline(model: ModelDiff) -> str:
    if model.status is Status.ADDED:
        return f"{model.name} {model.new_version} (added)"
    if model.status is Status.REMOVED:
        return f"{model.name} {model.old_version} (removed; {KEPT_NOTE})"
    if model.version_change:
        return (f"{model.name} {model.old_version} → {model.new_version} "
                f"({model.version_change.value})")
    return f"{model.name} {model.new_version}"


def render_text(diff: ManifestDiff) -> str:
    lines = [f"Manifest diff {_scope(diff)}"]
    for model in diff.models:
        lines.append(f"{_SIGN[model.status]} {_headline(model)}")
        if model.traffic:
            lines.append(f"    traffic: {show(model.traffic[0])} → {show(model.traffic[1])}")
        lines += [f"    {c.path}: {show(c.old)} → {show(c.new)}" for c in model.changes]
    lines.append(f"Summary: {diff.summary()}")
    return "\n".join(lines) + "\n"


def render_markdown(diff: ManifestDiff) -> str:
    lines = [f"### Model manifest diff: {_scope(diff)}", "", f"**{diff.summary()}**", ""]
    if diff.models:
        lines += ["| | model | version | change |", "| --- | --- | --- | --- |"]
        for model in diff.models:
            lines.append(f"| {_SIGN[model.status]} | `{model.name}` | {_version_cell(model)} "
                         f"| {_change_cell(model)} |")
        details = [m for m in diff.models if m.changes]
        for model in details:
            lines += ["", f"<details><summary><code>{model.name}</code>: "
                          f"{len(model.changes)} field(s)</summary>", "",
                      "| field | before | after |", "| --- | --- | --- |"]
            lines += [_change_row(change) for change in model.changes]
            lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _version_cell(model: ModelDiff) -> str:
    if model.status is Status.ADDED:
        return f"{model.new_version}"
    if model.status is Status.REMOVED:
        return f"~~{model.old_version}~~"
    if model.version_change:
        return f"{model.old_version} → **{model.new_version}**"
    return f"{model.new_version}"


def _change_cell(model: ModelDiff) -> str:
    if model.status is Status.ADDED:
        return "added"
    if model.status is Status.REMOVED:
        return f"removed ({KEPT_NOTE})"
    kind = model.version_change.value if model.version_change else "config only"
    if model.version_change and model.version_change.value == "downgrade":
        kind = "⚠️ downgrade"
    traffic = f"; traffic: {model.traffic[0]} → **{model.traffic[1]}**" if model.traffic else ""
    return f"{kind}, {len(model.changes)} field(s){traffic}"


def _cell(value: Any) -> str:
    return "`" + show(value).replace("|", "\\|").replace("`", "'") + "`"


def _change_row(change: FieldChange) -> str:
    return f"| `{change.path}` | {_cell(change.old)} | {_cell(change.new)} |"


def to_json(diff: ManifestDiff) -> dict[str, Any]:
    """A stable document for tools; the same information as the text."""
    return {
        "base": diff.base,
        "head": diff.head,
        "environment": diff.environment,
        "summary": diff.summary(),
        "counts": {status.value: len(diff.by_status(status)) for status in Status}
        | {"unchanged": len(diff.unchanged)},
        "models": [
            {
                "name": model.name,
                "status": model.status.value,
                "version": {
                    "old": model.old_version,
                    "new": model.new_version,
                    "change": model.version_change.value if model.version_change else None,
                },
                "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in model.changes],
                **({"traffic": {"old": model.traffic[0], "new": model.traffic[1]}}
                   if model.traffic else {}),
            }
            for model in diff.models
        ],
        "unchanged": list(diff.unchanged),
    }


def render_json(diff: ManifestDiff) -> str:
    return json.dumps(to_json(diff), indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
