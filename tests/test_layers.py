"""The direction of the arrows (DESIGN.md, Layout): each package imports only what lies below it.

`modelfleet/` is plain Python and knows nothing of Pulumi, the cloud or the command
line; `components/` knows nothing of YAML, git or files; the command line (`cli/`)
sits above everything it dispatches to, and nothing imports it but the entry point.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "modelfleet": {"pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_docker", "components",
                   "planner", "modelregistry", "cli", "boto3", "botocore"},
    "components": {"yaml", "ruamel", "git", "modelregistry", "planner", "cli"},
    "modelregistry": {"pulumi", "components", "planner", "cli"},
    "planner": {"cli", "modelregistry"},
}
ENTRY_POINT = Path("modelfleet/__main__.py")
"""`python -m modelfleet`: the one module of the core package that may import `cli`."""


def imported_packages(source: Path) -> set[str]:
    """The top-level package of every module `source` imports, wherever the import stands."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    crossings = [
        f"{module.relative_to(PROJECT)} imports {', '.join(sorted(wrong))}"
        for module in sorted((PROJECT / package).rglob("*.py"))
        if (wrong := imported_packages(module) & FORBIDDEN[package]
            - ({"cli"} if module.relative_to(PROJECT) == ENTRY_POINT else set()))
    ]
    assert not crossings, "\n".join(crossings)


def test_only_the_entry_point_imports_the_command_line() -> None:
    importers = [
        str(module.relative_to(PROJECT))
        for folder in ("modelfleet", "components", "planner", "modelregistry", "policy",
                       "images")
        for module in sorted((PROJECT / folder).rglob("*.py"))
        if "venv" not in module.parts and "cli" in imported_packages(module)
    ]
    assert importers == ["modelfleet/__main__.py"]


def test_the_core_package_is_grouped_by_concern() -> None:
    """`modelfleet/` holds subpackages (manifest, git, stacks, diff, release, rollout), not
    a flat list of modules: only the package's own `__init__` and `__main__` stand at its top."""
    flat = sorted(module.name for module in (PROJECT / "modelfleet").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py"]
    for package in ("manifest", "git", "stacks", "diff", "release", "rollout"):
        assert (PROJECT / "modelfleet" / package / "__init__.py").is_file(), package
