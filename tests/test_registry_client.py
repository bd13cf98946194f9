"""`python -m modelfleet registry ...` on a registry the program wrote, over S3 on 127.0.0.1."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pty
import stat
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import moto.settings
import pytest

from cli.main import main
from cli.registry import PROGRESS_FROM_BYTES
from modelfleet.release import layout
from modelregistry.client import RegistryClient, RegistryError
from tests.conftest import PROJECT
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.registry_world import moto_s3, s3, versioned_bucket, write_registry

TRAINING = "training-output"
FIRST_WEIGHTS = b"fraud weights, first training run"
SECOND_WEIGHTS = b"fraud weights, second training run (same key)"
REF = "registry.example/ranker@sha256:" + "f" * 64
LARGE_WEIGHTS = bytes(range(256)) * (PROGRESS_FROM_BYTES // 256 + 4096)


def manifest(pinned_version: str, churn: str) -> str:
    sha = hashlib.sha256(FIRST_WEIGHTS).hexdigest()
    return f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.4.2
    stage: approved
    artifact:
      uri: "s3://{TRAINING}/fraud/model.joblib"
      versionId: "{pinned_version}"
      sha256: "{sha}"
    image: {{ref: "{REF}"}}
    serving: {{}}
  - name: churn
    team: growth
    version: {churn}
    artifact: {{path: artifacts/churn}}
    image: {{ref: "{REF}"}}
    batch: {{}}
  - name: embedder
    team: search
    version: 0.9.0
    artifact: {{uri: "s3://{TRAINING}/embedder/weights.bin"}}
    image: {{ref: "{REF}"}}
    batch: {{}}
"""


