"""What the stack knows of its Kubernetes cluster: namespace, identity provider, GPU nodes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class GpuPlacement:
    """Where GPU pods may go: the nodes' label and the taint that keeps other pods off."""

    node_selector: Mapping[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    toleration_key: str = "nvidia.com/gpu"


@dataclass(frozen=True)
class ClusterSettings:
    namespace: str
    oidc_provider_arn: str
    """ARN of the cluster's IAM OIDC identity provider (IRSA)."""
    oidc_provider_url: str
    """Its issuer, without `https://`: the prefix of the trust policy's condition keys."""
    allowed_namespaces: tuple[str, ...] = ()
    """Namespaces whose pods may call the models; the models' own is always allowed."""
    gpu: GpuPlacement = field(default_factory=GpuPlacement)
    region: str = ""
    """The AWS region of the queues, which KEDA and the workers are told."""
    keda: bool = True
    """Whether KEDA is installed; without it, batch workers scale on CPU, never to zero."""
    keda_service_account: str = "keda/keda-operator"
    """`namespace/name` of KEDA's operator: the only identity that may read queue depths."""
    prometheus_address: str = ""
    """Prometheus that KEDA reads request metrics from (models scaled on concurrency or rps)."""
    gateway: str | None = None
    """`namespace/name` of the Gateway every online model gets an HTTPRoute on."""
    fetch_image: str = ""
    """The fetch-and-verify image (images/fetch.Dockerfile), digest-pinned: the init container
    of every model with pinned files (stack config `fetchImage`)."""
    prometheus: str = "operator"
    """`operator` (PodMonitors, a PrometheusRule) or `annotations` (`prometheus.io/*`)."""
    prometheus_namespace: str = "monitoring"
    """Where Prometheus runs: admitted to the pods' metrics port."""
    monitoring_labels: Mapping[str, str] = field(
        default_factory=lambda: {"release": "kube-prometheus-stack"})
    """Labels the Prometheus Operator's selectors match, on PodMonitors and rules."""
    endpoint_picker_image: str = ""
    """The endpoint picker's image, digest-pinned (stack config `endpointPickerImage`): the
    Deployment every LLM's InferencePool names in `endpointPickerRef`."""
    namespace_resource: pulumi.Input[str] | None = None
    """The namespace as an output of its resource, when the stack creates it: using it
    makes every object wait for the namespace."""

    @property
    def gateway_ref(self) -> tuple[str, str]:
        """(namespace, name) of the Gateway; empty strings without one."""
        namespace, _, name = (self.gateway or "/").partition("/")
        return namespace, name

    @property
    def object_namespace(self) -> pulumi.Input[str]:
        """The namespace for `metadata.namespace`."""
        return self.namespace_resource if self.namespace_resource is not None else self.namespace

    def callers(self) -> list[str]:
        return sorted({self.namespace, *self.allowed_namespaces})

    @property
    def operator(self) -> bool:
        """The Prometheus Operator scrapes (PodMonitors), not pod annotations."""
        return self.prometheus == "operator"

    def service_host(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc.{CLUSTER_DOMAIN}"
