"""One call from a manifest file (at a ref or in the working tree) to resolved models."""

from __future__ import annotations

from pathlib import Path

from modelfleet.git.source import ManifestText, read_manifest
from modelfleet.manifest.parse import Manifest, parse_manifest
from modelfleet.manifest.problems import ManifestError
from modelfleet.manifest.resolve import Resolution, resolve, validate_manifest


def load_manifest(source: ManifestText) -> Manifest:
    return parse_manifest(source.text, source.file)


def load_resolution(file: Path, ref: str | None = None, environment: str | None = None, *,
                    display: str | None = None,
                    check_paths: bool = True) -> tuple[ManifestText, Resolution]:
    """Read, validate and resolve a manifest for one environment.

    Raises `SourceError` when the file cannot be read and `ManifestError` with every
    problem when it is not valid; nothing is resolved unless the whole file is valid.
    """
    source = read_manifest(file, ref, display)
    manifest = load_manifest(source)
    return source, resolve(manifest, environment, source.paths if check_paths else None)


def check_source(source: ManifestText, environment: str | None = None) -> Manifest:
    """Validate a manifest for one environment, or for all it names; raise on any problem."""
    manifest = load_manifest(source)
    targets = None if environment is None else [environment]
    problems = validate_manifest(manifest, targets, source.paths)
    if problems:
        raise ManifestError(problems)
    return manifest
