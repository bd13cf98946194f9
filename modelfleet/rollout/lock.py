"""`artifact lock MODEL`: write every object of a model's S3-prefix artifacts into `artifact.files`.

The artifacts locked are the model's own `artifact`, each candidate's
(`serving.candidates[*].artifact`) and each adapter's (`serving.adapters[*].artifact`),
when their `uri` is an S3 prefix (ends in `/`). They are found in the YAML as written
(not through the schema), so a field the schema of this checkout lacks still locks.
Only the `files` value of those artifacts is replaced (or added, as the artifact's last
key), one flow mapping per file:

    artifact:
      uri: s3://weights/llama-3.1-8b/2024-07-18/
      files:
        - {path: config.json, sha256: 3f1c...9a, size: 1024}
        - {path: model-00001-of-00004.safetensors, sha256: 9b2e...41, size: 4976698672,
           versionId: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"}

An artifact written as a flow mapping (`artifact: {uri: s3://b/p/}`) is rewritten
as a block mapping with its keys as written. Everything else stays byte for byte.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from modelfleet.release.pinned import PinnedFile
from modelfleet.rollout.edit import (
    Edited,
    RolloutError,
    Splice,
    apply,
    check_result,
    compose,
    content_end,
    find_entry,
    get,
    item_data,
    line_end,
    model_names,
    models_sequence,
    named_items,
    scalar,
    value_of,
)

Listing = Callable[[str], Sequence[PinnedFile]]
"""Every object below an `s3://bucket/prefix/`, pinned (sorted by path)."""

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


@dataclass(frozen=True)
class Locked:
    """One artifact of the model that `lock` pins: where it is in the YAML and in the data."""

    label: str
    """`artifact`, `candidate 'challenger'`, `adapter 'sql'`."""
    key: ScalarNode
    node: Node
    """The `artifact` value (a mapping, when it is locked)."""
    data_path: tuple[str | int, ...]
    """Path of the artifact in the model's entry as plain data."""
    version: str | None
    """The version that names this artifact (the model's, the candidate's, the adapter's)."""


def lock_text(text: str, where: str, model: str, listing: Listing) -> Edited:
    """`text` with `artifact.files` of `model`'s S3-prefix artifacts filled from `listing`.

    Raises RolloutError (one line, nothing changed): an unknown model, a model
    without an artifact whose `uri` ends in `/`. Errors of `listing` pass through.
    """
    models = models_sequence(compose(text, where), where)
    entry = find_entry(text, models, model)
    if entry is None:
        known = ", ".join(model_names(models)) or "none"
        raise RolloutError(f"model '{model}' is not in {where} (models: {known})")
    written = item_data(text, entry.start, entry.end, model)
    if not isinstance(written, dict):
        raise RolloutError(f"model '{model}' could not be read from {where}")
    locked = prefix_artifacts(model, entry.node, written)
    if not locked:
        raise RolloutError(
            f"model '{model}' has no artifact whose uri is an S3 prefix (ending in /): "
            "`artifact lock` pins the objects below a prefix; a single object is pinned by "
            "`artifact.sha256` (and `versionId`)")
    newline = "\r\n" if "\r\n" in text else "\n"
    expected = copy.deepcopy(written)
    splices, warnings, counts = [], [], []
    for artifact in locked:
        uri = scalar(value_of(artifact.node, "uri")) or ""
        files = list(listing(uri))
        splices.append(_files_splice(text, artifact, files, newline))
        data = _at(expected, artifact.data_path)
        before = data.get("files")
        data["files"] = [_document(file) for file in files]
        warnings += _changed(model, artifact, before, data["files"])
        counts.append(f"{artifact.label} {len(files)} file(s), {_size(files)}")
    if any(s.start < entry.start or s.end > entry.end for s in splices):
        raise AssertionError(f"an edit of model '{model}' reaches outside its entry")
    result = apply(text, splices)
    check_result(text, result, entry.start, entry.end, model, expected)
    return Edited(result, f"locked model '{model}': {'; '.join(counts)}", tuple(warnings))


