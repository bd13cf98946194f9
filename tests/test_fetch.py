"""The init container's fetch-and-verify step (`python -m modelserver.fetch`) against moto's S3.

Each test runs the module as the init container would: its own process, FETCH_PLAN
and AWS_ENDPOINT_URL in the environment, then checks the exit status, the log and
what is (and is not) on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from modelfleet.release.pinned import (
    DigestingWriter,
    FetchError,
    PinnedArtifact,
    PinnedFile,
    PlanError,
    adapter_artifact,
    parse_plan,
    plan_document,
    size_limit_bytes,
    weights_artifact,
)
from tests.conftest import PROJECT
from tests.registry_world import REGION, moto_s3

IMAGES = PROJECT / "images"
CONFIG = b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}\n'
TOKENIZER = b'{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}}\n'
WEIGHTS = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    with moto_s3() as env:
        yield env


@pytest.fixture
def bucket(aws: dict[str, str], request: pytest.FixtureRequest) -> str:
    name = str("fetch-" + request.node.name.replace("_", "-"))[:63].strip("-").lower()
    client = boto3.client("s3")
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def put(bucket: str, key: str, body: bytes) -> str:
    """Write an object; its version ID."""
    answer: dict[str, Any] = boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return str(answer["VersionId"])


def pin(path: str, body: bytes, version_id: str | None = None) -> PinnedFile:
    return PinnedFile(path, hashlib.sha256(body).hexdigest(), len(body), version_id)


def llm(bucket: str, dest: Path, prefix: str = "llama/1.0.0/") -> PinnedArtifact:
    """A small Hugging Face-style model in the bucket, and its pins."""
    files = {"config.json": CONFIG, "tokenizer.json": TOKENIZER,
             "model.safetensors": WEIGHTS}
    for path, body in files.items():
        put(bucket, prefix + path, body)
    return PinnedArtifact("weights", f"s3://{bucket}/{prefix}", str(dest),
                          tuple(pin(path, body) for path, body in files.items()))


FETCH = [sys.executable, "-m", "modelserver.fetch"]


def init_env(env: dict[str, str], plan: str) -> dict[str, str]:
    """The init container's environment: FETCH_PLAN and the AWS settings, nothing else AWS."""
    run_env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    run_env.update(env)
    run_env["PYTHONPATH"] = str(IMAGES)
    run_env["FETCH_PLAN"] = plan
    return run_env


