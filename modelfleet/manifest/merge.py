"""Deep merge of manifest layers that remembers which layer set each value.

A model is `defaults` under the model under `environments.<env>`. A problem in
the merged model must still point at the line that caused it, so every merged
path keeps the document path it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelfleet.manifest.yamldoc import Path

# Keys of which a layer may give one only: an environment that switches a model to
# `artifact.path` drops the base layer's `artifact.uri` instead of holding both.
EXCLUSIVE: dict[Path, frozenset[str]] = {
    ("artifact",): frozenset({"uri", "path"}),
    ("image",): frozenset({"build", "ref"}),
}


@dataclass(frozen=True)
class Layer:
    """Data written at `origin` in the document (e.g. `('models', 3)`)."""

    data: Mapping[str, Any]
    origin: Path


@dataclass(frozen=True)
class Merged:
    data: dict[str, Any]
    origins: dict[Path, Path]
    """Merged path -> document path of the layer that set it last."""

    def origin_of(self, path: Path) -> Path | None:
        """The document path of `path`, or of the closest ancestor the merge recorded."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]] + path[end:]
        return None


def merge_layers(layers: Sequence[Layer]) -> Merged:
    """Deep-merge mappings, later layers winning; lists and scalars are replaced whole."""
    data: dict[str, Any] = {}
    origins: dict[Path, Path] = {}
    for layer in layers:
        _merge_into(data, layer.data, (), layer.origin, origins)
    return Merged(data, origins)


def _merge_into(target: dict[str, Any], source: Mapping[str, Any], path: Path,
                origin: Path, origins: dict[Path, Path]) -> None:
    exclusive = EXCLUSIVE.get(path, frozenset())
    given = exclusive & source.keys()
    for key in exclusive - given if given else ():
        target.pop(key, None)
    for key, value in source.items():
        here = path + (key,)
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            origins[here] = origin + (key,)
            _merge_into(target[key], value, here, origin + (key,), origins)
        else:
            target[key] = _copy(value)
            _record(value, here, origin + (key,), origins)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _record(value: Any, path: Path, origin: Path, origins: dict[Path, Path]) -> None:
    origins[path] = origin
    if isinstance(value, Mapping):
        for key, item in value.items():
            _record(item, path + (key,), origin + (key,), origins)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record(item, path + (index,), origin + (index,), origins)
