"""The endpoint picker (EPP) of one InferencePool: the Gateway API Inference Extension's
ext-proc server that picks, per request, the pod of an LLM that answers it from the engines'
live metrics (waiting queue, KV-cache use, prefix-cache hits).

Built as the upstream charts build it, read (not run: no gateway runs here) at these versions:

- llm-d-router v0.10.0, `config/charts/routerlib` (the chart `llm-d-router-gateway`, which
  succeeds GAIE's `config/charts/inferencepool` since GAIE v1.6.0): the arguments
  `--pool-name`, `--pool-namespace`, `--pool-group`, `--config-file`, `--grpc-health-port`;
  ports 9002 (ext-proc gRPC, Service `appProtocol: kubernetes.io/h2c`), 9003 (gRPC health,
  service `inference-extension`), 9090 (metrics); strategy Recreate; grace period 130 s.
- GAIE v1.5.0, `config/charts/inferencepool/templates/rbac.yaml` (@13113fb2), and
  llm-d-router's copy (@9fab645a), which reads the objectives under `llm-d.ai` too: get, watch
  and list on `inferencepools`, `inferenceobjectives` and `inferencemodelrewrites`; with the
  pods it reads its pool's endpoints from. Leases and events only for several replicas with
  leader election (`_leader-election-rbac.yaml`), token and access reviews only for an
  authenticated metrics endpoint: one replica here, and `--metrics-endpoint-auth=false` as
  the chart renders it without Prometheus auth (llm-d-router routerlib `_deployment.yaml`
  @2200bfcf, with `--tracing=false` and the `NAMESPACE` variable), the NetworkPolicy
  limiting who reaches the metrics port instead.
- GAIE v1.5.0, `config/charts/epplib/templates/_config.yaml` (@74621d38): the default
  `EndpointPickerConfig`, `queue-scorer` (weight 2), `kv-cache-utilization-scorer` (2),
  `prefix-cache-scorer` (3), with the `metrics-data-source` (HTTP `/metrics`) and the
  `core-metrics-extractor`; llm-d-router's routerlib `_config.yaml` (@00bacf3a) renders the
  same scorers and weights under `llm-d.ai/v1alpha1`, which its picker reads.

The pod is the project's hardened pod (`components.podspec`): non-root, read-only root
filesystem, no capabilities, seccomp RuntimeDefault, admitted under `restricted`. It needs
the Kubernetes API, so it gets a projected service account token (the volume the kubelet
would add), mounted into its one container only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.podspec import ModelContainer, Mount, PodOptions, Probes, hardened_pod_template
from components.provenance import Provenance
from modelfleet.manifest.schema import PodSettings, Resources

COMPONENT = "endpoint-picker"
EXT_PROC_PORT = 9002
"""The ext-proc gRPC port the gateway calls (`endpointPickerRef.port`)."""
HEALTH_PORT = 9003
METRICS_PORT = 9090
HEALTH_SERVICE = "inference-extension"
"""The gRPC health service the EPP answers for (one replica; llm-d-router v0.10.0 routerlib)."""
POOL_GROUP = "inference.networking.k8s.io"
CONFIG_PATH = "/config"
CONFIG_FILE = "default-plugins.yaml"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3607
"""The bound token's lifetime, as the kubelet's own projected volume (it refreshes it)."""
RESOURCES = {"cpu": "4", "memory": "8Gi"}
"""GAIE v1.5.0 `config/charts/inferencepool/values.yaml` requests (cpu 4, memory 8Gi; its
limit is 16Gi of memory). Requests equal limits here, as for every pod of the project."""
TERMINATION_GRACE_SECONDS = 130
ENDPOINT_PICKER_CONFIG = """\
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: http
    path: /metrics
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
"""
"""Upstream's default scorers and weights (GAIE v1.5.0 epplib `_config.yaml`)."""
READ = ["get", "watch", "list"]
RULES = [
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=READ),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[POOL_GROUP], resources=["inferencepools"],
                               verbs=READ),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=["inference.networking.x-k8s.io", "llm-d.ai"],
                               resources=["inferenceobjectives", "inferencemodelrewrites"],
                               verbs=READ),
]
"""The Role's rules: read its pool, its pool's pods and the objectives that tune it, in the
stack's namespace only; nothing is written."""


@dataclass(frozen=True)
class EndpointPickerArgs:
    provenance: Provenance
    """The version whose pool it serves (the stable version's, or a candidate's)."""
    cluster: ClusterSettings
    pool: str
    """The InferencePool's name (`--pool-name`)."""


def picker_name(workload: str) -> str:
    """The EPP's Service (and every other object of it): `<workload>-epp`."""
    return f"{workload}-epp"


class EndpointPicker(pulumi.ComponentResource):
    """One pool's endpoint picker: identity, least RBAC, configuration, pod, Service, policy."""

    service: pulumi.Output[str]
    """The Service's name, for the pool's `endpointPickerRef`."""

    def __init__(self, name: str, args: EndpointPickerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:serving:EndpointPicker", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_name = picker_name(args.provenance.workload)
        meta = metadata(object_name, args)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=meta, automount_service_account_token=False, opts=child)
        role = k8s.rbac.v1.Role(f"{name}-role", metadata=meta, rules=RULES, opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-binding", metadata=meta,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io",
                                             kind="Role", name=role.metadata.name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=object_name,
                                              namespace=args.cluster.namespace)],
            opts=child)
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=meta,
                                       data={CONFIG_FILE: ENDPOINT_PICKER_CONFIG}, opts=child)
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=meta,
            spec=deployment_spec(args, account.metadata.name, config.metadata.name), opts=child)
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta, spec=service_spec(args), opts=child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-policy", metadata=meta, spec=ingress_policy(args), opts=child)
        self.service = service.metadata.name
        self.register_outputs({"service": self.service})


