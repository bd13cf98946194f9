"""The hardened pod every model workload runs in, in one place for serving and batch alike.

Non-root with a fixed high uid, read-only root filesystem with `/tmp` on an
emptyDir, every capability dropped, seccomp `RuntimeDefault`, no privilege
escalation, no Kubernetes API token, requests equal to limits, spread over
zones and nodes, pulled by digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.provenance import Provenance
from modelfleet.manifest.schema import PodSettings, Resources

RUN_AS = 10001
"""Above 10000, so the uid cannot collide with a host user (checkov CKV_K8S_40)."""
TMP = "/tmp"
GPU_RESOURCE = "nvidia.com/gpu"

Env = Sequence[tuple[str, pulumi.Input[str]]]


@dataclass(frozen=True)
class Probes:
    readiness: k8s.core.v1.ProbeArgs
    liveness: k8s.core.v1.ProbeArgs
    startup: k8s.core.v1.ProbeArgs


@dataclass(frozen=True)
class Mount:
    """A pod volume mounted into a container; read-only unless the container must write."""

    volume: str
    path: str
    read_only: bool = True


@dataclass(frozen=True)
class ModelContainer:
    """A container of a model pod: the engine, or an init container that prepares its files."""

    name: str
    image: pulumi.Input[str]
    env: Env
    resources: Resources
    ports: Sequence[k8s.core.v1.ContainerPortArgs] = ()
    probes: Probes | None = None
    pre_stop_seconds: int = 0
    """Seconds to keep serving after removal from the Service, while endpoints update."""
    command: Sequence[str] = ()
    """The image's entrypoint, replaced; empty: the image's own."""
    args: Sequence[str] = ()
    """Arguments to the entrypoint; empty: the image's own."""
    mounts: Sequence[Mount] = ()
    """Volumes besides `/tmp`, which every container gets."""


@dataclass(frozen=True)
class PodOptions:
    service_account: pulumi.Input[str]
    settings: PodSettings
    """The manifest's pod settings: placement (node selector, tolerations, priority)."""
    termination_grace_seconds: int = 30
    restart_policy: str | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


STARTUP_PERIOD_SECONDS = 5
READINESS = (5, 3)
"""(period, failures): out of the Service after 15 s of failing readiness..."""
LIVENESS = (10, 3)
"""...and restarted only after 30 s of failing liveness: a busy pod is first taken out of
rotation, never killed before readiness could have spared it."""


def http_probes(port: str, ready: str, live: str, startup_budget_seconds: int) -> Probes:
    """Readiness and startup on the readiness path: a model is up once it has loaded.

    The startup probe allows `startup_budget_seconds` (the manifest's `startupSeconds`) for
    loading; Kubernetes runs neither liveness nor readiness until it has passed.
    """
    def get(path: str, period: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=port),
            period_seconds=period, timeout_seconds=2, failure_threshold=failures)
    startup_failures = max(1, -(-startup_budget_seconds // STARTUP_PERIOD_SECONDS))
    return Probes(readiness=get(ready, *READINESS), liveness=get(live, *LIVENESS),
                  startup=get(ready, STARTUP_PERIOD_SECONDS, startup_failures))


def metrics_annotations(port: int, cluster: ClusterSettings,
                        path: str = "/metrics") -> dict[str, str]:
    """Where Prometheus scrapes the model server's own metrics (the `prometheus.io/*` pod
    annotations that Prometheus' standard `kubernetes-pods` scrape job reads), with
    `modelfleet:prometheus: annotations` only: under the Prometheus Operator the PodMonitor
    says it, and a Prometheus with both would scrape every pod twice (doubling every sum)."""
    if cluster.operator:
        return {}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
            "prometheus.io/path": path}


def rolling_update(settings: PodSettings) -> k8s.apps.v1.DeploymentStrategyArgs:
    """The manifest's rollout budget; without one, no surge pod for GPU models (a GPU pool
    has no spare GPU for it, and the rollout would wait forever), 25% surge otherwise."""
    surge, unavailable = settings.rollout_budget()
    return k8s.apps.v1.DeploymentStrategyArgs(
        type="RollingUpdate",
        rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=surge,
                                                               max_unavailable=unavailable))


def resource_requirements(resources: Resources) -> k8s.core.v1.ResourceRequirementsArgs:
    """Requests equal to limits: Guaranteed QoS, so a model is never evicted for others."""
    amounts = {"cpu": resources.cpu, "memory": resources.memory}
    if int(resources.gpu) > 0:
        amounts[GPU_RESOURCE] = resources.gpu
    return k8s.core.v1.ResourceRequirementsArgs(requests=dict(amounts), limits=dict(amounts))


