"""`python -m modelserver.fetch`: the init container that fills `/models` with verified files.

Input: `FETCH_PLAN`, JSON (`modelserver.pinned.parse_plan`):

    {"artifacts": [{"name": "weights", "uri": "s3://bucket/prefix/", "dest": "/models/weights",
                    "files": [{"path": "config.json", "sha256": "<64 hex>", "size": 1234,
                               "versionId": null}]}]}

and the usual AWS environment (IRSA: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
AWS_REGION; AWS_ENDPOINT_URL for another S3 endpoint), read by boto3 itself.

Each artifact is fetched as `modelserver.pinned.fetch_artifact` says: exactly the
listed objects, sizes checked first, sizes and SHA-256 checked while written, `dest`
filled only when every file verified. Downloads go through boto3's transfer manager:
files larger than 8 MiB are fetched as 8 MiB byte ranges, 10 at a time, and written
in order (memory bounded by 10 chunks in flight: s3transfer 0.19.3, `manager.py`,
`max_in_memory_download_chunks`). Files of 8 MiB or more log their progress every
10%, so a large file gives at most ten lines.

Exit status: 0 when every artifact verified; 1 when any object is missing or does not
verify (one log line per problem; that artifact's `dest` holds nothing); 2 when
`FETCH_PLAN` is missing or malformed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from modelserver.pinned import (
    DigestingWriter,
    FetchError,
    PinnedArtifact,
    PinnedFile,
    PlanError,
    Progress,
    fetch_artifact,
    parse_plan,
)
from modelserver.storage import StorageError, download_to, object_size

log = logging.getLogger("modelserver.fetch")

PROGRESS_FROM_BYTES = 8 << 20
"""Files this large or larger log their progress."""
PROGRESS_STEP_PERCENT = 10
CHUNK_BYTES = 8 << 20
"""Byte range of one ranged GET; also the size from which a file is fetched in ranges."""
CONCURRENCY = 10
"""Ranged GETs in flight for one file."""
MIB = 1 << 20


def main() -> int:
    """Fetch and verify every artifact of FETCH_PLAN; the exit status (0, 1 or 2)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)  # unwinds, so temporary files are removed
    try:
        artifacts = parse_plan(os.environ.get("FETCH_PLAN") or "")
    except PlanError as error:
        log.error("%s", error)
        return 2
    config = transfer_config()
    failed = 0
    for artifact in artifacts:
        log.info("%s: fetching %d file(s), %s, from %s to %s", artifact.name,
                 len(artifact.files), _mib(artifact.size), artifact.uri, artifact.dest)
        done = fetch_artifact(artifact, head_of(artifact), download_of(artifact, config),
                              logged_progress(artifact.name))
        for problem in done.problems:
            log.error("%s", problem)
        if done.problems:
            failed += 1
            log.error("%s: refused, nothing written to %s", artifact.name, artifact.dest)
            continue
        if done.kept:
            log.info("%s: %d file(s) already in %s with the pinned sha256, not downloaded "
                     "again", artifact.name, len(done.kept), artifact.dest)
        rate = artifact.size / MIB / done.seconds if done.seconds > 0 else 0.0
        log.info("%s: %d file(s), %s, sha256 verified, in %s (%.1f s, %.1f MiB/s)",
                 artifact.name, len(artifact.files), _mib(artifact.size), artifact.dest,
                 done.seconds, rate)
    if failed:
        log.error("%d of %d artifact(s) refused: the engine must not start", failed,
                  len(artifacts))
        return 1
    log.info("all %d artifact(s) verified", len(artifacts))
    return 0


def transfer_config() -> Any:
    """boto3's TransferConfig for ranged, parallel downloads (defaults made explicit)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=CHUNK_BYTES, multipart_chunksize=CHUNK_BYTES,
                          max_concurrency=CONCURRENCY)


def head_of(artifact: PinnedArtifact) -> Callable[[PinnedFile], int]:
    """`fetch_artifact`'s look at an object: its size by HeadObject, failures as FetchError."""
    def head(file: PinnedFile) -> int:
        bucket, key = artifact.bucket_and_key(file)
        try:
            return object_size(bucket, key, file.version_id)
        except StorageError as error:
            raise FetchError(str(error)) from None

    return head


def download_of(artifact: PinnedArtifact,
              config: Any) -> Callable[[PinnedFile, DigestingWriter], None]:
    """`fetch_artifact`'s download: boto3's transfer manager into the hashing writer."""
    def download(file: PinnedFile, writer: DigestingWriter) -> None:
        bucket, key = artifact.bucket_and_key(file)
        try:
            download_to(bucket, key, writer, file.version_id, config)
        except StorageError as error:
            raise FetchError(str(error)) from None

    return download


def logged_progress(artifact: str) -> Progress:
    """A log line every 10% of a file of 8 MiB or more (s3transfer writes from its own thread)."""

    @contextlib.contextmanager
    def progress(name: str, size: int) -> Iterator[Callable[[int], object]]:
        if size < PROGRESS_FROM_BYTES:
            yield lambda _count: None
            return
        lock = threading.Lock()
        state = {"done": 0, "step": 0}

        def advance(count: int) -> None:
            with lock:
                state["done"] += count
                step = state["done"] * 100 // size // PROGRESS_STEP_PERCENT
                if step > state["step"] and state["done"] < size:
                    state["step"] = step
                    log.info("%s: %s %d%% (%s of %s)", artifact, name,
                             step * PROGRESS_STEP_PERCENT, _mib(state["done"]), _mib(size))

        yield advance

    return progress


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def _stop(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
