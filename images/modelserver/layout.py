"""Where the registry bucket keeps things, and what its documents say: the one definition.

The stack writes these keys and documents, the registry client reads them back,
and the model server's batch code writes a run's parts and summary with them.
Plain Python (standard library only), so that the model server image carries an
identical copy (`images/modelserver/layout.py`; a test asserts the two agree).

Keys:

    index.json                                   every model a stack deploys
    models/<name>/<version>/metadata.json        one model version's record
    models/<name>/<version>/artifact/...         an uploaded `artifact.path`
    outputs/<name>/                              what batch workers write
    outputs/<name>/<run>/part-00000.jsonl        partition 0 of a run
    outputs/<name>/<run>/_SUCCESS.json           the run's summary, once every part is written
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "modelfleet/v1"
INDEX_KEY = "index.json"
MODELS_PREFIX = "models/"
OUTPUTS_PREFIX = "outputs/"
METADATA_NAME = "metadata.json"
ARTIFACT_FOLDER = "artifact/"
SUCCESS_NAME = "_SUCCESS.json"
_PART = re.compile(r"^part-(\d{5,})\.jsonl$")
_METADATA_KEY = re.compile(r"^models/([^/]+)/([^/]+)/metadata\.json$")


def version_prefix(model: str, version: str) -> str:
    """`models/<model>/<version>/`: everything of one model version."""
    return f"{MODELS_PREFIX}{model}/{version}/"


def artifact_prefix(model: str, version: str) -> str:
    """Where an uploaded `artifact.path` goes, file by file."""
    return version_prefix(model, version) + ARTIFACT_FOLDER


def metadata_key(model: str, version: str) -> str:
    return version_prefix(model, version) + METADATA_NAME


def parse_metadata_key(key: str) -> tuple[str, str] | None:
    """(model, version) of a `models/<model>/<version>/metadata.json` key; None otherwise."""
    found = _METADATA_KEY.match(key)
    return (found.group(1), found.group(2)) if found else None


def outputs_prefix(model: str) -> str:
    """`outputs/<model>/`: the only prefix a model's workers may write."""
    return f"{OUTPUTS_PREFIX}{model}/"


def run_prefix(model: str, run: str) -> str:
    """`outputs/<model>/<run>/`: one partitioned run's parts and summary."""
    return f"{outputs_prefix(model)}{run}/"


def part_name(index: int) -> str:
    """`part-00007.jsonl` for partition 7 (zero-based, five digits or more)."""
    return f"part-{index:05d}.jsonl"


def part_index(name: str) -> int | None:
    """The partition a part's file name stands for; None for any other name."""
    found = _PART.match(name)
    return int(found.group(1)) if found else None


def part_key(model: str, run: str, index: int) -> str:
    return run_prefix(model, run) + part_name(index)


def success_key(model: str, run: str) -> str:
    return run_prefix(model, run) + SUCCESS_NAME


@dataclass(frozen=True)
class ArtifactFileRecord:
    """One file of an artifact: an uploaded file of an `artifact.path` (below the version's
    `artifact/` prefix), or a pinned object of a `uri` prefix (`artifact.files`, below it).

    A pinned object carries its size (and its object version when pinned): a record whose
    files all have a size names exactly the objects to fetch; an uploaded file has none.
    """

    key: str
    sha256: str
    size: int | None = None
    """Bytes; set for pinned objects only."""
    version_id: str | None = None
    """The S3 object version a pinned object names, if any."""

    def document(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"key": self.key, "sha256": self.sha256}
        if self.size is not None:
            entry["size"] = self.size
        if self.version_id:
            entry["versionId"] = self.version_id
        return entry


@dataclass(frozen=True)
class MetadataRecord:
    """`models/<name>/<version>/metadata.json`: what clients read about a model version."""

    name: str
    version: str
    team: str
    stage: str
    environment: str
    artifact_uri: str
    artifact_sha256: str | None
    files: tuple[ArtifactFileRecord, ...]
    image: str
    manifest_file: str
    commit: str
    manifest_digest: str
    artifact_version_id: str | None = None
    """The S3 object version `artifact.versionId` pins; recorded only when pinned."""

    def document(self) -> dict[str, Any]:
        artifact: dict[str, Any] = {
            "uri": self.artifact_uri,
            "sha256": self.artifact_sha256,
            "files": [f.document() for f in self.files],
        }
        if self.artifact_version_id:
            artifact["versionId"] = self.artifact_version_id
        return {
            "apiVersion": API_VERSION,
            "name": self.name,
            "version": self.version,
            "team": self.team,
            "stage": self.stage,
            "environment": self.environment,
            "artifact": artifact,
            "image": self.image,
            "manifest": {"file": self.manifest_file, "commit": self.commit,
                         "digest": self.manifest_digest},
        }


