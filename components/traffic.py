"""A model's route on the stack's Gateway (Gateway API `HTTPRoute`): one entry point for the
fleet, and where candidates get their share of traffic or a mirrored copy of it.

The route matches the model's Open Inference Protocol paths (`/v2/models/<name>`, with its
`ready`, `infer` and `versions/...` sub-paths: a PathPrefix matches whole path segments), and
sends them to the stable version's Service, to each weighted candidate's Service by its
weight (`backendRefs`), and copies them to each shadow (`RequestMirror` filters, whose
answers the gateway discards).

With candidates, a request that pins a version (`/v2/models/<name>/versions/<v>/...`, the
protocol's way to ask for one version) goes to the Service that serves `<v>`, never by
weight to another version that would answer 404: one more rule per served version (the
stable one and each weighted candidate) matches the longer PathPrefix
`/v2/models/<name>/versions/<v>`, and the Gateway API gives the longest matching prefix
precedence over the model's own ("Prefix path match with largest number of characters",
HTTPRouteRule.matches, Gateway API v1.6.1 `config/crd/standard/
gateway.networking.k8s.io_httproutes.yaml`). A shadow's version gets no rule: its answers
are never served, so a request pinned to it goes the weighted way (and is mirrored), as
before.
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


MAX_RULES = 16
"""An HTTPRoute's rules (`spec.rules` maxItems, Gateway API v1.6.1 CRD): the model's path and
one per served version, so at most 14 weighted candidates."""


def model_path(model: str) -> str:
    return f"/v2/models/{model}"


def version_path(model: str, version: str) -> str:
    """The Open Inference Protocol's path prefix of one version of a model."""
    return f"{model_path(model)}/versions/{version}"


def route_spec(args: ModelRouteArgs) -> dict[str, Any]:
    """The route: the model's path by weight (and mirrors); with candidates, each served
    version's path to its own Service."""
    namespace, gateway = args.cluster.gateway_ref
    model = args.provenance.model

    def backend(candidate: str) -> dict[str, Any]:
        return {"name": workload_name(model, candidate or None), "port": args.port}

    backends = [{**backend(name), "weight": weight}
                for name, weight in traffic_split(args.candidates).items()]
    mirrors = [{"type": "RequestMirror", "requestMirror": {
        "backendRef": backend(c.name), "percent": c.mirror}}
        for c in args.candidates if c.mirror is not None]
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": model_path(model)}}],
        "backendRefs": backends}
    if mirrors:
        rule["filters"] = mirrors
    rules = [rule]
    if args.candidates:
        served = [("", args.provenance.version)] + [
            (c.name, c.version) for c in args.candidates if c.weight is not None]
        rules += [{"matches": [{"path": {"type": "PathPrefix",
                                         "value": version_path(model, version)}}],
                   "backendRefs": [{**backend(name), "weight": 100}]}
                  for name, version in served]
    return {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": gateway, "namespace": namespace}],
            "rules": rules}
