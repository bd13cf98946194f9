"""The fleet of one stack: the registry, every model, and the registry's index."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_kubernetes as k8s

from components.alerts import AlertedModel
from components.cluster import ClusterSettings
from components.index import IndexEntry, RegistryIndex, RegistryIndexArgs
from components.model import DeployedModel, DeployedModelArgs
from components.monitoring import FleetMonitoring, FleetMonitoringArgs
from components.provenance import StackScope
from components.registry import ModelRegistry, ModelRegistryArgs
from modelfleet.release.layout import IndexCandidate, metadata_key


@dataclass(frozen=True)
class ModelFleetArgs:
    scope: StackScope
    registry: ModelRegistryArgs
    cluster: ClusterSettings
    models: tuple[DeployedModelArgs, ...]
    create_namespace: bool = False
    """Create the namespace (restricted pod security); otherwise it must exist."""


class ModelFleet(pulumi.ComponentResource):
    """Everything a stack deploys from its manifest."""

    registry: ModelRegistry
    models: dict[str, DeployedModel]

    def __init__(self, name: str, args: ModelFleetArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:fleet:ModelFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.registry = ModelRegistry("registry", args.registry, child)
        cluster = args.cluster
        if args.create_namespace:
            cluster = replace(cluster, namespace_resource=model_namespace(
                args.cluster.namespace, args.scope, child).metadata.name)
        self.models = {
            model.spec.name: DeployedModel(model.spec.name, replace(model, cluster=cluster),
                                           self.registry, child)
            for model in args.models}
        FleetMonitoring("monitoring", FleetMonitoringArgs(
            scope=args.scope, cluster=cluster,
            models=tuple(AlertedModel(m.spec, cluster.namespace,
                                      m.queue_name if m.spec.batch else None)
                         for m in args.models)), child)
        RegistryIndex("registry-index", RegistryIndexArgs(
            scope=args.scope, bucket_name=self.registry.bucket_name,
            entries=index_entries(args.models, self.models),
            records=tuple(r for m in self.models.values() for r in m.records)), child)
        self.register_outputs({"bucket": self.registry.bucket_name})


def index_entries(models: tuple[DeployedModelArgs, ...],
                  deployed: dict[str, DeployedModel]) -> tuple[IndexEntry, ...]:
    """Each model's line of `index.json`: its version, record, artifact, image, candidates."""
    return tuple(IndexEntry(
        name=m.spec.name, version=m.spec.version, team=m.spec.team, stage=m.spec.stage,
        metadata_key=metadata_key(m.spec.name, m.spec.version), commit=m.provenance.commit,
        artifact_uri=deployed[m.spec.name].artifact_uri,
        image=deployed[m.spec.name].image_reference,
        candidates=tuple(IndexCandidate(name=c.name, version=c.spec.version,
                                        metadata=metadata_key(m.spec.name, c.spec.version))
                         for c in m.candidates))
        for m in models)


def model_namespace(name: str, scope: StackScope, opts: pulumi.ResourceOptions,
                    ) -> k8s.core.v1.Namespace:
    """The stack's namespace, enforcing the `restricted` Pod Security Standard.

    Retained on delete: deleting a namespace deletes everything in it.
    """
    return k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels={
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "app.kubernetes.io/managed-by": "pulumi",
            "modelfleet.dev/environment": scope.environment,
        }),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)))
