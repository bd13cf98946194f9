"""Worker and job modes against S3 and SQS served by moto on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from modelserver import storage
from modelserver.batch import QueueWorker, full_jitter
from modelserver.metrics import Metrics
from modelserver.models import load_predictor
from modelserver.settings import Settings
from moto.server import ThreadedMotoServer

from tests.modelserver_support import (
    SlowEstimator,
    call,
    free_port,
    save_model,
    server_env,
    server_process,
    trained_model,
    wait_until,
)

BUCKET = "registry"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto server for S3 and SQS, and the environment that points boto3 at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_REGION": REGION}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env
    server.stop()


@pytest.fixture
def model() -> Any:
    return trained_model()


@pytest.fixture
def world(aws: dict[str, str], request: pytest.FixtureRequest,
          tmp_path: Path) -> dict[str, Any]:
    """A fresh bucket and a queue with a dead-letter queue (redrive after 2 receives)."""
    suffix = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[-40:].strip("-")
    s3 = boto3.client("s3")
    sqs = boto3.client("sqs")
    bucket = f"{BUCKET}-{suffix}"[:63].strip("-")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    dead = sqs.create_queue(QueueName=f"{suffix}-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=suffix, Attributes={
        "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "2"})},
    )["QueueUrl"]
    return {"s3": s3, "sqs": sqs, "bucket": bucket, "queue": queue, "dead": dead,
            "cache": tmp_path / "cache"}


def upload_model(world: dict[str, Any], estimator: Any, tmp_path: Path) -> str:
    path = save_model(estimator, tmp_path / "model")
    world["s3"].upload_file(str(path), world["bucket"], "models/churn/1.2.0/artifact/model.joblib")
    return f"s3://{world['bucket']}/models/churn/1.2.0/artifact/"


def put_rows(world: dict[str, Any], key: str, rows: np.ndarray, fmt: str = "jsonl") -> str:
    if fmt == "csv":
        body = "a,b,c,d\n" + "\n".join(",".join(str(v) for v in row) for row in rows)
    else:
        body = "\n".join(json.dumps({"id": f"{key}:{i}", "features": row.tolist()})
                         for i, row in enumerate(rows))
    world["s3"].put_object(Bucket=world["bucket"], Key=key, Body=body.encode())
    return f"s3://{world['bucket']}/{key}"


def worker(world: dict[str, Any], aws: dict[str, str], model_uri: str,
           **extra: str) -> subprocess.Popen[str]:
    env = server_env(model_uri, free_port(), MODEL_MODE="worker", QUEUE_URL=world["queue"],
                     OUTPUT_URI=f"s3://{world['bucket']}/outputs/churn/", POLL_SECONDS="1",
                     VISIBILITY_TIMEOUT_SECONDS="30", MODEL_CACHE_DIR=str(world["cache"]),
                     **aws, **extra)
    return subprocess.Popen([sys.executable, "-m", "modelserver"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outputs(world: dict[str, Any], prefix: str = "outputs/churn/") -> dict[str, list[Any]]:
    listed = world["s3"].list_objects_v2(Bucket=world["bucket"], Prefix=prefix)
    return {item["Key"]: [json.loads(line) for line in world["s3"].get_object(
        Bucket=world["bucket"], Key=item["Key"])["Body"].read().decode().splitlines() if line]
        for item in listed.get("Contents", [])}


def depth(world: dict[str, Any], queue: str) -> int:
    attributes = world["sqs"].get_queue_attributes(
        QueueUrl=world[queue], AttributeNames=["ApproximateNumberOfMessages",
                                               "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    return code, process.stderr.read() if process.stderr else ""


def test_a_queue_of_messages_is_processed_exactly_once_into_outputs(
        world: dict[str, Any], aws: dict[str, str], model: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inputs = {f"inputs/churn/day-{i}.jsonl": rng.normal(size=(7, 4)) for i in range(3)}
    inputs["inputs/churn/export.csv"] = rng.normal(size=(5, 4))
    for key, rows in inputs.items():
        uri = put_rows(world, key, rows, "csv" if key.endswith(".csv") else "jsonl")
        world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"input": uri}))
    process = worker(world, aws, upload_model(world, model, tmp_path))
    wait_until(lambda: len(outputs(world)) == 4 and depth(world, "queue") == 0, timeout=60)
    code, log = stop(process)
    assert code == 0, log
    written = outputs(world)
    assert len(written) == 4, "one output per input, no duplicates"
    for key, rows in inputs.items():
        stem = Path(key).stem
        (output_key,) = [k for k in written if Path(k).name.startswith(f"{stem}-")]
        predictions = [line["predict"] for line in written[output_key]]
        assert predictions == model.predict(rows).tolist()
    assert depth(world, "dead") == 0
    assert log.count("rows from s3://") == 4, "each message processed once"


def test_a_retried_message_overwrites_its_output(world: dict[str, Any], aws: dict[str, str],
                                                 model: Any, tmp_path: Path) -> None:
    uri = put_rows(world, "inputs/churn/again.jsonl", np.ones((3, 4)))
    for _ in range(2):  # the same input delivered twice, as after a lost delete
        world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"input": uri}))
    process = worker(world, aws, upload_model(world, model, tmp_path))
    wait_until(lambda: depth(world, "queue") == 0, timeout=60)
    stop(process)
    assert len(outputs(world)) == 1


def test_a_poisoned_message_ends_in_the_dead_letter_queue(
        world: dict[str, Any], aws: dict[str, str], model: Any, tmp_path: Path) -> None:
    good = put_rows(world, "inputs/churn/good.jsonl", np.zeros((2, 4)))
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody="{this is not json")
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps(
        {"input": f"s3://{world['bucket']}/inputs/churn/missing.jsonl"}))
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"input": good}))
    process = worker(world, aws, upload_model(world, model, tmp_path), RETRY_BASE_SECONDS="1")
    wait_until(lambda: depth(world, "dead") == 2 and depth(world, "queue") == 0, timeout=90)
    code, log = stop(process)
    assert code == 0
    assert list(outputs(world)) == [k for k in outputs(world) if "good-" in k]
    dead = world["sqs"].receive_message(QueueUrl=world["dead"], MaxNumberOfMessages=10)
    bodies = sorted(m["Body"] for m in dead["Messages"])
    assert bodies[1] == "{this is not json"
    assert "missing.jsonl" in bodies[0]
    assert "message is not JSON" in log


def test_sigterm_mid_batch_loses_nothing(world: dict[str, Any], aws: dict[str, str],
                                         model: Any, tmp_path: Path) -> None:
    uris = [put_rows(world, f"inputs/churn/slow-{i}.jsonl", np.ones((4, 4)) * i)
            for i in range(4)]
    for uri in uris:
        world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"input": uri}))
    process = worker(world, aws, upload_model(world, SlowEstimator(model, 2.0), tmp_path),
                     BATCH_SIZE="2")
    wait_until(lambda: world["sqs"].get_queue_attributes(
        QueueUrl=world["queue"], AttributeNames=["ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1", timeout=60)
    code, log = stop(process)  # while the first message's first batch is being predicted
    assert code == 0, log
    done = outputs(world)
    assert len(done) >= 1, "the message in hand is finished"
    assert all(len(lines) == 4 for lines in done.values()), "outputs are never partial"
    remaining = world["sqs"].get_queue_attributes(
        QueueUrl=world["queue"], AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"]
    assert len(done) + int(remaining) == len(uris), "every message is done or still queued"


def test_job_partitions_cover_the_input_once_and_a_rerun_skips(
        world: dict[str, Any], aws: dict[str, str], model: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(5):
        put_rows(world, f"exports/2026-10/part-{i}.jsonl", rng.normal(size=(3, 4)))
    model_uri = upload_model(world, model, tmp_path)
    common = {"MODEL_MODE": "job", "INPUT_URI": f"s3://{world['bucket']}/exports/2026-10/",
              "PARTITIONS": "2", "OUTPUT_URI": f"s3://{world['bucket']}/outputs/churn/backfill/",
              **aws}
    for index in ("0", "1"):
        env = server_env(model_uri, free_port(), JOB_COMPLETION_INDEX=index, **common)
        result = subprocess.run([sys.executable, "-m", "modelserver"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
    written = outputs(world, "outputs/churn/backfill/part-")
    assert sorted(Path(k).name for k in written) == ["part-00000.jsonl", "part-00001.jsonl"]
    ids = [line["id"] for lines in written.values() for line in lines]
    assert len(ids) == 15
    assert len(set(ids)) == 15, "every row exactly once"
    env = server_env(model_uri, free_port(), JOB_COMPLETION_INDEX="0", **common)
    again = subprocess.run([sys.executable, "-m", "modelserver"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0
    assert "partition 0 of 2 is already done" in again.stderr


def test_a_pinned_object_version_is_the_one_read(world: dict[str, Any], aws: dict[str, str],
                                                 model: Any, tmp_path: Path) -> None:
    """Two versions of one key in a versioned bucket: MODEL_OBJECT_VERSION picks the old one."""
    s3, bucket = world["s3"], world["bucket"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "training/churn/model.joblib"
    x = np.random.default_rng(0).normal(size=(200, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    flipped = type(model)().fit(x, 1 - y)  # predicts the opposite class
    first = s3.put_object(Bucket=bucket, Key=key, Body=save_model(
        model, tmp_path / "first").read_bytes())["VersionId"]
    s3.put_object(Bucket=bucket, Key=key, Body=save_model(
        flipped, tmp_path / "second").read_bytes())
    rows = np.random.default_rng(5).normal(size=(6, 4))
    put_rows(world, "exports/pinned.jsonl", rows)

    def predictions(run: str, **pin: str) -> list[Any]:
        env = server_env(f"s3://{bucket}/{key}", free_port(), MODEL_MODE="job",
                         INPUT_URI=f"s3://{bucket}/exports/pinned.jsonl", PARTITIONS="1",
                         OUTPUT_URI=f"s3://{bucket}/outputs/churn/{run}/",
                         MODEL_CACHE_DIR=str(tmp_path / f"cache-{run}"), **aws, **pin)
        result = subprocess.run([sys.executable, "-m", "modelserver"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        (lines,) = outputs(world, f"outputs/churn/{run}/part-").values()
        return [line["predict"] for line in lines]

    assert model.predict(rows).tolist() != flipped.predict(rows).tolist()
    assert predictions("pinned", MODEL_OBJECT_VERSION=first) == model.predict(rows).tolist()
    assert predictions("latest") == flipped.predict(rows).tolist()

    port = free_port()  # and the online server, from the same pin
    env = server_env(f"s3://{bucket}/{key}", port, MODEL_OBJECT_VERSION=first,
                     MODEL_CACHE_DIR=str(tmp_path / "cache-serve"), **aws)
    with server_process(env):
        answer = call(f"http://127.0.0.1:{port}/v2/models/churn/infer", {"inputs": [
            {"name": "input-0", "shape": [6, 4], "datatype": "FP64", "data": rows.tolist()}]})
    served = {o["name"]: o["data"] for o in answer.body["outputs"]}
    assert served["predict"] == model.predict(rows).tolist()


def test_an_unknown_object_version_stops_the_server_with_one_line(
        world: dict[str, Any], aws: dict[str, str], model: Any, tmp_path: Path) -> None:
    bucket = world["bucket"]
    world["s3"].put_bucket_versioning(Bucket=bucket,
                                      VersioningConfiguration={"Status": "Enabled"})
    world["s3"].put_object(Bucket=bucket, Key="training/m.joblib",
                           Body=save_model(model, tmp_path).read_bytes())
    env = server_env(f"s3://{bucket}/training/m.joblib", free_port(),
                     MODEL_OBJECT_VERSION="no-such-version",
                     MODEL_CACHE_DIR=str(tmp_path / "cache"), **aws)
    result = subprocess.run([sys.executable, "-m", "modelserver"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"cannot download s3://{bucket}/training/m.joblib (object version "
            "no-such-version)") in result.stderr


@pytest.fixture
def in_process(world: dict[str, Any], model: Any,
               tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A QueueWorker in this process, on the world's queue, with a recording SQS client.

    `requested` collects every ChangeMessageVisibility the worker asks SQS for; the draw of
    the backoff's jitter is its ceiling (`uniform` returns `high`), so each request is exact.
    """
    storage.s3.cache_clear()  # boto3 clients made for another moto server must not be reused
    client = boto3.client("sqs")
    requested: list[dict[str, Any]] = []
    client.meta.events.register("provide-client-params.sqs.ChangeMessageVisibility",
                                lambda params, **_: requested.append(dict(params)))
    settings = Settings(model_name="churn", model_version="1.2.0", model_uri="unused",
                        mode="worker", queue_url=world["queue"],
                        output_uri=f"s3://{world['bucket']}/outputs/churn/",
                        visibility_timeout_seconds=30, retry_base_seconds=4, poll_seconds=0)
    predictor = load_predictor(str(save_model(model, tmp_path / "model")), tmp_path / "cache")
    metrics = Metrics()
    queue_worker = QueueWorker(settings, predictor, metrics, threading.Event(), client=client,
                               uniform=lambda low, high: high)
    yield {"worker": queue_worker, "requested": requested, "metrics": metrics}
    storage.s3.cache_clear()


