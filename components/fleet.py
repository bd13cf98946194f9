"""The fleet of one stack: the registry, every model, and the registry's index."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.artifact import metadata_key
from components.index import IndexEntry, ManifestRevision, RegistryIndex, RegistryIndexArgs
from components.model import DeployedModel, DeployedModelArgs
from components.provenance import StackScope
from components.registry import ModelRegistry, ModelRegistryArgs


@dataclass(frozen=True)
class ModelFleetArgs:
    scope: StackScope
    registry: ModelRegistryArgs
    manifest: ManifestRevision
    models: tuple[DeployedModelArgs, ...]


class ModelFleet(pulumi.ComponentResource):
    """Everything a stack deploys from its manifest."""

    registry: ModelRegistry
    models: dict[str, DeployedModel]

    def __init__(self, name: str, args: ModelFleetArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:fleet:ModelFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.registry = ModelRegistry("registry", args.registry, child)
        self.models = {model.spec.name: DeployedModel(model.spec.name, model, self.registry, child)
                       for model in args.models}
        RegistryIndex("registry-index", RegistryIndexArgs(
            scope=args.scope, bucket_name=self.registry.bucket_name, manifest=args.manifest,
            entries=tuple(IndexEntry(
                name=m.spec.name, version=m.spec.version, team=m.spec.team, stage=m.spec.stage,
                metadata_key=metadata_key(m.spec.name, m.spec.version),
                artifact_uri=self.models[m.spec.name].artifact_uri,
                image=self.models[m.spec.name].image_reference) for m in args.models)), child)
        self.register_outputs({"bucket": self.registry.bucket_name})
