"""How often the queue worker retries a message that keeps failing: receives in a window.

A real worker process (`python -m modelserver`, worker mode) against SQS and S3 served by
moto on 127.0.0.1, on a queue without a dead-letter queue, with one message whose input
object does not exist (every try fails). After WINDOW seconds the worker is stopped and
the last delivery it logged ("failed (delivery N)") is the message's receive count. Run
once with the shipped backoff and once with RETRY_BASE_SECONDS=0 (a failed message comes
back at once, as before the backoff). Prints figures; asserts nothing.

    venv/bin/python benchmarks/worker_retries.py [--window 10] [--base 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "images"))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from tests.modelserver_support import (  # noqa: E402
    call,
    free_port,
    save_model,
    server_env,
    trained_model,
    wait_until,
)

REGION = "eu-west-1"


def client(service: str, env: dict[str, str]) -> Any:
    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def receives(env: dict[str, str], queue: str, bucket: str, base: str, window: float,
             folder: Path) -> int:
    """The receive count of a failing message after `window` seconds of one worker."""
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "modelserver"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=server_env(
            str(save_model(trained_model(), folder / "model")), port,
            MODEL_MODE="worker", QUEUE_URL=queue, OUTPUT_URI=f"s3://{bucket}/outputs/churn/",
            POLL_SECONDS="1", VISIBILITY_TIMEOUT_SECONDS="900", RETRY_BASE_SECONDS=base,
            MODEL_CACHE_DIR=str(folder / "cache"), **env))
    wait_until(lambda: call(f"http://127.0.0.1:{port}/v2/health/ready").status == 200, 120)
    client("sqs", env).send_message(QueueUrl=queue, MessageBody=json.dumps(
        {"input": f"s3://{bucket}/inputs/churn/missing.jsonl"}))
    time.sleep(window)  # from the message's arrival, the worker's model already loaded
    worker.send_signal(signal.SIGTERM)
    _, log = worker.communicate(timeout=60)
    deliveries = [int(n) for n in re.findall(r"failed \(delivery (\d+)\)", log)]
    return max(deliveries, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--base", default="10", help="RETRY_BASE_SECONDS of the backoff run")
    options = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_REGION": REGION}
    try:
        s3, sqs = client("s3", env), client("sqs", env)
        s3.create_bucket(Bucket="registry",
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        print(f"one failing message, one worker, {options.window:g} s, queue without a "
              "dead-letter queue (visibility timeout 900 s)")
        for label, base in (("no backoff (RETRY_BASE_SECONDS=0)", "0"),
                            (f"backoff, RETRY_BASE_SECONDS={options.base}", options.base)):
            queue = sqs.create_queue(QueueName=f"q-{base.replace('.', '-')}",
                                     Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
            with tempfile.TemporaryDirectory() as folder:
                count = receives(env, queue, "registry", base, options.window, Path(folder))
            print(f"  {label:<40} {count:>6} receives")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