def deliver(world: dict[str, Any], queue: str) -> dict[str, Any]:
    """The queue's next message, as the worker receives it: with its ApproximateReceiveCount."""
    (message,) = world["sqs"].receive_message(
        QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=0,
        AttributeNames=["ApproximateReceiveCount"])["Messages"]
    return dict(message)


def hidden(world: dict[str, Any], queue: str) -> bool:
    """True when the queue's one message is in flight: nothing can receive it now."""
    received = world["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=1,
                                            WaitTimeSeconds=0)
    counts = world["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return not received.get("Messages") and counts == {
        "ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "1"}


def time_passes(world: dict[str, Any], queue: str, message: dict[str, Any]) -> None:
    """The backoff elapses: the message is visible again (as SQS would make it, later)."""
    world["sqs"].change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"],
                                           VisibilityTimeout=0)


def test_a_failing_message_is_hidden_for_a_backoff_that_doubles_up_to_the_visibility_timeout(
        world: dict[str, Any], in_process: dict[str, Any]) -> None:
    """On a queue without a dead-letter queue, delivery after delivery of a message whose
    input is missing: never handed straight back, its ceiling doubles from
    RETRY_BASE_SECONDS (4) per delivery, and the queue's visibility timeout (30) caps it."""
    queue = world["sqs"].create_queue(QueueName=f"{world['bucket'][-30:]}-no-dlq",
                                      Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    in_process["worker"].settings = Settings(**{
        **in_process["worker"].settings.__dict__, "queue_url": queue})
    world["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps(
        {"input": f"s3://{world['bucket']}/inputs/churn/not-yet-there.jsonl"}))
    receives = []
    for _ in range(6):
        message = deliver(world, queue)
        receives.append(int(message["Attributes"]["ApproximateReceiveCount"]))
        assert in_process["worker"].handle(message) is False
        assert hidden(world, queue), f"delivery {receives[-1]} was handed straight back"
        time_passes(world, queue, message)
    assert receives == [1, 2, 3, 4, 5, 6]
    assert [r["VisibilityTimeout"] for r in in_process["requested"]] == [4, 8, 16, 30, 30, 30]
    assert all(r["QueueUrl"] == queue for r in in_process["requested"])
    failed = in_process["metrics"].messages.labels("churn", "failed")._value.get()
    assert failed == 6