def prefix_artifacts(model: str, entry: Node, written: dict[str, Any]) -> list[Locked]:
    """The model's, its candidates' and its adapters' artifacts whose `uri` ends in `/`."""
    found: list[Locked] = []
    version = _text(written.get("version"))
    own = get(entry, "artifact")
    if own is not None:
        found.append(Locked("artifact", own[0], own[1], ("artifact",), version))
    serving = value_of(entry, "serving")
    data_serving = written.get("serving") if isinstance(written.get("serving"), dict) else {}
    for field, kind in (("candidates", "candidate"), ("adapters", "adapter")):
        items = data_serving.get(field) if isinstance(data_serving, dict) else None
        for name, item in named_items(value_of(serving, field)):
            pair = get(item, "artifact")
            index = next((i for i, data in enumerate(items or [])
                          if isinstance(data, dict) and data.get("name") == name), None)
            if pair is None or index is None:
                continue
            label = f"{kind} '{name}'"
            if item.flow_style:
                raise RolloutError(f"model '{model}': {label} is written in flow style "
                                   "({...}); write it as a block mapping to lock its files")
            item_version = _text(items[index].get("version")) if items else None
            found.append(Locked(label, pair[0], pair[1], ("serving", field, index, "artifact"),
                                item_version))
    return [locked for locked in found if isinstance(locked.node, MappingNode)
            and (scalar(value_of(locked.node, "uri")) or "").startswith("s3://")
            and (scalar(value_of(locked.node, "uri")) or "").endswith("/")]


def _files_splice(text: str, artifact: Locked, files: Sequence[PinnedFile],
                  newline: str) -> Splice:
    node = artifact.node
    assert isinstance(node, MappingNode)
    if node.flow_style:
        indent = artifact.key.start_mark.column + 2
        lines = [text[key.start_mark.index:content_end(text, value, key.end_mark.index)]
                 for key, value in node.value if scalar(key) != "files"]
        body = "".join(newline + " " * indent + line for line in lines)
        return Splice(artifact.key.end_mark.index, content_end(text, node),
                      ":" + body + newline + " " * indent + "files:" + _items(files, indent,
                                                                               newline))
    indent = node.value[0][0].start_mark.column
    existing = get(node, "files")
    if existing is not None:
        key, value = existing
        return Splice(key.end_mark.index, content_end(text, value, key.end_mark.index),
                      ":" + _items(files, indent, newline))
    end = line_end(text, content_end(text, node))
    return Splice(end, end, newline + " " * indent + "files:" + _items(files, indent, newline))


def _items(files: Sequence[PinnedFile], indent: int, newline: str) -> str:
    """The `files` list, one flow mapping per line, each `- ` two columns in."""
    return "".join(f"{newline}{' ' * (indent + 2)}- {_flow(file)}" for file in files)


def _flow(file: PinnedFile) -> str:
    version = f", versionId: {json.dumps(file.version_id)}" if file.version_id else ""
    return f"{{path: {_scalar(file.path)}, sha256: {file.sha256}, size: {file.size}{version}}}"


def _scalar(value: str) -> str:
    """`value` plain when YAML reads it back as that text, else double-quoted."""
    if _PLAIN.fullmatch(value):
        try:
            if YAML(typ="safe", pure=True).load(value) == value:
                return value
        except YAMLError:
            pass
    return json.dumps(value)


def _document(file: PinnedFile) -> dict[str, Any]:
    """A file as the manifest's data holds it (`versionId` only when pinned)."""
    document: dict[str, Any] = {"path": file.path, "sha256": file.sha256, "size": file.size}
    if file.version_id:
        document["versionId"] = file.version_id
    return document


def _changed(model: str, artifact: Locked, before: Any, after: list[dict[str, Any]]) -> list[str]:
    """A warning when files pinned before now pin other content under the same version."""
    if not isinstance(before, list) or not before:
        return []
    old = {str(f.get("path")): (f.get("sha256"), f.get("size"))
           for f in before if isinstance(f, dict)}
    new = {str(f["path"]): (f["sha256"], f["size"]) for f in after}
    altered = sorted(path for path in old.keys() & new.keys() if old[path] != new[path])
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    if not (altered or added or removed):
        return []
    what = [f"{len(paths)} {verb} ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})"
            for verb, paths in (("changed", altered), ("added", added), ("removed", removed))
            if paths]
    return [f"model '{model}': the objects of {artifact.label} differ from its pinned files "
            f"({'; '.join(what)}) while the version stays {artifact.version}: a plan flags "
            "this as artifact-mutated; bump the version if the content is new"]


def _at(data: Any, path: tuple[str | int, ...]) -> dict[str, Any]:
    for part in path:
        data = data[part]
    assert isinstance(data, dict)
    return data


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _size(files: Sequence[PinnedFile]) -> str:
    total = sum(file.size for file in files)
    return f"{total / (1 << 30):.2f} GiB" if total >= 1 << 30 else f"{total / (1 << 20):.1f} MiB"
