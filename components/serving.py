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

from components.autoscaling import KEDA_API, SWITCHABLE
from components.cluster import ClusterSettings
from components.identity import (
    WorkloadIdentity,
    WorkloadIdentityArgs,
    decrypt_with,
    read_prefix,
)
from components.inference_pool import InferencePool, InferencePoolArgs
from components.metrics import request_query, saturation_query
from components.network import serving_ingress
from components.podspec import (
    PodOptions,
    hardened_pod_template,
    metrics_annotations,
    rolling_update,
)
from components.progressive import ProgressiveRollout, ProgressiveRolloutArgs
from components.provenance import Provenance
from components.runtimes import RuntimeInputs, runtime_for
from components.runtimes.base import COMPONENT, RequestMetrics, port_numbers
from components.runtimes.modelserver import LIVE_PATH, READY_PATH
from components.workload import ModelWorkloadArgs
from modelfleet.manifest.schema import SATURATION_METRICS, ModelSpec, Serving

SCALE_DOWN_WINDOW_SECONDS = 300
__all__ = ["COMPONENT", "LIVE_PATH", "READY_PATH", "ModelService", "ModelServiceArgs"]


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
        serving = args.serving
        progressive = serving.rollout.strategy == "progressive"
        identity = WorkloadIdentity(f"{name}-server", server_identity(args), child)
        deployment = k8s.apps.v1.Deployment(
            name, metadata=object_meta(name, args, SKIP_AWAIT if progressive else None),
            spec=deployment_spec(args, identity), opts=child)
        if not progressive:  # Flagger makes the Services of a progressive rollout itself
            model_service(name, args, child)
        if serving.scale_metric == "cpu":
            scaler: k8s.autoscaling.v2.HorizontalPodAutoscaler | \
                k8s.apiextensions.CustomResource = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                    name, metadata=object_meta(name, args, SWITCHABLE),
                    spec=autoscaler_spec(serving, deployment.metadata.name), opts=child)
        else:
            scaler = request_scaler(name, args, deployment.metadata.name, child)
        k8s.policy.v1.PodDisruptionBudget(
            name, metadata=object_meta(name, args),
            spec=disruption_budget_spec(args.provenance, progressive), opts=child)
        if args.provenance.candidate is None:  # one policy covers every version of the model
            k8s.networking.v1.NetworkPolicy(
                name, metadata=object_meta(name, args),
                spec=ingress_policy(args.provenance, args.cluster,
                                    port_numbers(runtime_for(args.spec).ports(args.spec)),
                                    metrics_port(args.spec), load_tester_namespace(serving)),
                opts=child)
        if args.spec.speaks_openai and args.cluster.gateway:
            InferencePool(name, InferencePoolArgs(
                provenance=args.provenance, cluster=args.cluster, port=serving.port), child)
        if progressive:
            ProgressiveRollout(name, ProgressiveRolloutArgs(
                provenance=args.provenance, cluster=args.cluster, serving=serving,
                deployment=deployment.metadata.name, autoscaler=scaler_reference(scaler),
                primary_scaler_query=request_query(serving.scale_metric, args.cluster.namespace,
                                                   f"{name}-primary", requests(args.spec))
                if serving.scale_metric != "cpu" else None,
                requests=requests(args.spec)), child)
        self.endpoint = pulumi.Output.from_input(
            f"http://{args.cluster.service_host(name)}:{serving.port}")
        self.register_outputs({"endpoint": self.endpoint})


def load_tester_namespace(serving: Serving) -> str | None:
    """The namespace of Flagger's load tester, when a progressive rollout declares one."""
    test = serving.rollout.load_test
    if serving.rollout.strategy != "progressive" or test is None:
        return None
    return test.load_tester_namespace
def requests(spec: ModelSpec) -> RequestMetrics:
    """The runtime's request metrics (the manifest rules refuse request-load scaling and
    progressive rollouts where it has none)."""
    found = runtime_for(spec).requests(spec)
    if found is None:
        raise ValueError(f"model {spec.name}: its runtime exports no request metrics")
    return found


