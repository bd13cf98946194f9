"""A model's route on the stack's Gateway (Gateway API `HTTPRoute`): one entry point for the
fleet, and where candidates get their share of traffic or a mirrored copy of it.

The route matches the model's Open Inference Protocol paths (`/v2/models/<name>`, with its
`ready`, `infer` and `versions/...` sub-paths: a PathPrefix matches whole path segments), and
sends them to the stable version's Service, to each weighted candidate's Service by its
weight (`backendRefs`), and copies them to each shadow (`RequestMirror` filters, whose
answers the gateway discards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.provenance import Provenance, custom_metadata, workload_name
from modelfleet.manifest.schema import Candidate, traffic_split

GATEWAY_API = "gateway.networking.k8s.io/v1"


@dataclass(frozen=True)
class ModelRouteArgs:
    provenance: Provenance
    cluster: ClusterSettings
    port: int
    """The HTTP port of the model's Services (stable and candidates alike)."""
    candidates: tuple[Candidate, ...] = ()


class ModelRoute(pulumi.ComponentResource):
    """The HTTPRoute of one model on the stack's Gateway."""

    path: pulumi.Output[str]

    def __init__(self, name: str, args: ModelRouteArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:serving:ModelRoute", name, None, opts)
        k8s.apiextensions.CustomResource(
            name, api_version=GATEWAY_API, kind="HTTPRoute",
            metadata=custom_metadata(name, args.cluster.object_namespace, args.provenance,
                                     "route"),
            spec=route_spec(args), opts=pulumi.ResourceOptions(parent=self))
        self.path = pulumi.Output.from_input(model_path(args.provenance.model))
        self.register_outputs({"path": self.path})


def model_path(model: str) -> str:
    return f"/v2/models/{model}"


def route_spec(args: ModelRouteArgs) -> dict[str, Any]:
    namespace, gateway = args.cluster.gateway_ref
    model = args.provenance.model

    def service(candidate: str) -> str:
        return workload_name(model, candidate or None)

    backends = [{"name": service(name), "port": args.port, "weight": weight}
                for name, weight in traffic_split(args.candidates).items()]
    mirrors = [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": service(c.name), "port": args.port}, "percent": c.mirror}}
        for c in args.candidates if c.mirror is not None]
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": model_path(model)}}],
        "backendRefs": backends}
    if mirrors:
        rule["filters"] = mirrors
    return {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": gateway, "namespace": namespace}],
            "rules": [rule]}
