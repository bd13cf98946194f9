"""A model's online endpoint: identity, pods, service, autoscaler, budget, network policy.

The Deployment never sets `spec.replicas`: the HorizontalPodAutoscaler owns
that field, so an update neither resets the scale nor conflicts with the
controller under server-side apply. The selector never holds the version:
selectors are immutable, and a bump must roll pods, not replace the Deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.autoscaling import SWITCHABLE
from components.cluster import ClusterSettings
from components.identity import (
    WorkloadIdentity,
    WorkloadIdentityArgs,
    decrypt_with,
    read_prefix,
    read_uri,
)
from components.podspec import (
    ModelContainer,
    PodOptions,
    hardened_pod_template,
    http_probes,
    model_env,
)
from components.provenance import Provenance
from components.workload import ModelWorkloadArgs
from modelfleet.schema import Serving

COMPONENT = "server"
SCALE_DOWN_WINDOW_SECONDS = 300
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"


@dataclass(frozen=True)
class ModelServiceArgs(ModelWorkloadArgs):
    @property
    def serving(self) -> Serving:
        if self.spec.serving is None:
            raise ValueError(f"model {self.spec.name} has no serving section")
        return self.spec.serving


class ModelService(pulumi.ComponentResource):
    """Everything that serves one model online, named after the model."""

    endpoint: pulumi.Output[str]
    """`http://<model>.<namespace>.svc.cluster.local:<port>`."""

    def __init__(self, name: str, args: ModelServiceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:serving:ModelService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = WorkloadIdentity(f"{name}-server", server_identity(args), child)
        deployment = k8s.apps.v1.Deployment(
            name, metadata=object_meta(name, args), spec=deployment_spec(args, identity),
            opts=child)
        k8s.core.v1.Service(
            name, metadata=object_meta(name, args),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP", selector=args.provenance.selector(COMPONENT),
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=args.serving.port,
                                                   target_port="http", protocol="TCP")]),
            opts=child)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            name, metadata=object_meta(name, args, SWITCHABLE),
            spec=autoscaler_spec(args.serving, deployment.metadata.name), opts=child)
        k8s.policy.v1.PodDisruptionBudget(
            name, metadata=object_meta(name, args),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=args.provenance.selector(COMPONENT)),
                unhealthy_pod_eviction_policy="AlwaysAllow"),
            opts=child)
        k8s.networking.v1.NetworkPolicy(
            name, metadata=object_meta(name, args),
            spec=ingress_policy(args.provenance, args.cluster, args.serving.port), opts=child)
        self.endpoint = pulumi.Output.from_input(
            f"http://{args.cluster.service_host(name)}:{args.serving.port}")
        self.register_outputs({"endpoint": self.endpoint})


def object_meta(name: str, args: ModelServiceArgs,
                annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=args.cluster.object_namespace,
        labels=args.provenance.labels(COMPONENT),
        annotations={**args.provenance.annotations(), **(annotations or {})})


def server_identity(args: ModelServiceArgs) -> WorkloadIdentityArgs:
    """May read its model's prefix of the registry (and its external artifact), nothing else."""
    model = args.spec.name
    external = args.spec.artifact.uri

    def statements(values: Any) -> list[dict[str, Any]]:
        bucket, key_arn = values
        found = read_prefix(bucket, f"models/{model}/", "ReadModel")
        found.append(decrypt_with(key_arn))
        if external:
            found += read_uri(external, "ReadArtifact")
        return found

    return WorkloadIdentityArgs(
        provenance=args.provenance, cluster=args.cluster, service_account=f"{model}-server",
        component=COMPONENT, policy_inputs=[args.registry.bucket_name, args.registry.key_arn],
        statements=statements)


def deployment_spec(args: ModelServiceArgs,
                    identity: WorkloadIdentity) -> k8s.apps.v1.DeploymentSpecArgs:
    serving = args.serving
    container = ModelContainer(
        name=COMPONENT, image=args.image,
        env=model_env(args.provenance, args.artifact_uri, args.spec.artifact.sha256,
                      {"MODEL_PORT": str(serving.port), **serving.env}),
        resources=serving.resources,
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=serving.port,
                                             protocol="TCP")],
        probes=http_probes("http", READY_PATH, LIVE_PATH),
        pre_stop_seconds=5)
    return k8s.apps.v1.DeploymentSpecArgs(
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.provenance.selector(COMPONENT)),
        strategy=k8s.apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0,
                                                                   max_surge="25%")),
        revision_history_limit=5,
        template=hardened_pod_template(
            args.provenance, COMPONENT, container, args.cluster,
            PodOptions(service_account=identity.service_account_name,
                       termination_grace_seconds=30)))


def autoscaler_spec(serving: Serving, deployment: pulumi.Input[str],
                    ) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs:
    """Scale on CPU; scale up at once, scale down only after five calm minutes."""
    return k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
        scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
            api_version="apps/v1", kind="Deployment", name=deployment),
        min_replicas=serving.replicas.min,
        max_replicas=serving.replicas.max,
        metrics=[k8s.autoscaling.v2.MetricSpecArgs(
            type="Resource",
            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                name="cpu", target=k8s.autoscaling.v2.MetricTargetArgs(
                    type="Utilization",
                    average_utilization=serving.target_cpu_utilization)))],
        behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
            scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
                stabilization_window_seconds=SCALE_DOWN_WINDOW_SECONDS,
                select_policy="Max",
                policies=[k8s.autoscaling.v2.HPAScalingPolicyArgs(
                    type="Percent", value=50, period_seconds=60)]),
            scale_up=k8s.autoscaling.v2.HPAScalingRulesArgs(
                stabilization_window_seconds=0,
                select_policy="Max",
                policies=[
                    k8s.autoscaling.v2.HPAScalingPolicyArgs(type="Percent", value=100,
                                                            period_seconds=15),
                    k8s.autoscaling.v2.HPAScalingPolicyArgs(type="Pods", value=4,
                                                            period_seconds=15)])))


def ingress_policy(provenance: Provenance, cluster: ClusterSettings,
                   port: int) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Ingress only on the model's port, only from the listed namespaces."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=provenance.selector(COMPONENT)),
        policy_types=["Ingress"],
        ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
            from_=[k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_expressions=[
                    k8s.meta.v1.LabelSelectorRequirementArgs(
                        key="kubernetes.io/metadata.name", operator="In",
                        values=cluster.callers())]))],
            ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")])])