def disruption_budget_spec(provenance: Provenance, progressive: bool,
                           ) -> k8s.policy.v1.PodDisruptionBudgetSpecArgs:
    """Evictions (node drains) take one of the model's pods at a time.

    Under Flagger the pods that serve are the primary's: Flagger copies the Deployment
    to `<model>-primary` and renames its `app.kubernetes.io/name` label to match, so the
    budget selects every pod of the model (primary and canary) by instance instead.
    Candidates and a progressive rollout never meet (the manifest refuses both), so
    no pod falls under two budgets, which the eviction API refuses.
    """
    labels = provenance.model_selector(COMPONENT) if progressive \
        else provenance.selector(COMPONENT)
    return k8s.policy.v1.PodDisruptionBudgetSpecArgs(
        max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
        unhealthy_pod_eviction_policy="AlwaysAllow")


APP_PROTOCOLS = {"http": "http", "grpc": "kubernetes.io/h2c"}
"""What each port speaks, for gateways and meshes: gRPC is HTTP/2 without TLS (h2c)."""
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
"""Flagger scales the target Deployment of a progressive rollout to zero once a version is
promoted (its `-primary` copy serves): Pulumi must not wait for its pods to be ready."""


def model_service(name: str, args: ModelServiceArgs,
                  opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        name, metadata=object_meta(name, args),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP", selector=args.provenance.selector(COMPONENT),
            ports=[k8s.core.v1.ServicePortArgs(
                name=port.name, port=port.container_port, target_port=port.name,
                protocol="TCP", app_protocol=APP_PROTOCOLS[str(port.name)])
                for port in runtime_for(args.spec).ports(args.spec)
                if port.name in APP_PROTOCOLS]),
        opts=opts)


def scaler_reference(scaler: pulumi.CustomResource) -> dict[str, str]:
    """Flagger's `autoscalerRef` to the autoscaler it copies for the primary."""
    if isinstance(scaler, k8s.autoscaling.v2.HorizontalPodAutoscaler):
        return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"}
    return {"apiVersion": KEDA_API, "kind": "ScaledObject"}


def object_meta(name: str, args: ModelServiceArgs,
                annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=args.cluster.object_namespace,
        labels=args.provenance.labels(COMPONENT),
        annotations={**args.provenance.annotations(), **(annotations or {})})


def server_identity(args: ModelServiceArgs) -> WorkloadIdentityArgs:
    """May read its model's prefix of the registry and what its runtime reads (the external
    artifact; for pinned files, exactly those objects), nothing else."""
    model = args.spec.name
    reads = runtime_for(args.spec).reads(args.spec)
    account = f"{args.provenance.workload}-server"

    def statements(values: Any) -> list[dict[str, Any]]:
        bucket, key_arn = values
        found = read_prefix(bucket, f"models/{model}/", "ReadModel")
        found.append(decrypt_with(key_arn))
        return found + reads

    return WorkloadIdentityArgs(
        provenance=args.provenance, cluster=args.cluster, service_account=account,
        component=COMPONENT, policy_inputs=[args.registry.bucket_name, args.registry.key_arn],
        statements=statements)


def deployment_spec(args: ModelServiceArgs,
                    identity: WorkloadIdentity) -> k8s.apps.v1.DeploymentSpecArgs:
    """Pods as the model's runtime runs them, in the hardened template."""
    serving = args.serving
    pod = runtime_for(args.spec).pod(RuntimeInputs(
        spec=args.spec, provenance=args.provenance, cluster=args.cluster, image=args.image,
        artifact_uri=args.artifact_uri))
    return k8s.apps.v1.DeploymentSpecArgs(
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.provenance.selector(COMPONENT)),
        strategy=rolling_update(serving),
        revision_history_limit=5,
        template=hardened_pod_template(
            args.provenance, COMPONENT, pod.container, args.cluster,
            PodOptions(service_account=identity.service_account_name, settings=serving,
                       termination_grace_seconds=30, annotations=scrape_annotations(args)),
            init_containers=pod.init_containers, volumes=pod.volumes))


def autoscaler_spec(serving: Serving, deployment: pulumi.Input[str],
                    ) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs:
    """Scale on CPU (percent of the request); up at once, down only after five calm minutes."""
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
                    average_utilization=serving.scale_target
                    or serving.target_cpu_utilization)))],
        behavior=hpa_behavior())


