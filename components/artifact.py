"""A model version in the registry: its artifact (uploaded, or referenced) and its metadata record.

Keys carry the version (`models/<name>/<version>/...`) while Pulumi names do
not, so a version bump writes new objects; every object is retained on
delete, so the previous version's objects stay where clients found them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.provenance import Provenance
from modelfleet.manifest.schema import ModelSpec
from modelfleet.release.layout import (
    ArtifactFileRecord,
    MetadataRecord,
    artifact_prefix,
    metadata_key,
)


@dataclass(frozen=True)
class ArtifactFile:
    """One file of a local artifact, already checked out at the deployed ref."""

    key: str
    """Path below the version's `artifact/` prefix."""
    path: str
    """Local path of the file to upload."""
    sha256: str




@dataclass(frozen=True)
class ModelArtifactArgs:
    model: ModelSpec
    provenance: Provenance
    environment: str
    bucket_name: pulumi.Input[str]
    image_reference: pulumi.Input[str]
    files: tuple[ArtifactFile, ...] = ()
    """The local artifact's files; empty when the manifest gives `artifact.uri`."""
    single_file: bool = False
    """True when `artifact.path` names one file: MODEL_URI is then that object, not a prefix."""
    manifest_file: str = "models.yaml"


class ModelArtifact(pulumi.ComponentResource):
    """The artifact of one model version and `models/<name>/<version>/metadata.json`."""

    uri: pulumi.Output[str]
    """Where the model server loads the artifact from (MODEL_URI)."""
    metadata_key: pulumi.Output[str]
    record: aws.s3.BucketObjectv2
    """The version's `metadata.json`, which the registry's index must not name before it exists."""

    def __init__(self, name: str, args: ModelArtifactArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:registry:ModelArtifact", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        model = args.model
        prefix = artifact_prefix(model.name, model.version)
        tags = args.provenance.aws_tags()
        for file in args.files:
            aws.s3.BucketObjectv2(
                f"{name}-artifact/{file.key}", bucket=args.bucket_name, key=prefix + file.key,
                source=pulumi.FileAsset(file.path), checksum_algorithm="SHA256",
                content_type="application/octet-stream", tags=tags, opts=kept)
        if model.artifact.uri:
            self.uri = pulumi.Output.from_input(model.artifact.uri)
        else:
            target = prefix + args.files[0].key if args.single_file else prefix
            self.uri = pulumi.Output.concat("s3://", args.bucket_name, "/", target)
        key = metadata_key(model.name, model.version)
        record = pulumi.Output.all(self.uri, args.image_reference).apply(
            lambda resolved: json.dumps(
                metadata_record(args, resolved[0], resolved[1]).document(),
                indent=2, sort_keys=True))
        self.record = aws.s3.BucketObjectv2(
            f"{name}-metadata", bucket=args.bucket_name, key=key, content=record,
            content_type="application/json", tags=tags, opts=kept)
        self.metadata_key = pulumi.Output.from_input(key)
        self.register_outputs({"uri": self.uri, "metadata_key": self.metadata_key})


def metadata_record(args: ModelArtifactArgs, artifact_uri: str,
                    image_reference: str) -> MetadataRecord:
    """What clients read about a model version; written once per version and on its changes.

    `files`: the uploaded files of an `artifact.path`, or the objects `artifact.files` pins
    below a `uri` prefix (with their sizes and object versions).
    """
    model = args.model
    return MetadataRecord(
        name=model.name, version=model.version, team=model.team, stage=model.stage,
        environment=args.environment, artifact_uri=artifact_uri,
        artifact_sha256=model.artifact.sha256 or (
            args.files[0].sha256 if args.single_file else None),
        files=tuple(ArtifactFileRecord(f.key, f.sha256) for f in args.files) or tuple(
            ArtifactFileRecord(f.path, f.sha256, f.size, f.version_id)
            for f in model.artifact.files),
        image=image_reference, manifest_file=args.manifest_file,
        commit=args.provenance.commit, manifest_digest=args.provenance.manifest_digest,
        artifact_version_id=model.artifact.version_id)
