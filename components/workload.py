"""What every workload of a model (its server, its workers) is given."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cluster import ClusterSettings
from components.provenance import Provenance
from modelfleet.manifest.schema import ModelSpec


@dataclass(frozen=True)
class RegistryAccess:
    """What a workload needs to know of the registry to be allowed to read from it."""

    bucket_name: pulumi.Input[str]
    key_arn: pulumi.Input[str]


@dataclass(frozen=True)
class ModelWorkloadArgs:
    spec: ModelSpec
    provenance: Provenance
    cluster: ClusterSettings
    image: pulumi.Input[str]
    """Digest-pinned reference."""
    artifact_uri: pulumi.Input[str]
    registry: RegistryAccess
