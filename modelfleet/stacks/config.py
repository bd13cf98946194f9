"""Stack configuration files, read without the Pulumi CLI.

`stacks/Pulumi.<stack>.yaml` plus the defaults of `Pulumi.yaml`'s `config:`
section give the configuration `pulumi up` would run with. Encrypted
(`secure:`) values are never decrypted: they are reported as secrets.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelfleet.manifest.problems import ManifestError, Problem, SourceError

SECRET_PLACEHOLDER = "[secret]"


@dataclass(frozen=True)
class StackConfig:
    """One stack's configuration: full keys (`aws:region`) to values."""

    name: str
    file: str
    values: dict[str, Any]
    secrets: frozenset[str] = field(default_factory=frozenset)
    """Keys whose values are encrypted in the file (shown, never decrypted)."""

    def for_pulumi(self) -> dict[str, str]:
        """As the engine hands config to a program: strings, JSON for lists and maps."""
        return {key: SECRET_PLACEHOLDER if key in self.secrets else _as_text(value)
                for key, value in self.values.items()}

    def get(self, key: str) -> Any:
        return self.values.get(key)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def project_file(root: Path) -> dict[str, Any]:
    try:
        text = (root / "Pulumi.yaml").read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise SourceError(f"{root}: no Pulumi.yaml here or in any folder above; run inside "
                          "the project") from error
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{root / 'Pulumi.yaml'}: cannot be read ({error})") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ManifestError([Problem("Pulumi.yaml", None, f"invalid YAML: {error}")]) from error
    if not isinstance(data, dict) or "name" not in data:
        raise ManifestError([Problem("Pulumi.yaml", 1, "is not a Pulumi project file")])
    return data


def stack_dir(root: Path) -> Path:
    return root / str(project_file(root).get("stackConfigDir") or ".")


def list_stacks(root: Path) -> list[str]:
    return sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml")
                  for path in stack_dir(root).glob("Pulumi.*.yaml"))


def project_defaults(project: dict[str, Any]) -> dict[str, Any]:
    """`config:` defaults of Pulumi.yaml, under their full keys."""
    defaults: dict[str, Any] = {}
    name = project["name"]
    for key, spec in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            defaults[full] = spec["default"]
        elif not isinstance(spec, dict):
            defaults[full] = spec
    return defaults


def load_stack(root: Path, name: str) -> StackConfig:
    """The configuration `pulumi up --stack <name>` would run with."""
    folder = stack_dir(root)
    path = folder / f"Pulumi.{name}.yaml"
    shown = str(path.relative_to(root))
    if not path.exists():
        known = ", ".join(list_stacks(root)) or "none"
        raise SourceError(f"no stack '{name}': {shown} does not exist (stacks: {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{shown}: cannot be read ({error})") from error
    return parse_stack(project_file(root), name, text, shown)


def parse_stack(project: dict[str, Any], name: str, text: str, shown: str) -> StackConfig:
    """A stack file's text (from disk or from git) over the project's defaults."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ManifestError([Problem(shown, mark.line + 1 if mark else None,
                                     f"invalid YAML: {getattr(error, 'problem', error)}")]) \
            from error
    config = data.get("config") if isinstance(data, dict) else None
    if config is not None and not isinstance(config, dict):
        raise ManifestError([Problem(shown, 1, "`config:` must be a mapping")])
    values = project_defaults(project)
    secrets: set[str] = set()
    for key, value in (config or {}).items():
        full = key if ":" in key else f"{project['name']}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets.add(full)
            values[full] = SECRET_PLACEHOLDER
        else:
            values[full] = value
    return StackConfig(name, shown, values, frozenset(secrets))


def with_key_lines(problems: Iterable[Problem], root: Path) -> list[Problem]:
    """Problems of a stack file's keys (`aws:region`, `modelfleet:namspace`) with the line
    the key is set on, when the file under `root` sets it; others as they are."""
    found = []
    for problem in problems:
        line = None
        if problem.line is None and ":" in problem.path and problem.file.endswith(".yaml"):
            line = key_line(root / problem.file, problem.path)
        found.append(dataclasses.replace(problem, line=line) if line else problem)
    return found


def key_line(file: Path, key: str) -> int | None:
    """The line of `file` (a stack file) that sets `key`, or None."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for number, text in enumerate(lines, 1):
        if text.strip().startswith(f"{key}:"):
            return number
    return None
