"""What the init container's fetch-and-verify costs against a bare boto3 download.

Against S3 served by moto on 127.0.0.1, one object of each size is fetched three ways,
best of three each:

- `fetch`: what `python -m modelserver.fetch` does (HEAD for the size, boto3's transfer
  manager fetching 8 MiB ranges 10 at a time into a non-seekable writer that hashes in
  order, then the rename into place);
- `download then hash`: boto3's `download_file` (threaded ranged GETs, out of order),
  then the file read back and hashed (what verifying after the fact costs);
- `download`: boto3's `download_file` alone, no verification.

Prints MiB/s; asserts nothing. Local S3 makes the transfer itself cheap, so the
figures show the verifier's own overhead.

    venv/bin/python benchmarks/fetch_verify.py [--sizes 16 128]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "images"))

import boto3  # noqa: E402
from modelserver import fetch  # noqa: E402
from modelserver.pinned import PinnedArtifact, PinnedFile, fetch_artifact  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

BUCKET = "fetch-bench"
MIB = 1 << 20


def best_of(runs: int, action: Callable[[], object], clean: Path) -> float:
    """The shortest of `runs` timings; `clean` (a file or folder) is removed after each."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
        if clean.is_dir():
            shutil.rmtree(clean)
        else:
            clean.unlink()
    return min(timings)


def fetched(artifact: PinnedArtifact, config: Any) -> None:
    done = fetch_artifact(artifact, fetch.head_of(artifact), fetch.download_of(artifact, config))
    assert not done.problems, done.problems


def downloaded(s3: Any, key: str, target: Path, config: Any, verify: bool) -> None:
    s3.download_file(BUCKET, key, str(target), Config=config)
    if verify:
        digest = hashlib.sha256()
        with target.open("rb") as stream:
            while chunk := stream.read(MIB):
                digest.update(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 128], help="MiB")
    sizes = parser.parse_args().sizes
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}",
                           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "eu-west-1"})
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET,
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        config = fetch.transfer_config()
        print(f"{'size':>8}  {'fetch':>12}  {'download then hash':>18}  {'download':>12}")
        for size in sizes:
            data = os.urandom(size * MIB)
            key = f"bench/{size}/model.safetensors"
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
            with tempfile.TemporaryDirectory() as folder:
                dest = Path(folder) / "weights"
                plain = Path(folder) / "plain.bin"
                artifact = PinnedArtifact("weights", f"s3://{BUCKET}/bench/{size}/", str(dest), (
                    PinnedFile("model.safetensors", hashlib.sha256(data).hexdigest(),
                               len(data)),))
                verified = best_of(3, partial(fetched, artifact, config), dest)
                after = best_of(3, partial(downloaded, s3, key, plain, config, True), plain)
                bare = best_of(3, partial(downloaded, s3, key, plain, config, False), plain)
            print(f"{size:>5} MiB  {size / verified:>6.0f} MiB/s  {size / after:>12.0f} MiB/s"
                  f"  {size / bare:>6.0f} MiB/s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
