"""An S3 API on 127.0.0.1 (moto's server mode) holding a registry exactly as a stack writes it.

The registry is not restated here: the real program runs under the mock runtime
(`tests.deploy`), and every `BucketObjectv2` it declares is written to the
bucket it names, with the content or file it declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from planner.simulate import Simulation

REGION = "eu-west-1"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


@contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """A moto server on a free port, and boto3's environment pointed at it (then restored)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
               "AWS_REGION": REGION}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            patch.delenv("AWS_PROFILE", raising=False)
            yield env
    finally:
        server.stop()


def s3() -> Any:
    return boto3.client("s3")


def versioned_bucket(name: str) -> None:
    client = s3()
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def registry_bucket(simulation: Simulation) -> str:
    return str(simulation.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"])


def write_registry(simulation: Simulation) -> str:
    """Write every object the stack declares into its registry bucket; return the bucket."""
    bucket = registry_bucket(simulation)
    client = s3()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        versioned_bucket(bucket)
    for registration in simulation.of_type(OBJECT):
        inputs = registration.inputs
        source = inputs.get("source")
        body = Path(source.path).read_bytes() if source is not None \
            else str(inputs["content"]).encode()
        client.put_object(Bucket=bucket, Key=inputs["key"], Body=body,
                          ContentType=inputs.get("contentType", "application/octet-stream"),
                          ChecksumAlgorithm="SHA256")
    return bucket
