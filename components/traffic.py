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
An LLM (OpenAI API) is routed by model name instead, as the Gateway API Inference Extension
does: the route matches `/v1/` with the `X-Gateway-Model-Name` header equal to the model's
or one of its adapters' names, and its backends are the versions' InferencePools
(`components.inference_pool`), whose endpoint pickers choose the pod.
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
    served_names: tuple[str, ...] = ()
    """An LLM's names in the OpenAI API (the model's, its adapters'): the route then matches
    `/v1/` by model name and sends to the versions' InferencePools. Empty: an OIP model."""


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
OPENAI_PATH = "/v1/"
MODEL_HEADER = "X-Gateway-Model-Name"
"""Where the gateway's body-based router puts the request body's `model` (GAIE v1.5.0
`pkg/bbr/README.md`), so that routes can match by model name."""
POOL_REF = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}


def route_spec(args: ModelRouteArgs) -> dict[str, Any]:
    """The route: the model's path by weight (and mirrors); with candidates, each served
    version's path to its own Service."""
    namespace, gateway = args.cluster.gateway_ref
    model = args.provenance.model

    def backend(candidate: str) -> dict[str, Any]:
        name = workload_name(model, candidate or None)
        if args.served_names:
            return {**POOL_REF, "name": name}
        return {"name": name, "port": args.port}

    backends = [{**backend(name), "weight": weight}
                for name, weight in traffic_split(args.candidates).items()]
    mirrors = [{"type": "RequestMirror", "requestMirror": {
        "backendRef": backend(c.name), "percent": c.mirror}}
        for c in args.candidates if c.mirror is not None]
    rule: dict[str, Any] = {"matches": matches(args), "backendRefs": backends}
    if mirrors:
        rule["filters"] = mirrors
    rules = [rule]
    if args.candidates and not args.served_names:  # OIP: pinned versions' paths
        served = [("", args.provenance.version)] + [
            (c.name, c.version) for c in args.candidates if c.weight is not None]
        rules += [{"matches": [{"path": {"type": "PathPrefix",
                                         "value": version_path(model, version)}}],
                   "backendRefs": [{**backend(name), "weight": 100}]}
                  for name, version in served]
    return {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": gateway, "namespace": namespace}],
            "rules": rules}


def matches(args: ModelRouteArgs) -> list[dict[str, Any]]:
    """OIP: the model's path prefix. An LLM: `/v1/` (the OpenAI API) with the model-name
    header equal to one of its served names, one match each (matches are ORed)."""
    if not args.served_names:
        return [{"path": {"type": "PathPrefix", "value": model_path(args.provenance.model)}}]
    return [{"path": {"type": "PathPrefix", "value": OPENAI_PATH},
             "headers": [{"type": "Exact", "name": MODEL_HEADER, "value": name}]}
            for name in args.served_names]
