"""Our model server beside KServe's Python ModelServer: same model, same load, alternating.

Starts `python -m modelserver` and KServe 0.21's `ModelServer` (in .venv-kserve, made
on first use from benchmarks/requirements-kserve.txt) on 127.0.0.1 with the same model
file, case by case (`CASES`: a scikit-learn classifier; an XGBoost and a LightGBM
regressor beside KServe's xgbserver and lgbserver models), then sends 1-row and 64-row
requests from several client threads over HTTP JSON, HTTP with binary tensors and gRPC,
in rounds that alternate between the two servers. Prints requests/s, their ratio, and
p50/p99 latency per case; asserts nothing.

    venv/bin/python benchmarks/server_compare.py [--seconds 3] [--rounds 3] [--clients 4] \
        [--cases sklearn xgboost lightgbm]
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import lightgbm
import numpy as np
import xgboost
from tritonclient.grpc import service_pb2, service_pb2_grpc

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

KSERVE_VENV = ROOT / ".venv-kserve"
TRANSPORTS = ("http-json", "http-binary", "grpc")


@dataclass
class Target:
    name: str
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    supports: dict[str, str] = field(default_factory=dict)
    """Transport -> "" when it answers correctly, else why not."""
    output: tuple[str, str] = ("predict", "<i8")
    """The output that carries the prediction checked, and its numpy dtype."""


@dataclass(frozen=True)
class Case:
    """One model file served by both servers: how to make it, how each serves it."""

    name: str
    save: Callable[[Path], tuple[Path, Callable[[np.ndarray], Any]]]
    """Writes the model into a folder: the path to serve, and the library's own predict."""
    kserve: tuple[str, ...]
    """KServe's side: a script in benchmarks/ and its leading arguments (then model, ports)."""
    outputs: tuple[tuple[str, str], tuple[str, str]]
    """(ours, KServe's): the output that carries the prediction, and its numpy dtype."""


def _sklearn(folder: Path) -> tuple[Path, Callable[[np.ndarray], Any]]:
    model = trained_model()
    return save_model(model, folder), model.predict


def _tree_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    return x, x @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=len(x))


def _xgboost(folder: Path) -> tuple[Path, Callable[[np.ndarray], Any]]:
    model = xgboost.XGBRegressor(n_estimators=100, max_depth=6).fit(*_tree_data())
    path = folder / "model.json"  # xgbserver reads .bst, .json, .ubj
    model.save_model(str(path))
    return path, model.predict


def _lightgbm(folder: Path) -> tuple[Path, Callable[[np.ndarray], Any]]:
    model = lightgbm.LGBMRegressor(n_estimators=100, num_leaves=31, verbose=-1).fit(
        *_tree_data())
    path = folder / "model.bst"  # lgbserver reads .bst only
    model.booster_.save_model(str(path))
    return path, model.predict


CASES = {
    "sklearn": Case("sklearn", _sklearn, ("server_kserve_model.py",),
                    (("predict", "<i8"), ("predict", "<i8"))),
    "xgboost": Case("xgboost", _xgboost, ("server_kserve_trees.py", "xgboost"),
                    (("predict", "<f4"), ("output-0", "<f4"))),
    "lightgbm": Case("lightgbm", _lightgbm, ("server_kserve_trees.py", "lightgbm"),
                     (("predict", "<f8"), ("output-0", "<f8"))),
}
"""The tree cases are regressors: both servers then answer one tensor of the same values
(xgbserver and lgbserver answer the booster's raw output, not labels and probabilities)."""


@dataclass
class Payload:
    rows: int
    json_body: bytes
    binary_body: bytes
    binary_header_length: int
    grpc_request: Any