@dataclass
class World:
    bucket: str
    pinned: str
    """The S3 version ID of the first of two objects under one key."""
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two deployments of a stack (churn 2.1.0, then 2.2.0), written to S3 as the stack would."""
    with moto_s3() as env:
        versioned_bucket(TRAINING)
        pinned = s3().put_object(Bucket=TRAINING, Key="fraud/model.joblib",
                                 Body=FIRST_WEIGHTS)["VersionId"]
        s3().put_object(Bucket=TRAINING, Key="fraud/model.joblib", Body=SECOND_WEIGHTS)
        s3().put_object(Bucket=TRAINING, Key="embedder/weights.bin", Body=LARGE_WEIGHTS)
        repo = GitRepo(tmp_path_factory.mktemp("project") / "repo")
        repo.write("artifacts/churn/model.joblib", "churn weights 2.1.0")
        repo.write("artifacts/churn/config/features.json", '["tenure", "plan"]')
        repo.write("models.yaml", manifest(pinned, "2.1.0"))
        repo.commit("fraud pinned, churn 2.1.0")
        first = deploy(repo.root / "models.yaml")
        bucket = write_registry(first)
        repo.write("artifacts/churn/model.joblib", "churn weights 2.2.0")
        repo.write("models.yaml", manifest(pinned, "2.2.0"))
        repo.commit("churn 2.2.0")
        assert write_registry(deploy(repo.root / "models.yaml",
                                     previous=first.outputs)) == bucket
        yield World(bucket, pinned, env)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_version_and_the_current_one(world: World,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "registry", "list", "--bucket", world.bucket)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"Registry s3://{world.bucket} (index.json of stack dev, environment dev)",
        "MODEL     VERSIONS      CURRENT",
        "churn     2.1.0, 2.2.0  2.2.0",
        "embedder  0.9.0         0.9.0",
        "fraud     1.4.2         1.4.2",
    ]
    code, out, _ = run(capsys, "registry", "list", "--bucket", world.bucket, "--format", "json")
    listed = json.loads(out)
    assert listed["stack"] == "dev"
    assert listed["models"] == [
        {"name": "churn", "versions": ["2.1.0", "2.2.0"], "current": "2.2.0", "candidates": []},
        {"name": "embedder", "versions": ["0.9.0"], "current": "0.9.0", "candidates": []},
        {"name": "fraud", "versions": ["1.4.2"], "current": "1.4.2", "candidates": []}]


def test_show_prints_the_record_of_the_current_or_a_given_version(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "registry", "show", "fraud", "--bucket", world.bucket,
                       "--format", "json")
    assert code == 0
    record = json.loads(out)
    assert record["artifact"]["uri"] == f"s3://{TRAINING}/fraud/model.joblib"
    assert record["artifact"]["versionId"] == world.pinned
    code, out, _ = run(capsys, "registry", "show", "churn@2.1.0", "--bucket", world.bucket)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "churn 2.1.0 (team growth, stage candidate, environment dev)"
    assert f"  metadata   s3://{world.bucket}/models/churn/2.1.0/metadata.json" in lines
    assert f"  artifact   s3://{world.bucket}/models/churn/2.1.0/artifact/" in lines
    digest = hashlib.sha256(b"churn weights 2.1.0").hexdigest()
    assert f"    model.joblib  {digest}" in lines


@pytest.mark.parametrize(("reference", "message"), [
    ("nobody", "error: no model 'nobody' in s3://{bucket}"),
    ("churn@9.9.9", "error: model 'churn' has no version 9.9.9 in s3://{bucket}; it has "
                    "2.1.0, 2.2.0"),
])
def test_an_unknown_model_or_version_is_one_line(world: World, reference: str, message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "registry", "show", reference, "--bucket", world.bucket)
    assert (code, out) == (1, "")
    assert err.splitlines() == [message.format(bucket=world.bucket)]


def test_pull_reads_the_pinned_object_version_not_the_latest(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "registry", "pull", "fraud@1.4.2", str(tmp_path),
                         "--bucket", world.bucket)
    assert code == 0, err
    assert (tmp_path / "model.joblib").read_bytes() == FIRST_WEIGHTS
    assert out.splitlines()[0].endswith("sha256 verified")
    assert f"?versionId={world.pinned}" in out.splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib"]


def test_pull_of_an_uploaded_folder_verifies_every_file(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "registry", "pull", "churn@2.2.0", str(tmp_path / "churn"),
                       "--bucket", world.bucket, "--format", "json")
    assert code == 0
    pulled = {Path(f["path"]).relative_to(tmp_path / "churn").as_posix(): f
              for f in json.loads(out)}
    assert sorted(pulled) == ["config/features.json", "model.joblib"]
    assert all(f["verified"] for f in pulled.values())
    assert (tmp_path / "churn/model.joblib").read_text() == "churn weights 2.2.0"


def test_a_large_pull_shows_progress_on_a_terminal_only(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-m", "modelfleet", "registry", "pull", "embedder@0.9.0",
               str(tmp_path / "tty"), "--bucket", world.bucket]
    controller, terminal = pty.openpty()  # stderr is a terminal; stdout is not
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    shown = b""
    try:
        process = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, **world.env},
                                   stdout=subprocess.DEVNULL, stderr=terminal)
        os.close(terminal)
        try:
            with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
                while chunk := os.read(controller, 65536):
                    shown += chunk
        finally:
            code = process.wait(timeout=120)
    finally:
        os.close(controller)
    assert code == 0, shown
    assert b"weights.bin:" in shown, shown
    assert b"%|" in shown, shown
    assert (tmp_path / "tty/weights.bin").read_bytes() == LARGE_WEIGHTS
    code, out, err = run(capsys, "registry", "pull", "embedder@0.9.0", str(tmp_path / "pipe"),
                         "--bucket", world.bucket)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].endswith("no sha256 recorded")


def test_a_sha256_mismatch_fails_pull_and_verify_and_leaves_no_file(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = layout.artifact_prefix("churn", "2.1.0") + "model.joblib"
    original = s3().get_object(Bucket=world.bucket, Key=key)["Body"].read()
    s3().put_object(Bucket=world.bucket, Key=key, Body=b"tampered weights")
    try:
        code, _, err = run(capsys, "registry", "pull", "churn@2.1.0", str(tmp_path),
                             "--bucket", world.bucket)
        assert code == 1
        (line,) = err.splitlines()
        assert line.startswith(f"error: sha256 mismatch for s3://{world.bucket}/{key}: the "
                               f"registry records {hashlib.sha256(original).hexdigest()}")
        assert not (tmp_path / "model.joblib").exists()
        assert not [p for p in tmp_path.rglob("*") if p.is_file() and "partial" in p.name]
        code, _, _ = run(capsys, "registry", "verify", "--bucket", world.bucket)
        # churn 2.1.0 is no longer current: verify checks what the index names.
        assert code == 0
        s3().put_object(Bucket=world.bucket, Key=layout.artifact_prefix("churn", "2.2.0")
                        + "model.joblib", Body=b"tampered weights")
        code, _, err = run(capsys, "registry", "verify", "--bucket", world.bucket)
        assert code == 1
        assert err.splitlines()[0].startswith(
            f"error: churn@2.2.0: sha256 mismatch for s3://{world.bucket}/models/churn/2.2.0/"
            "artifact/model.joblib")
        assert err.splitlines()[-1] == f"1 problem in s3://{world.bucket}"
    finally:
        s3().put_object(Bucket=world.bucket, Key=key, Body=original)
        s3().put_object(Bucket=world.bucket, Key=layout.artifact_prefix("churn", "2.2.0")
                        + "model.joblib", Body=b"churn weights 2.2.0")


def test_verify_checks_every_current_version(world: World,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "registry", "verify", "--bucket", world.bucket)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "fraud@1.4.2: metadata and 1 object(s), sha256 verified",
        "churn@2.2.0: metadata and 2 object(s), sha256 verified",
        "embedder@0.9.0: metadata and 1 object(s), sha256 verified",
        f"s3://{world.bucket}: 3 model version(s) verified"]


CHALLENGER_WEIGHTS = b"fraud weights, the challenger"
SOURCES = "candidate-sources"


def test_candidates_are_listed_and_verified_beside_the_current_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stable_sha = hashlib.sha256(FIRST_WEIGHTS).hexdigest()
    challenger_sha = hashlib.sha256(CHALLENGER_WEIGHTS).hexdigest()
    # moto's servers share one state per process: a bucket and stack of its own
    with moto_s3():
        versioned_bucket(SOURCES)
        s3().put_object(Bucket=SOURCES, Key="fraud/1.4.2.joblib", Body=FIRST_WEIGHTS)
        s3().put_object(Bucket=SOURCES, Key="fraud/1.5.0.joblib", Body=CHALLENGER_WEIGHTS)
        repo = GitRepo(tmp_path / "repo")
        repo.write("models.yaml", f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.4.2
    artifact: {{uri: "s3://{SOURCES}/fraud/1.4.2.joblib", sha256: "{stable_sha}"}}
    image: {{ref: "{REF}"}}
    serving:
      candidates:
        - name: challenger
          version: 1.5.0
          artifact: {{uri: "s3://{SOURCES}/fraud/1.5.0.joblib", sha256: "{challenger_sha}"}}
          weight: 10
""")
        repo.commit("fraud with a challenger")
        bucket = write_registry(deploy(repo.root / "models.yaml", stack="canary", config={
            "modelfleet:gateway": "gateway-system/models"}))
        index = json.loads(s3().get_object(Bucket=bucket, Key=layout.INDEX_KEY)["Body"].read())
        assert index["models"][0]["candidates"] == [
            {"name": "challenger", "version": "1.5.0",
             "metadata": layout.metadata_key("fraud", "1.5.0")}]
        listed = run(capsys, "registry", "list", "--bucket", bucket)
        verified = run(capsys, "registry", "verify", "--bucket", bucket)
        s3().put_object(Bucket=SOURCES, Key="fraud/1.5.0.joblib", Body=b"retrained in place")
        tampered = run(capsys, "registry", "verify", "--bucket", bucket)
    assert listed[0] == 0
    assert listed[1].splitlines()[1:] == [
        "MODEL  VERSIONS      CURRENT  CANDIDATES",
        "fraud  1.4.2, 1.5.0  1.4.2    1.5.0 (challenger)"]
    assert verified[0] == 0
    assert verified[1].splitlines() == [
        "fraud@1.4.2: metadata and 1 object(s), sha256 verified",
        "fraud@1.5.0: metadata and 1 object(s), sha256 verified",
        f"s3://{bucket}: 2 model version(s) verified"]
    assert tampered[0] == 1
    assert tampered[2].splitlines()[0].startswith("error: fraud@1.5.0: sha256 mismatch")


