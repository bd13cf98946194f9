"""YAML parsing that remembers the line of every key, so each problem can cite it.

PyYAML silently keeps the last of two equal keys; a manifest with
`serving:` twice would lose half its settings without a word. Here a
duplicate key is a problem like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from modelfleet.manifest.problems import Problem

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML data plus the 1-based line where each path begins."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def parse_yaml(text: str, file: str) -> YamlDocument | list[Problem]:
    """Parse one YAML document; syntax errors and duplicate keys become problems."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        reason = error.problem or str(error)
        if error.context:
            reason = f"{reason} ({error.context})"
        return [Problem(file, line, f"invalid YAML: {reason}")]
    except yaml.YAMLError as error:
        return [Problem(file, None, f"invalid YAML: {error}")]
    if node is None:
        return [Problem(file, 1, "the file is empty")]

    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []
    _index(node, (), lines, problems, file)
    if problems:
        return problems
    data = yaml.SafeLoader(text).get_single_data()
    return YamlDocument(data=data, lines=lines)


def _index(node: yaml.Node, path: Path, lines: dict[Path, int], problems: list[Problem],
           file: str) -> None:
    """Record the line of every mapping key and sequence item below `node`."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _index(value_node, path, lines, problems, file)
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(Problem(
                    file, line, f"duplicate key '{key}' (first given at line {seen[key]})",
                    path=dotted(path)))
                continue
            seen[key] = line
            lines.setdefault(path + (key,), line)
            _index(value_node, path + (key,), lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(path + (index,), item.start_mark.line + 1)
            _index(item, path + (index,), lines, problems, file)


def dotted(path: Path) -> str:
    """`('serving', 'replicas', 'min')` -> `serving.replicas.min`; list indexes in brackets."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out

