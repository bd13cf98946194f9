"""Objects in S3 or files on disk, behind one small interface.

`s3://bucket/key` goes through boto3 (credentials from IRSA in a pod;
`AWS_ENDPOINT_URL` points it elsewhere, as the tests do); anything else is a
local path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from modelserver.pinned import FetchError

CHUNK = 1 << 20


class StorageError(RuntimeError):
    """An object could not be read or written."""


@dataclass(frozen=True)
class Location:
    bucket: str | None
    key: str
    """For S3: the key (or prefix); for a local path: the path."""

    @classmethod
    def parse(cls, uri: str) -> Location:
        if uri.startswith("s3://"):
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            if not bucket:
                raise StorageError(f"'{uri}' names no bucket")
            return cls(bucket, key)
        return cls(None, uri.removeprefix("file://"))

    @property
    def is_prefix(self) -> bool:
        return self.key.endswith("/") or self.key == ""

    def child(self, name: str) -> str:
        base = self.key if self.is_prefix else self.key + "/"
        return f"s3://{self.bucket}/{base}{name}" if self.bucket else str(Path(base) / name)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else self.key


@cache
def s3() -> Any:
    import boto3  # imported on first use: a local model needs no AWS SDK at start-up

    return boto3.client("s3")


def _version(version_id: str | None) -> dict[str, str]:
    """boto3 arguments that name one object version (S3 `versionId`), or none."""
    return {"VersionId": version_id} if version_id else {}


def read_bytes(uri: str) -> bytes:
    """An object's content (a batch input; a pinned artifact is read by `fetch`)."""
    location = Location.parse(uri)
    try:
        if location.bucket is None:
            return Path(location.key).read_bytes()
        response = s3().get_object(Bucket=location.bucket, Key=location.key)
        data: bytes = response["Body"].read()
        return data
    except Exception as error:
        raise StorageError(f"cannot read {uri}: {error}") from error


