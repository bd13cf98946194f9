"""What every runtime gives the hardened pod builder, and what it is built from.

KServe keeps the server apart from the model (`ServingRuntime` says how a server runs,
`InferenceService` which model); a runtime here is the one place that knows its engine's
command line, ports, probes, caches and metric names. It returns pieces that
`components.podspec` takes (containers, volumes): the pod builder alone sets the security
context, so no runtime can loosen it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.podspec import ModelContainer
from components.provenance import Provenance
from modelfleet.manifest.schema import ModelSpec, Serving

COMPONENT = "server"


@dataclass(frozen=True)
class RuntimeInputs:
    """A model as its server runs it: the validated spec and what the stack resolved."""

    spec: ModelSpec
    provenance: Provenance
    cluster: ClusterSettings
    image: pulumi.Input[str]
    """The engine's image, digest-pinned."""
    artifact_uri: pulumi.Input[str]
    """Where the weights are (known after the upload for an uploaded `path`)."""

    @property
    def serving(self) -> Serving:
        if self.spec.serving is None:
            raise ValueError(f"model {self.spec.name} has no serving section")
        return self.spec.serving


@dataclass(frozen=True)
class RuntimePod:
    """The pieces of a model's server pod that depend on its engine."""

    container: ModelContainer
    init_containers: Sequence[ModelContainer] = ()
    volumes: Sequence[k8s.core.v1.VolumeArgs] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Pod annotations: where Prometheus scrapes the engine's metrics, if anywhere."""


@dataclass(frozen=True)
class Scrape:
    """Where Prometheus reads the engine's metrics: a named container port and a path."""

    port_name: str
    port: int
    path: str


@dataclass(frozen=True)
class RuntimeMetrics:
    """The engine's Prometheus metric names that autoscalers and gateways read (None: the
    engine exports none such)."""

    waiting: str | None = None
    """Gauge: requests queued, not yet running."""
    running: str | None = None
    """Gauge: requests being served."""
    kv_cache: str | None = None
    """Gauge: KV-cache use, 1 = 100%."""


class Runtime(Protocol):
    """One engine: what its pod runs, which ports it serves, what its pods may read."""

    engine: ClassVar[str]
    metrics: ClassVar[RuntimeMetrics]

    def ports(self, spec: ModelSpec) -> list[k8s.core.v1.ContainerPortArgs]:
        """Named container ports (`http`, and `grpc` where served); the Service exposes each."""
        ...

    def pod(self, inputs: RuntimeInputs) -> RuntimePod:
        """The engine's container, its init containers and volumes."""
        ...

    def reads(self, spec: ModelSpec) -> list[dict[str, Any]]:
        """IAM statements for what the pods read beyond the model's registry prefix."""
        ...

    def scrape(self, spec: ModelSpec) -> Scrape | None:
        """Where the engine's metrics are scraped (PodMonitor, annotations, network policy);
        None: the engine exports none."""
        ...


def http_port(port: int) -> k8s.core.v1.ContainerPortArgs:
    return k8s.core.v1.ContainerPortArgs(name="http", container_port=port, protocol="TCP")


def port_numbers(ports: Sequence[k8s.core.v1.ContainerPortArgs]) -> list[int]:
    """The numbers of container ports a runtime made (always plain ints)."""
    return [port.container_port for port in ports if isinstance(port.container_port, int)]