def test_verify_and_pull_find_a_missing_object(world: World, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    key = layout.artifact_prefix("churn", "2.2.0") + "config/features.json"
    original = s3().get_object(Bucket=world.bucket, Key=key)["Body"].read()
    s3().delete_object(Bucket=world.bucket, Key=key)
    try:
        code, _, err = run(capsys, "registry", "verify", "--bucket", world.bucket)
        pulled = run(capsys, "registry", "pull", "churn@2.2.0", str(tmp_path / "churn"),
                     "--bucket", world.bucket)
    finally:
        s3().put_object(Bucket=world.bucket, Key=key, Body=original)
    assert code == 1
    assert err.splitlines()[0] == f"error: churn@2.2.0: s3://{world.bucket}/{key} is missing"
    assert pulled == (1, "", f"error: the artifact of churn@2.2.0 is incomplete: "
                             f"s3://{world.bucket}/{key} is missing (1 file(s) in all)\n")
    assert list(tmp_path.iterdir()) == [], "a failed pull leaves no empty folder it made"


def test_a_missing_bucket_is_one_line_without_a_traceback(world: World) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelfleet", "registry", "list", "--bucket", "no-such-bucket"],
        cwd=PROJECT, env={**os.environ, **world.env}, capture_output=True, text=True,
        timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("error: bucket 'no-such-bucket' does not exist (or is in another "
                           "account)\n")


def test_access_denied_is_one_line(world: World, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An identity that may list the bucket but not read objects, with moto enforcing IAM."""
    import boto3

    iam = boto3.client("iam")
    iam.create_user(UserName="lister")
    iam.put_user_policy(UserName="lister", PolicyName="list-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket",
                                                 "Resource": "*"}]}))
    key = iam.create_access_key(UserName="lister")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    code, out, err = run(capsys, "registry", "show", "fraud", "--bucket", world.bucket)
    assert (code, out) == (1, "")
    assert err == (f"error: access denied to s3://{world.bucket}/index.json: the AWS identity "
                   "in use may not read it (check AWS_PROFILE and its policies)\n")


def test_the_bucket_comes_from_the_stacks_outputs_through_the_pulumi_cli(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A `pulumi` on PATH that answers `stack output --json` as the CLI does."""
    cli = tmp_path / "bin/pulumi"
    cli.parent.mkdir()
    outputs = json.dumps({"registry": {"bucket": world.bucket, "keyArn": "arn:aws:kms:..."}})
    cli.write_text(f"#!/bin/sh\n[ \"$*\" = \"stack output --json --stack dev\" ] || "
                   f"{{ echo 'error: no stack named '$5' found' >&2; exit 255; }}\n"
                   f"echo '{outputs}'\n")
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{cli.parent}{os.pathsep}{os.environ['PATH']}")
    code, out, _ = run(capsys, "registry", "list", "--stack", "dev", "--format", "json")
    assert code == 0
    assert json.loads(out)["bucket"] == world.bucket
    code, out, err = run(capsys, "registry", "list", "--stack", "qa")
    assert code == 1
    assert err == ("error: `pulumi stack output --json --stack qa` failed (error: no stack "
                   "named qa found); log in with `pulumi login`, or give --bucket BUCKET\n")


def test_without_the_pulumi_cli_the_command_says_to_give_a_bucket(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = run(capsys, "registry", "list", "--stack", "dev")
    assert (code, out) == (1, "")
    assert err == ("error: without --bucket, the bucket is read from the outputs of stack "
                   "'dev' by the Pulumi CLI, which is not installed; give --bucket BUCKET\n")
    code, out, err = run(capsys, "registry", "list")
    assert (code, out) == (1, "")
    assert err == ("error: without --bucket, the bucket is read from the outputs of the "
                   "selected stack by the Pulumi CLI, which is not installed; give --bucket "
                   "BUCKET\n")


def test_the_client_api_gives_typed_results(world: World) -> None:
    client = RegistryClient(world.bucket)
    (churn, _, fraud) = client.models()
    assert (churn.name, churn.versions, churn.current) == ("churn", ("2.1.0", "2.2.0"), "2.2.0")
    assert client.show("fraud").version_id == world.pinned
    with pytest.raises(RegistryError, match="no model 'nobody'"):
        client.show("nobody", "1.0.0")
    assert fraud.stack == "dev"


def test_an_unknown_aws_profile_is_one_line(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    code, out, err = run(capsys, "registry", "list", "--bucket", "any-bucket")
    assert (code, out) == (1, "")
    assert err == "error: AWS configuration: The config profile (nobody) could not be found\n"


def test_verify_finds_a_pinned_object_version_that_is_gone(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Last in this file: an S3 object version, once deleted, cannot be put back."""
    s3().delete_object(Bucket=TRAINING, Key="fraud/model.joblib", VersionId=world.pinned)
    code, _, err = run(capsys, "registry", "verify", "--bucket", world.bucket)
    assert code == 1
    assert err.splitlines()[0] == (
        f"error: fraud@1.4.2: s3://{TRAINING}/fraud/model.joblib (object version "
        f"{world.pinned}) does not exist: the pinned object version is gone or was never in "
        "this bucket")
