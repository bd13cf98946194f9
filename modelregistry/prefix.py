"""The objects below an S3 prefix, each with its size, SHA-256 and object version.

What `python -m modelfleet artifact lock` writes into `artifact.files`. A file's
SHA-256 comes from S3's stored checksum when the object has a full-object one
(HeadObject with `ChecksumMode=ENABLED` answers `ChecksumSHA256`); otherwise the
object is streamed and hashed here. A multipart upload's SHA-256 checksum is a
checksum of the parts' checksums (`ChecksumType: COMPOSITE`, the value suffixed
`-<parts>`), not the file's SHA-256, so it is never used. Sources (read, not run
against AWS; moto answers neither ChecksumType nor the suffix, so a multipart ETag
`…-<parts>` is refused too): the S3 API Reference, data type `Checksum` (for an object
uploaded in parts the value "may not be a direct checksum value of the full object");
the AWS S3 transfer manager crate aws-s3-transfer 1.0.0, `src/types/checksum.rs` ("SHA-1
and SHA-256 have no full object type for multipart uploads").
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelfleet.release.pinned import PinnedFile, is_safe_path
from modelregistry.client import CHUNK, RegistryError, S3Location, s3_request


@dataclass(frozen=True)
class Listed:
    """A prefix's files, and how each digest was had."""

    files: tuple[PinnedFile, ...]
    """Sorted by path."""
    hashed: tuple[str, ...]
    """Paths whose SHA-256 was computed by streaming the object (no usable stored checksum)."""


def list_pinned(s3: Any, uri: str, versioned: bool = True,
                hashed: Callable[[str, int], None] | None = None) -> Listed:
    """Every object below `uri` (an `s3://bucket/prefix/`), pinned by size and SHA-256.

    `versioned`: record each object's current version ID when the bucket gives one
    (a versioned bucket does; an unversioned or suspended one answers none or `null`).
    `hashed(path, size)` is told before an object is streamed. Raises RegistryError
    (one line): no objects, a key that cannot be a file below the prefix, access
    denied, no credentials.
    """
    where = S3Location.parse(uri)
    keys = _keys(s3, where)
    if not keys:
        raise RegistryError(f"{uri} holds no objects: upload the model's files first, or fix "
                            "the prefix")
    files, streamed = [], []
    for key in keys:
        path = key.removeprefix(where.key)
        if not is_safe_path(path):
            raise RegistryError(f"s3://{where.bucket}/{key} cannot be pinned: its key below "
                                f"the prefix, '{path}', has an empty, '.' or '..' segment")
        source = S3Location(where.bucket, key)
        head = _head(s3, source)
        version = head.get("VersionId") if versioned else None
        version_id = str(version) if version and version != "null" else None
        size = int(head["ContentLength"])
        digest = stored_sha256(head)
        if digest is None:
            if hashed is not None:
                hashed(path, size)
            digest = _stream_sha256(s3, source, version_id, size)
            streamed.append(path)
        files.append(PinnedFile(path, digest, size, version_id))
    return Listed(tuple(files), tuple(streamed))


def stored_sha256(head: dict[str, Any]) -> str | None:
    """The object's SHA-256 (hex) from a HeadObject answer, when it is a full-object one."""
    value = head.get("ChecksumSHA256")
    if not isinstance(value, str) or not value:
        return None
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT" or "-" in value:
        return None  # a composite checksum of a multipart upload's parts
    if "-" in str(head.get("ETag", "")):
        return None  # a multipart upload that does not say which kind its checksum is
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None


def _head(s3: Any, source: S3Location) -> dict[str, Any]:
    answer: dict[str, Any] = s3_request(lambda: s3.head_object(
        Bucket=source.bucket, Key=source.key, ChecksumMode="ENABLED"), source)
    return answer


def _keys(s3: Any, where: S3Location) -> list[str]:
    def listing() -> list[str]:
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket,
                                                                  Prefix=where.key):
            keys += [str(item["Key"]) for item in page.get("Contents", [])]
        return keys

    found: list[str] = s3_request(listing, where)
    return sorted(key for key in found if not key.endswith("/"))  # folder markers hold no file


def _stream_sha256(s3: Any, source: S3Location, version_id: str | None, size: int) -> str:
    answer = s3_request(lambda: s3.get_object(
        Bucket=source.bucket, Key=source.key,
        **({"VersionId": version_id} if version_id else {})), source, version_id)
    digest = hashlib.sha256()
    read = 0
    for chunk in answer["Body"].iter_chunks(CHUNK):
        digest.update(chunk)
        read += len(chunk)
    if read != size:
        raise RegistryError(f"{source} changed while it was read ({read} of {size} bytes); "
                            "run the command again")
    return digest.hexdigest()
