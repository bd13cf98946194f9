"""Reading a manifest: YAML, `apiVersion`, then the shape of every section.

`parse_manifest` either returns a `Manifest` whose every section has the right
shape, or raises `ManifestError` with all the problems it found. Merging
defaults and overrides into models is `resolve`'s job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from modelfleet.manifest.messages import error_message
from modelfleet.manifest.problems import ManifestError, Problem
from modelfleet.manifest.schema import API_VERSION
from modelfleet.manifest.yamldoc import Path, YamlDocument, dotted, parse_yaml


@dataclass(frozen=True)
class Manifest:
    """A manifest whose sections all have the right shape; not yet merged."""

    file: str
    text: str
    doc: YamlDocument

    @property
    def entries(self) -> list[Any]:
        """The items of `models` as written (not necessarily mappings)."""
        models = self.doc.data.get("models")
        return list(models) if isinstance(models, list) else []

    @property
    def defaults(self) -> dict[str, Any]:
        defaults = self.doc.data.get("defaults")
        return dict(defaults) if isinstance(defaults, dict) else {}

    def environments(self) -> list[str]:
        """Every environment that some model overrides, sorted."""
        names: set[str] = set()
        for entry in self.entries:
            overrides = entry.get("environments") if isinstance(entry, dict) else None
            if isinstance(overrides, dict):
                names.update(str(name) for name in overrides)
        return sorted(names)

    def problem(self, path: Path, message: str) -> Problem:
        """A problem at document `path`, attributed to the model the path lies in."""
        model, inside = model_scope(self.doc.data, path)
        return Problem(self.file, self.doc.line_of(path), message, model, dotted(inside))


def parse_manifest(text: str, file: str) -> Manifest:
    """Parse a manifest's YAML and check its format version.

    Raises `ManifestError` when the text is not a YAML mapping in format
    modelfleet/v1; every other problem is found by `validate_manifest`.
    """
    parsed = parse_yaml(text, file)
    if isinstance(parsed, list):
        raise ManifestError(parsed)
    if not isinstance(parsed.data, dict):
        raise ManifestError([Problem(file, 1, "a manifest is a mapping with "
                                     "`apiVersion`, `defaults` and `models`")])
    manifest = Manifest(file, text, parsed)
    version = parsed.data.get("apiVersion")
    if version is not None and version != API_VERSION:
        raise ManifestError([manifest.problem(
            ("apiVersion",), f"'{version}' is not a format this modelfleet reads; "
            f"use '{API_VERSION}'")])
    return manifest


def shape_problems(manifest: Manifest, schema: type[BaseModel], data: Any,
                   origin: Path = ()) -> list[Problem]:
    """Check `data` (found at document path `origin`) against `schema`."""
    try:
        schema.model_validate(data)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            loc = tuple(part for part in detail["loc"] if part != "[key]")
            problems.append(manifest.problem(origin + loc, error_message(detail, schema)))
        return problems
    return []


def duplicate_names(manifest: Manifest) -> list[Problem]:
    names = [entry.get("name") for entry in manifest.entries if isinstance(entry, dict)]
    counts = Counter(name for name in names if isinstance(name, str))
    problems = []
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str) or counts[name] < 2:
            continue
        line = manifest.doc.line_of(("models", index, "name"))
        if name in first:
            problems.append(Problem(manifest.file, line,
                                    f"name is already used by the model at line {first[name]}; "
                                    "model names must be unique", name, "name"))
        else:
            first[name] = line or 0
    return problems


def model_scope(data: Any, path: Path) -> tuple[str | None, Path]:
    """(model name, path inside that model) for a document path under `models[i]`."""
    if len(path) >= 2 and path[0] == "models" and isinstance(path[1], int):
        try:
            entry = data["models"][path[1]]
        except (KeyError, IndexError, TypeError):
            return None, path
        name = entry.get("name") if isinstance(entry, dict) else None
        label = name if isinstance(name, str) and name else f"models[{path[1]}]"
        return label, path[2:]
    return None, path

