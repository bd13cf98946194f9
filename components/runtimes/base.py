"""What every runtime gives the hardened pod builder, and what it is built from.

KServe keeps the server apart from the model (`ServingRuntime` says how a server runs,
`InferenceService` which model); a runtime here is the one place that knows its engine's
command line, ports, probes, caches and metric names. It returns pieces that
`components.podspec` takes (containers, volumes): the pod builder alone sets the security
context, so no runtime can loosen it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Series:
    """One metric's selector: its name and the label matchers it needs beyond the pods'
    (`route="infer"`). Prometheus' `kubernetes-pods` job adds `namespace` and `pod`."""

    name: str
    matchers: str = ""

    def select(self, pods: str) -> str:
        """PromQL selector: `name{<pods>,<matchers>}`."""
        extra = f",{self.matchers}" if self.matchers else ""
        return f"{self.name}{{{pods}{extra}}}"


@dataclass(frozen=True)
class RequestMetrics:
    """How to read an engine's inference request metrics: what the KEDA triggers (`rps`,
    `concurrency`) and Flagger's canary checks (success rate, latency) are built from
    (`components.metrics`). Counters are summed over the pods and read with `rate()`."""

    family: str
    """The name the manifest and the README use (`modelserver`, `triton`)."""
    requests: tuple[Series, ...]
    """Counters that together count every inference request (summed)."""
    succeeded: Series
    """Counter of the inference requests that did not fail on the server's side."""
    in_flight: Series | None = None
    """Gauge of the requests being served now; None: read concurrency from `duration`."""
    latency_buckets: Series | None = None
    """Histogram buckets (`le`) of request latency, in seconds: the canary checks p99."""
    duration: Series | None = None
    """Counter of the time spent handling requests, in `duration_per_second` units a
    second. Without a histogram the canary checks the mean latency (duration over count);
    without an in-flight gauge it gives the mean concurrency (Little's law: request-seconds
    per second)."""
    duration_per_second: int = 1

    @property
    def latency_check(self) -> str:
        """The canary check's name: `latency-p99` from a histogram, else `latency-mean`."""
        return "latency-p99" if self.latency_buckets is not None else "latency-mean"


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
    def requests(self, spec: ModelSpec) -> RequestMetrics | None:
        """The engine's inference request metrics; None: it exports none we can read, so
        no request-load scaling and no progressive rollout (refused by the manifest rules)."""
        ...


def http_port(port: int) -> k8s.core.v1.ContainerPortArgs:
    return k8s.core.v1.ContainerPortArgs(name="http", container_port=port, protocol="TCP")


def port_numbers(ports: Sequence[k8s.core.v1.ContainerPortArgs]) -> list[int]:
    """The numbers of container ports a runtime made (always plain ints)."""
    return [port.container_port for port in ports if isinstance(port.container_port, int)]