def test_full_jitter_draws_between_zero_and_the_capped_ceiling() -> None:
    assert full_jitter(1, 10, 900, lambda low, high: low) == 0
    assert full_jitter(1, 10, 900, lambda low, high: high) == 10
    assert full_jitter(4, 10, 900, lambda low, high: high) == 80
    assert full_jitter(10_000, 10, 900, lambda low, high: high) == 900, "no overflow, capped"
    assert full_jitter(3, 10, 86_400, lambda low, high: 1e9) == 40, "never above the ceiling"
    assert full_jitter(30, 10, 86_400, lambda low, high: high) == 43_200, "SQS's 12 hours"
    draws = [full_jitter(5, 10, 900, random.Random(seed).uniform) for seed in range(200)]
    assert all(0 <= d <= 160 for d in draws)
    assert min(draws) < 40, "full jitter reaches down towards 0"
    assert max(draws) > 120, "and up towards the ceiling, 160"


@pytest.mark.parametrize("body", [
    "{path}", "file://{path}", '{{"input": "{path}"}}', '{{"input": "file://{path}"}}',
    "{{this is not json", '["s3://bucket/key"]', '{{"inputs": "s3://bucket/key"}}',
    "s3://{bucket}/inputs/churn/rows.jsonl", '{{"input": "s3://{bucket}/inputs/churn/"}}'],
    ids=["local-path", "file-uri", "job-naming-a-path", "job-naming-a-file-uri", "not-json",
         "json-list", "no-input-key", "bare-s3-uri", "job-naming-a-prefix"])
