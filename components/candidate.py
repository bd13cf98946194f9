"""A candidate version of a model, beside the stable one: its image, registry record and pods.

It runs as the model (`MODEL_NAME` is the model's, so the same Open Inference Protocol paths
reach it through the model's route) under a name of its own, `<model>-<candidate>`: its own
Deployment, Service, autoscaler, PodDisruptionBudget and identity, labelled with its version
and candidate name so that its metrics and the stable version's can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.artifact import ArtifactFile, ModelArtifact, ModelArtifactArgs
from components.cluster import ClusterSettings
from components.image import ImageBuild, ModelImage, built_image
from components.provenance import Provenance
from components.serving import ModelService, ModelServiceArgs
from components.workload import RegistryAccess
from modelfleet.manifest.schema import ModelSpec


@dataclass(frozen=True)
class ModelCandidateArgs:
    spec: ModelSpec
    """The model as the candidate runs it (its version, artifact and image)."""
    provenance: Provenance
    environment: str
    cluster: ClusterSettings
    manifest_file: str
    registry: RegistryAccess
    artifact_files: tuple[ArtifactFile, ...] = ()
    single_file_artifact: bool = False
    build: ImageBuild | None = None
    """Built into the model's repository, tagged with the candidate's version."""


class ModelCandidate(pulumi.ComponentResource):
    """One candidate: image (built or given), artifact and metadata, online service."""

    image_reference: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    record: pulumi.Resource
    """Its version's `metadata.json`."""

    def __init__(self, name: str, args: ModelCandidateArgs, image: ModelImage,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:fleet:ModelCandidate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.build is not None:
            self.image_reference = built_image(f"{name}-image", args.provenance, args.build,
                                               image.repository, child)
        else:
            self.image_reference = pulumi.Output.from_input(args.spec.image.ref or "")
        artifact = ModelArtifact(name, ModelArtifactArgs(
            model=args.spec, provenance=args.provenance, environment=args.environment,
            bucket_name=args.registry.bucket_name, image_reference=self.image_reference,
            files=args.artifact_files, single_file=args.single_file_artifact,
            manifest_file=args.manifest_file), child)
        service = ModelService(name, ModelServiceArgs(
            spec=args.spec, provenance=args.provenance, cluster=args.cluster,
            image=self.image_reference, artifact_uri=artifact.uri, registry=args.registry),
            child)
        self.endpoint = service.endpoint
        self.record = artifact.record
        self.register_outputs({"image_reference": self.image_reference,
                               "endpoint": self.endpoint})
