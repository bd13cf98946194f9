"""Which commit set each model's current version, and which last changed the manifest.

Resources carry the commit that *set the model's version*, so their tags change
exactly when the version does: an unrelated edit elsewhere in the manifest
leaves every other model's resources alone (DESIGN invariants 2 and 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelfleet.gitsource import FileRevision, ManifestText, file_revisions, last_change

UNCOMMITTED = "uncommitted"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def versions_in(text: str | None, environment: str | None) -> dict[str, str]:
    """Model name -> version for `environment`, read leniently from a manifest's text."""
    if not text:
        return {}
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    models = data.get("models") if isinstance(data, dict) else None
    found: dict[str, str] = {}
    for entry in models if isinstance(models, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        version = entry.get("version")
        overrides = entry.get("environments")
        override = overrides.get(environment) if environment and isinstance(
            overrides, dict) else None
        if isinstance(override, dict) and "version" in override:
            version = override["version"]
        found[entry["name"]] = str(version)
    return found


class VersionHistory:
    """Walks the manifest's history once; memoises each distinct file content."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str | None], dict[str, str]] = {}

    def _versions(self, revision: FileRevision, environment: str | None) -> dict[str, str]:
        key = (revision.blob_sha or "", environment)
        if key not in self._parsed:
            self._parsed[key] = versions_in(revision.text(), environment)
        return self._parsed[key]

    def version_commits(self, source: ManifestText, file: Path, environment: str | None,
                        current: Mapping[str, str]) -> dict[str, str]:
        """For each model in `current` (name -> version), the commit that set that version.

        A version that no commit up to the deployed ref has (an uncommitted edit,
        or a manifest outside git) is `uncommitted`.
        """
        if source.commit is None:
            return dict.fromkeys(current, UNCOMMITTED)
        since: dict[str, tuple[str, str]] = {}
        for revision in file_revisions(file, source.commit.sha):
            versions = self._versions(revision, environment)
            for name in list(since):
                if name not in versions:
                    del since[name]  # removed: a later re-add starts a new streak
            for name, version in versions.items():
                if since.get(name, ("",))[0] != version:
                    since[name] = (version, revision.commit.sha)
        return {name: since[name][1] if since.get(name, ("",))[0] == version else UNCOMMITTED
                for name, version in current.items()}


def manifest_commit(source: ManifestText, file: Path) -> str:
    """The last commit that changed the manifest (at the deployed ref), or `uncommitted`."""
    if source.commit is None or source.dirty:
        return UNCOMMITTED
    last = last_change(file, source.commit.sha)
    return last.sha if last else UNCOMMITTED
