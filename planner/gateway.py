"""What the plan says about an LLM's traffic behind the Gateway: its InferencePools and their
endpoint pickers, created, removed, replaced, or given another image.

A pool and its picker are told by their Kubernetes names (`<version>`, `<version>-epp`), as
a reviewer finds them with `kubectl get inferencepool,deployment`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from planner.recorder import Registration
from planner.render import plain
from planner.review import ModelView

POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PICKER_COMPONENT = "endpoint-picker"
"""`app.kubernetes.io/component` of an endpoint picker's Deployment
(components/endpoint_picker.py)."""


def _meta(registration: Registration) -> dict[str, Any]:
    return dict(plain(registration.inputs).get("metadata") or {})


def pools(registrations: Iterable[Registration]) -> set[str]:
    """The InferencePools' names."""
    return {str(_meta(r).get("name")) for r in registrations if r.type == POOL}


def pickers(registrations: Iterable[Registration]) -> dict[str, str]:
    """Each endpoint picker Deployment's name and image."""
    found = {}
    for registration in registrations:
        meta = _meta(registration)
        labels = meta.get("labels") or {}
        if registration.type != DEPLOYMENT or \
                labels.get("app.kubernetes.io/component") != PICKER_COMPONENT:
            continue
        spec = plain(registration.inputs).get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        found[str(meta.get("name"))] = str(containers[0].get("image")) if containers else ""
    return found


def pool_lines(view: ModelView) -> list[str]:
    """New and removed pools, endpoint picker image changes, and replacements with what
    breaks while they happen."""
    lines = []
    before, after = pools(view.base), pools(view.head)
    lines += [f"new InferencePool {name}, with its endpoint picker {name}-epp: the Gateway "
              "sends the model's requests there by model name" for name in sorted(after - before)]
    lines += [f"InferencePool {name} and its endpoint picker {name}-epp removed"
              for name in sorted(before - after)]
    old, new = pickers(view.base), pickers(view.head)
    lines += [f"endpoint picker {name}: image {old[name]} → {new[name]}; it restarts "
              "(Recreate, one replica), and until it is ready its pool fails open: the "
              "Gateway picks pods by its own balancing, without queue, KV-cache and "
              "prefix-cache scores" for name in sorted(old.keys() & new.keys())
              if old[name] != new[name]]
    replaced = {change.name for change in view.changes
                if change.op == "replace" and change.type == POOL}
    lines += [f"replaces InferencePool {_meta(r).get('name')}: while it is deleted and "
              "created again the route's backend is missing, and the Gateway answers its "
              "share of requests with 500 (Gateway API HTTPRoute `backendRefs`)"
              for r in view.head if r.type == POOL and r.name in replaced]
    return lines
