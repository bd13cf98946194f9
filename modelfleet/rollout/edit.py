"""Find a model's entry in a manifest's text and splice new text into it, nothing else.

The manifest is composed with ruamel.yaml, whose nodes carry the exact character
positions of what they were parsed from. Edits are made on the text at those
positions, so comments, key order, quoting and blank lines outside the replaced
spans stay byte for byte as written (a dump of the parsed document would not).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from modelfleet.manifest.problems import SourceError


class RolloutError(SourceError):
    """A release step that cannot be made on this manifest; the file is left as it was."""


@dataclass(frozen=True)
class Edited:
    """A manifest's new text, one line saying what changed, and what the user should know."""

    text: str
    summary: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Splice:
    """Replace `text[start:end]` (character offsets) with `text`."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Entry:
    """A `models` item: its node and the lines it spans, from its `-` to its last value."""

    node: Node
    start: int
    """Offset of the first character of the line holding the item's `-`."""
    end: int
    """Offset just past the last character of the item's last line (before its line break)."""
    indent: int
    """Column of the item's `-`."""


@lru_cache(maxsize=4)
def compose(text: str, where: str) -> MappingNode:
    """The manifest's top-level mapping node; `RolloutError` if it is not YAML or not a mapping.

    Cached: a step reads the same text more than once, and nodes are never changed.
    """
    try:
        root = YAML(typ="rt").compose(text)
    except YAMLError as error:
        raise RolloutError(f"{where} is not valid YAML ({_first_line(error)}); "
                           "run `python -m modelfleet validate` to see why") from error
    if not isinstance(root, MappingNode):
        raise RolloutError(f"{where} is not a manifest: its top level is not a mapping")
    return root


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def load(text: str, where: str) -> dict[str, Any]:
    """The manifest as plain data (mappings, lists, scalars)."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        raise RolloutError(f"{where} is not valid YAML ({_first_line(error)})") from error
    return data if isinstance(data, dict) else {}


def models_of(data: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(name, entry) for each item of `models`, in order."""
    items = data.get("models")
    return [(item.get("name") if isinstance(item, dict) else None, item)
            for item in (items if isinstance(items, list) else [])]


def item_data(text: str, start: int, end: int, model: str) -> Any:
    """The data of model `model`, whose item is written in `text[start:end]`.

    The item's lines are parsed alone (a model is a small part of a large file); an
    item that uses an anchor defined elsewhere is read from the whole text instead.
    """
    try:
        items = YAML(typ="safe", pure=True).load(text[start:end])
    except YAMLError:
        items = None
    if isinstance(items, list) and len(items) == 1:
        return items[0]
    return dict(models_of(load(text, "the manifest"))).get(model)


def check_result(before: str, after: str, start: int, end: int, model: str,
                 expected: Any) -> None:
    """Make sure the edit did exactly this: `before[start:end]`, and nothing else, was
    replaced, by text that holds model `model` as `expected` (plain data).

    A safety net under the text splicing: if some unusual layout made it go wrong,
    `RolloutError` is raised and nothing is written.
    """
    new_end = len(after) - (len(before) - end)
    kept = after[:start] == before[:start] and after[new_end:] == before[end:]
    if not kept or item_data(after, start, new_end, model) != expected:
        raise RolloutError(f"the edit of model '{model}' did not come out as intended (an "
                           "unusual layout of the file?); nothing was written: edit it by hand")


def get(mapping: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    """(key node, value node) of `key` in a mapping node, or None."""
    if not isinstance(mapping, MappingNode):
        return None
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def value_of(mapping: Node | None, key: str) -> Node | None:
    found = get(mapping, key)
    return found[1] if found else None


def scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) else None


def named_items(sequence: Node | None) -> Iterator[tuple[str, MappingNode]]:
    """(name, item) for every mapping item of a sequence node that has a `name`."""
    if not isinstance(sequence, SequenceNode):
        return
    for item in sequence.value:
        name = scalar(value_of(item, "name"))
        if isinstance(item, MappingNode) and name is not None:
            yield name, item


def models_sequence(root: MappingNode, where: str) -> SequenceNode:
    """The `models` list, which must be written in block style (one `- name:` per model)."""
    models = value_of(root, "models")
    if not isinstance(models, SequenceNode):
        raise RolloutError(f"{where} has no `models` list")
    if models.flow_style:
        raise RolloutError(f"{where}: `models` is written in flow style ([...]); "
                           "write it as a block list (`- name: ...`) to edit one model")
    return models


