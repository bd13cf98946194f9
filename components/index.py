"""`index.json` at the registry's root: how clients discover the models a stack deploys.

It holds what identifies each deployed version and nothing that changes without
one (no newest commit, no manifest digest), so an update that leaves every
model's version, image and artifact as they were leaves the index as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.provenance import StackScope
from modelfleet.release.layout import INDEX_KEY, IndexCandidate, IndexModel
from modelfleet.release.layout import index_document as layout_index_document


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    team: str
    stage: str
    metadata_key: str
    commit: str
    """The commit that set this version."""
    artifact_uri: pulumi.Input[str]
    image: pulumi.Input[str]
    candidates: tuple[IndexCandidate, ...] = ()
    """The model's candidates: name, version, metadata key."""


@dataclass(frozen=True)
class RegistryIndexArgs:
    scope: StackScope
    bucket_name: pulumi.Input[str]
    entries: tuple[IndexEntry, ...]
    records: tuple[pulumi.Resource, ...] = ()
    """The `metadata.json` objects the entries name: the index is written after them, so
    that it never names a record that does not exist yet."""


class RegistryIndex(pulumi.ComponentResource):
    """One JSON object listing every deployed model, its version and its metadata key."""

    key: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryIndexArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:registry:RegistryIndex", name, None, opts)
        resolved = pulumi.Output.all(
            *[pulumi.Output.all(e.artifact_uri, e.image) for e in args.entries])
        content = resolved.apply(lambda pairs: json.dumps(
            index_document(args, [(str(uri), str(image)) for uri, image in pairs]),
            indent=2, sort_keys=True))
        aws.s3.BucketObjectv2(f"{name}-object", bucket=args.bucket_name, key=INDEX_KEY,
                              content=content, content_type="application/json",
                              tags=args.scope.aws_tags(),
                              opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True,
                                                          depends_on=list(args.records)))
        self.key = pulumi.Output.from_input(INDEX_KEY)
        self.register_outputs({"key": self.key})


def index_document(args: RegistryIndexArgs, resolved: list[tuple[str, str]]) -> dict[str, Any]:
    return layout_index_document(args.scope.stack, args.scope.environment, [
        IndexModel(name=e.name, version=e.version, team=e.team, stage=e.stage,
                   metadata=e.metadata_key, commit=e.commit, artifact=uri, image=image,
                   candidates=e.candidates)
        for e, (uri, image) in zip(args.entries, resolved, strict=True)])
