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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.podspec import ModelContainer, Mount
from modelfleet.manifest.schema import Artifact, ArtifactFile, ModelSpec, Resources

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

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.artifact.uri, "dest": self.dest,
                "files": [{"path": f.path, "sha256": f.sha256, "size": f.size,
                           "versionId": f.version_id} for f in self.artifact.files]}


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
    """`FETCH_PLAN`, compact and in a stable order, so an unchanged manifest rolls nothing."""
    return json.dumps({"artifacts": [a.entry() for a in artifacts]}, separators=(",", ":"))


def total_bytes(artifacts: Sequence[FetchedArtifact]) -> int:
    return sum(f.size for a in artifacts for f in a.artifact.files)


def models_volume(artifacts: Sequence[FetchedArtifact]) -> k8s.core.v1.VolumeArgs:
    """An emptyDir on the node's disk, limited to the files' total plus 10%."""
    limit = math.ceil(total_bytes(artifacts) * HEADROOM)
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
    """IAM: read exactly these objects (and their pinned versions), nothing else, no listing."""
    plain = sorted({_arn(uri, f) for uri, f in files if not f.version_id})
    versioned = sorted({_arn(uri, f) for uri, f in files if f.version_id})
    found = []
    if plain:
        found.append({"Sid": "ReadPinnedFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
                      "Resource": plain})
    if versioned:
        found.append({"Sid": "ReadPinnedFileVersions", "Effect": "Allow",
                      "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": versioned})
    return found


def pinned_files(artifacts: Sequence[FetchedArtifact]) -> list[tuple[str, ArtifactFile]]:
    return [(a.artifact.uri or "", f) for a in artifacts for f in a.artifact.files]


def _arn(uri: str, file: ArtifactFile) -> str:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return f"arn:aws:s3:::{bucket}/{prefix}{file.path}"


def models_mount() -> Mount:
    """The engine's view of `/models`: read-only."""
    return Mount(MODELS_VOLUME, MODELS_PATH, read_only=True)
