"""One model of the fleet: the parent of everything the model owns, so it reads as one tree."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.artifact import ArtifactFile, ModelArtifact, ModelArtifactArgs
from components.batch import HEALTH_PORT, BatchWorkers, BatchWorkersArgs
from components.candidate import ModelCandidate, ModelCandidateArgs
from components.cluster import ClusterSettings
from components.image import ImageBuild, ModelImage, ModelImageArgs
from components.provenance import Provenance
from components.registry import ModelRegistry
from components.runtimes import runtime_for
from components.runtimes.base import Scrape
from components.scrape import pod_monitor
from components.serving import ModelService, ModelServiceArgs
from components.traffic import ModelRoute, ModelRouteArgs
from components.workload import RegistryAccess
from modelfleet.manifest.schema import ModelSpec


@dataclass(frozen=True)
class DeployedModelArgs:
    spec: ModelSpec
    provenance: Provenance
    environment: str
    cluster: ClusterSettings
    repository_name: str
    queue_name: str
    manifest_file: str
    artifact_files: tuple[ArtifactFile, ...] = ()
    single_file_artifact: bool = False
    build: ImageBuild | None = None
    untagged_image_days: int = 14
    candidates: tuple[CandidateRelease, ...] = ()
    """The candidates' own versions, artifacts and builds (serving only)."""


@dataclass(frozen=True)
class CandidateRelease:
    name: str
    spec: ModelSpec
    provenance: Provenance
    artifact_files: tuple[ArtifactFile, ...] = ()
    single_file_artifact: bool = False
    build: ImageBuild | None = None


class DeployedModel(pulumi.ComponentResource):
    """A model's image, registry record, online service and batch workers."""

    image_reference: pulumi.Output[str]
    artifact_uri: pulumi.Output[str]
    metadata_key: pulumi.Output[str]
    endpoint: pulumi.Output[str] | None
    workers: BatchWorkers | None
    records: list[pulumi.Resource]
    """The `metadata.json` of its version and of each candidate's."""

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
            manifest_file=args.manifest_file), child)
        access = RegistryAccess(bucket_name=registry.bucket_name, key_arn=registry.key_arn)
        self.records = [artifact.record]
        self.endpoint = None
        if args.spec.serving is not None:
            service = ModelService(name, ModelServiceArgs(
                spec=args.spec, provenance=args.provenance, cluster=args.cluster,
                image=image.reference, artifact_uri=artifact.uri, registry=access), child)
            self.endpoint = service.endpoint
            for candidate in args.candidates:
                self.records.append(ModelCandidate(f"{name}-{candidate.name}", ModelCandidateArgs(
                    spec=candidate.spec, provenance=candidate.provenance,
                    environment=args.environment, cluster=args.cluster,
                    manifest_file=args.manifest_file, registry=access,
                    artifact_files=candidate.artifact_files,
                    single_file_artifact=candidate.single_file_artifact,
                    build=candidate.build), image, child).record)
            serving = args.spec.serving
            if args.cluster.gateway and serving.rollout.strategy != "progressive":
                ModelRoute(name, ModelRouteArgs(
                    provenance=args.provenance, cluster=args.cluster, port=serving.port,
                    candidates=tuple(serving.candidates),
                    served_names=tuple(args.spec.served_names)
                    if args.spec.speaks_openai else ()), child)
        self.workers = None
        if args.spec.batch is not None:
            self.workers = BatchWorkers(name, BatchWorkersArgs(
                spec=args.spec, provenance=args.provenance, cluster=args.cluster,
                image=image.reference, artifact_uri=artifact.uri, registry=access,
                queue_name=args.queue_name), child)
        scrape = scraped_port(args.spec)
        if args.cluster.operator and scrape is not None:
            pod_monitor(name, args.provenance, args.cluster, child, scrape.port_name, scrape.path)
        self.image_reference = image.reference
        self.artifact_uri = artifact.uri
        self.metadata_key = artifact.metadata_key
        self.register_outputs({"image_reference": self.image_reference,
                               "artifact_uri": self.artifact_uri,
                               "metadata_key": self.metadata_key,
                               "endpoint": self.endpoint,
                               "queue_url": self.workers.queue_url if self.workers else None})


def scraped_port(spec: ModelSpec) -> Scrape | None:
    """Where the model's pods are scraped: its engine's metrics (servers, and workers, which
    run our model server), or None when the engine exports none and there are no workers."""
    if spec.serving is not None:
        scrape = runtime_for(spec).scrape(spec)
        if scrape is not None or spec.batch is None:
            return scrape
    return Scrape("http", HEALTH_PORT, "/metrics")
