"""From a manifest to the models one environment deploys: merge, check, filter, gate.

Each model is `defaults` (only the sections the model has) under the model
under `environments.<env>`, then checked as a whole. Problems point at the line
that set the offending value, which may be in `defaults` or in an override.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelfleet.manifest.merge import Layer, Merged, merge_layers
from modelfleet.manifest.messages import error_message
from modelfleet.manifest.parse import Manifest, duplicate_names, model_scope, shape_problems
from modelfleet.manifest.problems import ManifestError, Problem
from modelfleet.manifest.rules import PathChecker, model_rules
from modelfleet.manifest.schema import ManifestDocument, ModelSpec
from modelfleet.manifest.yamldoc import Path, dotted

SECTIONS = ("serving", "batch")


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to declare, and where its fields came from, for messages."""

    spec: ModelSpec
    index: int
    merged: Merged = field(repr=False, compare=False)


@dataclass(frozen=True)
class Resolution:
    """The models of one manifest for one environment (None: no overrides applied)."""

    manifest: Manifest
    environment: str | None
    resolved: tuple[ResolvedModel, ...]

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        return tuple(item.spec for item in self.resolved)

    def problem(self, item: ResolvedModel, path: Path, message: str) -> Problem:
        """A problem with a field of a resolved model, at the line that set the field."""
        return _problem(self.manifest, item.index, item.merged, path, message, self.environment)

    def select(self, team: str | None = None, require_approved: bool = False) -> Resolution:
        """The models a stack deploys: one team's only, refusing candidates if required."""
        chosen = self.resolved
        problems: list[Problem] = []
        if team:
            chosen = tuple(item for item in chosen if item.spec.team == team)
            if not chosen:
                teams = ", ".join(sorted({i.spec.team for i in self.resolved})) or "none"
                problems.append(Problem(
                    self.manifest.file, None,
                    f"no model belongs to team '{team}' (teams in the manifest: {teams}); "
                    "a stack that would deploy nothing is refused rather than emptied"))
        if require_approved:
            problems += [
                self.problem(item, ("stage",),
                             "is 'candidate', but this stack deploys approved models only; "
                             "set `stage: approved` once the model has passed review")
                for item in chosen if item.spec.stage != "approved"]
        if problems:
            raise ManifestError(problems)
        return Resolution(self.manifest, self.environment, chosen)


def resolve(manifest: Manifest, environment: str | None = None,
            paths: PathChecker | None = None) -> Resolution:
    """The models for `environment`; raise `ManifestError` with every problem if any."""
    resolved, problems = resolve_models(manifest, environment, paths)
    problems = _in_reading_order(_written_problems(manifest) + problems)
    if problems:
        raise ManifestError(problems)
    return Resolution(manifest, environment, tuple(resolved))


def validate_manifest(manifest: Manifest, environments: Iterable[str | None] | None = None,
                      paths: PathChecker | None = None) -> list[Problem]:
    """Every problem of the manifest, as written and as deployed to each environment.

    By default: without overrides, then for every environment the manifest names.
    A problem already reported (same line, same message) is not repeated.
    """
    targets = list(environments) if environments is not None else (
        [None, *manifest.environments()])
    found = _written_problems(manifest)
    for environment in targets:
        found += resolve_models(manifest, environment, paths)[1]
    return _in_reading_order(found)


def _written_problems(manifest: Manifest) -> list[Problem]:
    """Problems of the manifest as written: shapes, types, duplicate names."""
    return shape_problems(manifest, ManifestDocument, manifest.doc.data) + \
        duplicate_names(manifest)


def _in_reading_order(found: list[Problem]) -> list[Problem]:
    """Each problem once (by line and message), sorted by line."""
    seen: set[tuple[int | None, str]] = set()
    unique: list[Problem] = []
    for problem in found:
        if (problem.line, problem.message) not in seen:
            seen.add((problem.line, problem.message))
            unique.append(problem)
    return sorted(unique, key=lambda p: (p.line or 0, str(p)))


def resolve_models(manifest: Manifest, environment: str | None,
                   paths: PathChecker | None) -> tuple[list[ResolvedModel], list[Problem]]:
    """Every model that resolves cleanly, and the problems of those that do not."""
    resolved: list[ResolvedModel] = []
    problems: list[Problem] = []
    for index, entry in enumerate(manifest.entries):
        if not isinstance(entry, dict):
            continue  # reported by the shape check
        merged = merge_layers(_layers(manifest, index, entry, environment))
        problems += [_problem(manifest, index, merged, path, message, environment)
                     for path, message in model_rules(merged.data, paths)]
        try:
            spec = ModelSpec.model_validate(merged.data)
        except ValidationError as error:
            problems += [_problem(manifest, index, merged, tuple(detail["loc"]),
                                  error_message(detail, ModelSpec), environment)
                         for detail in error.errors()]
            continue
        resolved.append(ResolvedModel(spec, index, merged))
    return resolved, problems


def _layers(manifest: Manifest, index: int, entry: dict[str, Any],
            environment: str | None) -> list[Layer]:
    """defaults (for the sections the model has) < the model < its environment override."""
    base = {key: value for key, value in entry.items() if key != "environments"}
    overrides = entry.get("environments")
    override = overrides.get(environment) if environment and isinstance(overrides, dict) else None
    override = dict(override) if isinstance(override, dict) else {}
    for layer in (base, override):
        for section in SECTIONS:
            if section in layer and layer[section] is None:
                layer[section] = {}  # `serving:` alone means: serve, with the defaults
    sections = {s for s in SECTIONS if s in base or s in override}
    defaults = manifest.defaults if isinstance(manifest.defaults, dict) else {}
    chosen = {s: v for s, v in defaults.items() if s in sections and isinstance(v, dict)}
    layers = [Layer(chosen, ("defaults",)), Layer(base, ("models", index))]
    if override:
        layers.append(Layer(override, ("models", index, "environments", str(environment))))
    return layers


def _problem(manifest: Manifest, index: int, merged: Merged, path: Path, message: str,
             environment: str | None) -> Problem:
    """A problem at `path` of a merged model, located at the line that set the value."""
    origin = merged.origin_of(path) or ("models", index)
    model, _ = model_scope(manifest.doc.data, ("models", index))
    return Problem(manifest.file, manifest.doc.line_of(origin), message, model, dotted(path),
                   environment)
