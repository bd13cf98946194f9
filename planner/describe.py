"""Short descriptions of declared objects, for comparing two sides in words.

A scaler as `1 to 4 replicas on cpu at 70%`, an HTTPRoute's traffic as
`fraud-detector 90%, fraud-detector-canary 10%; mirrored to fraud-detector-shadow`,
a model's uploaded artifact as its files' digests. Equal descriptions mean nothing a
reviewer needs to hear about changed (labels and annotations are not described).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from planner.recorder import Registration
from planner.render import plain
from planner.rollout import HPA_TYPES, SCALED_OBJECT

BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
HTTP_ROUTE_KIND = ":HTTPRoute"


def image_candidate(model: str, image: str) -> str | None:
    """Whose image a built `docker.Image` is: None for the model's own (`<model>-image`), the
    candidate's name for a candidate's (`<model>-<candidate>-image`)."""
    if image == f"{model}-image":
        return None
    return image.removeprefix(f"{model}-").removesuffix("-image")


def short_type(type_: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`."""
    return type_.rsplit(":", 1)[-1]


def scaling(registration: Registration) -> tuple[str, str] | None:
    """(target Deployment, description) of an HPA or a KEDA ScaledObject; None otherwise."""
    if registration.type not in HPA_TYPES and registration.type != SCALED_OBJECT:
        return None
    spec = plain(registration.inputs).get("spec") or {}
    target = str((spec.get("scaleTargetRef") or {}).get("name") or "")
    if registration.type in HPA_TYPES:
        metrics = ", ".join(_metric(m) for m in spec.get("metrics") or []) or "cpu at 80%"
        return target, (f"{spec.get('minReplicas', 1)} to {spec.get('maxReplicas')} replicas "
                        f"on {metrics}")
    if registration.type == SCALED_OBJECT:
        triggers = ", ".join(_trigger(t) for t in spec.get("triggers") or [])
        return target, (f"{spec.get('minReplicaCount', 0)} to {spec.get('maxReplicaCount', 100)} "
                        f"replicas on {triggers or 'no trigger'} (KEDA)")
    return None


def scalings(registrations: Iterable[Registration]) -> dict[str, str]:
    """Each scaled Deployment's scaling, by the Deployment's name."""
    found: dict[str, str] = {}
    for registration in registrations:
        described = scaling(registration)
        if described is not None:
            found[described[0]] = described[1]
    return found


def _metric(metric: dict[str, Any]) -> str:
    source = metric.get("resource") or metric.get("containerResource") or {}
    target = source.get("target") or {}
    if "averageUtilization" in target:
        return f"{source.get('name')} at {target['averageUtilization']}%"
    if source:
        return f"{source.get('name')} at {target.get('averageValue') or target.get('value')}"
    return str(metric.get("type", "a metric")).lower()


def _trigger(trigger: dict[str, Any]) -> str:
    metadata = trigger.get("metadata") or {}
    if trigger.get("type") == "aws-sqs-queue":
        return f"queue depth, one replica per {metadata.get('queueLength')} messages"
    if trigger.get("type") == "prometheus":
        query = str(metadata.get("query") or "")
        signal = next((what for needle, what in PROMETHEUS_SIGNALS if needle in query),
                      "a Prometheus query")
        return f"{signal} at {metadata.get('threshold')} per pod"
    return str(trigger.get("type", "a trigger"))


PROMETHEUS_SIGNALS = (
    ("modelserver_requests_in_flight", "requests in flight"),
    ("modelserver_requests_total", "requests per second"),
    ("num_requests_waiting", "requests waiting in the engine"),
    ("kv_cache_usage_perc", "KV-cache use (percent)"),
)
"""What a `prometheus` trigger follows, told by the metric its query reads
(components/metrics.py)."""


def is_route(registration: Registration) -> bool:
    """A Gateway API HTTPRoute, whatever its API version."""
    return registration.type.endswith(HTTP_ROUTE_KIND)


def traffic(registration: Registration) -> str:
    """Where an HTTPRoute sends requests: backends by share of weight, and mirrors. Rules for
    one pinned version's path (`/v2/models/<m>/versions/<v>`, components/traffic.py) share
    nothing out and follow the versions deployed, so they are not traffic."""
    rules = (plain(registration.inputs).get("spec") or {}).get("rules") or []
    described = [_rule(rule) for rule in rules if not _pinned_version(rule)]
    return " | ".join(d for d in described if d) or "no backends"


def _pinned_version(rule: dict[str, Any]) -> str | None:
    """The version a rule's one PathPrefix match pins (`/v2/models/<m>/versions/<v>`)."""
    matches = rule.get("matches") or []
    if len(matches) != 1 or not isinstance(matches[0], dict):
        return None
    value = str((matches[0].get("path") or {}).get("value", ""))
    head, found, version = value.rpartition("/versions/")
    return version if found and head.startswith("/v2/models/") and "/" not in version else None


def _rule(rule: dict[str, Any]) -> str:
    backends = [b for b in rule.get("backendRefs") or [] if isinstance(b, dict)]
    weights = [(_backend(b), float(b.get("weight", 1))) for b in backends]
    total = sum(weight for _, weight in weights)
    parts = [f"{name} {round(100 * weight / total) if total else 0}%" for name, weight in weights]
    mirrors = []
    for item in rule.get("filters") or []:
        mirror = item.get("requestMirror") if isinstance(item, dict) else None
        if isinstance(mirror, dict):
            target = _backend(mirror.get("backendRef") or {})
            share = mirror.get("percent")
            mirrors.append(f"{target}" + (f" ({share}%)" if share is not None else ""))
    text = ", ".join(parts)
    if mirrors:
        text += ("; " if text else "") + "mirrored to " + ", ".join(mirrors)
    return text


def artifact_files(model: str, registrations: Iterable[Registration]) -> dict[str, str | None]:
    """A model's uploaded artifact: each file (below the version's prefix) to its sha256."""
    prefix = f"{model}-artifact/"
    files: dict[str, str | None] = {}
    for registration in registrations:
        if registration.type == BUCKET_OBJECT and registration.name.startswith(prefix):
            source = plain(registration.inputs).get("source")
            files[registration.name.removeprefix(prefix)] = \
                source.get("sha256") if isinstance(source, dict) else None
    return files


def _backend(ref: dict[str, Any]) -> str:
    """A backend by name; an InferencePool as `pool <name>`."""
    name = str(ref.get("name"))
    return f"pool {name}" if ref.get("kind") == "InferencePool" else name
