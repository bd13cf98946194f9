"""Read a modelfleet registry over plain S3: models, versions, records, artifacts, runs.

The registry is what a stack writes to its bucket (keys and documents as
`modelfleet.release.layout` defines them); no server runs. Every failure is a
`RegistryError` with a one-line message that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modelfleet.manifest.semver import Version, is_semver
from modelfleet.release import layout
from modelfleet.release.pinned import (
    DigestingWriter,
    FetchError,
    PinnedArtifact,
    PinnedFile,
    PlanError,
    fetch_artifact,
    verify_artifact,
)

CHUNK = 1 << 20
"""Bytes read and hashed at a time."""

Progress = Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], object]]]
"""Given a file's name and size in bytes, a context whose value is told each chunk's size."""


class RegistryError(Exception):
    """Anything that stops a registry command; its message is one line for the user."""


class VerificationError(RegistryError):
    """Pinned files that are missing or do not verify: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        more = f" ({len(problems)} problems in all)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise RegistryError(f"'{uri}' is not an S3 URI (s3://bucket/key)")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return cls(bucket, key)

    @property
    def is_prefix(self) -> bool:
        return self.key.endswith("/") or not self.key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ModelVersions:
    """A model in the registry: every version it holds, and the one the stack's index names."""

    name: str
    versions: tuple[str, ...]
    """Oldest first (semantic-version order)."""
    current: str | None
    """The version `index.json` names, None when the stack no longer deploys the model."""
    stack: str | None
    candidates: tuple[tuple[str, str], ...] = ()
    """(candidate name, version) of each candidate `index.json` lists beside the current."""


@dataclass(frozen=True)
class VersionRecord:
    """One model version's `metadata.json`, as written by the stack."""

    name: str
    version: str
    key: str
    document: dict[str, Any]

    @property
    def artifact_uri(self) -> str:
        return str(self.document.get("artifact", {}).get("uri", ""))

    @property
    def artifact_sha256(self) -> str | None:
        value = self.document.get("artifact", {}).get("sha256")
        return str(value) if value else None

    @property
    def version_id(self) -> str | None:
        value = self.document.get("artifact", {}).get("versionId")
        return str(value) if value else None

    @property
    def object_sha256(self) -> str | None:
        """For an artifact that is one object: its recorded sha256 (the pin, or the uploaded
        file's)."""
        key = S3Location.parse(self.artifact_uri).key
        return self.artifact_sha256 or self.file_digests.get(PurePosixPath(key).name)

    @property
    def pinned_files(self) -> tuple[PinnedFile, ...]:
        """The objects `artifact.files` pinned below the artifact's prefix (each with its
        size), exactly what is fetched; empty for any other artifact."""
        files = self.document.get("artifact", {}).get("files") or []
        if not files or not all(isinstance(f, dict) and "size" in f for f in files):
            return ()
        try:
            return tuple(PinnedFile.from_document(
                {"path": f.get("key"), "sha256": f.get("sha256"), "size": f.get("size"),
                 "versionId": f.get("versionId")}, self.key) for f in files)
        except PlanError as error:
            raise RegistryError(f"{error}: the record is not one modelfleet writes") from None

    def pinned_artifact(self, dest: Path) -> PinnedArtifact:
        """The record's pinned files as an artifact to fetch into (or verify for) `dest`."""
        return PinnedArtifact(f"{self.name}@{self.version}", self.artifact_uri, str(dest),
                              self.pinned_files)

    @property
    def file_digests(self) -> dict[str, str]:
        """sha256 of each uploaded file, by its key below the version's `artifact/` prefix."""
        files = self.document.get("artifact", {}).get("files") or []
        return {str(f["key"]): str(f["sha256"]) for f in files
                if isinstance(f, dict) and "key" in f and "sha256" in f}


@dataclass(frozen=True)
class PulledFile:
    path: Path
    source: str
    """`s3://bucket/key`, with `?versionId=` appended only for display when pinned."""
    size: int
    """Bytes."""
    sha256: str
    verified: bool
    """True when the registry recorded a sha256 and the file has it."""


@dataclass(frozen=True)
class VerifyReport:
    checked: list[str] = field(default_factory=list)
    """What was found in order: one line per model version."""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunStatus:
    model: str
    run: str
    partitions: int
    done: tuple[int, ...]
    missing: tuple[int, ...]
    summary: dict[str, Any] | None
    """`_SUCCESS.json` once every partition is written."""


def parse_reference(text: str) -> tuple[str, str | None]:
    """`NAME` or `NAME@VERSION`."""
    name, _, version = text.partition("@")
    if not name or (version == "" and "@" in text):
        raise RegistryError(f"'{text}' is not NAME or NAME@VERSION")
    return name, version or None


def s3_client(endpoint_url: str | None = None, region: str | None = None,
              profile: str | None = None) -> Any:
    """A boto3 S3 client from the usual AWS environment (AWS_PROFILE, AWS_REGION,
    AWS_ENDPOINT_URL), overridden by what is given."""
    import boto3  # noqa: PLC0415 - only registry commands need the AWS SDK
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    try:
        session = boto3.session.Session(profile_name=profile) if profile \
            else boto3.session.Session()
        return session.client("s3", endpoint_url=endpoint_url, region_name=region)
    except BotoCoreError as error:  # an unknown AWS_PROFILE, a malformed config file
        raise RegistryError(f"AWS configuration: {one_line(str(error))}") from None
    except ValueError as error:  # botocore: "Invalid endpoint: ..."
        raise RegistryError(f"--endpoint-url '{endpoint_url}' is not a URL botocore can use "
                            f"({error}); give one such as http://127.0.0.1:9000") from None


def one_line(message: str) -> str:
    """botocore's multi-line messages (parameter validation) as one line."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


class RegistryClient:
    """The registry in one bucket."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3 if s3 is not None else s3_client()

    # Reading ------------------------------------------------------------------------------

    def index(self) -> dict[str, Any] | None:
        """`index.json`, or None when the bucket has none (nothing deployed)."""
        try:
            return self._json(layout.INDEX_KEY)
        except _MissingKeyError:
            return None

    def models(self) -> list[ModelVersions]:
        """Every model with a metadata record, its versions and the index's current one."""
        versions: dict[str, list[str]] = {}
        for key in self._keys(layout.MODELS_PREFIX):
            parsed = layout.parse_metadata_key(key)
            if parsed:
                versions.setdefault(parsed[0], []).append(parsed[1])
        index = self.index() or {}
        entries = [m for m in index.get("models", []) if isinstance(m, dict)]
        current = {str(m.get("name")): str(m.get("version")) for m in entries}
        candidates = {str(m.get("name")): _index_candidates(m) for m in entries}
        stack = str(index["stack"]) if index.get("stack") else None
        for name in current:
            versions.setdefault(name, [])  # named by the index, yet without a record
        return [ModelVersions(name, tuple(sorted(found, key=_version_order)), current.get(name),
                              stack, candidates.get(name, ()))
                for name, found in sorted(versions.items())]

    def show(self, name: str, version: str | None = None) -> VersionRecord:
        """A version's metadata record; without a version, the one the index names."""
        if version is None:
            version = self.current_version(name)
        key = layout.metadata_key(name, version)
        try:
            document = self._json(key)
        except _MissingKeyError:
            known = self._versions_of(name)
            if not known:
                raise RegistryError(f"no model '{name}' in s3://{self.bucket}") from None
            raise RegistryError(f"model '{name}' has no version {version} in "
                                f"s3://{self.bucket}; it has {', '.join(known)}") from None
        return VersionRecord(name, version, key, document)

    def current_version(self, name: str) -> str:
        index = self.index()
        if index is None:
            raise RegistryError(f"s3://{self.bucket} has no {layout.INDEX_KEY}: nothing is "
                                "deployed from it; give NAME@VERSION")
        for entry in index.get("models", []):
            if isinstance(entry, dict) and entry.get("name") == name:
                return str(entry["version"])
        known = self._versions_of(name)
        if known:
            raise RegistryError(f"the stack no longer deploys '{name}'; give NAME@VERSION "
                                f"(versions: {', '.join(known)})")
        raise RegistryError(f"no model '{name}' in s3://{self.bucket}")

    # Pulling ------------------------------------------------------------------------------

    def pull(self, name: str, version: str, folder: Path,
             progress: Progress | None = None) -> list[PulledFile]:
        """Download a version's artifact into `folder`; verify every sha256 the record has.

        One object (the exact pinned object version when `artifact.versionId` is
        recorded) lands as `folder/<its name>`; a prefix lands file by file below
        `folder`. Each file is written under a temporary name in its own folder and
        renamed only once complete and verified: a final name never holds a partial
        or mismatched file. Raises RegistryError on a mismatch.
        """
        record = self.show(name, version)
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return self._pull_into(record, folder, progress)
        except BaseException:
            if created and not any(path.is_file() for path in folder.rglob("*")):
                shutil.rmtree(folder)  # a failed pull leaves no empty folder it made
            raise

    def _pull_into(self, record: VersionRecord, folder: Path,
                   progress: Progress | None) -> list[PulledFile]:
        name, version = record.name, record.version
        source = S3Location.parse(record.artifact_uri)
        if record.pinned_files:
            return self._pull_pinned(record, folder, progress)
        if not source.is_prefix:
            expected = record.object_sha256
            target = folder / PurePosixPath(source.key).name
            return [self._download(source, target, expected, record.version_id, progress)]
        if record.version_id:
            raise RegistryError(f"{name}@{version} pins an object version of a prefix; "
                                "the record is not one modelfleet writes")
        digests = record.file_digests
        keys = [key for key in self._keys(source.key, bucket=source.bucket)
                if not key.endswith("/")]
        if not keys:
            raise RegistryError(f"the artifact of {name}@{version} ({source}) has no objects")
        absent = sorted(set(digests) - {key.removeprefix(source.key) for key in keys})
        if absent:
            raise RegistryError(f"the artifact of {name}@{version} is incomplete: "
                                f"{source}{absent[0]} is missing ({len(absent)} file(s) in all)")
        pulled = []
        for key in keys:
            relative = key.removeprefix(source.key)
            pulled.append(self._download(S3Location(source.bucket, key), folder / relative,
                                         digests.get(relative), None, progress))
        return pulled

    def _pull_pinned(self, record: VersionRecord, folder: Path,
                     progress: Progress | None) -> list[PulledFile]:
        """Exactly the pinned objects, verified as the init container verifies them
        (`modelfleet.release.pinned`), and placed in `folder` only when all verified."""
        artifact = record.pinned_artifact(folder)
        done = fetch_artifact(artifact, self._pinned_head(artifact),
                              self._pinned_download(artifact), progress,
                              pinned_by="the registry", dest=folder)
        if done.problems:
            raise VerificationError([*done.problems, f"nothing was written to {folder}"])
        return [PulledFile(path, artifact.uri + file.path
                           + (f"?versionId={file.version_id}" if file.version_id else ""),
                           file.size, file.sha256, True)
                for path, file in zip(done.placed, artifact.files, strict=True)]

    def _pinned_head(self, artifact: PinnedArtifact) -> Callable[[PinnedFile], int]:
        def head(file: PinnedFile) -> int:
            where = S3Location(*artifact.bucket_and_key(file))
            try:
                answer = self._call(lambda: self.s3.head_object(
                    **_object_args(where, file.version_id)), where, file.version_id)
            except RegistryError as error:
                raise FetchError(str(error)) from None
            return int(answer["ContentLength"])

        return head

    def _pinned_download(self, artifact: PinnedArtifact,
                         ) -> Callable[[PinnedFile, DigestingWriter], None]:
        def download(file: PinnedFile, writer: DigestingWriter) -> None:
            where = S3Location(*artifact.bucket_and_key(file))
            extra = {"VersionId": file.version_id} if file.version_id else None
            try:
                self._call(lambda: self.s3.download_fileobj(where.bucket, where.key, writer,
                                                            ExtraArgs=extra),
                           where, file.version_id)
            except RegistryError as error:
                raise FetchError(str(error)) from None

        return download

    def _download(self, source: S3Location, target: Path, expected: str | None,
                  version_id: str | None, progress: Progress | None) -> PulledFile:
        target.parent.mkdir(parents=True, exist_ok=True)
        answer = self._call(lambda: self.s3.get_object(**_object_args(source, version_id)),
                            source, version_id)
        size = int(answer.get("ContentLength", 0))
        digest = hashlib.sha256()
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                             dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as stream, \
                    (progress or _no_progress)(target.name, size) as advance:
                for chunk in answer["Body"].iter_chunks(CHUNK):
                    stream.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
            actual = digest.hexdigest()
            if expected and actual != expected:
                shown = _shown(source, version_id)
                raise RegistryError(f"sha256 mismatch for {shown}: the registry records "
                                    f"{expected}, the object has {actual}; nothing was "
                                    f"written to {target}")
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        shown = str(source) + (f"?versionId={version_id}" if version_id else "")
        return PulledFile(target, shown, size, actual, expected is not None)

    # Verifying ----------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Every version the index names (current and candidates) has its record and objects,
        and every sha256 holds."""
        index = self.index()
        if index is None:
            raise RegistryError(f"s3://{self.bucket} has no {layout.INDEX_KEY}: nothing to "
                                "verify")
        report = VerifyReport()
        named = [(str(entry.get("name")), version)
                 for entry in index.get("models", []) if isinstance(entry, dict)
                 for version in (str(entry.get("version")),
                                 *(v for _, v in _index_candidates(entry)))]
        for name, version in named:
            before = len(report.problems)
            try:
                record = self.show(name, version)
            except RegistryError as error:
                report.problems.append(f"{name}@{version}: {error}")
                continue
            objects = self._verify_artifact(record, report.problems)
            if len(report.problems) == before:
                report.checked.append(f"{name}@{version}: metadata and {objects} object(s), "
                                      "sha256 verified")
        return report

    def _verify_artifact(self, record: VersionRecord, problems: list[str]) -> int:
        label = f"{record.name}@{record.version}"
        source = S3Location.parse(record.artifact_uri)
        if record.pinned_files:
            artifact = record.pinned_artifact(Path(label))
            problems += verify_artifact(artifact, self._pinned_head(artifact),
                                        self._pinned_download(artifact), "the registry")
            return len(artifact.files)
        if not source.is_prefix:
            expected = record.object_sha256
            self._verify_object(label, source, expected, record.version_id, problems)
            return 1
        digests = record.file_digests
        present = {key.removeprefix(source.key)
                   for key in self._keys(source.key, bucket=source.bucket)}
        for relative in sorted(digests):
            if relative not in present:
                problems.append(f"{label}: {source}{relative} is missing")
            else:
                self._verify_object(label, S3Location(source.bucket, source.key + relative),
                                    digests[relative], None, problems)
        if not present:
            problems.append(f"{label}: the artifact {source} has no objects")
        return len(digests) or len(present)

    def _verify_object(self, label: str, source: S3Location, expected: str | None,
                       version_id: str | None, problems: list[str]) -> None:
        try:
            if expected is None:
                self._call(lambda: self.s3.head_object(**_object_args(source, version_id)),
                           source, version_id)
                return
            answer = self._call(lambda: self.s3.get_object(**_object_args(source, version_id)),
                                source, version_id)
        except RegistryError as error:
            problems.append(f"{label}: {error}")
            return
        digest = hashlib.sha256()
        for chunk in answer["Body"].iter_chunks(CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != expected:
            problems.append(f"{label}: sha256 mismatch for {source}: the registry records "
                            f"{expected}, the object has {digest.hexdigest()}")

    # Runs ---------------------------------------------------------------------------------

    def run_status(self, model: str, run: str) -> RunStatus:
        """Partitions written and missing, and the summary once the run is done."""
        prefix = layout.run_prefix(model, run)
        keys = self._keys(prefix)
        done = sorted(i for i in (layout.part_index(k.removeprefix(prefix)) for k in keys)
                      if i is not None)
        summary = None
        if layout.success_key(model, run) in keys:
            summary = self._json(layout.success_key(model, run))
        if summary is not None:
            partitions = int(summary.get("partitions", len(done)))
        elif done:
            first = S3Location(self.bucket, layout.part_key(model, run, done[0]))
            head = self._call(lambda: self.s3.head_object(**_object_args(first, None)), first,
                              None)
            partitions = int(head.get("Metadata", {}).get(layout.PART_PARTITIONS, 0)) \
                or max(done) + 1
        else:
            raise RegistryError(f"no run '{run}' of model '{model}' in s3://{self.bucket} "
                                f"(nothing below {prefix})")
        written = set(done)
        missing = tuple(i for i in range(partitions) if i not in written)
        return RunStatus(model, run, partitions, tuple(i for i in done if i < partitions),
                         missing, summary)

    # S3 -----------------------------------------------------------------------------------

    def _versions_of(self, name: str) -> list[str]:
        found = [parsed[1] for key in self._keys(f"{layout.MODELS_PREFIX}{name}/")
                 if (parsed := layout.parse_metadata_key(key)) and parsed[0] == name]
        return sorted(found, key=_version_order)

    def _keys(self, prefix: str, bucket: str | None = None) -> list[str]:
        where = S3Location(bucket or self.bucket, prefix)

        def listing() -> list[str]:
            keys: list[str] = []
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=where.bucket, Prefix=prefix):
                keys += [str(item["Key"]) for item in page.get("Contents", [])]
            return keys

        listed: list[str] = self._call(listing, where, None)
        return listed

    def _json(self, key: str) -> dict[str, Any]:
        where = S3Location(self.bucket, key)
        answer = self._call(lambda: self.s3.get_object(Bucket=self.bucket, Key=key), where, None)
        try:
            document = json.loads(answer["Body"].read())
        except ValueError as error:
            raise RegistryError(f"{where} is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise RegistryError(f"{where} is not a JSON object")
        return document

    def _call(self, action: Callable[[], Any], where: S3Location, version_id: str | None) -> Any:
        return s3_request(action, where, version_id)


def s3_request(action: Callable[[], Any], where: S3Location,
               version_id: str | None = None) -> Any:
    """Run one S3 request on `where`; its answer, or RegistryError with one line for the user.

    A missing key raises `_MissingKeyError` (a RegistryError), which callers may treat
    as an answer; access denied, no credentials, a missing bucket each get their line.
    """
    from botocore.exceptions import (  # noqa: PLC0415
        BotoCoreError,
        ClientError,
        NoCredentialsError,
    )

    try:
        return action()
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        shown = _shown(where, version_id)
        if code == "NoSuchBucket":
            raise RegistryError(f"bucket '{where.bucket}' does not exist (or is in "
                                "another account)") from None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise _MissingKeyError(f"{shown} does not exist") from None
        if code in ("NoSuchVersion", "InvalidArgument") and version_id:
            raise RegistryError(f"{shown} does not exist: the pinned object version is "
                                "gone or was never in this bucket") from None
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            raise RegistryError(f"access denied to {shown}: the AWS identity in use may "
                                "not read it (check AWS_PROFILE and its policies)") from None
        message = error.response.get("Error", {}).get("Message") or code
        raise RegistryError(f"{shown}: {message}") from None
    except NoCredentialsError:
        raise RegistryError("no AWS credentials found: set AWS_PROFILE, or "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except BotoCoreError as error:
        raise RegistryError(f"{where}: {one_line(str(error))}") from None


class _MissingKeyError(RegistryError):
    """A key that does not exist (callers decide whether that is an error)."""


@dataclass(frozen=True)
class _VersionOrder:
    """Semantic versions in precedence order, after anything that is not one."""

    semantic: bool
    version: Version | None
    text: str

    def __lt__(self, other: _VersionOrder) -> bool:
        if self.semantic != other.semantic:
            return other.semantic
        if self.version is not None and other.version is not None:
            return self.version < other.version
        return self.text < other.text


def _index_candidates(entry: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(name, version) of the candidates an `index.json` model entry lists, if any."""
    listed = entry.get("candidates")
    return tuple((str(c.get("name")), str(c["version"]))
                 for c in (listed if isinstance(listed, list) else ())
                 if isinstance(c, dict) and c.get("version") is not None)


def _version_order(text: str) -> _VersionOrder:
    semantic = is_semver(text)
    return _VersionOrder(semantic, Version.parse(text) if semantic else None, text)


@contextlib.contextmanager
def _no_progress(_name: str, _size: int) -> Iterator[Callable[[int], object]]:
    yield lambda _count: None


def _shown(source: S3Location, version_id: str | None) -> str:
    """`s3://bucket/key`, with `(object version …)` when one is pinned."""
    return f"{source}" + (f" (object version {version_id})" if version_id else "")


def _object_args(source: S3Location, version_id: str | None) -> dict[str, str]:
    """GetObject/HeadObject arguments: the object, or exactly one of its versions."""
    return {"Bucket": source.bucket, "Key": source.key,
            **({"VersionId": version_id} if version_id else {})}
