"""The history of one model: the commits that changed it, and what each changed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelfleet.diff.compare import ModelDiff, diff_models
from modelfleet.diff.report import show
from modelfleet.git.source import CommitInfo, file_revisions
from modelfleet.manifest.parse import parse_manifest
from modelfleet.manifest.problems import ManifestError
from modelfleet.manifest.resolve import resolve_models
from modelfleet.manifest.schema import ModelSpec


@dataclass(frozen=True)
class HistoryEntry:
    """A commit that changed the model (`diff`), or where its manifest could not be read."""

    commit: CommitInfo
    diff: ModelDiff | None = None
    problem: str | None = None
    cut_at: str | None = None
    """The version the model already had where a shallow clone's history is cut: the
    commit that set it is not in the clone. None elsewhere."""


def model_history(file: Path, name: str, environment: str | None = None) -> list[HistoryEntry]:
    """Newest first: the commits at which `name`, as deployed to `environment`, changed.

    Renames of the manifest are followed. In a shallow clone the oldest commit is not
    where a model present there was added: that entry is `cut_at` its version instead.
    """
    entries: list[HistoryEntry] = []
    previous: ModelSpec | None = None
    for revision in file_revisions(file):
        commit = revision.commit
        current, problem = _model_at(revision.text(), str(file), name, environment)
        if problem is not None:
            entries.append(HistoryEntry(commit, problem=problem))
            continue
        if revision.cut and current is not None and previous is None:
            entries.append(HistoryEntry(commit, cut_at=current.version))
            previous = current
            continue
        if current != previous:
            diff = diff_models([previous] if previous else [], [current] if current else [],
                               environment=environment)
            entries.append(HistoryEntry(commit, diff=diff.models[0]))
            previous = current
    return entries[::-1]


def _model_at(text: str | None, file: str, name: str,
              environment: str | None) -> tuple[ModelSpec | None, str | None]:
    if text is None:
        return None, None
    try:
        manifest = parse_manifest(text, file)
    except ManifestError as error:
        return None, f"manifest unreadable at this commit ({len(error.problems)} problem(s))"
    resolved, problems = resolve_models(manifest, environment, None)
    for item in resolved:
        if item.spec.name == name:
            return item.spec, None
    mine = [p for p in problems if p.model == name]
    if mine:
        return None, f"model invalid at this commit: {mine[0]}"
    return None, None


def render_history(name: str, entries: list[HistoryEntry]) -> str:
    lines = [f"History of model '{name}' ({len(entries)} commit(s), newest first)"]
    for entry in entries:
        commit = entry.commit
        head = f"{commit.short}  {commit.date:%Y-%m-%d %H:%M}  {commit.author}  {commit.summary}"
        lines.append(head)
        if entry.problem:
            lines.append(f"    ! {entry.problem}")
            continue
        if entry.cut_at is not None:
            lines.append(f"    … history cut here (shallow clone): already at version "
                         f"{entry.cut_at}; `git fetch --unshallow` shows the commits before")
            continue
        assert entry.diff is not None
        diff = entry.diff
        if diff.status.value == "added":
            lines.append(f"    + added at version {diff.new_version}")
        elif diff.status.value == "removed":
            lines.append(f"    - removed (was {diff.old_version})")
        for change in diff.changes:
            kind = ""
            if change.path == "version" and diff.version_change:
                kind = f" ({diff.version_change.value})"
            lines.append(f"    {change.path}: {show(change.old)} → {show(change.new)}{kind}")
    return "\n".join(lines) + "\n"


def history_json(name: str, entries: list[HistoryEntry]) -> dict[str, Any]:
    return {
        "model": name,
        "commits": [
            {
                "sha": e.commit.sha,
                "author": e.commit.author,
                "date": e.commit.date.isoformat(),
                "summary": e.commit.summary,
                "status": e.diff.status.value if e.diff else "cut" if e.cut_at else None,
                "cutAt": e.cut_at,
                "version": {"old": e.diff.old_version, "new": e.diff.new_version,
                            "change": e.diff.version_change.value
                            if e.diff.version_change else None} if e.diff else None,
                "changes": [{"path": c.path, "old": c.old, "new": c.new}
                            for c in (e.diff.changes if e.diff else ())],
                "problem": e.problem,
            }
            for e in entries
        ],
    }
