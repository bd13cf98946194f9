"""Who may connect to a model's pods: the NetworkPolicy's ingress rules, one per purpose.

- callers: the stack's namespace and `modelfleet:allowedNamespaces`, on every serving port
  (HTTP and gRPC);
- the Gateway's namespace (`modelfleet:gateway`, `namespace/name`), on the HTTP port its
  HTTPRoutes send to;
- Prometheus' namespace (`modelfleet:prometheusNamespace`), on the metrics port (the model
  server answers `/metrics` on its HTTP port, so that is the port);
- Flagger's load tester's namespace, for a model whose rollout declares `loadTest`, on the
  HTTP port.

Nothing else is admitted. Namespaces are matched by `kubernetes.io/metadata.name`, the label
the API server sets on every namespace (Kubernetes 1.22+), which no one can forge.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def from_namespaces(namespaces: Sequence[str], ports: Sequence[int],
                    ) -> k8s.networking.v1.NetworkPolicyIngressRuleArgs:
    """Ingress from pods of `namespaces` to `ports` (TCP)."""
    return k8s.networking.v1.NetworkPolicyIngressRuleArgs(
        from_=[k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_expressions=[
                k8s.meta.v1.LabelSelectorRequirementArgs(
                    key=NAMESPACE_NAME_LABEL, operator="In", values=sorted(set(namespaces)))]))],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")
               for port in ports])


def serving_ingress(cluster: ClusterSettings, ports: list[int], metrics_port: int | None,
                    load_tester_namespace: str | None = None,
                    ) -> list[k8s.networking.v1.NetworkPolicyIngressRuleArgs]:
    """The rules of an online model's pods (every version's). `ports`: the HTTP port first,
    then the others the engine serves (gRPC, a separate metrics port); `metrics_port`: where
    Prometheus scrapes (None: the engine exports no metrics)."""
    http_port = ports[0]
    rules = [from_namespaces(cluster.callers(), ports)]
    gateway_namespace, _ = cluster.gateway_ref
    if gateway_namespace:
        rules.append(from_namespaces([gateway_namespace], [http_port]))
    if load_tester_namespace:
        rules.append(from_namespaces([load_tester_namespace], [http_port]))
    if metrics_port is not None:
        rules.append(from_namespaces([cluster.prometheus_namespace], [metrics_port]))
    return rules


def worker_ingress(cluster: ClusterSettings,
                   metrics_port: int) -> list[k8s.networking.v1.NetworkPolicyIngressRuleArgs]:
    """Batch workers and run pods take no connections but Prometheus' scrapes."""
    return [from_namespaces([cluster.prometheus_namespace], [metrics_port])]
