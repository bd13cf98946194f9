"""Environment overrides that no stack deploys: a typo (`prodd:`) that would silently stop applying.

A model's `environments.<name>` applies only where a stack's `modelfleet:environment`
is `<name>`; an override under any other name validates, and never applies.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from modelfleet.manifest.parse import Manifest
from modelfleet.manifest.problems import Problem
from modelfleet.stacks.config import list_stacks, load_stack


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`; did you mean 'prod'?` for the closest of `known` (difflib's ratio 0.6 or more),
    or ''."""
    close = difflib.get_close_matches(word, sorted(set(known)), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def deployed_environments(root: Path) -> set[str]:
    """The environments the project's stacks deploy (`modelfleet:environment` of each)."""
    found = set()
    for name in list_stacks(root):
        environment = load_stack(root, name).get("modelfleet:environment")
        if environment:
            found.add(str(environment))
    return found


def undeployed_overrides(manifest: Manifest, deployed: set[str]) -> list[Problem]:
    """One warning per `environments.<name>` of a model that no stack deploys."""
    listed = ", ".join(sorted(deployed))
    problems = []
    for index, entry in enumerate(manifest.entries):
        overrides = entry.get("environments") if isinstance(entry, dict) else None
        for name in overrides if isinstance(overrides, dict) else ():
            if str(name) in deployed:
                continue
            problems.append(manifest.problem(
                ("models", index, "environments", name),
                f"no stack deploys environment '{name}' (the stacks deploy {listed}), so this "
                f"override never applies{did_you_mean(str(name), deployed)}"))
    return problems
