"""Requests per second and p50/p99 latency of the model server on this machine.

Starts `python -m modelserver` with a small scikit-learn model on 127.0.0.1, then
sends single-row and 64-row inference requests from several client threads over
keep-alive connections. Prints figures; asserts nothing.

    venv/bin/python benchmarks/server_latency.py [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "images")]

from tests.modelserver_support import (  # noqa: E402
    call,
    free_port,
    save_model,
    server_env,
    trained_model,
    wait_until,
)


def hammer(port: int, body: bytes, seconds: float, latencies: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        connection.request("POST", "/v2/models/churn/infer", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        latencies.append(time.perf_counter() - started)
    connection.close()


def measure(port: int, rows: int, clients: int, seconds: float) -> None:
    data = [[0.1 * (i % 7), -0.2, 0.3, 1.0] for i in range(rows)]
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [rows, 4],
                                   "datatype": "FP64", "data": data}]}).encode()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=hammer, args=(port, body, seconds, latencies[i]))
               for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for part in latencies for x in part)
    p50 = statistics.median(every) * 1000
    p99 = every[int(len(every) * 0.99) - 1] * 1000
    print(f"{rows:>3} row(s)/request, {clients} clients: {len(every) / elapsed:8.0f} requests/s, "
          f"p50 {p50:6.2f} ms, p99 {p99:6.2f} ms ({len(every)} requests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = save_model(trained_model(), Path(folder))
        port = free_port()
        env = server_env(str(path), port)
        process = subprocess.Popen([sys.executable, "-m", "modelserver"], env=env,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: call(f"http://127.0.0.1:{port}/v2/health/ready").status == 200)
            print(f"model server on 127.0.0.1:{port}, {os.cpu_count()} CPUs")
            for rows in (1, 64):
                measure(port, rows, args.clients, args.seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