def kserve_python() -> Path:
    """.venv-kserve's interpreter, after installing KServe there if it is not yet."""
    python = KSERVE_VENV / "bin" / "python"
    ready = python.exists() and subprocess.run(
        [str(python), "-c", "import kserve, xgboost, lightgbm"], capture_output=True,
        check=False).returncode == 0
    if not ready:
        print(f"installing KServe into {KSERVE_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(ROOT / "benchmarks" / "requirements-kserve.txt")], check=True)
    return python


def payload(rows: int) -> Payload:
    data = np.array([[0.1 * (i % 7), -0.2, 0.3, 1.0] for i in range(rows)])
    json_body = json.dumps({"inputs": [{"name": "input-0", "shape": [rows, 4],
                                        "datatype": "FP64", "data": data.tolist()}]}).encode()
    raw = data.astype("<f8").tobytes()
    header = json.dumps({"inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    request = service_pb2.ModelInferRequest(model_name="churn")
    request.inputs.add(name="input-0", datatype="FP64", shape=[rows, 4])
    request.raw_input_contents.append(raw)
    return Payload(rows, json_body, header + raw, len(header), request)


Connect = Callable[[], Callable[[], None]]
"""Opens one client's connection; returns the function that sends one request on it."""


def http_sender(port: int, body: bytes, headers: dict[str, str]) -> Connect:
    def connect() -> Callable[[], None]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def send() -> None:
            connection.request("POST", "/v2/models/churn/infer", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        return send

    return connect


def grpc_sender(port: int, request: Any) -> Connect:
    def connect() -> Callable[[], None]:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        def send() -> None:
            stub.ModelInfer(request, timeout=30)

        return send

    return connect


def sender(target: Target, transport: str, load: Payload) -> Connect:
    if transport == "grpc":
        return grpc_sender(target.grpc_port, load.grpc_request)
    if transport == "http-json":
        return http_sender(target.http_port, load.json_body,
                           {"Content-Type": "application/json"})
    return http_sender(target.http_port, load.binary_body, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(load.binary_header_length)})


def check(target: Target, transport: str, load: Payload, expected: list[Any]) -> str:
    """"" when the server answers this transport with the model's predictions, else why not."""
    output, dtype = target.output
    try:
        if transport == "grpc":
            stub = service_pb2_grpc.GRPCInferenceServiceStub(
                grpc.insecure_channel(f"127.0.0.1:{target.grpc_port}"))
            response = stub.ModelInfer(load.grpc_request, timeout=30)
            names = [o.name for o in response.outputs]
            raw = response.raw_output_contents
            contents = response.outputs[names.index(output)].contents
            got = (np.frombuffer(raw[names.index(output)], dtype=dtype).tolist() if raw
                   else list(contents.int64_contents or contents.fp32_contents
                             or contents.fp64_contents))
        else:
            headers = {"Content-Type": "application/octet-stream",
                       "Inference-Header-Content-Length": str(load.binary_header_length)} \
                if transport == "http-binary" else {"Content-Type": "application/json"}
            body = load.binary_body if transport == "http-binary" else load.json_body
            connection = http.client.HTTPConnection("127.0.0.1", target.http_port, timeout=30)
            connection.request("POST", "/v2/models/churn/infer", body, headers)
            answer = connection.getresponse()
            content = answer.read()
            if answer.status != 200:
                return f"HTTP {answer.status}: {content[:120]!r}"
            size = answer.getheader("Inference-Header-Content-Length")
            head = json.loads(content[:int(size)] if size else content)
            (predict,) = [o for o in head["outputs"] if o["name"] == output]
            if "data" in predict:
                got = predict["data"]
            else:
                offset = int(size or 0)
                for listed in head["outputs"]:
                    if listed["name"] == output:
                        break
                    offset += listed["parameters"]["binary_data_size"]
                length = np.dtype(dtype).itemsize * load.rows
                got = np.frombuffer(content[offset:offset + length], dtype=dtype).tolist()
    except Exception as error:  # a transport the server lacks, reported in the table
        return f"{type(error).__name__}: {str(error)[:120]}"
    same = np.array_equal(np.asarray(got, dtype=dtype), np.asarray(expected, dtype=dtype))
    return "" if same else f"wrong predictions {got[:4]}..."


def measure(connect: Connect, clients: int,
            seconds: float) -> tuple[int, float, list[float]]:
    """Requests answered, seconds taken, and every latency (seconds)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def hammer(out: list[float]) -> None:
        try:
            send = connect()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                send()
                out.append(time.perf_counter() - started)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=hammer, args=(latencies[i],)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"load failed: {errors[0]}")
    every = [x for part in latencies for x in part]
    return len(every), time.perf_counter() - started, every


def start_ours(model: Path) -> Target:
    http_port, grpc_port = free_port(), free_port()
    env = server_env(str(model), http_port, MODEL_GRPC_PORT=str(grpc_port))
    process = subprocess.Popen([sys.executable, "-m", "modelserver"], env=env,
                               stderr=subprocess.DEVNULL)
    return Target("modelfleet", http_port, grpc_port, process)


def start_kserve(model: Path, python: Path, command: tuple[str, ...] = (
        "server_kserve_model.py",)) -> Target:
    http_port, grpc_port = free_port(), free_port()
    script, *leading = command
    process = subprocess.Popen([str(python), str(ROOT / "benchmarks" / script), *leading,
                                str(model), str(http_port), str(grpc_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Target("KServe", http_port, grpc_port, process)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per server per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS))
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    python = kserve_python()
    version = subprocess.run([str(python), "-c", "from importlib.metadata import version; "
                              "print(version('kserve'))"],
                             capture_output=True, text=True, check=False).stdout.strip()
    print(f"{os.cpu_count()} CPUs; load average {_load()}; KServe {version}; "
          f"{args.clients} client threads; {args.rounds} alternating rounds of "
          f"{args.seconds:g} s per server", flush=True)
    for name in args.cases:
        run_case(CASES[name], python, args)
    print(f"\nload average at the end {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_case(case: Case, python: Path, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, predict = case.save(Path(folder))
        # KServe's tree servers take the folder that holds the one model file.
        served = path.parent if case.kserve[0] != "server_kserve_model.py" else path
        targets = [start_ours(path), start_kserve(served, python, case.kserve)]
        for target, output in zip(targets, case.outputs, strict=True):
            target.output = output
        try:
            for target in targets:
                wait_until(lambda t=target: call(
                    f"http://127.0.0.1:{t.http_port}/v2/health/ready").status == 200,
                    timeout=120)
            print(f"\ncase {case.name}: {path.name}")
            print(f"{'transport':<12}{'rows':>5}{'ours req/s':>12}{'KServe req/s':>14}"
                  f"{'ratio':>8}{'ours p50/p99 ms':>18}{'KServe p50/p99 ms':>20}")
            for transport in args.transports:
                for rows in (1, 64):
                    load = payload(rows)
                    expected = np.asarray(predict(
                        np.array([[0.1 * (i % 7), -0.2, 0.3, 1.0] for i in range(rows)])
                    )).tolist()
                    report(transport, load, targets, expected, args)
        finally:
            for target in targets:
                target.process.terminate()
            for target in targets:
                try:
                    target.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    target.process.kill()


def report(transport: str, load: Payload, targets: list[Target], expected: list[Any],
           args: argparse.Namespace) -> None:
    usable = []
    for target in targets:
        why = check(target, transport, load, expected)
        if why:
            print(f"{transport:<12}{load.rows:>5}  {target.name} cannot: {why}")
        else:
            usable.append(target)
    counts = dict.fromkeys((t.name for t in usable), 0)
    times = dict.fromkeys((t.name for t in usable), 0.0)
    latencies: dict[str, list[float]] = {t.name: [] for t in usable}
    for round_ in range(args.rounds):
        for target in usable if round_ % 2 == 0 else list(reversed(usable)):
            count, seconds, measured = measure(sender(target, transport, load), args.clients,
                                               args.seconds)
            counts[target.name] += count
            times[target.name] += seconds
            latencies[target.name] += measured
    figures = {name: (counts[name] / times[name], statistics.median(latencies[name]) * 1000,
                      percentile(latencies[name], 0.99)) for name in counts}
    ours, theirs = figures.get("modelfleet"), figures.get("KServe")
    ratio = f"{ours[0] / theirs[0]:.2f}x" if ours and theirs else "n/a"
    print(f"{transport:<12}{load.rows:>5}"
          f"{f'{ours[0]:.0f}' if ours else 'n/a':>12}{f'{theirs[0]:.0f}' if theirs else 'n/a':>14}"
          f"{ratio:>8}{f'{ours[1]:.2f}/{ours[2]:.2f}' if ours else 'n/a':>18}"
          f"{f'{theirs[1]:.2f}/{theirs[2]:.2f}' if theirs else 'n/a':>20}", flush=True)


if __name__ == "__main__":
    main()