def hpa_behavior() -> k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs:
    """`SCALING_BEHAVIOR` as the HPA's typed arguments."""
    def rules(rule: dict[str, Any]) -> k8s.autoscaling.v2.HPAScalingRulesArgs:
        return k8s.autoscaling.v2.HPAScalingRulesArgs(
            stabilization_window_seconds=rule["stabilizationWindowSeconds"],
            select_policy=rule["selectPolicy"],
            policies=[k8s.autoscaling.v2.HPAScalingPolicyArgs(
                type=policy["type"], value=policy["value"], period_seconds=policy["periodSeconds"])
                for policy in rule["policies"]])
    return k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
        scale_down=rules(SCALING_BEHAVIOR["scaleDown"]),
        scale_up=rules(SCALING_BEHAVIOR["scaleUp"]))


SCALING_BEHAVIOR: dict[str, Any] = {
    "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                             {"type": "Pods", "value": 4, "periodSeconds": 15}]},
}
"""Up at once (double, or four more pods, every 15 s), down by half a minute at most
after five calm minutes: the HPA's and KEDA's (which passes it on to its HPA) alike."""
SATURATION_BEHAVIOR: dict[str, Any] = {
    "scaleDown": {"stabilizationWindowSeconds": 900, "selectPolicy": "Min",
                  "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60},
                             {"type": "Pods", "value": 2, "periodSeconds": 60}]},
}
"""An LLM scaled on its engine's queue or KV cache: up at once (double, or two more pods,
each minute), since a new pod takes minutes before it serves (weights loaded, kernels
compiled: `startupSeconds`, half an hour by default) and the queue grows meanwhile; down
one pod every five minutes, only after fifteen calm minutes, since a removed pod takes its
warm KV and prefix cache with it and brings the cold start back if the load returns. The
vLLM production-stack's KEDA example waits 360 s (helm/values.yaml, vllm-stack-0.1.12);
fifteen minutes outlasts the queue gauge's bursts between requests of a conversation."""
REQUEST_TRIGGER = "requests"


def request_scaler(name: str, args: ModelServiceArgs, deployment: pulumi.Input[str],
                   opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """A KEDA ScaledObject with the `prometheus` trigger: scale on request load per pod (our
    model server's metrics), or on an LLM engine's saturation per pod (its own metrics, named
    by its runtime: `components/runtimes/vllm.py`), with `SATURATION_BEHAVIOR`."""
    serving = args.serving
    metric, namespace = serving.scale_metric, args.cluster.namespace
    if metric in SATURATION_METRICS:
        names = runtime_for(args.spec).metrics
        if names.waiting is None or names.kv_cache is None:
            raise ValueError(f"engine {args.spec.runtime.engine} exports no {metric} metric")
        query = saturation_query(metric, names.waiting, names.kv_cache, namespace, name)
        behavior, trigger = SATURATION_BEHAVIOR, metric
    else:
        query = request_query(metric, namespace, name, requests(args.spec))
        behavior, trigger = SCALING_BEHAVIOR, REQUEST_TRIGGER
    return k8s.apiextensions.CustomResource(
        name, api_version=KEDA_API, kind="ScaledObject", metadata=object_meta(name, args),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "pollingInterval": 15,
            "minReplicaCount": serving.replicas.min,
            "maxReplicaCount": serving.replicas.max,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
            "triggers": [{
                "type": "prometheus",
                "name": trigger,
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": args.cluster.prometheus_address,
                    "query": query,
                    "threshold": str(serving.scale_target),
                },
            }],
        },
        opts=opts)


def ingress_policy(provenance: Provenance, cluster: ClusterSettings, ports: list[int],
                   metrics_port: int | None = None, load_tester: str | None = None,
                   ) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Ingress to every pod of the model only from the namespaces `components.network`
    admits, each only on the ports it needs (`ports`: HTTP first, then gRPC or others)."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels=provenance.model_selector(COMPONENT)),
        policy_types=["Ingress"],
        ingress=serving_ingress(cluster, ports, metrics_port, load_tester))


def metrics_port(spec: ModelSpec) -> int | None:
    """The port Prometheus scrapes the model's server pods on, if its engine has metrics."""
    scrape = runtime_for(spec).scrape(spec)
    return scrape.port if scrape else None


def scrape_annotations(args: ModelServiceArgs) -> dict[str, str]:
    """The `prometheus.io/*` annotations of the runtime's scrape endpoint (annotations mode
    only; none when the engine exports no metrics)."""
    scrape = runtime_for(args.spec).scrape(args.spec)
    return metrics_annotations(scrape.port, args.cluster, scrape.path) if scrape else {}
