"""Which commit set each model's current version.

Resources carry the commit that *set the model's version*, so their tags change
exactly when the version does: an unrelated edit elsewhere in the manifest
leaves every other model's resources alone (DESIGN invariants 2 and 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelfleet.git.source import FileRevision, ManifestText, file_revisions, text_digest

UNCOMMITTED = "uncommitted"


@dataclass(frozen=True)
class VersionOrigin:
    """The commit that set a model's current version, and the manifest's digest there."""

    commit: str
    digest: str
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
        self._parsed: dict[tuple[str, str | None], tuple[dict[str, str], str]] = {}

    def _read(self, revision: FileRevision,
              environment: str | None) -> tuple[dict[str, str], str]:
        key = (revision.blob_sha or "", environment)
        if key not in self._parsed:
            text = revision.text() or ""
            self._parsed[key] = (versions_in(text, environment), text_digest(text))
        return self._parsed[key]

    def version_origins(self, source: ManifestText, file: Path, environment: str | None,
                        current: Mapping[str, str]) -> dict[str, VersionOrigin]:
        """For each model in `current` (name -> version), where its version was set.

        A version that no commit up to the deployed ref has (an uncommitted edit,
        or a manifest outside git) is `uncommitted`, with the digest of the text at hand.
        """
        uncommitted = VersionOrigin(UNCOMMITTED, source.digest)
        if source.commit is None:
            return dict.fromkeys(current, uncommitted)
        since: dict[str, tuple[str, VersionOrigin]] = {}
        for revision in file_revisions(file, source.commit.sha):
            versions, digest = self._read(revision, environment)
            for name in list(since):
                if name not in versions:
                    del since[name]  # removed: a later re-add starts a new streak
            for name, version in versions.items():
                if name not in since or since[name][0] != version:
                    since[name] = (version, VersionOrigin(revision.commit.sha, digest))
        return {name: since[name][1] if name in since and since[name][0] == version
                else uncommitted for name, version in current.items()}