def fetch(env: dict[str, str], *artifacts: PinnedArtifact,
          plan: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m modelserver.fetch` as the init container runs it."""
    text = plan if plan is not None else json.dumps(plan_document(artifacts))
    return subprocess.run(FETCH, env=init_env(env, text), capture_output=True, text=True,
                          timeout=120, check=False)


def everything_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_good_files_are_verified_and_placed_in_dest(aws: dict[str, str], bucket: str,
                                                    tmp_path: Path) -> None:
    dest = tmp_path / "models/weights"
    done = fetch(aws, llm(bucket, dest))
    assert done.returncode == 0, done.stderr
    assert (dest / "config.json").read_bytes() == CONFIG
    assert (dest / "tokenizer.json").read_bytes() == TOKENIZER
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert everything_below(tmp_path / "models") == [
        "weights", "weights/config.json", "weights/model.safetensors", "weights/tokenizer.json"]
    assert "weights: 3 file(s)" in done.stderr
    assert "sha256 verified" in done.stderr


def test_a_tampered_file_is_refused_and_nothing_is_left_behind(
        aws: dict[str, str], bucket: str, tmp_path: Path) -> None:
    dest = tmp_path / "models/weights"
    artifact = llm(bucket, dest)
    tampered = bytearray(WEIGHTS)
    tampered[100] ^= 0xFF  # same size, other content
    put(bucket, "llama/1.0.0/model.safetensors", bytes(tampered))
    done = fetch(aws, artifact)
    assert done.returncode == 1
    mismatch = [line for line in done.stderr.splitlines() if "sha256 mismatch" in line]
    assert len(mismatch) == 1, done.stderr
    assert f"weights: sha256 mismatch for s3://{bucket}/llama/1.0.0/model.safetensors: " \
           f"the manifest pins {artifact.files[2].sha256}, the object has " \
           f"{hashlib.sha256(bytes(tampered)).hexdigest()}" in mismatch[0]
    assert "weights: refused, nothing written to" in done.stderr
    assert "Traceback" not in done.stderr
    assert everything_below(tmp_path / "models") == []  # no dest, no temporary files


def test_a_file_of_another_size_is_refused_before_anything_is_downloaded(
        aws: dict[str, str], bucket: str, tmp_path: Path) -> None:
    dest = tmp_path / "models/weights"
    artifact = llm(bucket, dest)
    put(bucket, "llama/1.0.0/config.json", CONFIG + b" ")
    done = fetch(aws, artifact)
    assert done.returncode == 1
    assert f"weights: size mismatch for s3://{bucket}/llama/1.0.0/config.json: the manifest " \
           f"pins {len(CONFIG)} bytes, the object has {len(CONFIG) + 1}" in done.stderr
    assert everything_below(tmp_path / "models") == []


def test_a_missing_file_is_refused_with_one_line(aws: dict[str, str], bucket: str,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "models/weights"
    artifact = llm(bucket, dest)
    absent = PinnedArtifact(artifact.name, artifact.uri, artifact.dest,
                            (*artifact.files, pin("model-00002-of-00002.safetensors", b"x")))
    done = fetch(aws, absent)
    assert done.returncode == 1
    problems = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert f"weights: s3://{bucket}/llama/1.0.0/model-00002-of-00002.safetensors does not " \
           "exist" in problems[0]
    assert len(problems) == 3  # the problem, the artifact refused, the summary
    assert everything_below(tmp_path / "models") == []


def test_a_pinned_object_version_is_fetched_after_the_key_changed(
        aws: dict[str, str], bucket: str, tmp_path: Path) -> None:
    first = put(bucket, "adapters/sql/adapter_model.safetensors", WEIGHTS)
    put(bucket, "adapters/sql/adapter_model.safetensors", WEIGHTS[::-1])  # the current one
    dest = tmp_path / "models/adapters/sql"
    pinned = PinnedArtifact("adapter-sql", f"s3://{bucket}/adapters/sql/", str(dest),
                            (pin("adapter_model.safetensors", WEIGHTS, first),))
    done = fetch(aws, pinned)
    assert done.returncode == 0, done.stderr
    assert (dest / "adapter_model.safetensors").read_bytes() == WEIGHTS
    unpinned = PinnedArtifact("adapter-sql", pinned.uri, str(tmp_path / "current"),
                              (pin("adapter_model.safetensors", WEIGHTS),))
    refused = fetch(aws, unpinned)
    assert refused.returncode == 1  # without the version, the current object does not verify
    assert "sha256 mismatch" in refused.stderr


def test_a_version_that_is_gone_is_a_missing_file(aws: dict[str, str], bucket: str,
                                                  tmp_path: Path) -> None:
    put(bucket, "adapters/sql/adapter_model.safetensors", WEIGHTS)
    gone = PinnedArtifact("adapter-sql", f"s3://{bucket}/adapters/sql/",
                          str(tmp_path / "models/adapters/sql"),
                          (pin("adapter_model.safetensors", WEIGHTS, "3HL4kqtJlcpXroDTDmJ"),))
    done = fetch(aws, gone)
    assert done.returncode == 1
    assert "(object version 3HL4kqtJlcpXroDTDmJ) does not exist" in done.stderr
    assert everything_below(tmp_path / "models") == []


def test_a_large_file_logs_its_progress_in_a_bounded_number_of_lines(
        aws: dict[str, str], bucket: str, tmp_path: Path) -> None:
    large = os.urandom(24 << 20)  # three 8 MiB ranges
    client = boto3.client("s3")
    client.upload_fileobj(io.BytesIO(large), bucket, "llama/2.0.0/model.safetensors")
    dest = tmp_path / "models/weights"
    artifact = PinnedArtifact("weights", f"s3://{bucket}/llama/2.0.0/", str(dest),
                              (pin("model.safetensors", large),))
    done = fetch(aws, artifact)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256((dest / "model.safetensors").read_bytes()).digest() == \
        hashlib.sha256(large).digest()
    progress = [line.split("model.safetensors ", 1)[1] for line in done.stderr.splitlines()
                if "weights: model.safetensors " in line]
    assert progress[0].startswith("10% (")
    assert progress[-1].startswith("90% (")
    assert len(progress) == 9, progress
    assert "weights: 1 file(s), 24.0 MiB, sha256 verified" in done.stderr


def test_a_second_run_keeps_verified_files_and_replaces_a_damaged_one(
        aws: dict[str, str], bucket: str, tmp_path: Path) -> None:
    """An init container that runs again on the pod's emptyDir downloads only what it must."""
    dest = tmp_path / "models/weights"
    artifact = llm(bucket, dest)
    assert fetch(aws, artifact).returncode == 0
    (dest / "model.safetensors").write_bytes(b"damaged")
    again = fetch(aws, artifact)
    assert again.returncode == 0, again.stderr
    assert "weights: 2 file(s) already in" in again.stderr
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert everything_below(tmp_path / "models") == [
        "weights", "weights/config.json", "weights/model.safetensors", "weights/tokenizer.json"]


def test_a_fetch_stopped_midway_leaves_nothing_behind(aws: dict[str, str], bucket: str,
                                                      tmp_path: Path) -> None:
    """The kubelet stops an init container with SIGTERM (a deleted pod, a node drain)."""
    large = os.urandom(32 << 20)
    boto3.client("s3").upload_fileobj(io.BytesIO(large), bucket, "llama/3.0.0/model.safetensors")
    dest = tmp_path / "models/weights"
    artifact = PinnedArtifact("weights", f"s3://{bucket}/llama/3.0.0/", str(dest),
                              (pin("model.safetensors", large),))
    process = subprocess.Popen(FETCH, env=init_env(aws, json.dumps(plan_document([artifact]))),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "weights: model.safetensors 10% (" in line:
                process.send_signal(signal.SIGTERM)
                break
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == 128 + signal.SIGTERM, "".join(seen)
    assert everything_below(tmp_path / "models") == []  # no dest, no partial folder


def test_weights_and_an_adapter_in_one_plan(aws: dict[str, str], bucket: str,
                                            tmp_path: Path) -> None:
    weights = llm(bucket, tmp_path / "models/weights")
    adapter_config = b'{"r": 16, "lora_alpha": 32}\n'
    put(bucket, "adapters/sql/1.0.0/adapter_config.json", adapter_config)
    put(bucket, "adapters/sql/1.0.0/adapter_model.safetensors", WEIGHTS[:999])
    adapter = PinnedArtifact("adapter-sql", f"s3://{bucket}/adapters/sql/1.0.0/",
                             str(tmp_path / "models/adapters/sql"),
                             (pin("adapter_config.json", adapter_config),
                              pin("adapter_model.safetensors", WEIGHTS[:999])))
    done = fetch(aws, weights, adapter)
    assert done.returncode == 0, done.stderr
    assert everything_below(tmp_path / "models/adapters") == [
        "sql", "sql/adapter_config.json", "sql/adapter_model.safetensors"]
    assert (tmp_path / "models/weights/model.safetensors").read_bytes() == WEIGHTS
    assert "all 2 artifact(s) verified" in done.stderr


def test_a_malformed_plan_is_one_line_and_exit_2(aws: dict[str, str], tmp_path: Path) -> None:
    plan = {"artifacts": [{"name": "weights", "uri": "s3://b/p/", "dest": str(tmp_path / "w"),
                           "files": [{"path": "../etc/passwd", "sha256": "0" * 64,
                                      "size": 1}]}]}
    done = fetch(aws, plan=json.dumps(plan))
    assert done.returncode == 2
    assert "path '../etc/passwd' is not a key below the prefix" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert fetch(aws, plan="").returncode == 2


@pytest.mark.parametrize(("plan", "message"), [
    ({"artifacts": [{"name": "w", "uri": "s3://b/model.bin", "dest": "/m/w",
                     "files": [{"path": "a", "sha256": "0" * 64, "size": 1}]}]},
     "is not an S3 prefix"),
    ({"artifacts": [{"name": "w", "uri": "s3://b/p/", "dest": "models/w",
                     "files": [{"path": "a", "sha256": "0" * 64, "size": 1}]}]},
     "is not an absolute path"),
    ({"artifacts": [{"name": "w", "uri": "s3://b/p/", "dest": "/m/w",
                     "files": [{"path": "a", "sha256": "0" * 64, "size": 1},
                               {"path": "a", "sha256": "1" * 64, "size": 1}]}]},
     "a path is listed twice"),
    ({"artifacts": [{"name": "w", "uri": "s3://b/p/", "dest": "/m/w",
                     "files": [{"path": "a", "sha256": "ABC", "size": 1}]}]},
     "is not 64 lowercase hex digits"),
])
def test_a_plan_that_could_fetch_the_wrong_thing_is_refused(plan: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plan(json.dumps(plan))


def test_the_writer_stops_a_download_larger_than_pinned() -> None:
    stream = io.BytesIO()
    writer = DigestingWriter(stream, pin("a", b"abc"), "s3://b/p/a", lambda _n: None)
    writer.write(b"ab")
    with pytest.raises(FetchError, match="the pin is 3 bytes, the object has more"):
        writer.write(b"cd")
    assert not writer.seekable()  # so boto3 writes ranges in order


def test_the_plan_of_weights_and_adapters_follows_the_pods_layout() -> None:
    weights = weights_artifact("s3://w/llama/", [pin("config.json", CONFIG)])
    adapter = adapter_artifact("sql", "s3://w/sql/", [pin("adapter_model.safetensors", b"x")])
    assert (weights.name, weights.dest) == ("weights", "/models/weights")
    assert (adapter.name, adapter.dest) == ("adapter-sql", "/models/adapters/sql")
    assert parse_plan(json.dumps(plan_document([weights, adapter]))) == [weights, adapter]
    assert size_limit_bytes([weights, adapter]) == -(-(len(CONFIG) + 1) * 110 // 100)
    assert size_limit_bytes([PinnedArtifact("w", "s3://w/", "/m", (pin("a", b"0" * 1000),))]) \
        == 1100
