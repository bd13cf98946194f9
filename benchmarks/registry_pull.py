"""What verifying costs on a pull: the registry client against a bare boto3 download.

Against S3 served by moto on 127.0.0.1, one object of each size is fetched by
`RegistryClient.pull` (streamed to a temporary file, sha256 computed on the way,
renamed once verified) and by boto3's `download_file` (no hashing, threaded
ranged GETs), best of three each. Prints MiB/s; asserts nothing. Local S3 makes
the transfer itself cheap, so the figures show the client's own overhead.

    venv/bin/python benchmarks/registry_pull.py [--sizes 1 16 128]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from modelfleet.release import layout  # noqa: E402
from modelregistry.client import RegistryClient  # noqa: E402

BUCKET = "registry-bench"
MIB = 1 << 20


def best_of(runs: int, action: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 128], help="MiB")
    sizes = parser.parse_args().sizes
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
        client = RegistryClient(BUCKET, s3)
        print(f"{'size':>8}  {'registry pull':>14}  {'boto3 download':>15}")
        for size in sizes:
            data = os.urandom(size * MIB)
            version = f"1.0.{size}"
            key = layout.artifact_prefix("bench", version) + "model.bin"
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
            record = layout.MetadataRecord(
                name="bench", version=version, team="bench", stage="candidate",
                environment="bench", artifact_uri=f"s3://{BUCKET}/{key}",
                artifact_sha256=hashlib.sha256(data).hexdigest(), files=(), image="",
                manifest_file="models.yaml", commit="", manifest_digest="")
            s3.put_object(Bucket=BUCKET, Key=layout.metadata_key("bench", version),
                          Body=json.dumps(record.document()).encode())
            with tempfile.TemporaryDirectory() as folder:
                pulled = best_of(3, partial(client.pull, "bench", version, Path(folder)))
                plain = best_of(3, partial(s3.download_file, BUCKET, key,
                                           str(Path(folder) / "plain.bin")))
            print(f"{size:>5} MiB  {size / pulled:>9.0f} MiB/s  {size / plain:>10.0f} MiB/s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