@dataclass(frozen=True)
class IndexModel:
    """One model of `index.json`: what identifies its deployed version."""

    name: str
    version: str
    team: str
    stage: str
    metadata: str
    """Its metadata key."""
    commit: str
    """The commit that set this version."""
    artifact: str
    """The artifact's URI."""
    image: str
    """The image, by digest."""
    candidates: tuple[IndexCandidate, ...] = ()
    """Versions served beside this one (`serving.candidates`), each with its own record."""


@dataclass(frozen=True)
class IndexCandidate:
    """A candidate of a model in `index.json`: another version with its own metadata."""

    name: str
    """The candidate's name; its Deployment is `<model>-<name>`."""
    version: str
    metadata: str
    """Its metadata key."""


def index_document(stack: str, environment: str,
                   models: Sequence[IndexModel]) -> dict[str, Any]:
    """`index.json`: every model a stack deploys, and nothing that changes without a version.

    A model with candidates lists them (name, version, metadata key) under `candidates`;
    their traffic shares are left out, since a weight changes without a version.
    """
    return {
        "apiVersion": API_VERSION,
        "stack": stack,
        "environment": environment,
        "models": [
            {"name": m.name, "version": m.version, "team": m.team, "stage": m.stage,
             "metadata": m.metadata, "commit": m.commit, "artifact": m.artifact,
             "image": m.image,
             **({"candidates": [{"name": c.name, "version": c.version, "metadata": c.metadata}
                                for c in m.candidates]} if m.candidates else {})}
            for m in models
        ],
    }


# A part's own account of itself travels as S3 user metadata (`x-amz-meta-<name>`), so
# that the summary is made from HEAD requests, without reading any part's content.
PART_ROWS_IN = "rows-in"
PART_ROWS_OUT = "rows-out"
PART_STARTED = "started"
PART_FINISHED = "finished"
PART_PARTITIONS = "partitions"


@dataclass(frozen=True)
class PartRecord:
    """One written partition of a run."""

    index: int
    key: str
    size: int
    """Bytes."""
    rows_in: int
    rows_out: int
    started: str
    """ISO 8601, UTC."""
    finished: str
    partitions: int
    """How many partitions the run has, as the part's writer was told."""

    def object_metadata(self) -> dict[str, str]:
        """The S3 user metadata written with the part."""
        return {PART_ROWS_IN: str(self.rows_in), PART_ROWS_OUT: str(self.rows_out),
                PART_STARTED: self.started, PART_FINISHED: self.finished,
                PART_PARTITIONS: str(self.partitions)}

    @classmethod
    def from_object(cls, key: str, size: int, metadata: Mapping[str, str]) -> PartRecord:
        """A part read back from its key, size and user metadata.

        Raises ValueError when the key is not a part's or the metadata is incomplete.
        """
        index = part_index(key.rsplit("/", 1)[-1])
        if index is None:
            raise ValueError(f"{key} is not a part of a run")
        try:
            return cls(index=index, key=key, size=size,
                       rows_in=int(metadata[PART_ROWS_IN]),
                       rows_out=int(metadata[PART_ROWS_OUT]),
                       started=metadata[PART_STARTED], finished=metadata[PART_FINISHED],
                       partitions=int(metadata[PART_PARTITIONS]))
        except (KeyError, ValueError) as error:
            raise ValueError(f"{key} carries no complete part metadata ({error})") from error

    def entry(self) -> dict[str, Any]:
        return {"partition": self.index, "key": self.key, "size": self.size,
                "rowsIn": self.rows_in, "rowsOut": self.rows_out}


@dataclass(frozen=True)
class RunSummary:
    """`outputs/<model>/<run>/_SUCCESS.json`: written once, when the last part is."""

    model: str
    version: str
    run: str
    partitions: int
    parts: tuple[PartRecord, ...] = field(default=())

    def document(self) -> dict[str, Any]:
        ordered = sorted(self.parts, key=lambda part: part.index)
        return {
            "apiVersion": API_VERSION,
            "model": self.model,
            "version": self.version,
            "run": self.run,
            "partitions": self.partitions,
            "rowsIn": sum(part.rows_in for part in ordered),
            "rowsOut": sum(part.rows_out for part in ordered),
            "started": min((part.started for part in ordered), default=None),
            "finished": max((part.finished for part in ordered), default=None),
            "parts": [part.entry() for part in ordered],
        }
