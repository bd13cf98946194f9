"""Which stacks a change affects: the ones a pull request must preview.

A stack is affected when its own config file changed, when the program or
anything it builds from changed, or when the manifest it follows changed for
its models (its environment, its team). A stack pinned to a tag is not
affected by manifest edits: it moves only when its pin does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from modelfleet.diff.compare import diff_models
from modelfleet.git.source import (
    FileAbsentError,
    ManifestText,
    commit_at,
    open_repository,
    read_manifest,
)
from modelfleet.manifest.load import load_manifest
from modelfleet.manifest.problems import ManifestError
from modelfleet.manifest.resolve import resolve
from modelfleet.manifest.schema import ModelSpec
from modelfleet.stacks.config import StackConfig, list_stacks, load_stack

PROGRAM = ("Pulumi.yaml", "__main__.py", "program.py", "requirements.txt", "components/",
           "modelfleet/", "images/", "artifacts/", "policy/")
"""What every stack deploys besides its manifest and its config: a change previews all."""


@dataclass(frozen=True)
class StackImpact:
    stack: str
    reason: str | None
    """Why the stack must be previewed; None when the change cannot reach it."""


def changed_files(root: Path, base: str) -> set[str]:
    """Files that differ between `base` and the working tree (committed or not)."""
    repo = open_repository(root)
    base_commit = commit_at(repo, base)
    changed = {item.a_path or item.b_path for item in base_commit.diff(None)}
    changed |= set(repo.untracked_files)
    return {path for path in changed if path}


def stack_impacts(root: Path, base: str) -> list[StackImpact]:
    files = changed_files(root, base)
    repo = open_repository(root)
    prefix = _prefix(repo, root)
    program_files = sorted(
        f for f in files if f.startswith(prefix) and _deploys(f.removeprefix(prefix)))
    return [_impact(root, base, load_stack(root, name), files, prefix, program_files)
            for name in list_stacks(root)]


def _prefix(repo: git.Repo, root: Path) -> str:
    top = Path(str(repo.working_tree_dir)).resolve()
    relative = root.resolve().relative_to(top).as_posix()
    return "" if relative == "." else relative + "/"


def _deploys(path: str) -> bool:
    return path.startswith(PROGRAM) and not path.endswith(".md")


def _impact(root: Path, base: str, stack: StackConfig, files: set[str], prefix: str,
            program_files: list[str]) -> StackImpact:
    if prefix + stack.file in files:
        return StackImpact(stack.name, f"{stack.file} changed")
    if program_files:
        return StackImpact(stack.name, f"{program_files[0]} changed")
    manifest = str(stack.get("modelfleet:manifest") or "models.yaml")
    pinned = stack.get("modelfleet:manifestRef")
    if prefix + manifest not in files:
        return StackImpact(stack.name, None)
    if pinned and not _is_branch(root, str(pinned)):
        return StackImpact(stack.name, None)
    changes = _model_changes(root / manifest, base, stack)
    return StackImpact(stack.name, f"{manifest}: {changes}" if changes else None)


def _is_branch(root: Path, ref: str) -> bool:
    repo = open_repository(root)
    return ref in [head.name for head in repo.heads] or any(
        ref in (f"{remote.name}/{r.remote_head}", r.remote_head)
        for remote in repo.remotes for r in remote.refs)


def _model_changes(file: Path, base: str, stack: StackConfig) -> str:
    """The semantic diff's summary for this stack's environment and team, or ''."""
    environment = str(stack.get("modelfleet:environment") or "") or None
    team = str(stack.get("modelfleet:team") or "") or None
    try:
        head = _models(read_manifest(file), environment, team)
    except ManifestError:
        return "invalid manifest"
    try:
        before = _models(read_manifest(file, base), environment, team)
    except FileAbsentError:
        before = []
    except ManifestError:
        return "the base manifest is invalid"
    diff = diff_models(before, head, environment=environment)
    return "" if diff.empty else diff.summary()


def _models(source: ManifestText, environment: str | None,
            team: str | None) -> list[ModelSpec]:
    models = resolve(load_manifest(source), environment).models
    return [model for model in models if team is None or model.team == team]