def model_container(container: ModelContainer) -> k8s.core.v1.ContainerArgs:
    """The container with the hardening every container of a model pod gets, whatever runs
    in it: non-root uid RUN_AS, read-only root filesystem, no capabilities, no escalation."""
    probes = container.probes
    return k8s.core.v1.ContainerArgs(
        name=container.name,
        image=container.image,
        image_pull_policy="Always",
        command=list(container.command) or None,
        args=list(container.args) or None,
        env=[k8s.core.v1.EnvVarArgs(name=name, value=value) for name, value in container.env],
        ports=list(container.ports) or None,
        resources=resource_requirements(container.resources),
        readiness_probe=probes.readiness if probes else None,
        liveness_probe=probes.liveness if probes else None,
        startup_probe=probes.startup if probes else None,
        lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
            sleep=k8s.core.v1.SleepActionArgs(seconds=container.pre_stop_seconds)))
        if container.pre_stop_seconds else None,
        security_context=k8s.core.v1.SecurityContextArgs(
            run_as_non_root=True, run_as_user=RUN_AS, run_as_group=RUN_AS,
            read_only_root_filesystem=True, allow_privilege_escalation=False,
            privileged=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path=TMP)] + [
            k8s.core.v1.VolumeMountArgs(name=mount.volume, mount_path=mount.path,
                                        read_only=mount.read_only or None)
            for mount in container.mounts],
    )


def hardened_pod_template(provenance: Provenance, component: str, container: ModelContainer,
                          cluster: ClusterSettings, options: PodOptions, *,
                          init_containers: Sequence[ModelContainer] = (),
                          volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
                          ) -> k8s.core.v1.PodTemplateSpecArgs:
    """Pod template with labels (version included: a bump rolls the pods) and the hardening.

    `init_containers` run first, in order, hardened like the main container; `volumes`
    are added after `tmp` (an engine's caches, shared memory, fetched weights). A volume
    named `tmp` is refused: every container's `/tmp` is this template's own.
    """
    if any(volume.name == "tmp" for volume in volumes):
        raise ValueError("the volume name 'tmp' is the pod template's own")
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels={**provenance.labels(component), **options.extra_labels},
            annotations=dict(options.annotations) or None),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=options.service_account,
            automount_service_account_token=False,
            enable_service_links=False,
            termination_grace_period_seconds=options.termination_grace_seconds,
            restart_policy=options.restart_policy,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True, run_as_user=RUN_AS, run_as_group=RUN_AS, fs_group=RUN_AS,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
            init_containers=[model_container(init) for init in init_containers] or None,
            containers=[model_container(container)],
            volumes=[k8s.core.v1.VolumeArgs(name="tmp",
                                            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                     *volumes],
            topology_spread_constraints=spread(provenance.selector(component)),
            node_selector=node_selector(options.settings, cluster),
            tolerations=tolerations(options.settings, cluster),
            priority_class_name=options.settings.priority_class_name,
        ))


def node_selector(settings: PodSettings, cluster: ClusterSettings) -> dict[str, str] | None:
    """The model's node labels over the stack's GPU node labels (for pods with GPUs)."""
    labels = dict(cluster.gpu.node_selector) if settings.gpus else {}
    labels.update(settings.node_selector)
    return labels or None


def tolerations(settings: PodSettings,
                cluster: ClusterSettings) -> list[k8s.core.v1.TolerationArgs] | None:
    """The stack's GPU taint (for pods with GPUs), then the model's own."""
    found = [k8s.core.v1.TolerationArgs(key=cluster.gpu.toleration_key, operator="Exists",
                                        effect="NoSchedule")] if settings.gpus else []
    found += [k8s.core.v1.TolerationArgs(key=t.key, operator=t.operator, value=t.value,
                                         effect=t.effect) for t in settings.tolerations]
    return found or None


def spread(selector: Mapping[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Across zones, then nodes; best effort, counted per rollout revision."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=key, when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
            match_label_keys=["pod-template-hash"])
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def model_env(provenance: Provenance, artifact_uri: pulumi.Input[str], sha256: str | None,
              extra: Mapping[str, str], *,
              object_version: str | None = None) -> list[tuple[str, pulumi.Input[str]]]:
    """What every model container is told about its model, then the manifest's own variables.

    `object_version` is the S3 object version `artifact.versionId` pins: the server
    reads exactly that version of MODEL_URI (MODEL_OBJECT_VERSION).
    """
    env: list[tuple[str, pulumi.Input[str]]] = [
        ("MODEL_NAME", provenance.model),
        ("MODEL_VERSION", provenance.version),
        ("MODEL_URI", artifact_uri),
    ]
    if object_version:
        env.append(("MODEL_OBJECT_VERSION", object_version))
    if sha256:
        env.append(("MODEL_SHA256", sha256))
    env += sorted(extra.items())
    return env
