"""What an IAM policy grants, statement by statement, and whether a new version grants more.

Each statement is split into grants: one effect, one action, one resource (and
the principal and condition it carries). A new `Allow` grant that no old one
covers (wildcards as IAM reads them: `*` any run of characters, `?` one; actions
case-insensitive) grants more; so does an old `Deny` that is gone. Documents are
compared as the plan renders them, with `${role.arn}`-style references inside,
so the same reference on both sides is the same value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

POLICY_INPUTS = ("policy", "assumeRolePolicy")
"""Inputs that hold an IAM policy document (a role's inline policy, a role's trust policy)."""


@dataclass(frozen=True)
class Grant:
    """One effect on one action and one resource, for one principal, under one condition."""

    effect: str
    action: str
    resource: str
    principal: str = ""
    condition: str = ""
    """The statement's Condition as canonical JSON; empty when it has none."""

    def covers(self, other: Grant) -> bool:
        """Everything `other` allows (or denies), this allows (or denies) already."""
        return (self.effect == other.effect
                and _matches(self.action.lower(), other.action.lower())
                and _matches(self.resource, other.resource)
                and self.principal in ("", other.principal)
                and self.condition in ("", other.condition))

    def describe(self) -> str:
        text = self.action + (f" on {self.resource}" if self.resource else "")
        if self.principal:
            text += f" for {self.principal}"
        if self.condition:
            text += f" when {self.condition}"
        return text


@dataclass(frozen=True)
class PolicyChange:
    """How a new version of a policy document differs from the old, in grants."""

    added: tuple[Grant, ...]
    """Allowed now and not before."""
    removed: tuple[Grant, ...]
    """Allowed before and not now."""
    lifted: tuple[Grant, ...]
    """Denied before and not now."""

    @property
    def widens(self) -> bool:
        return bool(self.added or self.lifted)


def document(text: Any) -> dict[str, Any] | None:
    """The policy document in an input, or None when it is not one (unknown, not JSON)."""
    if isinstance(text, dict):
        return text if "Statement" in text else None
    if not isinstance(text, str):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and "Statement" in parsed else None


def grants(policy: dict[str, Any]) -> list[Grant]:
    """Every (effect, action, resource) a document's statements name; `NotAction` and
    `NotResource` are kept as `anything but ...`, compared literally."""
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    found: list[Grant] = []
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, dict):
            continue
        effect = str(statement.get("Effect", "Allow"))
        actions = _listed(statement, "Action", "NotAction")
        resources = _listed(statement, "Resource", "NotResource") or [""]
        principal = _canonical(statement.get("Principal") or statement.get("NotPrincipal"))
        condition = _canonical(statement.get("Condition"))
        found += [Grant(effect, action, resource, principal, condition)
                  for action in actions for resource in resources]
    return found


def compare(before: dict[str, Any], after: dict[str, Any]) -> PolicyChange:
    """Grants added, removed, and denials lifted between two versions of a document."""
    old, new = grants(before), grants(after)
    allowed_old = [g for g in old if g.effect == "Allow"]
    allowed_new = [g for g in new if g.effect == "Allow"]
    denied_new = [g for g in new if g.effect == "Deny"]
    return PolicyChange(
        added=tuple(g for g in allowed_new if not any(o.covers(g) for o in allowed_old)),
        removed=tuple(g for g in allowed_old if not any(n.covers(g) for n in allowed_new)),
        lifted=tuple(g for g in old if g.effect == "Deny"
                     and not any(n.covers(g) for n in denied_new)))


def pretty(policy: dict[str, Any]) -> str:
    """The document as valid JSON with one statement a line: short, and diffable by line."""
    statements = policy.get("Statement")
    if not isinstance(statements, list):
        return json.dumps(policy, indent=2)
    rest = {k: v for k, v in policy.items() if k != "Statement"}
    head = json.dumps(rest)[:-1] + (", " if rest else "") + '"Statement": ['
    lines = [f"  {json.dumps(statement)}," for statement in statements]
    if lines:
        lines[-1] = lines[-1][:-1]
    return "\n".join([head, *lines, "]}"])


def _listed(statement: dict[str, Any], key: str, negated: str) -> list[str]:
    if key in statement:
        value = statement[key]
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if negated in statement:
        value = statement[negated]
        items = value if isinstance(value, list) else [value]
        return [f"anything but {', '.join(map(str, items))}"]
    return []


def _canonical(value: Any) -> str:
    return "" if value in (None, "", {}) else json.dumps(value, sort_keys=True)


def _matches(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """IAM wildcards: `*` and `?`; everything else literal (`${...}` references included)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)
