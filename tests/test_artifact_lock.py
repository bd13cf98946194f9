"""`python -m modelfleet artifact lock MODEL [FILE]`: S3 prefixes pinned file by file, over moto.

Each test writes a small manifest, puts objects into moto's S3 on 127.0.0.1, runs
the command as a user would and checks what a reviewer checks: the files pinned
(path, sha256, size, versionId), the file changed inside that model only with its
comments kept, the printed diff, and that bad input leaves the file untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto.settings
import pytest
from boto3.s3.transfer import TransferConfig
from ruamel.yaml import YAML

from cli.main import main
from modelregistry.prefix import list_pinned, stored_sha256
from tests.registry_world import REGION, moto_s3

REF = "registry.example.com/llm/vllm@sha256:" + "7a" * 32
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}\n'
VOCAB = b'{"a": 0, "b": 1}\n'
SHARD = bytes(range(256)) * 300


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    with moto_s3() as env:
        yield env


def bucket(name: str, versioned: bool = True) -> str:
    client = boto3.client("s3")
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def put(where: str, key: str, body: bytes, checksum: bool = False) -> str | None:
    """Write an object (with S3's SHA-256 checksum when `checksum`); its version ID."""
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    answer: dict[str, Any] = boto3.client("s3").put_object(Bucket=where, Key=key, Body=body,
                                                           **extra)
    version = answer.get("VersionId")
    return str(version) if version and version != "null" else None


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def manifest(weights: str) -> str:
    return f"""\
# The assistants' fleet; reviewers read every change.
apiVersion: modelfleet/v1
models:
  - name: llama                # the assistant's LLM
    team: assistants
    version: 1.0.0             # the 2024-07-18 export
    artifact:
      uri: s3://{weights}/llama/1.0.0/   # Hugging Face format
    image: {{ref: "{REF}"}}
    serving:
      port: 8000
      candidates:
        - name: next           # tried on a tenth of the traffic
          version: 1.1.0
          artifact: {{uri: "s3://{weights}/llama/1.1.0/"}}
          weight: 10
  # ----
  - name: fraud                # untouched by a lock of llama
    team: risk
    version: 1.4.2
    artifact: {{uri: "s3://{weights}/fraud/model.joblib"}}
    image: {{ref: "{REF}"}}
    serving: {{}}
# end of the fleet
"""


def llama_objects(where: str) -> dict[str, str | None]:
    """A model and its next version; the version ID of each object, by key."""
    return {
        "llama/1.0.0/config.json": put(where, "llama/1.0.0/config.json", CONFIG, checksum=True),
        "llama/1.0.0/model.safetensors": put(where, "llama/1.0.0/model.safetensors", SHARD),
        "llama/1.0.0/tokenizer/vocab.json": put(where, "llama/1.0.0/tokenizer/vocab.json",
                                                VOCAB),
        "llama/1.1.0/model.safetensors": put(where, "llama/1.1.0/model.safetensors",
                                             SHARD[::-1]),
    }


def data(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return loaded


def lock(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["artifact", "lock", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_lock_pins_every_object_of_the_model_and_its_candidate(
        aws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = bucket("lock-weights")
    versions = llama_objects(weights)
    file = tmp_path / "models.yaml"
    before = manifest(weights)
    file.write_text(before)
    code, out, err = lock(capsys, "llama", str(file))
    assert code == 0, err
    llama = data(file)["models"][0]
    assert llama["artifact"]["files"] == [
        {"path": "config.json", "sha256": sha(CONFIG), "size": len(CONFIG),
         "versionId": versions["llama/1.0.0/config.json"]},
        {"path": "model.safetensors", "sha256": sha(SHARD), "size": len(SHARD),
         "versionId": versions["llama/1.0.0/model.safetensors"]},
        {"path": "tokenizer/vocab.json", "sha256": sha(VOCAB), "size": len(VOCAB),
         "versionId": versions["llama/1.0.0/tokenizer/vocab.json"]},
    ]
    candidate = llama["serving"]["candidates"][0]
    assert candidate["artifact"] == {
        "uri": f"s3://{weights}/llama/1.1.0/",
        "files": [{"path": "model.safetensors", "sha256": sha(SHARD[::-1]), "size": len(SHARD),
                   "versionId": versions["llama/1.1.0/model.safetensors"]}]}
    after = file.read_text()
    head, tail = before.split("  - name: llama")[0], before.split("  # ----")[1]
    assert after.startswith(head)
    assert after.endswith(tail)  # the other model and the end of the file, byte for byte
    assert f"      uri: s3://{weights}/llama/1.0.0/   # Hugging Face format\n      files:\n" \
           f"        - {{path: config.json, sha256: {sha(CONFIG)}, size: {len(CONFIG)}, " \
           f'versionId: "{versions["llama/1.0.0/config.json"]}"}}\n' in after
    assert "        - name: next           # tried on a tenth of the traffic\n" in after
    assert "locked model 'llama': artifact 3 file(s)" in out
    assert "candidate 'next' 1 file(s)" in out
    assert "llama" in out.split("locked model")[0]  # the manifest diff comes first
    assert "hashing" in err  # objects without a stored SHA-256 were streamed
    assert main(["validate", str(file)]) == 0


def test_a_stored_full_object_checksum_is_used_and_a_composite_one_is_not(
        aws: dict[str, str]) -> None:
    where = bucket("lock-checksums")
    put(where, "m/config.json", CONFIG, checksum=True)
    large = bytes(range(256)) * (24 << 12)  # 6 MiB: two parts of a multipart upload
    client = boto3.client("s3")
    client.upload_fileobj(io.BytesIO(large), where, "m/model.safetensors",
                          ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                          Config=TransferConfig(multipart_threshold=5 << 20,
                                                multipart_chunksize=5 << 20))
    head = client.head_object(Bucket=where, Key="m/model.safetensors", ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256")  # S3 has a checksum, but of the parts' checksums
    streamed: list[str] = []
    client.meta.events.register("provide-client-params.s3.GetObject",
                                lambda params, **_: streamed.append(params["Key"]))
    listed = list_pinned(client, f"s3://{where}/m/")
    assert [(f.path, f.sha256, f.size) for f in listed.files] == [
        ("config.json", sha(CONFIG), len(CONFIG)),
        ("model.safetensors", sha(large), len(large))]
    assert streamed == ["m/model.safetensors"]  # config.json's stored SHA-256 was used
    assert listed.hashed == ("model.safetensors",)


def test_only_a_full_object_sha256_checksum_counts_as_the_files_digest() -> None:
    value = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="  # sha256 of b"hello", base64
    assert stored_sha256({"ChecksumSHA256": value, "ChecksumType": "FULL_OBJECT",
                          "ETag": '"5d41"'}) == sha(b"hello")
    assert stored_sha256({"ChecksumSHA256": value + "-2", "ETag": '"ab-2"'}) is None
    assert stored_sha256({"ChecksumSHA256": value, "ChecksumType": "COMPOSITE"}) is None
    assert stored_sha256({"ChecksumCRC32": "NhCmhg=="}) is None


def test_an_unversioned_bucket_pins_no_version_ids(
        aws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = bucket("lock-plain", versioned=False)
    llama_objects(weights)
    file = tmp_path / "models.yaml"
    file.write_text(manifest(weights))
    code, _, err = lock(capsys, "llama", str(file))
    assert code == 0, err
    files = data(file)["models"][0]["artifact"]["files"]
    assert [sorted(f) for f in files] == [["path", "sha256", "size"]] * 3


def test_a_refresh_replaces_the_files_and_warns_of_new_content_under_the_same_version(
        aws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = bucket("lock-refresh", versioned=False)
    llama_objects(weights)
    file = tmp_path / "models.yaml"
    file.write_text(manifest(weights))
    assert lock(capsys, "llama", str(file))[0] == 0
    code, out, err = lock(capsys, "llama", str(file))
    assert code == 0
    assert out.startswith("no change:")
    retrained = SHARD[:-1] + b"\0"
    put(weights, "llama/1.0.0/model.safetensors", retrained)  # rewritten in place
    code, out, err = lock(capsys, "llama", str(file))
    assert code == 0
    assert "warning: model 'llama': the objects of artifact differ from its pinned files " \
           "(1 changed (model.safetensors)) while the version stays 1.0.0: a plan flags this " \
           "as artifact-mutated" in err
    assert f"    artifact.files.model.safetensors.sha256: {sha(SHARD)} → " \
           f"{sha(retrained)}" in out.splitlines()  # the diff names the one file
    files = data(file)["models"][0]["artifact"]["files"]
    assert files[1]["sha256"] == sha(retrained)
    assert file.read_text().count("files:") == 2  # replaced, not added again


def test_adapters_are_locked_as_written_in_the_yaml(
        aws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = bucket("lock-adapters", versioned=False)
    llama_objects(weights)
    put(weights, "adapters/sql/1.0.0/adapter_config.json", b'{"r": 16}')
    file = tmp_path / "models.yaml"
    text = manifest(weights).replace("          weight: 10\n", f"""\
          weight: 10
      adapters:                # LoRA adapters served by the same engine
        - name: sql
          version: 1.0.0
          artifact:
            uri: s3://{weights}/adapters/sql/1.0.0/
""")
    file.write_text(text)
    code, out, err = lock(capsys, "llama", str(file))
    assert code == 0, err
    assert "adapter 'sql' 1 file(s)" in out
    adapter = data(file)["models"][0]["serving"]["adapters"][0]
    assert adapter["artifact"]["files"] == [
        {"path": "adapter_config.json", "sha256": sha(b'{"r": 16}'), "size": 9}]
    assert "      adapters:                # LoRA adapters served by the same engine\n" in \
        file.read_text()


@pytest.mark.parametrize(("model", "prepare", "message"), [
    ("nobody", None, "error: model 'nobody' is not in {file} (models: llama, fraud)"),
    ("fraud", None, "error: model 'fraud' has no artifact whose uri is an S3 prefix (ending in "
                    "/)"),
    ("llama", "empty", "error: s3://{bucket}/llama/1.0.0/ holds no objects"),
    ("llama", "no-credentials", "error: no AWS credentials found"),
    ("llama", "denied", "error: access denied to s3://{bucket}/llama/1.0.0/config.json"),
])
def test_bad_input_is_one_line_and_leaves_the_file_untouched(
        aws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, model: str, prepare: str | None,
        message: str) -> None:
    weights = bucket(f"lock-bad-{prepare or model}")
    if prepare != "empty":
        llama_objects(weights)
    file = tmp_path / "models.yaml"
    file.write_text(manifest(weights))
    before = file.read_bytes()
    if prepare == "no-credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata
    if prepare == "denied":
        iam = boto3.client("iam")
        iam.create_user(UserName="weights-lister")
        iam.put_user_policy(UserName="weights-lister", PolicyName="list-only",
                            PolicyDocument=json.dumps({
                                "Version": "2012-10-17",
                                "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket",
                                               "Resource": "*"}]}))
        key = iam.create_access_key(UserName="weights-lister")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    code, out, err = lock(capsys, model, str(file))
    assert (code, out) == (1, "")
    lines = [line for line in err.splitlines() if not line.startswith("listing ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(message.format(file=file, bucket=weights))
    assert file.read_bytes() == before
