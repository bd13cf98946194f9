"""How a Deployment rolls: pods at a time, GPUs it needs spare, whether it stops serving.

Read from the objects as declared: the Deployment's `spec.strategy` and the
minimum and maximum of whatever scales it (a HorizontalPodAutoscaler or a KEDA
ScaledObject whose `scaleTargetRef` names it). The arithmetic is Kubernetes'
own (`pkg/controller/deployment/util.ResolveFenceposts`): a percentage of
maxSurge rounds up, one of maxUnavailable rounds down, and when both come to
zero maxUnavailable is one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelfleet.diff.report import plural
from planner.recorder import Registration
from planner.render import plain

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA_TYPES = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
             "kubernetes:autoscaling/v1:HorizontalPodAutoscaler")
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
CANARY = "kubernetes:flagger.app/v1beta1:Canary"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
DEFAULT_FENCEPOST = "25%"  # Kubernetes' default for both maxSurge and maxUnavailable


@dataclass(frozen=True)
class Rollout:
    """One Deployment's rolling update, as its spec and its scaler set it."""

    deployment: str
    """The Deployment's `metadata.name`."""
    component: str
    """`app.kubernetes.io/component` of its pods (server, worker), else the Deployment's name."""
    recreate: bool
    max_surge: int | str
    max_unavailable: int | str
    gpus_per_pod: int
    min_replicas: int
    max_replicas: int
    scaler: str | None
    """`HorizontalPodAutoscaler x`, `ScaledObject x`, or None (fixed `spec.replicas`)."""

    def surge_at(self, replicas: int) -> int:
        """New pods started at once above the desired count."""
        if self.recreate:
            return 0
        return _resolved(self.max_surge, replicas, up=True)

    def unavailable_at(self, replicas: int) -> int:
        """Old pods stopped at once before their replacements are ready."""
        if self.recreate:
            return replicas
        surge, unavailable = _resolved(self.max_surge, replicas, up=True), \
            _resolved(self.max_unavailable, replicas, up=False)
        return unavailable if surge or unavailable else 1

    @property
    def running_range(self) -> tuple[int, int]:
        """Replica counts a rollout may start from (a scaler at zero has nothing to roll)."""
        low = max(self.min_replicas, 1)
        return low, max(self.max_replicas, low)

    def stops_serving(self) -> bool:
        """At the minimum, every pod is stopped before a replacement is ready."""
        low, _ = self.running_range
        return self.min_replicas >= 1 and self.unavailable_at(low) >= low

    def spare_gpus(self) -> tuple[int, int]:
        """GPUs the surge pods need on top of those in use, at the low and high replica counts."""
        low, high = self.running_range
        return self.gpus_per_pod * self.surge_at(low), self.gpus_per_pod * self.surge_at(high)

    def strategy(self) -> str:
        """`maxSurge 25%, maxUnavailable 0` as declared, or `strategy Recreate`."""
        if self.recreate:
            return "strategy Recreate"
        return f"maxSurge {self.max_surge}, maxUnavailable {self.max_unavailable}"

    def bounds(self) -> str:
        """`1 to 4 replicas`, or `2 replicas` when fixed."""
        if self.min_replicas == self.max_replicas:
            return plural(self.min_replicas, "replica")
        return f"{self.min_replicas} to {self.max_replicas} replicas"

    def pace(self) -> str:
        """`1 new pod at a time, no pod stopped before its replacement is ready`."""
        low, high = self.running_range
        if self.recreate:
            return "all at once: every pod stops before the new ones start"
        started = _counted(self.surge_at(low), self.surge_at(high), low, high, "new pod",
                           "at a time")
        stopped = _counted(self.unavailable_at(low), self.unavailable_at(high), low, high,
                           "old pod", "stopped at a time before its replacement is ready")
        parts = [started] if self.surge_at(high) else []
        parts.append(stopped if self.unavailable_at(high)
                     else "no pod stopped before its replacement is ready")
        return ", ".join(parts)


def _counted(at_low: int, at_high: int, low: int, high: int, noun: str, what: str) -> str:
    if at_low == at_high:
        return f"{plural(at_low, noun)} {what}"
    return f"{noun}s {what}: {at_low} at {plural(low, 'replica')}, up to {at_high} at {high}"


def _resolved(value: int | str, replicas: int, *, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) * replicas / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value)


def rollout_of(deployment: Registration, scalers: Iterable[Registration]) -> Rollout:
    """The rollout of a declared Deployment, bounded by the scaler that targets it, if any."""
    inputs = plain(deployment.inputs)
    name = str(_get(inputs, "metadata", "name") or deployment.name)
    spec = inputs.get("spec") or {}
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    template = spec.get("template") or {}
    labels = _get(template, "metadata", "labels") or {}
    low, high, scaler = _bounds(name, spec, scalers)
    return Rollout(
        deployment=name,
        component=str(labels.get("app.kubernetes.io/component") or name),
        recreate=strategy.get("type") == "Recreate",
        max_surge=_fencepost(rolling.get("maxSurge")),
        max_unavailable=_fencepost(rolling.get("maxUnavailable")),
        gpus_per_pod=gpus(template),
        min_replicas=low, max_replicas=high, scaler=scaler)


def gpus(template: dict[str, Any]) -> int:
    """GPUs one pod of this template holds: the sum of its containers' GPU limits."""
    total = 0
    for container in _get(template, "spec", "containers") or []:
        limits = _get(container, "resources", "limits") or {}
        for resource in GPU_RESOURCES:
            try:
                total += int(str(limits.get(resource, 0)))
            except ValueError:
                continue
    return total


def _fencepost(value: Any) -> int | str:
    if value is None:
        return DEFAULT_FENCEPOST
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value)
    return int(text) if text.isdigit() else text


def _bounds(name: str, spec: dict[str, Any],
            scalers: Iterable[Registration]) -> tuple[int, int, str | None]:
    for scaler in scalers:
        scaler_spec = plain(scaler.inputs).get("spec") or {}
        target = scaler_spec.get("scaleTargetRef") or {}
        if target.get("name") != name or target.get("kind", "Deployment") != "Deployment":
            continue
        if scaler.type == SCALED_OBJECT:
            return (int(scaler_spec.get("minReplicaCount", 0)),
                    int(scaler_spec.get("maxReplicaCount", 100)), f"ScaledObject {scaler.name}")
        if scaler.type in HPA_TYPES:
            return (int(scaler_spec.get("minReplicas", 1)), int(scaler_spec.get("maxReplicas", 1)),
                    f"HorizontalPodAutoscaler {scaler.name}")
    replicas = int(spec.get("replicas", 1))
    return replicas, replicas, None


def canary_targeting(registrations: Iterable[Registration], deployment: str,
                     ) -> dict[str, Any] | None:
    """The spec of the Flagger Canary whose `targetRef` names `deployment`, if one does.

    Such a Deployment is not rolled in place: Flagger runs its new pods beside those of
    `<deployment>-primary` for the analysis, then copies the template to the primary.
    """
    for registration in (r for r in registrations if r.type == CANARY):
        spec = plain(registration.inputs).get("spec") or {}
        if (spec.get("targetRef") or {}).get("name") == deployment:
            return dict(spec)
    return None


def scalers_of(registrations: Iterable[Registration]) -> list[Registration]:
    """The HorizontalPodAutoscalers and KEDA ScaledObjects among `registrations`."""
    return [r for r in registrations if r.type in HPA_TYPES or r.type == SCALED_OBJECT]


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
