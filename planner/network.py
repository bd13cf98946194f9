"""What a NetworkPolicy admits, and what a change admits that it did not.

Read from the policy's declared inputs (`spec.ingress[].from[].namespaceSelector` on
`kubernetes.io/metadata.name`, and `ports`), the only form `components/network.py` writes.
A peer of another form (pod selector, IP block) is reported as it is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def admitted(inputs: Mapping[str, Any]) -> dict[str, set[str]]:
    """Who may connect (a namespace name, or a peer as written) -> the ports ("any" when the
    rule names none)."""
    found: dict[str, set[str]] = {}
    for rule in (inputs.get("spec") or {}).get("ingress") or []:
        ports = {str(p.get("port")) for p in rule.get("ports") or []} or {"any"}
        for peer in rule.get("from") or [{}]:
            for who in _peers(peer):
                found.setdefault(who, set()).update(ports)
    return found


def _peers(peer: Mapping[str, Any]) -> Iterator[str]:
    expressions = (peer.get("namespaceSelector") or {}).get("matchExpressions") or []
    if set(peer) == {"namespaceSelector"} and expressions and all(
            e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "In"
            for e in expressions):
        for expression in expressions:
            yield from (f"namespace {value}" for value in expression.get("values") or [])
    elif not peer:
        yield "everyone"
    else:
        yield str(dict(peer))


def widened(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """`namespace x (ports 8080)` for each peer, or port of a peer, admitted now and not before."""
    old, new = admitted(before), admitted(after)
    found = []
    for who, ports in sorted(new.items()):
        added = sorted(ports - old.get(who, set()))
        if added:
            found.append(f"{who} (port{'s' if len(added) > 1 else ''} {', '.join(added)})")
    return found
