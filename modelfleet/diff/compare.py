"""The semantic diff of two manifests: which models changed, which fields, and how.

Models are compared after defaults and environment overrides are merged in,
because that is what gets deployed: a change of `defaults` shows as a change of
every model it reaches, and an override that shadows it shows as no change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modelfleet.manifest.schema import ModelSpec, traffic_split
from modelfleet.manifest.semver import VersionChange, classify


class Status(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class FieldChange:
    """One field of one model: its path as written in the manifest, old and new value."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ModelDiff:
    name: str
    status: Status
    old_version: str | None = None
    new_version: str | None = None
    changes: tuple[FieldChange, ...] = ()
    traffic: tuple[str | None, str | None] | None = None
    """How live traffic is shared, before and after, when that changed (see `traffic_of`)."""

    @property
    def version_change(self) -> VersionChange | None:
        if self.old_version and self.new_version and self.old_version != self.new_version:
            return classify(self.old_version, self.new_version)
        return None


@dataclass(frozen=True)
class ManifestDiff:
    """Everything that differs between a base and a head manifest, for one environment."""

    base: str
    head: str
    environment: str | None
    models: tuple[ModelDiff, ...]
    unchanged: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.models

    def by_status(self, status: Status) -> list[ModelDiff]:
        return [model for model in self.models if model.status is status]

    def summary(self) -> str:
        """One line: `1 added, 1 removed, 2 changed (1 minor, 1 patch), 3 unchanged`."""
        if self.empty:
            return f"no changes ({len(self.unchanged)} models unchanged)"
        parts = []
        for status in Status:
            count = len(self.by_status(status))
            if not count:
                continue
            text = f"{count} {status.value}"
            if status is Status.CHANGED:
                kinds = Counter(m.version_change.value for m in self.by_status(status)
                                if m.version_change)
                if kinds:
                    text += " (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")"
            parts.append(text)
        parts.append(f"{len(self.unchanged)} unchanged")
        return ", ".join(parts)


def diff_models(base: Iterable[ModelSpec], head: Iterable[ModelSpec], *, base_label: str = "base",
                head_label: str = "head", environment: str | None = None) -> ManifestDiff:
    """Compare two sets of resolved models, model by model and field by field."""
    old = {model.name: model for model in base}
    new = {model.name: model for model in head}
    models: list[ModelDiff] = []
    unchanged: list[str] = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before is None and after is not None:
            models.append(ModelDiff(name, Status.ADDED, new_version=after.version))
        elif after is None and before is not None:
            models.append(ModelDiff(name, Status.REMOVED, old_version=before.version))
        elif before is not None and after is not None:
            changes = tuple(field_changes(as_written(before), as_written(after)))
            traffic = (traffic_of(before), traffic_of(after))
            if changes:
                models.append(ModelDiff(name, Status.CHANGED, before.version, after.version,
                                        changes, traffic if traffic[0] != traffic[1] else None))
            else:
                unchanged.append(name)
    return ManifestDiff(base_label, head_label, environment, tuple(models), tuple(unchanged))


def traffic_of(model: ModelSpec) -> str | None:
    """Who answers the model's live traffic: `stable 90%, challenger 10%`, plus shadows
    (`shadow mirrors 100%`); None for a model that does not serve online. Versions are left
    out: a version bump is not a traffic change."""
    serving = model.serving
    if serving is None:
        return None
    if serving.rollout.strategy == "progressive":
        return "stable 100%, new versions by progressive rollout (Flagger)"
    split = traffic_split(serving.candidates)
    parts = [f"{name or 'stable'} {percent}%" for name, percent in split.items()]
    parts += [f"{c.name} mirrors {c.mirror}%" for c in serving.candidates
              if c.mirror is not None]
    return ", ".join(parts)


def as_written(model: ModelSpec) -> dict[str, Any]:
    """The model with the manifest's own key names, without unset optional fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any],
                  prefix: str = "") -> list[FieldChange]:
    """Leaf-level changes; a section present on one side only is one change."""
    changes: list[FieldChange] = []
    for key in _ordered_keys(old, new):
        path = f"{prefix}.{key}" if prefix else str(key)
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes += field_changes(before, after, path)
        elif isinstance(before, list) and isinstance(after, list) and _keyed(before + after):
            changes += _list_changes(before, after, path)
        else:
            changes.append(FieldChange(path, before, after))
    return changes


def _ordered_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys in the order the schema writes them, additions last."""
    return list(old) + [key for key in new if key not in old]


def _key(items: list[Any]) -> str | None:
    """A list of mappings with `id`s (batch runs), `name`s (candidates) or `path`s (an
    artifact's pinned files) is compared item by item, by that key."""
    for key in ("id", "name", "path"):
        if items and all(isinstance(item, Mapping) and key in item for item in items):
            return key
    return None


def _keyed(items: list[Any]) -> bool:
    return _key(items) is not None


def _list_changes(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]],
                  path: str) -> list[FieldChange]:
    key = _key(old + new) or "id"
    before = {item[key]: item for item in old}
    after = {item[key]: item for item in new}
    return field_changes(before, after, path)
