"""An LLM version's InferencePool (Gateway API Inference Extension,
`inference.networking.k8s.io/v1`) and its endpoint picker: what the model's HTTPRoute sends
requests to.

A Kubernetes Service spreads requests round robin; an InferencePool names the pods of one
version and the endpoint picker (EPP) that chooses among them per request. The pool selects
exactly that version's serving pods: `app.kubernetes.io/name` is `<model>` for the stable
version and `<model>-<candidate>` for a candidate, so no pool takes in another version's pods.

Fields as GAIE v1.6.0 defines them (`api/v1/inferencepool_types.go`, `shared_types.go`, read
not run): `selector.matchLabels` (1-64 labels), `targetPorts[].number`, `endpointPickerRef`
(`name`, `kind` Service, `port.number`, `failureMode`).

`failureMode: FailOpen` (upstream's chart sets it too, llm-d-router v0.10.0 routerlib): when
the picker is down or slow the gateway still sends the request to one of the pool's pods, by
its own balancing, instead of failing it. The picker is one replica replaced with Recreate,
so with FailClose every change of its image or configuration would be an outage of the
model; with FailOpen it costs only the picker's better choice for that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.endpoint_picker import (
    EXT_PROC_PORT,
    POOL_GROUP,
    EndpointPicker,
    EndpointPickerArgs,
)
from components.provenance import Provenance, custom_metadata
from components.runtimes.base import COMPONENT

POOL_API = f"{POOL_GROUP}/v1"
FAILURE_MODE = "FailOpen"


@dataclass(frozen=True)
class InferencePoolArgs:
    provenance: Provenance
    """The version whose serving pods the pool selects."""
    cluster: ClusterSettings
    port: int
    """The engine's HTTP port (`targetPorts`)."""


class InferencePool(pulumi.ComponentResource):
    """One version's InferencePool, named like its Deployment, and its endpoint picker."""

    pool: pulumi.Output[str]
    """The InferencePool's name, for the route's `backendRefs`."""

    def __init__(self, name: str, args: InferencePoolArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:serving:InferencePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        workload = args.provenance.workload
        picker = EndpointPicker(f"{name}-epp", EndpointPickerArgs(
            provenance=args.provenance, cluster=args.cluster, pool=workload), child)
        pool = k8s.apiextensions.CustomResource(
            f"{name}-pool", api_version=POOL_API, kind="InferencePool",
            metadata=custom_metadata(workload, args.cluster.object_namespace, args.provenance,
                                     COMPONENT),
            spec=pool_spec(args, picker.service), opts=child)
        self.pool = pool.id.apply(lambda _: workload)
        self.register_outputs({"pool": self.pool})


def pool_spec(args: InferencePoolArgs, picker: pulumi.Input[str]) -> dict[str, Any]:
    """The pool's `spec`: the version's Deployment selector, the engine's port, its picker."""
    return {
        "selector": {"matchLabels": args.provenance.selector(COMPONENT)},
        "targetPorts": [{"number": args.port}],
        "endpointPickerRef": {"kind": "Service", "name": picker,
                              "port": {"number": EXT_PROC_PORT},
                              "failureMode": FAILURE_MODE},
    }
