"""The init container that fetches pinned files and verifies them before the engine starts.

It runs `python -m modelserver.fetch` (images/modelserver/fetch.py, image
images/fetch.Dockerfile) to the contract both sides keep: env `FETCH_PLAN`, JSON
`{"artifacts": [{"name", "uri", "dest", "files": [{"path", "sha256", "size", "versionId"}]}]}`;
it downloads exactly the listed objects, checks each size and sha256, fills `dest` only once
all of an artifact's files verified, and exits 1 on any problem with nothing left in `dest`.
The weights go to `/models/weights`, each adapter to `/models/adapters/<name>`, on an
emptyDir that the init container writes and the engine mounts read-only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.podspec import ModelContainer, Mount
from modelfleet.manifest.schema import Artifact, ArtifactFile, ModelSpec, Resources
from modelfleet.release.pinned import (
    PinnedArtifact,
    PinnedFile,
    plan_document,
    size_limit_bytes,
)

MODELS_VOLUME = "models"
MODELS_PATH = "/models"
WEIGHTS_PATH = f"{MODELS_PATH}/weights"
ADAPTERS_PATH = f"{MODELS_PATH}/adapters"
FETCH_COMMAND = ("python", "-m", "modelserver.fetch")
FETCH_RESOURCES = Resources(cpu="1", memory="1Gi", gpu="0")
"""One file streams at a time through a SHA-256: a core and a little memory suffice."""
HEADROOM = 1.1
"""The volume's sizeLimit is the files' total plus 10% (temporary names, filesystem overhead)."""


@dataclass(frozen=True)
class FetchedArtifact:
    """One artifact of a plan: `name` is `weights` or `adapter-<name>`."""

    name: str
    artifact: Artifact
    dest: str

    def pinned(self) -> PinnedArtifact:
        """The artifact as the init container's plan names it (modelfleet.release.pinned)."""
        return PinnedArtifact(self.name, self.artifact.uri or "", self.dest, tuple(
            PinnedFile(f.path, f.sha256, f.size, f.version_id) for f in self.artifact.files))


def fetched_artifacts(spec: ModelSpec) -> list[FetchedArtifact]:
    """The model's pinned weights (if `files` pins them) and every adapter, in manifest order."""
    found = []
    if spec.artifact.files:
        found.append(FetchedArtifact("weights", spec.artifact, WEIGHTS_PATH))
    adapters = spec.serving.adapters if spec.serving else []
    found += [FetchedArtifact(f"adapter-{a.name}", a.artifact, f"{ADAPTERS_PATH}/{a.name}")
              for a in adapters]
    return found


def fetch_plan(artifacts: Sequence[FetchedArtifact]) -> str:
    """`FETCH_PLAN`, compact and in a stable order, so an unchanged manifest rolls nothing;
    the document is `modelfleet.release.pinned.plan_document`'s, which the fetcher parses."""
    return json.dumps(plan_document([a.pinned() for a in artifacts]), separators=(",", ":"))


def total_bytes(artifacts: Sequence[FetchedArtifact]) -> int:
    return sum(f.size for a in artifacts for f in a.artifact.files)


def models_volume(artifacts: Sequence[FetchedArtifact]) -> k8s.core.v1.VolumeArgs:
    """An emptyDir on the node's disk, limited to the files' total plus 10%."""
    limit = size_limit_bytes([a.pinned() for a in artifacts])
    return k8s.core.v1.VolumeArgs(
        name=MODELS_VOLUME,
        empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=str(max(limit, 1))))


def fetch_container(artifacts: Sequence[FetchedArtifact], image: pulumi.Input[str],
                    region: str) -> ModelContainer:
    """The init container, hardened by the pod builder like the engine; only it may write
    `/models`."""
    return ModelContainer(
        name="fetch", image=image, command=FETCH_COMMAND,
        env=[("FETCH_PLAN", fetch_plan(artifacts)), ("AWS_REGION", region)],
        resources=FETCH_RESOURCES,
        mounts=[Mount(MODELS_VOLUME, MODELS_PATH, read_only=False)])


def object_arns(files: Sequence[tuple[str, ArtifactFile]]) -> list[dict[str, Any]]:
    """IAM: read exactly these objects, nothing else, no listing.

    A file pinned to an object version may be read at that version only:
    `s3:GetObjectVersion` with the `s3:VersionId` condition key, no `s3:GetObject` (which
    would serve whatever the key holds now); one statement per pinned version, since each
    carries its own condition (S3 User Guide, "Condition keys for Amazon S3": s3:VersionId).
    """
    plain = sorted({_arn(uri, f) for uri, f in files if not f.version_id})
    versioned = sorted({(_arn(uri, f), f.version_id or "") for uri, f in files
                        if f.version_id})
    found: list[dict[str, Any]] = []
    if plain:
        found.append({"Sid": "ReadPinnedFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
                      "Resource": plain})
    found += [{"Sid": f"ReadPinnedFileVersion{index}", "Effect": "Allow",
               "Action": ["s3:GetObjectVersion"], "Resource": arn,
               "Condition": {"StringEquals": {"s3:VersionId": version}}}
              for index, (arn, version) in enumerate(versioned, start=1)]
    return found


def pinned_files(artifacts: Sequence[FetchedArtifact]) -> list[tuple[str, ArtifactFile]]:
    return [(a.artifact.uri or "", f) for a in artifacts for f in a.artifact.files]


def _arn(uri: str, file: ArtifactFile) -> str:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return f"arn:aws:s3:::{bucket}/{prefix}{file.path}"


def models_mount() -> Mount:
    """The engine's view of `/models`: read-only."""
    return Mount(MODELS_VOLUME, MODELS_PATH, read_only=True)
