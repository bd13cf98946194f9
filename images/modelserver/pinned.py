"""Artifacts pinned file by file (`artifact.files`): fetched exactly, verified, placed atomically.

The one definition of how a pinned artifact is fetched and checked, shared by the
init container that fills `/models` before the engine starts (`modelserver.fetch`)
and by `registry pull`. Plain Python (standard library only), so that the model
server image carries an identical copy (`images/modelserver/pinned.py`; a test
asserts the two agree). How an object is looked at and downloaded (boto3, its
client and its error messages) is the caller's: it is handed in as two functions.

The rules:

- exactly the listed objects are fetched (`uri` + `path`, at `versionId` when set);
- each object's size is checked before it is downloaded (HeadObject), and its size
  and SHA-256 while it is written (the bytes are hashed as they arrive; a file is
  never read back, never held in memory whole);
- the files go to a temporary folder on the same volume as `dest` (a hidden
  `.<dest>-*.partial` folder beside it, or inside it when it already exists) and
  are renamed into `dest` only when every file of the artifact verified; on any
  problem the temporary folder is removed, so `dest` holds nothing new.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], object]]]
"""Given a file's name and size in bytes, a context whose value is told each chunk's size."""

Head = Callable[["PinnedFile"], int]
"""An object's size in bytes (HeadObject); raises FetchError (missing, denied, ...)."""

Download = Callable[["PinnedFile", "DigestingWriter"], None]
"""Write an object's bytes, in order, to the writer; raises FetchError."""


class FetchError(Exception):
    """One object that cannot be fetched or does not verify; the message is one line."""


class PlanError(ValueError):
    """A fetch plan (or a record's file list) that is not what this module reads."""


