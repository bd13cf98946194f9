"""`registry show|pull|verify` on file-pinned artifacts (`artifact.files`), over S3 on 127.0.0.1.

The registry is written by the real program (run under the mock runtime) for a
manifest whose LLM pins its weights file by file; the weights themselves are
objects in a versioned training bucket on moto.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import main
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.registry_world import moto_s3, s3, versioned_bucket, write_registry

WEIGHTS_BUCKET = "llm-weights"
PREFIX = "llama/1.0.0/"
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}\n'
SHARD = bytes(range(256)) * 400
ADAPTED = b"the shard as first exported"
REF = "registry.example/vllm@sha256:" + "e" * 64


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass
class World:
    bucket: str
    pinned: str
    """The object version of `tokenizer.json` that the manifest pins (overwritten since)."""


def manifest(pinned: str) -> str:
    return f"""\
apiVersion: modelfleet/v1
models:
  - name: llama
    team: assistants
    version: 1.0.0
    stage: approved
    artifact:
      uri: s3://{WEIGHTS_BUCKET}/{PREFIX}
      files:
        - {{path: config.json, sha256: {sha(CONFIG)}, size: {len(CONFIG)}}}
        - {{path: model.safetensors, sha256: {sha(SHARD)}, size: {len(SHARD)}}}
        - {{path: tokenizer.json, sha256: {sha(ADAPTED)}, size: {len(ADAPTED)},
           versionId: "{pinned}"}}
    image: {{ref: "{REF}"}}
    serving: {{}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with moto_s3():
        versioned_bucket(WEIGHTS_BUCKET)
        client = s3()
        client.put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "config.json", Body=CONFIG)
        client.put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "model.safetensors", Body=SHARD)
        pinned = client.put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "tokenizer.json",
                                   Body=ADAPTED)["VersionId"]
        client.put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "tokenizer.json",
                          Body=b"a later tokenizer")
        client.put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "notes.txt", Body=b"not pinned")
        repo = GitRepo(tmp_path_factory.mktemp("project") / "repo")
        repo.write("models.yaml", manifest(pinned))
        repo.commit("llama pinned file by file")
        yield World(write_registry(deploy(repo.root / "models.yaml")), pinned)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_record_lists_every_pinned_file_with_its_size_and_version(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "registry", "show", "llama", "--bucket", world.bucket,
                       "--format", "json")
    assert code == 0
    artifact = json.loads(out)["artifact"]
    assert artifact["uri"] == f"s3://{WEIGHTS_BUCKET}/{PREFIX}"
    assert artifact["files"] == [
        {"key": "config.json", "sha256": sha(CONFIG), "size": len(CONFIG)},
        {"key": "model.safetensors", "sha256": sha(SHARD), "size": len(SHARD)},
        {"key": "tokenizer.json", "sha256": sha(ADAPTED), "size": len(ADAPTED),
         "versionId": world.pinned}]
    code, out, _ = run(capsys, "registry", "show", "llama", "--bucket", world.bucket)
    total = len(CONFIG) + len(SHARD) + len(ADAPTED)
    assert f"  files      3 pinned, 100.1 KiB ({total} bytes)" in out.splitlines()
    assert any(line.split() == ["model.safetensors", str(len(SHARD)), sha(SHARD)]
               for line in out.splitlines())
    assert f"versionId {world.pinned}" in out


def test_pull_fetches_exactly_the_pinned_files_verified(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "llama"
    code, out, err = run(capsys, "registry", "pull", "llama@1.0.0", str(folder),
                         "--bucket", world.bucket)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json"]  # notes.txt is not pinned
    assert (folder / "tokenizer.json").read_bytes() == ADAPTED  # the pinned version
    assert (folder / "model.safetensors").read_bytes() == SHARD
    assert out.splitlines()[-1] == "pulled llama@1.0.0: 3 file(s) from the artifact's prefix"
    assert f"{folder / 'model.safetensors'}  {len(SHARD)} bytes  {sha(SHARD)}  sha256 verified" \
        in out


def test_verify_checks_every_pinned_file_against_the_bucket(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "registry", "verify", "--bucket", world.bucket)
    assert (code, err) == (0, "")
    assert "llama@1.0.0: metadata and 3 object(s), sha256 verified" in out


def test_a_rewritten_weights_file_fails_pull_and_verify_and_pull_writes_nothing(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = SHARD[:-1] + b"\x00"
    s3().put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "model.safetensors", Body=tampered)
    try:
        mismatch = (f"llama@1.0.0: sha256 mismatch for s3://{WEIGHTS_BUCKET}/{PREFIX}"
                    f"model.safetensors: the registry pins {sha(SHARD)}, the object has "
                    f"{sha(tampered)}")
        code, out, err = run(capsys, "registry", "verify", "--bucket", world.bucket)
        assert code == 1
        assert f"error: {mismatch}" in err.splitlines()
        folder = tmp_path / "llama"
        code, out, err = run(capsys, "registry", "pull", "llama@1.0.0", str(folder),
                             "--bucket", world.bucket)
        assert (code, out) == (1, "")
        assert err.splitlines() == [f"error: {mismatch}",
                                    f"error: nothing was written to {folder}"]
        assert not folder.exists()
    finally:
        s3().put_object(Bucket=WEIGHTS_BUCKET, Key=PREFIX + "model.safetensors", Body=SHARD)