def test_a_body_that_is_not_a_json_job_is_rejected_and_never_read_as_a_file(
        world: dict[str, Any], in_process: dict[str, Any], tmp_path: Path, body: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Bodies naming a readable rows file on the worker's own disk, or nothing usable: each
    is rejected (logged as such), predicts nothing, and reaches the dead-letter queue by its
    receives (the world's redrive policy: after 2)."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "features": [1, 2, 3, 4]}) + "\n")
    put_rows(world, "inputs/churn/rows.jsonl", np.ones((1, 4)))
    world["sqs"].send_message(QueueUrl=world["queue"],
                              MessageBody=body.format(path=rows, bucket=world["bucket"]))
    with caplog.at_level(logging.ERROR, logger="modelserver"):
        for _ in range(2):
            message = deliver(world, world["queue"])
            assert in_process["worker"].handle(message) is False
            assert hidden(world, world["queue"])
            time_passes(world, world["queue"], message)
    assert outputs(world) == {}, "nothing was predicted"
    assert not world["sqs"].receive_message(QueueUrl=world["queue"], WaitTimeSeconds=0).get(
        "Messages"), "the third receive moved it to the dead-letter queue"
    assert depth(world, "dead") == 1
    rejections = [r.getMessage() for r in caplog.records
                  if r.name == "modelserver" and "rejected" in r.getMessage()]
    assert len(rejections) == 2
    assert any(reason in rejections[0] for reason in (
        "is not JSON", "is not a JSON job", "is not an S3 object", "names a prefix"))
    assert in_process["metrics"].messages.labels("churn", "rejected")._value.get() == 2
    assert [r["VisibilityTimeout"] for r in in_process["requested"]] == [4, 8]


def test_a_message_received_as_the_worker_stops_is_worked_on_not_handed_back(
        world: dict[str, Any], in_process: dict[str, Any]) -> None:
    """SIGTERM during the long poll: the message that poll returns already counts one
    receive; handing it back would spend that try (maxReceiveCount) for nothing."""
    uri = put_rows(world, "inputs/churn/late.jsonl", np.ones((3, 4)))
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"input": uri}))
    queue_worker = in_process["worker"]
    queue_worker.client.meta.events.register(
        "after-call.sqs.ReceiveMessage", lambda **_: queue_worker.stop.set())
    queue_worker.run()  # one receive, during which the stop comes; then it returns
    assert queue_worker.stop.is_set()
    assert [len(lines) for lines in outputs(world).values()] == [3]
    assert depth(world, "queue") == 0, "done and deleted"
    assert in_process["requested"] == [], "never handed back"


def test_rows_the_model_cannot_take_are_a_rejected_message_not_a_failure(
        world: dict[str, Any], in_process: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    uri = put_rows(world, "inputs/churn/three-features.jsonl", np.ones((2, 3)))
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=json.dumps({"input": uri}))
    with caplog.at_level(logging.ERROR, logger="modelserver"):
        assert in_process["worker"].handle(deliver(world, world["queue"])) is False
    assert hidden(world, world["queue"])
    assert outputs(world) == {}
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "modelserver"]
    assert "rejected (delivery 1): expected 4 features, got 3" in logged
    assert in_process["metrics"].messages.labels("churn", "rejected")._value.get() == 1
    assert in_process["metrics"].messages.labels("churn", "failed")._value.get() == 0