def find_entry(text: str, models: SequenceNode, name: str) -> Entry | None:
    """The entry of model `name`, or None; `RolloutError` if it appears twice."""
    found = [item for item_name, item in named_items(models) if item_name == name]
    if len(found) > 1:
        raise RolloutError(f"model '{name}' appears {len(found)} times in the manifest; "
                           "model names must be unique")
    if not found:
        return None
    return entry_of(text, found[0])


def entry_of(text: str, item: Node) -> Entry:
    dash = text.rfind("-", 0, item.start_mark.index)
    start = line_start(text, dash)
    return Entry(item, start, line_end(text, content_end(text, item)), dash - start)


def model_names(models: SequenceNode) -> list[str]:
    return [name for name, _ in named_items(models)]


def content_end(text: str, node: Node, floor: int = 0) -> int:
    """Offset just past the last character that belongs to `node`'s value.

    A block collection's own end mark lies at the next token, past trailing comments
    and blank lines; its content ends with its last value. `floor`: never end before it
    (an empty value ends right after its key's `:`).
    """
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        last_key, last_value = node.value[-1]
        return content_end(text, last_value, last_key.end_mark.index)
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return content_end(text, node.value[-1], node.value[-1].start_mark.index)
    end: int = node.end_mark.index
    while end > floor and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def value_region(text: str, key: ScalarNode, value: Node) -> tuple[int, int]:
    """From just after a key to the end of its value: `: 1.4.2` or `:\\n  uri: s3://...`."""
    if value.start_mark.index < key.end_mark.index:
        raise RolloutError(f"line {key.start_mark.line + 1}: `{key.value}` is a YAML alias; "
                           "edit it by hand")
    return key.end_mark.index, content_end(text, value, key.end_mark.index)


def line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def line_end(text: str, offset: int) -> int:
    """Offset of the line break (`\n` or `\r\n`) ending the line that holds `offset`,
    or the text's end."""
    end = text.find("\n", offset)
    if end < 0:
        return len(text)
    return end - 1 if end > 0 and text[end - 1] == "\r" else end


def shift(text: str, columns: int, *, first_line: bool = True) -> str:
    """Indent every line by `columns` (outdent if negative, never past its first character)."""
    lines = text.split("\n")
    shifted = []
    for number, line in enumerate(lines):
        if (number == 0 and not first_line) or not line.strip() or columns == 0:
            shifted.append(line)
        elif columns > 0:
            shifted.append(" " * columns + line)
        else:
            blank = len(line) - len(line.lstrip(" "))
            shifted.append(line[min(blank, -columns):])
    return "\n".join(shifted)


def delete_item(text: str, parent: Node, index: int) -> Splice:
    """Remove item `index` of a sequence node, or key `index` (with its value) of a mapping.

    Block style: the lines of the item, from its `-` (or key) to its last value, with
    the line break before them (so the edit stays inside the lines of the model).
    Flow style: the item and the comma that separates it from a neighbour.
    """
    assert isinstance(parent, (MappingNode, SequenceNode))
    spans = [_item_span(text, item) for item in parent.value]
    start, end = spans[index]
    if parent.flow_style:
        if index + 1 < len(spans):
            return Splice(start, spans[index + 1][0], "")
        if index > 0:
            return Splice(spans[index - 1][1], end, "")
        return Splice(start, end, "")
    if isinstance(parent, SequenceNode):
        start = text.rfind("-", 0, start)
    first, last = line_start(text, start), line_end(text, end)
    if first == 0:
        return Splice(0, text.find("\n", last) + 1 if last < len(text) else last, "")
    return Splice(line_end(text, first - 1), last, "")  # from the line break before


def _item_span(text: str, item: Node | tuple[Node, Node]) -> tuple[int, int]:
    if isinstance(item, tuple):
        key, value = item
        return key.start_mark.index, content_end(text, value, key.end_mark.index)
    return item.start_mark.index, content_end(text, item, item.start_mark.index)


def apply(text: str, splices: Iterable[Splice]) -> str:
    """The text with every splice made; splices must not overlap."""
    ordered = sorted(splices, key=lambda s: s.start)
    for before, after in pairwise(ordered):
        if before.end > after.start:
            raise AssertionError(f"overlapping edits at offsets {before} and {after}")
    for splice in reversed(ordered):
        text = text[:splice.start] + splice.text + text[splice.end:]
    return text
