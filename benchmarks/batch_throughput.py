"""Rows per second, and per CPU-second, of the batch worker on the shipped example.

Serves S3 and SQS with moto in server mode (its own process, on 127.0.0.1), puts
`--messages` JSON-lines inputs of `--rows` rows each (churn-scorer's four features) in a
bucket and one message per input on a queue, then:

1. runs the real queue worker (`python -m modelserver`, MODEL_MODE=worker, the
   `artifacts/churn-scorer` model) until every output is written, and prints rows/s
   and rows per CPU-second of the worker process (moto's CPU is not counted);
2. runs the stages a message goes through (receive, read the input from S3, parse
   the rows, predict, format the output lines, write the output, delete the message)
   one by one in this process with the worker's own functions, and prints each
   stage's wall and CPU time per row and names the slowest.

    venv/bin/python benchmarks/batch_throughput.py [--messages 20] [--rows 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "images")]

from modelserver.batch import output_for, predict_rows  # noqa: E402
from modelserver.models import load_predictor  # noqa: E402
from modelserver.records import parse_rows  # noqa: E402
from modelserver.storage import read_bytes, write_bytes  # noqa: E402

from benchmarks.server_compare import cpu_seconds  # noqa: E402
from tests.modelserver_support import free_port, server_env, wait_until  # noqa: E402

MODEL = ROOT / "artifacts" / "churn-scorer" / "model.joblib"
BUCKET = "batch-bench"
REGION = "eu-west-1"


def moto(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def input_lines(rows: int, seed: int) -> bytes:
    """JSON lines `{"id", "features"}`: tenure, spend, tickets, days since login."""
    lines = [json.dumps({"id": f"c{seed}-{i}", "features": [
        1 + (i * 7 + seed) % 71, 40.0 + (i % 50), float(i % 4), float((i * 3) % 90)]})
        for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def prepare(messages: int, rows: int) -> tuple[Any, Any, str]:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    queue = sqs.create_queue(QueueName=f"bench-{time.time_ns()}")["QueueUrl"]
    for index in range(messages):
        key = f"inputs/part-{index:04d}.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body=input_lines(rows, index))
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(
            {"input": f"s3://{BUCKET}/{key}"}))
    return s3, sqs, queue


def outputs(s3: Any, prefix: str) -> int:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return int(listed.get("KeyCount", 0))


def end_to_end(s3: Any, queue: str, messages: int, rows: int, folder: Path) -> None:
    env = server_env(str(MODEL), free_port(), MODEL_MODE="worker", QUEUE_URL=queue,
                     OUTPUT_URI=f"s3://{BUCKET}/outputs/", MODEL_CACHE_DIR=str(folder),
                     POLL_SECONDS="1", MODEL_NAME="churn-scorer")
    process = subprocess.Popen([sys.executable, "-m", "modelserver"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Polled every 50 ms: more often, the listing itself would slow moto down.
        wait_until(lambda: outputs(s3, "outputs/") >= 1, timeout=120, interval=0.05)
        started, cpu = time.perf_counter(), cpu_seconds(process.pid)
        wait_until(lambda: outputs(s3, "outputs/") >= messages, timeout=600, interval=0.05)
        elapsed = time.perf_counter() - started
        used = cpu_seconds(process.pid) - cpu
    finally:
        process.terminate()
        process.wait(timeout=60)
    done = (messages - 1) * rows  # timed from the first output on
    print(f"worker process: {done} rows in {elapsed:.2f} s = {done / elapsed:,.0f} rows/s; "
          f"{used:.2f} CPU s = {done / used:,.0f} rows per CPU-second")


class Stages:
    """Wall and CPU seconds spent in each named stage."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        spent = self.spent.setdefault(name, [0.0, 0.0])
        spent[0] += time.perf_counter() - wall
        spent[1] += time.process_time() - cpu


def stages(sqs: Any, queue: str) -> None:
    predictor = load_predictor(str(MODEL), Path(tempfile.mkdtemp()))
    timings = Stages()
    handled = 0
    while True:
        with timings.stage("receive (SQS)"):
            answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1,
                                         WaitTimeSeconds=0)
        if not answer.get("Messages"):
            break
        message = answer["Messages"][0]
        uri = json.loads(message["Body"])["input"]
        with timings.stage("read input (S3)"):
            data = read_bytes(uri)
        with timings.stage("parse rows"):
            rows = parse_rows(data, uri)
        with timings.stage("predict + format lines"):
            lines = predict_rows(predictor, rows, 256)
        with timings.stage("join output"):
            body = ("\n".join(lines) + "\n").encode()
        with timings.stage("write output (S3)"):
            write_bytes(output_for(f"s3://{BUCKET}/stages/", uri), body)
        with timings.stage("delete message (SQS)"):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        handled += len(rows)
    print(f"\nstages, in this process, {handled} rows:")
    print(f"{'stage':<24}{'wall µs/row':>12}{'CPU µs/row':>12}{'share of wall':>15}")
    total = sum(wall for wall, _ in timings.spent.values())
    for name, (wall, cpu) in timings.spent.items():
        print(f"{name:<24}{wall / handled * 1e6:>12.2f}{cpu / handled * 1e6:>12.2f}"
              f"{wall / total:>14.0%}")
    slowest = max(timings.spent, key=lambda name: timings.spent[name][0])
    print(f"slowest stage: {slowest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5000, help="rows per input object")
    args = parser.parse_args()
    port = free_port()
    server = moto(port)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
    try:
        wait_until(lambda: listening(port), timeout=60)
        load = os.getloadavg()
        print(f"{os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"moto on 127.0.0.1:{port}; {args.messages} messages of {args.rows} rows")
        s3, sqs, queue = prepare(args.messages, args.rows)
        with tempfile.TemporaryDirectory() as folder:
            end_to_end(s3, queue, args.messages, args.rows, Path(folder))
        stages(sqs, another_queue(sqs, args.messages))
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    finally:
        server.terminate()
        server.wait(timeout=30)


def another_queue(sqs: Any, messages: int) -> str:
    """A second queue naming the same inputs, for the stage by stage run."""
    queue: str = sqs.create_queue(QueueName=f"stages-{time.time_ns()}")["QueueUrl"]
    for index in range(messages):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(
            {"input": f"s3://{BUCKET}/inputs/part-{index:04d}.jsonl"}))
    return queue


if __name__ == "__main__":
    main()
