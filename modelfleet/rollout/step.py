"""A release step on a manifest file: read it, edit it, check the result, show the diff, write it.

The file is written only when the edited manifest validates (as written and for
every environment it names, local paths included); otherwise nothing is written
and every problem is raised. Nothing is committed and nothing is applied: the
change is for review, in git.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from modelfleet.diff.compare import ManifestDiff, diff_models
from modelfleet.git.source import FileAbsentError, read_manifest, text_at
from modelfleet.manifest.parse import Manifest, parse_manifest
from modelfleet.manifest.problems import ManifestError, Problem, SourceError
from modelfleet.manifest.resolve import resolve, validate_manifest
from modelfleet.manifest.rules import DirectoryPaths
from modelfleet.rollout.edit import Edited, RolloutError
from modelfleet.rollout.lock import Listing, lock_text
from modelfleet.rollout.promote import promote_text
from modelfleet.rollout.rollback import entry_text, rollback_text


@dataclass(frozen=True)
class Step:
    """What a release step did to the file."""

    summary: str
    warnings: tuple[str, ...]
    diff: ManifestDiff | None
    """The manifest diff of the change; None when nothing changed, or when the file's
    models did not resolve before the step (so there is nothing to compare with)."""
    written: bool


def promote(file: Path, model: str, candidate: str, display: str | None = None) -> Step:
    """Promote `candidate` into `model` in the manifest `file`, in place."""
    shown = display or str(file)
    before = read_text(file, shown)
    edited = promote_text(before, shown, model, candidate)
    return finish(file, shown, before, edited, f"after promote {model}/{candidate}")


def rollback(file: Path, model: str, ref: str, display: str | None = None) -> Step:
    """Restore `model`'s entry in `file` as it was written at git ref `ref`, in place.

    Refused (`RolloutError`) when the model's entry has uncommitted changes, which the
    rollback would lose; uncommitted changes elsewhere in the file are kept.
    """
    shown = display or str(file)
    before = read_text(file, shown)
    at_ref = read_manifest(file, ref, shown)
    _refuse_uncommitted(file, shown, before, model)
    edited = rollback_text(before, shown, at_ref.text, f"{shown} at {at_ref.label}", model)
    return finish(file, shown, before, edited, f"after rollback {model} to {ref}")


def lock(file: Path, model: str, listing: Listing, display: str | None = None) -> Step:
    """Fill or refresh `artifact.files` of `model`'s S3-prefix artifacts in `file`, in place."""
    shown = display or str(file)
    before = read_text(file, shown)
    edited = lock_text(before, shown, model, listing)
    return finish(file, shown, before, edited, f"after artifact lock {model}")


def read_text(file: Path, shown: str) -> str:
    """The file's text exactly as stored (line breaks included), to write it back the same."""
    try:
        return file.read_bytes().decode("utf-8")
    except FileNotFoundError as error:
        raise SourceError(f"{shown}: no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{shown}: cannot be read ({error})") from error


def _refuse_uncommitted(file: Path, shown: str, text: str, model: str) -> None:
    try:
        committed: str | None = text_at(file, "HEAD")
    except FileAbsentError:
        committed = None
    if committed == text:
        return
    ours = entry_text(text, shown, model)
    theirs = entry_text(committed, f"{shown} at HEAD", model) if committed is not None else None
    if ours != theirs:
        raise RolloutError(f"model '{model}' has uncommitted changes in {shown}, which a "
                           "rollback would lose; commit or discard them first")


def finish(file: Path, shown: str, before: str, edited: Edited, head_label: str) -> Step:
    """Check the edited text, diff it against `before`, and write it to `file`.

    Refused (`ManifestError`, nothing written) when the result has a problem the file
    did not have before; problems it already had elsewhere are the user's to fix and
    are only counted in a warning, so that a broken neighbour never blocks a rollback.
    """
    if edited.text == before:
        return Step(f"no change: {edited.summary}; nothing was written", edited.warnings, None,
                    False)
    paths = DirectoryPaths(file.parent)
    after = parse_manifest(edited.text, f"{shown} after the edit")
    problems = validate_manifest(after, None, paths)
    try:
        earlier: Manifest | None = parse_manifest(before, shown)
    except ManifestError:
        earlier = None
    warnings = edited.warnings
    if problems:
        old = {_key(p) for p in validate_manifest(earlier, None, paths)} if earlier else set()
        new = [problem for problem in problems if _key(problem) not in old]
        if new or earlier is None:
            raise ManifestError(new or problems)
        warnings += (f"{shown} still has {len(problems)} problem(s) it had before this change; "
                     f"see `python -m modelfleet validate {shown}`",)
    diff: ManifestDiff | None = None
    if earlier is not None:
        with suppress(ManifestError):  # like `diff`: resolved without looking at local paths
            diff = diff_models(resolve(earlier).models, resolve(after).models,
                               base_label=f"{shown} before", head_label=head_label)
    file.write_bytes(edited.text.encode("utf-8"))
    return Step(edited.summary, warnings, diff, True)


def _key(problem: Problem) -> tuple[str | None, str, str, str | None]:
    """A problem without its file and line, which an edit above it moves."""
    return problem.model, problem.path, problem.message, problem.environment
