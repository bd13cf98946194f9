"""One model of the fleet: the parent of everything the model owns, so it reads as one tree."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.artifact import ArtifactFile, ModelArtifact, ModelArtifactArgs
from components.image import ImageBuild, ModelImage, ModelImageArgs
from components.provenance import Provenance
from components.registry import ModelRegistry
from modelfleet.schema import ModelSpec


@dataclass(frozen=True)
class DeployedModelArgs:
    spec: ModelSpec
    provenance: Provenance
    environment: str
    repository_name: str
    entry_digest: str
    manifest_file: str
    artifact_files: tuple[ArtifactFile, ...] = ()
    single_file_artifact: bool = False
    build: ImageBuild | None = None
    untagged_image_days: int = 14


class DeployedModel(pulumi.ComponentResource):
    """A model's image and registry record."""

    image_reference: pulumi.Output[str]
    artifact_uri: pulumi.Output[str]
    metadata_key: pulumi.Output[str]

    def __init__(self, name: str, args: DeployedModelArgs, registry: ModelRegistry,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:fleet:Model", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image = ModelImage(name, ModelImageArgs(
            provenance=args.provenance, repository_name=args.repository_name,
            kms_key_arn=registry.key_arn, build=args.build, ref=args.spec.image.ref,
            untagged_expiry_days=args.untagged_image_days), child)
        artifact = ModelArtifact(name, ModelArtifactArgs(
            model=args.spec, provenance=args.provenance, environment=args.environment,
            bucket_name=registry.bucket_name, image_reference=image.reference,
            files=args.artifact_files, single_file=args.single_file_artifact,
            entry_digest=args.entry_digest, manifest_file=args.manifest_file), child)
        self.image_reference = image.reference
        self.artifact_uri = artifact.uri
        self.metadata_key = artifact.metadata_key
        self.register_outputs({"image_reference": self.image_reference,
                               "artifact_uri": self.artifact_uri,
                               "metadata_key": self.metadata_key})
