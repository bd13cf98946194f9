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


def read_bytes(uri: str) -> bytes:
    location = Location.parse(uri)
    try:
        if location.bucket is None:
            return Path(location.key).read_bytes()
        response = s3().get_object(Bucket=location.bucket, Key=location.key)
        data: bytes = response["Body"].read()
        return data
    except Exception as error:
        raise StorageError(f"cannot read {uri}: {error}") from error


def write_bytes(uri: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
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
                            ContentType=content_type)
    except Exception as error:
        raise StorageError(f"cannot write {uri}: {error}") from error


def exists(uri: str) -> bool:
    location = Location.parse(uri)
    if location.bucket is None:
        return Path(location.key).exists()
    try:
        s3().head_object(Bucket=location.bucket, Key=location.key)
    except Exception as error:  # botocore's ClientError for a 404
        if getattr(error, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return False
        raise StorageError(f"cannot check {uri}: {error}") from error
    return True


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


def fetch(uri: str, cache_dir: Path) -> Path:
    """A local copy of an object, or of every object below a prefix; local paths as they are."""
    location = Location.parse(uri)
    if location.bucket is None:
        path = Path(location.key)
        if not path.exists():
            raise StorageError(f"{uri} does not exist")
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not location.is_prefix:
        target = cache_dir / Path(location.key).name
        _download(location.bucket, location.key, target)
        return target
    for source in list_objects(uri):
        key = Location.parse(source).key
        _download(location.bucket, key, cache_dir / key.removeprefix(location.key))
    return cache_dir


def _download(bucket: str, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3().download_file(bucket, key, str(target))
    except Exception as error:
        raise StorageError(f"cannot download s3://{bucket}/{key}: {error}") from error


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