def write_bytes(uri: str, data: bytes, content_type: str = "application/x-ndjson",
                metadata: dict[str, str] | None = None) -> None:
    """Write a whole object; `metadata` becomes its S3 user metadata (`x-amz-meta-*`)."""
    location = Location.parse(uri)
    try:
        if location.bucket is None:
            path = Path(location.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            partial.replace(path)  # readers never see half a file
        else:
            s3().put_object(Bucket=location.bucket, Key=location.key, Body=data,
                            ContentType=content_type, Metadata=metadata or {})
    except Exception as error:
        raise StorageError(f"cannot write {uri}: {error}") from error


def create_once(uri: str, data: bytes, content_type: str = "application/json") -> bool:
    """Write an S3 object only if no object has that key: True if this call created it.

    A conditional PUT (`If-None-Match: *`): of concurrent writers exactly one
    succeeds and the others get 412 Precondition Failed, so the key is written once
    even in a versioned bucket. S3 answers 409 ConditionalRequestConflict while
    another conditional write of the key is in flight; that one is retried.
    """
    location = Location.parse(uri)
    if location.bucket is None:
        raise StorageError(f"{uri}: a write-once object must be in S3")
    for _ in range(5):
        try:
            s3().put_object(Bucket=location.bucket, Key=location.key, Body=data,
                            ContentType=content_type, IfNoneMatch="*")
        except Exception as error:
            code = _error_code(error)
            if code in ("PreconditionFailed", "412"):
                return False
            if code in ("ConditionalRequestConflict", "409"):
                continue
            raise StorageError(f"cannot write {uri}: {error}") from error
        return True
    raise StorageError(f"cannot write {uri}: conflicting writes did not settle")


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    """Bytes."""
    metadata: dict[str, str]
    """S3 user metadata, names in lower case."""


def head(uri: str) -> ObjectInfo | None:
    """An S3 object's size and user metadata; None when there is no such object."""
    location = Location.parse(uri)
    if location.bucket is None:
        path = Path(location.key)
        return ObjectInfo(uri, path.stat().st_size, {}) if path.is_file() else None
    try:
        answer = s3().head_object(Bucket=location.bucket, Key=location.key)
    except Exception as error:
        if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise StorageError(f"cannot check {uri}: {error}") from error
    return ObjectInfo(uri, int(answer["ContentLength"]), dict(answer.get("Metadata", {})))


def _error_code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _named(uri: str, version_id: str | None) -> str:
    return f"{uri} (object version {version_id})" if version_id else uri


def _local_version(uri: str, version_id: str | None) -> None:
    if version_id:
        raise StorageError(f"{uri} is a local path; an object version pins an S3 object")


def exists(uri: str) -> bool:
    location = Location.parse(uri)
    if location.bucket is None:
        return Path(location.key).exists()
    return head(uri) is not None


def list_objects(uri: str) -> list[str]:
    """Every object below a prefix (or file below a folder), sorted by name."""
    location = Location.parse(uri)
    if location.bucket is None:
        root = Path(location.key)
        return sorted(str(p) for p in root.rglob("*") if p.is_file())
    keys: list[str] = []
    paginator = s3().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
        keys += [item["Key"] for item in page.get("Contents", [])
                 if not item["Key"].endswith("/")]
    return [f"s3://{location.bucket}/{key}" for key in sorted(keys)]


def fetch(uri: str, cache_dir: Path, version_id: str | None = None) -> Path:
    """A local copy of an object, or of every object below a prefix; local paths as they are.

    With `version_id`, exactly that S3 object version of the one object `uri` names.
    """
    location = Location.parse(uri)
    if location.bucket is None:
        _local_version(uri, version_id)
        path = Path(location.key)
        if not path.exists():
            raise StorageError(f"{uri} does not exist")
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not location.is_prefix:
        target = cache_dir / Path(location.key).name
        _download(location.bucket, location.key, target, version_id)
        return target
    if version_id:
        raise StorageError(f"{uri} is a prefix; an object version pins one object")
    for source in list_objects(uri):
        key = Location.parse(source).key
        _download(location.bucket, key, cache_dir / key.removeprefix(location.key))
    return cache_dir


def _download(bucket: str, key: str, target: Path, version_id: str | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3().download_file(bucket, key, str(target), ExtraArgs=_version(version_id) or None)
    except Exception as error:
        raise StorageError(f"cannot download {_named(f's3://{bucket}/{key}', version_id)}: "
                           f"{error}") from error


def object_size(bucket: str, key: str, version_id: str | None = None) -> int:
    """An S3 object's size in bytes (HeadObject, of `version_id` when given).

    Raises StorageError with one line: the object (or the version) does not exist,
    access is denied, or S3 could not be reached.
    """
    try:
        answer = s3().head_object(Bucket=bucket, Key=key, **_version(version_id))
    except Exception as error:
        raise StorageError(_reason(error, f"s3://{bucket}/{key}", version_id)) from error
    return int(answer["ContentLength"])


def download_to(bucket: str, key: str, stream: Any, version_id: str | None = None,
                config: Any = None) -> None:
    """Write an S3 object (at `version_id`) to a file object, through boto3's transfer manager.

    A non-seekable `stream` gets the bytes in order while byte ranges are fetched in
    parallel (`config`: a boto3 `TransferConfig`). Raises StorageError with one line.
    """
    try:
        s3().download_fileobj(bucket, key, stream, ExtraArgs=_version(version_id) or None,
                              Config=config)
    except FetchError:  # the stream refused more bytes than pinned
        raise
    except Exception as error:
        raise StorageError(_reason(error, f"s3://{bucket}/{key}", version_id)) from error


def _reason(error: Exception, uri: str, version_id: str | None) -> str:
    """One line for a failed S3 request on `uri`."""
    shown = _named(uri, version_id)
    code = _error_code(error)
    if code in ("404", "NoSuchKey", "NotFound"):
        return f"{shown} does not exist"
    if code in ("NoSuchVersion", "InvalidArgument", "400") and version_id:
        return f"{shown} does not exist: the pinned object version is gone or was never there"
    if code in ("403", "AccessDenied", "Forbidden"):
        return f"access denied to {shown}: the pod's role may not read it"
    if code == "NoSuchBucket":
        return f"{shown}: the bucket does not exist"
    return f"cannot read {shown}: {error}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