@dataclass(frozen=True)
class PinnedFile:
    """One object of a pinned prefix, as `artifact.files` lists it."""

    path: str
    """Key below the artifact's `uri` prefix; also the file's path below `dest`."""
    sha256: str
    """64 lowercase hex digits."""
    size: int
    """Bytes."""
    version_id: str | None = None
    """The S3 object version to fetch; None: the key's current object."""

    @classmethod
    def from_document(cls, item: Any, where: str) -> PinnedFile:
        """A file from `{"path", "sha256", "size", "versionId"?}`; PlanError if malformed."""
        if not isinstance(item, Mapping):
            raise PlanError(f"{where}: a file is not an object")
        path, sha256, size = item.get("path"), item.get("sha256"), item.get("size")
        version_id = item.get("versionId")
        if not isinstance(path, str) or not is_safe_path(path):
            raise PlanError(f"{where}: path {path!r} is not a key below the prefix "
                            "(no leading '/', no '.', '..' or empty segments)")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise PlanError(f"{where}: {path}: sha256 {sha256!r} is not 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PlanError(f"{where}: {path}: size {size!r} is not a number of bytes")
        if version_id is not None and (not isinstance(version_id, str) or not version_id):
            raise PlanError(f"{where}: {path}: versionId {version_id!r} is not a version ID")
        return cls(path, sha256, size, version_id)

    def document(self) -> dict[str, Any]:
        """`{"path", "sha256", "size", "versionId"}` (versionId null when not pinned)."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size,
                "versionId": self.version_id}


@dataclass(frozen=True)
class PinnedArtifact:
    """One artifact of a fetch plan: the weights (`weights`) or an adapter (`adapter-<name>`)."""

    name: str
    uri: str
    """`s3://bucket/prefix/`, ending in `/`."""
    dest: str
    """Local folder the files end up in (`/models/weights`, `/models/adapters/<name>`)."""
    files: tuple[PinnedFile, ...]

    @property
    def size(self) -> int:
        """Bytes, all files together."""
        return sum(file.size for file in self.files)

    def bucket_and_key(self, file: PinnedFile) -> tuple[str, str]:
        """(bucket, key) of one of its files."""
        bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
        return bucket, prefix + file.path

    def shown(self, file: PinnedFile) -> str:
        """`s3://bucket/prefix/path`, with `(object version …)` when one is pinned."""
        where = self.uri + file.path
        return f"{where} (object version {file.version_id})" if file.version_id else where


def is_safe_path(path: str) -> bool:
    """Whether a key stays below its prefix and its file below `dest` (the manifest's rule)."""
    parts = path.split("/")
    return bool(path.strip()) and not path.startswith("/") \
        and all(part not in ("", ".", "..") for part in parts)


def parse_plan(text: str) -> list[PinnedArtifact]:
    """`FETCH_PLAN`: `{"artifacts": [{"name", "uri", "dest", "files": [...]}]}`.

    Raises PlanError (one line) on anything else: not JSON, a `uri` that is not an
    S3 prefix, a relative `dest`, two artifacts with one `dest`, a path twice.
    """
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PlanError(f"FETCH_PLAN is not JSON: {error}") from None
    items = document.get("artifacts") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise PlanError('FETCH_PLAN has no "artifacts" list')
    artifacts = [_artifact(item, index) for index, item in enumerate(items)]
    dests = [os.path.normpath(artifact.dest) for artifact in artifacts]
    if len(set(dests)) != len(dests):
        raise PlanError("FETCH_PLAN: two artifacts have the same dest")
    return artifacts


def _artifact(item: Any, index: int) -> PinnedArtifact:
    where = f"FETCH_PLAN artifacts[{index}]"
    if not isinstance(item, dict):
        raise PlanError(f"{where} is not an object")
    name, uri, dest = item.get("name"), item.get("uri"), item.get("dest")
    if not isinstance(name, str) or not name:
        raise PlanError(f"{where}: no name")
    where = f"FETCH_PLAN artifact {name}"
    if not isinstance(uri, str) or not uri.startswith("s3://") or not uri.endswith("/") \
            or not uri.removeprefix("s3://").split("/", 1)[0]:
        raise PlanError(f"{where}: uri {uri!r} is not an S3 prefix (s3://bucket/prefix/)")
    if not isinstance(dest, str) or not os.path.isabs(dest):
        raise PlanError(f"{where}: dest {dest!r} is not an absolute path")
    files = item.get("files")
    if not isinstance(files, list) or not files:
        raise PlanError(f"{where}: no files")
    pinned = tuple(PinnedFile.from_document(file, where) for file in files)
    paths = [file.path for file in pinned]
    if len(set(paths)) != len(paths):
        raise PlanError(f"{where}: a path is listed twice")
    return PinnedArtifact(name, uri, dest, pinned)


MODELS_MOUNT = "/models"
"""Where the pod's emptyDir of fetched files is mounted (init container and engine)."""
WEIGHTS = "weights"
"""The name (and folder below MODELS_MOUNT) of a model's own weights."""
SIZE_LIMIT_HEADROOM_PERCENT = 10


def weights_artifact(uri: str, files: Sequence[PinnedFile]) -> PinnedArtifact:
    """The model's weights in a fetch plan: `weights`, fetched to `/models/weights`."""
    return PinnedArtifact(WEIGHTS, uri, f"{MODELS_MOUNT}/{WEIGHTS}", tuple(files))


def adapter_artifact(adapter: str, uri: str, files: Sequence[PinnedFile]) -> PinnedArtifact:
    """An adapter in a fetch plan: `adapter-<name>`, fetched to `/models/adapters/<name>`."""
    return PinnedArtifact(f"adapter-{adapter}", uri, f"{MODELS_MOUNT}/adapters/{adapter}",
                          tuple(files))


def size_limit_bytes(artifacts: Sequence[PinnedArtifact]) -> int:
    """The `/models` emptyDir's `sizeLimit` in bytes: every file's size plus 10%, rounded up."""
    total = sum(artifact.size for artifact in artifacts)
    return -(-total * (100 + SIZE_LIMIT_HEADROOM_PERCENT) // 100)


def plan_document(artifacts: Sequence[PinnedArtifact]) -> dict[str, Any]:
    """The `FETCH_PLAN` JSON document of these artifacts (what `parse_plan` reads back)."""
    return {"artifacts": [{"name": a.name, "uri": a.uri, "dest": a.dest,
                           "files": [f.document() for f in a.files]} for a in artifacts]}


class DigestingWriter:
    """A write-only, non-seekable file object: counts and hashes the bytes it passes on.

    Not seekable on purpose: boto3's transfer manager then fetches byte ranges in
    parallel but writes them in order (s3transfer 0.19.3, `download.py`,
    `DownloadNonSeekableOutputManager` and `DeferQueue`), so the hash is computed as
    the object arrives. More bytes than pinned stop the download (FetchError).
    """

    def __init__(self, stream: BinaryIO | _Discard, file: PinnedFile, shown: str,
                 advance: Callable[[int], object]) -> None:
        self._stream = stream
        self._file = file
        self._shown = shown
        self._advance = advance
        self._digest = hashlib.sha256()
        self.written = 0
        """Bytes so far."""

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self._file.size:
            raise FetchError(f"size mismatch for {self._shown}: the pin is {self._file.size} "
                               "bytes, the object has more")
        self._digest.update(data)
        self._stream.write(data)
        self._advance(len(data))
        return len(data)

    def problem(self, pinned_by: str) -> str | None:
        """What is wrong with what was written, in one line; None when it verified."""
        if self.written != self._file.size:
            return (f"size mismatch for {self._shown}: {pinned_by} pins {self._file.size} "
                    f"bytes, the object has {self.written}")
        actual = self._digest.hexdigest()
        if actual != self._file.sha256:
            return (f"sha256 mismatch for {self._shown}: {pinned_by} pins {self._file.sha256}, "
                    f"the object has {actual}")
        return None


@dataclass(frozen=True)
class Fetched:
    """What fetching one artifact did."""

    artifact: PinnedArtifact
    placed: tuple[Path, ...]
    """Every file's final path, in the plan's order; empty when anything failed."""
    problems: tuple[str, ...]
    """One line per problem, each starting with the artifact's name."""
    seconds: float
    kept: tuple[str, ...] = ()
    """Paths already in `dest` with the pinned size and sha256, so not downloaded again."""


def fetch_artifact(artifact: PinnedArtifact, head: Head, download: Download,
                   progress: Progress | None = None, pinned_by: str = "the manifest",
                   dest: Path | None = None) -> Fetched:
    """Fetch every file of `artifact` into `dest` (default: the artifact's own), verified.

    First every object's size is checked (a missing object, a wrong size: reported
    for all files, nothing downloaded); then each file is downloaded and verified in
    turn, going on after a mismatch so that every problem is reported. `dest` gets the
    files only when all verified. `pinned_by` names the pin in messages.

    A file already in `dest` with the pinned size and sha256 (a pod whose init container
    runs again on the same `emptyDir`, a second pull into one folder) is hashed where it
    is and kept, not downloaded again.
    """
    started = time.monotonic()
    target = dest if dest is not None else Path(artifact.dest)
    problems = [f"{artifact.name}: {problem}"
                for problem in _check_sizes(artifact, head, pinned_by)]
    if problems:
        return Fetched(artifact, (), tuple(problems), time.monotonic() - started)
    kept = tuple(file.path for file in artifact.files if _in_place(target / file.path, file))
    with _staging(target) as staging:
        for file in artifact.files:
            if file.path in kept:
                continue
            problem = _fetch_file(artifact, file, staging / file.path, download,
                                  progress or _no_progress, pinned_by)
            if problem:
                problems.append(f"{artifact.name}: {problem}")
        if problems:
            return Fetched(artifact, (), tuple(problems), time.monotonic() - started)
        _place(staging, target)
    placed = tuple(target / file.path for file in artifact.files)
    return Fetched(artifact, placed, (), time.monotonic() - started, kept)


def _in_place(path: Path, file: PinnedFile) -> bool:
    """Whether `path` is a regular file with the pinned size and sha256."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size != file.size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == file.sha256


def verify_artifact(artifact: PinnedArtifact, head: Head, download: Download,
                    pinned_by: str = "the manifest") -> list[str]:
    """Check every file of `artifact` where it is stored, writing nothing: one line per problem.

    The same checks as `fetch_artifact` (size first, then size and SHA-256 of the bytes
    as they arrive), for `registry verify`.
    """
    problems = [f"{artifact.name}: {problem}"
                for problem in _check_sizes(artifact, head, pinned_by)]
    if problems:
        return problems
    for file in artifact.files:
        writer = DigestingWriter(_Discard(), file, artifact.shown(file), lambda _count: None)
        try:
            download(file, writer)
            problem = writer.problem(pinned_by)
        except FetchError as error:
            problem = str(error)
        if problem:
            problems.append(f"{artifact.name}: {problem}")
    return problems


class _Discard:
    """A stream that keeps nothing (what `verify_artifact` downloads is only hashed)."""

    def write(self, data: bytes) -> int:
        return len(data)


def _check_sizes(artifact: PinnedArtifact, head: Head, pinned_by: str) -> list[str]:
    problems = []
    for file in artifact.files:
        try:
            size = head(file)
        except FetchError as error:
            problems.append(str(error))
            continue
        if size != file.size:
            problems.append(f"size mismatch for {artifact.shown(file)}: {pinned_by} pins "
                            f"{file.size} bytes, the object has {size}")
    return problems


def _fetch_file(artifact: PinnedArtifact, file: PinnedFile, path: Path, download: Download,
                progress: Progress, pinned_by: str) -> str | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = artifact.shown(file)
    try:
        with path.open("wb") as stream, progress(file.path, file.size) as advance:
            writer = DigestingWriter(stream, file, shown, advance)
            download(file, writer)
        problem = writer.problem(pinned_by)
    except FetchError as error:
        problem = str(error)
    if problem:
        path.unlink(missing_ok=True)
    return problem


@contextlib.contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A temporary folder on `dest`'s volume, removed on the way out whatever happened."""
    if dest.exists():
        folder = Path(tempfile.mkdtemp(prefix=".fetch-", suffix=".partial", dir=dest))
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", suffix=".partial",
                                       dir=dest.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _place(staging: Path, dest: Path) -> None:
    """Rename the verified files into `dest`: the whole folder at once when `dest` is new."""
    if not dest.exists():
        staging.rename(dest)
        return
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        final = dest / path.relative_to(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        path.replace(final)


@contextlib.contextmanager
def _no_progress(_name: str, _size: int) -> Iterator[Callable[[int], object]]:
    yield lambda _count: None