def metadata(name: str, args: EndpointPickerArgs) -> k8s.meta.v1.ObjectMetaArgs:
    """Every picker object's metadata: its name, the stack's namespace, the version's labels
    (component `endpoint-picker`) and provenance."""
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=args.cluster.object_namespace,
        labels=args.provenance.labels(COMPONENT), annotations=args.provenance.annotations())


def container(args: EndpointPickerArgs) -> ModelContainer:
    """The EPP's container: the chart's arguments, gRPC probes on the health port."""
    def grpc(period: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            grpc=k8s.core.v1.GRPCActionArgs(port=HEALTH_PORT, service=HEALTH_SERVICE),
            period_seconds=period, timeout_seconds=2, failure_threshold=failures)
    return ModelContainer(
        name=COMPONENT, image=args.cluster.endpoint_picker_image,
        env=[("NAMESPACE", args.cluster.namespace)],
        resources=Resources.model_validate(RESOURCES),
        args=["--pool-name", args.pool, "--pool-namespace", args.cluster.namespace,
              "--pool-group", POOL_GROUP, "--config-file", f"{CONFIG_PATH}/{CONFIG_FILE}",
              "--grpc-health-port", str(HEALTH_PORT), "--tracing=false",
              "--metrics-endpoint-auth=false"],
        ports=[k8s.core.v1.ContainerPortArgs(name=port_name, container_port=number,
                                             protocol="TCP")
               for port_name, number in (("grpc", EXT_PROC_PORT), ("grpc-health", HEALTH_PORT),
                                         ("metrics", METRICS_PORT))],
        probes=Probes(readiness=grpc(2, 3), liveness=grpc(10, 3), startup=grpc(2, 30)),
        mounts=[Mount("config", CONFIG_PATH), Mount("kube-api-access", TOKEN_PATH)])


def deployment_spec(args: EndpointPickerArgs, account: pulumi.Input[str],
                    config: pulumi.Input[str]) -> k8s.apps.v1.DeploymentSpecArgs:
    """One replica (no leader election), replaced with Recreate as the chart does."""
    config_volume = k8s.core.v1.VolumeArgs(
        name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=config))
    return k8s.apps.v1.DeploymentSpecArgs(
        replicas=1,
        selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels=args.provenance.selector(COMPONENT)),
        strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
        revision_history_limit=5,
        template=hardened_pod_template(
            args.provenance, COMPONENT, container(args), args.cluster,
            PodOptions(service_account=account, settings=PodSettings(),
                       termination_grace_seconds=TERMINATION_GRACE_SECONDS),
            volumes=[config_volume, api_access_volume()]))


def api_access_volume() -> k8s.core.v1.VolumeArgs:
    """What the kubelet mounts when a pod automounts its token (a bound, expiring token, the
    cluster's CA, the namespace), declared for the one container that calls the API."""
    token = k8s.core.v1.ServiceAccountTokenProjectionArgs(
        path="token", expiration_seconds=TOKEN_SECONDS)
    ca = k8s.core.v1.ConfigMapProjectionArgs(
        name="kube-root-ca.crt", items=[k8s.core.v1.KeyToPathArgs(key="ca.crt", path="ca.crt")])
    namespace = k8s.core.v1.DownwardAPIProjectionArgs(items=[
        k8s.core.v1.DownwardAPIVolumeFileArgs(
            path="namespace",
            field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.namespace"))])
    sources = [k8s.core.v1.VolumeProjectionArgs(service_account_token=token),
               k8s.core.v1.VolumeProjectionArgs(config_map=ca),
               k8s.core.v1.VolumeProjectionArgs(downward_api=namespace)]
    return k8s.core.v1.VolumeArgs(
        name="kube-api-access",
        projected=k8s.core.v1.ProjectedVolumeSourceArgs(sources=sources))


def service_spec(args: EndpointPickerArgs) -> k8s.core.v1.ServiceSpecArgs:
    """The ext-proc port as h2c (gRPC without TLS), which gateways need to speak HTTP/2."""
    return k8s.core.v1.ServiceSpecArgs(
        type="ClusterIP", selector=args.provenance.selector(COMPONENT),
        ports=[k8s.core.v1.ServicePortArgs(name="grpc-ext-proc", port=EXT_PROC_PORT,
                                           target_port="grpc", protocol="TCP",
                                           app_protocol="kubernetes.io/h2c"),
               k8s.core.v1.ServicePortArgs(name="http-metrics", port=METRICS_PORT,
                                           target_port="metrics", protocol="TCP",
                                           app_protocol="http")])


def ingress_policy(args: EndpointPickerArgs) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """The ext-proc port from the Gateway's namespace only; metrics from the namespaces that
    may call the models (where Prometheus is listed)."""
    gateway_namespace, _ = args.cluster.gateway_ref

    def namespaces(names: list[str]) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
        return [k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_expressions=[
                k8s.meta.v1.LabelSelectorRequirementArgs(
                    key="kubernetes.io/metadata.name", operator="In", values=names)]))]

    def port(number: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
        return [k8s.networking.v1.NetworkPolicyPortArgs(port=number, protocol="TCP")]
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels=args.provenance.selector(COMPONENT)),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=namespaces([gateway_namespace]), ports=port(EXT_PROC_PORT)),
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=namespaces(args.cluster.callers()), ports=port(METRICS_PORT)),
        ])
