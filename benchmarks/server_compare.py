"""Our model server beside KServe's Python ModelServer, driven by native load generators.

Each case is a model (its files), the servers that load it (their commands) and the
requests they answer (JSON, binary tensors, gRPC). Both servers run on 127.0.0.1; `wrk`
drives HTTP/1.1 (a Lua script sends the prebuilt JSON or binary body) and `h2load`
drives gRPC unary calls (a prebuilt length-prefixed ModelInferRequest), each with a
fixed number of connections, one request in flight per connection, in rounds that
alternate between the servers. Before it measures, each server's answer is checked
against the model's own predictions.

Prints, per case, transport, rows per request and connections: requests/s, p50, p99
and p99.9 latency (ms, over every request of every round), the CPU time each server
process used (and requests per CPU-second, the figure that decides pod counts), the
ratios, and the machine's load average before and after. A ratio is withheld when the
load average was above the number of cores: other work then decides the figures.

    venv/bin/python benchmarks/server_compare.py [--seconds 3] [--rounds 3]
        [--clients 1 8 64] [--transports http-json http-binary grpc] [--rows 1 64]

Needs `wrk` and `h2load` (Debian: wrk, nghttp2-client; scripts/install installs them)
and KServe in .venv-kserve (made on first use from benchmarks/requirements-kserve.txt).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
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
GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"

WRK_SCRIPT = """
-- One prebuilt request, sent again and again; prints every latency (microseconds) at the end.
function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.path = args[2]
  wrk.headers["Content-Type"] = args[3]
  if args[4] ~= "" then wrk.headers["Inference-Header-Content-Length"] = args[4] end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("summary %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
  -- The latency distribution as quantiles (microseconds): 1000 steps of 0.1 %, then the
  -- last 0.1 % in steps of 0.01 %, so rounds merge into one distribution.
  for step = 0, 998 do
    io.write(string.format("quantile 0.001 %d\\n", latency:percentile(step / 10 + 0.05)))
  end
  for step = 0, 9 do
    io.write(string.format("quantile 0.0001 %d\\n", latency:percentile(99.9 + step / 100 + 0.005)))
  end
end
"""
"""wrk's Lua API (wrk 4.1, SCRIPTING): `init(args)` gets the arguments after `--`;
`latency:percentile(p)` is in microseconds; `summary.duration` too."""


@dataclass(frozen=True)
class Bodies:
    """What every server of a case is sent, prebuilt: `rows` rows of features."""

    rows: int
    json: bytes
    binary: bytes
    """The binary tensor extension's body: the JSON header, then the raw tensor."""
    binary_header_length: int
    grpc: bytes
    """A serialized inference.ModelInferRequest (raw_input_contents)."""
    expected: list[Any]
    """The model's own `predict` for these rows."""


@dataclass(frozen=True)
class ServerCommand:
    """How to start one server on a case's model files: argv and extra environment."""

    name: str
    argv: Callable[[Path, int, int], list[str]]
    """(model file, HTTP port, gRPC port) -> the command line."""
    env: Callable[[Path, int, int], dict[str, str]] = lambda *_: dict(os.environ)
    output: tuple[str, str] = ("predict", "<i8")
    """The output that carries the prediction checked, and its numpy dtype."""


@dataclass(frozen=True)
class Case:
    """A benchmark case: model files, the servers that serve them, the requests to send.

    The first server is ours; ratios are ours over each other server's.
    """

    name: str
    model: Callable[[Path], tuple[Path, Any]]
    """Writes the model into a folder; returns the file the servers load and the model."""
    servers: tuple[ServerCommand, ...]
    bodies: Callable[[Any, int], Bodies]
    """(model, rows) -> the requests."""
    model_name: str = "churn"


@dataclass
class Result:
    """Requests answered, seconds taken, latencies (µs -> how many requests), CPU seconds
    of the server."""

    requests: int = 0
    seconds: float = 0.0
    latencies: defaultdict[int, float] = field(default_factory=lambda: defaultdict(float))
    cpu_seconds: float = 0.0
    errors: int = 0

    def add(self, other: Result) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        for micros, count in other.latencies.items():
            self.latencies[micros] += count
        self.cpu_seconds += other.cpu_seconds
        self.errors += other.errors

    def percentile(self, fraction: float) -> float:
        """Milliseconds below which `fraction` of the requests finished."""
        rank = fraction * sum(self.latencies.values())
        seen = 0.0
        for micros in sorted(self.latencies):
            seen += self.latencies[micros]
            if seen >= rank:
                return micros / 1000
        return float("nan")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0


# --- the shipped case: a scikit-learn classifier ------------------------------------------

def sklearn_model(folder: Path) -> tuple[Path, Any]:
    model = trained_model()
    return save_model(model, folder), model


def feature_bodies(model: Any, rows: int) -> Bodies:
    """`rows` rows of 4 FP64 features as input-0, in every form the protocol allows."""
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
    return Bodies(rows, json_body, header + raw, len(header), request.SerializeToString(),
                  np.asarray(model.predict(data)).tolist())


def ours(output: tuple[str, str] = ("predict", "<i8")) -> ServerCommand:
    return ServerCommand(
        "modelfleet", lambda model, http, grpc: [sys.executable, "-m", "modelserver"],
        lambda model, http, grpc: server_env(str(model), http, MODEL_GRPC_PORT=str(grpc)),
        output)


def kserve(script: str, *leading: str, output: tuple[str, str] = ("predict", "<i8"),
           folder: bool = False) -> ServerCommand:
    """A KServe 0.21 ModelServer script in .venv-kserve: SCRIPT [ARGS] MODEL HTTP GRPC, where
    MODEL is the model file, or the folder that holds it (`folder`: xgbserver, lgbserver)."""
    return ServerCommand("KServe", lambda model, http, grpc: [
        str(kserve_python()), str(ROOT / "benchmarks" / script), *leading,
        str(model.parent if folder else model), str(http), str(grpc)], output=output)


# --- the tree cases: an XGBoost and a LightGBM regressor --------------------------------------
# Regressors, so both servers answer one tensor of the same values (xgbserver and lgbserver
# answer the booster's raw output, not labels and probabilities). xgbserver and lgbserver are
# not on PyPI: benchmarks/server_kserve_trees.py restates their model classes (KServe v0.20.0).

def _tree_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    return x, x @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=len(x))


def xgboost_model(folder: Path) -> tuple[Path, Any]:
    import xgboost  # noqa: PLC0415  (only the tree cases need it)

    folder.mkdir(parents=True, exist_ok=True)
    model = xgboost.XGBRegressor(n_estimators=100, max_depth=6).fit(*_tree_data())
    path = folder / "model.json"  # xgbserver reads .bst, .json, .ubj
    model.save_model(str(path))
    return path, model


def lightgbm_model(folder: Path) -> tuple[Path, Any]:
    import lightgbm  # noqa: PLC0415  (only the tree cases need it)

    folder.mkdir(parents=True, exist_ok=True)
    model = lightgbm.LGBMRegressor(n_estimators=100, num_leaves=31, verbose=-1).fit(
        *_tree_data())
    path = folder / "model.bst"  # lgbserver reads .bst only
    model.booster_.save_model(str(path))
    return path, model


CASES = [
    Case("sklearn", sklearn_model, (ours(), kserve("server_kserve_model.py")), feature_bodies),
    Case("xgboost", xgboost_model,
         (ours(("predict", "<f4")), kserve("server_kserve_trees.py", "xgboost",
                                           output=("output-0", "<f4"), folder=True)),
         feature_bodies),
    Case("lightgbm", lightgbm_model,
         (ours(("predict", "<f8")), kserve("server_kserve_trees.py", "lightgbm",
                                           output=("output-0", "<f8"), folder=True)),
         feature_bodies),
]


# --- load generators ------------------------------------------------------------------------

def run_wrk(port: int, path: str, body: bytes, content_type: str, header_length: str,
            connections: int, seconds: float, folder: Path) -> Result:
    """`wrk` with one thread and `connections` kept-alive connections for `seconds`."""
    script, data = folder / "body.lua", folder / "body.bin"
    script.write_text(WRK_SCRIPT)
    data.write_bytes(body)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{port}", "--", str(data), path, content_type,
         header_length], capture_output=True, text=True, check=True).stdout
    result = Result()
    for line in out.splitlines():
        fields = line.split()
        if fields[:1] == ["summary"]:
            requests, micros, *errors = map(int, fields[1:])
            result.requests, result.seconds, result.errors = requests, micros / 1e6, sum(errors)
        elif fields[:1] == ["quantile"]:
            result.latencies[int(fields[2])] += float(fields[1]) * result.requests
    return result


def run_h2load(port: int, message: bytes, connections: int, seconds: float,
               folder: Path) -> Result:
    """`h2load` sending one gRPC unary call at a time per connection for `seconds`.

    The body is the gRPC length-prefixed message (grpc/doc/PROTOCOL-HTTP2.md: a zero
    compression flag, a 4-byte big-endian length, the protobuf).
    """
    data, log = folder / "grpc.bin", folder / "h2load.log"
    data.write_bytes(b"\0" + struct.pack(">I", len(message)) + message)
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    out = subprocess.run(
        ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{seconds:g}", "-d", str(data),
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"--log-file={log}", f"http://127.0.0.1:{port}{GRPC_PATH}"],
        capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    result = Result(seconds=seconds)
    for line in log.read_text().splitlines():
        _, status, micros = line.split("\t")
        if status == "200":
            result.requests += 1
            result.latencies[int(micros)] += 1
        else:
            result.errors += 1
    if not result.requests:
        raise RuntimeError(f"h2load: no answers in {elapsed:.1f} s:\n{out}")
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its live descendants (seconds)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            total += sum(int(x) for x in stat.rsplit(")", 1)[1].split()[11:13]) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


# --- servers --------------------------------------------------------------------------------

@dataclass
class Running:
    command: ServerCommand
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    supports: dict[str, str] = field(default_factory=dict)


def kserve_python() -> Path:
    """.venv-kserve's interpreter, after installing KServe there if it is not yet."""
    python = KSERVE_VENV / "bin" / "python"
    ready = python.exists() and subprocess.run(
        [str(python), "-c", "import kserve"], capture_output=True, check=False).returncode == 0
    if not ready:
        print(f"installing KServe into {KSERVE_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(ROOT / "benchmarks" / "requirements-kserve.txt")], check=True)
    return python


def start(command: ServerCommand, model: Path) -> Running:
    http_port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(command.argv(model, http_port, grpc_port),
                               env=command.env(model, http_port, grpc_port),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Running(command, http_port, grpc_port, process)


def stop(servers: Sequence[Running]) -> None:
    for server in servers:
        server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def check(server: Running, transport: str, bodies: Bodies, model_name: str) -> str:
    """"" when the server answers this transport with the model's predictions (to a relative
    1e-6: the tree cases answer FP32), else why not."""
    output, dtype = server.command.output
    try:
        if transport == "grpc":
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                response = stub.ModelInfer(
                    service_pb2.ModelInferRequest.FromString(bodies.grpc), timeout=30)
            names = [o.name for o in response.outputs]
            raw = response.raw_output_contents
            index = names.index(output)
            contents = response.outputs[index].contents
            got = (np.frombuffer(raw[index], dtype=dtype).tolist() if raw
                   else list(contents.int64_contents or contents.fp32_contents
                             or contents.fp64_contents))
        else:
            got = http_predictions(server.http_port, transport, bodies, model_name, output,
                                   dtype)
    except Exception as error:  # a transport the server lacks, reported in the table
        return f"{type(error).__name__}: {str(error)[:120]}"
    same = len(got) == len(bodies.expected) and np.allclose(
        np.asarray(got, dtype=float), np.asarray(bodies.expected, dtype=float), rtol=1e-6)
    return "" if same else f"wrong predictions {got[:4]}..."


def http_predictions(port: int, transport: str, bodies: Bodies, model_name: str,
                     output: str = "predict", dtype: str = "<i8") -> list[Any]:
    binary = transport == "http-binary"
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": str(bodies.binary_header_length)} \
        if binary else {"Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", f"/v2/models/{model_name}/infer",
                       bodies.binary if binary else bodies.json, headers)
    answer = connection.getresponse()
    content = answer.read()
    connection.close()
    if answer.status != 200:
        raise RuntimeError(f"HTTP {answer.status}: {content[:120]!r}")
    size = answer.getheader("Inference-Header-Content-Length")
    head = json.loads(content[:int(size)] if size else content)
    offset = int(size or 0)
    wanted = output
    for answered in head["outputs"]:
        if answered["name"] == wanted:
            if "data" in answered:
                return list(answered["data"])
            count = int(np.prod(answered["shape"]))
            length = np.dtype(dtype).itemsize * count
            return list(np.frombuffer(content[offset:offset + length], dtype=dtype).tolist())
        offset += answered.get("parameters", {}).get("binary_data_size", 0)
    raise RuntimeError(f"no {wanted} output")


def measure(server: Running, transport: str, bodies: Bodies, model_name: str,
            connections: int, seconds: float, folder: Path) -> Result:
    before = cpu_seconds(server.process.pid)
    if transport == "grpc":
        result = run_h2load(server.grpc_port, bodies.grpc, connections, seconds, folder)
    else:
        binary = transport == "http-binary"
        result = run_wrk(server.http_port, f"/v2/models/{model_name}/infer",
                         bodies.binary if binary else bodies.json,
                         "application/octet-stream" if binary else "application/json",
                         str(bodies.binary_header_length) if binary else "",
                         connections, seconds, folder)
    result.cpu_seconds = cpu_seconds(server.process.pid) - before
    return result


# --- the table ------------------------------------------------------------------------------

COLUMNS = (f"{'case':<9}{'transport':<12}{'rows':>5}{'conns':>6}  {'server':<11}"
           f"{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'p99.9 ms':>9}{'CPU s':>7}"
           f"{'req/CPU-s':>10}{'errors':>7}")


def row(case: Case, transport: str, bodies: Bodies, connections: int, name: str,
        result: Result) -> str:
    return (f"{case.name:<9}{transport:<12}{bodies.rows:>5}{connections:>6}  {name:<11}"
            f"{result.rate:>8.0f}{result.percentile(0.5):>8.2f}{result.percentile(0.99):>8.2f}"
            f"{result.percentile(0.999):>9.2f}{result.cpu_seconds:>7.1f}"
            f"{result.per_cpu_second:>10.0f}{result.errors:>7}")


def ratio_row(ours_: Result, theirs: Result, name: str, load: tuple[float, float],
              cores: int) -> str:
    if max(load) > cores:
        return (f"{'':<32}  ratio vs {name}: withheld, load average {load[0]:.2f} before, "
                f"{load[1]:.2f} after, above {cores} cores")
    return (f"{'':<32}  ours/{name:<6}{ours_.rate / theirs.rate:>7.2f}x"
            f"{ours_.percentile(0.5) / theirs.percentile(0.5):>7.2f}x"
            f"{ours_.percentile(0.99) / theirs.percentile(0.99):>7.2f}x"
            f"{ours_.percentile(0.999) / theirs.percentile(0.999):>8.2f}x{'':>7}"
            f"{ours_.per_cpu_second / theirs.per_cpu_second:>9.2f}x"
            f"   (load {load[0]:.2f} -> {load[1]:.2f})")


def compare(case: Case, servers: list[Running], args: argparse.Namespace, model: Any,
            folder: Path, cores: int) -> None:
    for transport in args.transports:
        for rows in args.rows:
            bodies = case.bodies(model, rows)
            usable = []
            for server in servers:
                why = check(server, transport, bodies, case.model_name)
                if why:
                    print(f"{case.name:<9}{transport:<12}{rows:>5}{'':>6}  "
                          f"{server.command.name} cannot: {why}", flush=True)
                else:
                    usable.append(server)
            for connections in args.clients:
                load_before = os.getloadavg()[0]
                results = {s.command.name: Result() for s in usable}
                for round_ in range(args.rounds):
                    for server in usable if round_ % 2 == 0 else usable[::-1]:
                        results[server.command.name].add(measure(
                            server, transport, bodies, case.model_name, connections,
                            args.seconds, folder))
                load = (load_before, os.getloadavg()[0])
                for name, result in results.items():
                    print(row(case, transport, bodies, connections, name, result))
                ours_name = case.servers[0].name
                if ours_name in results:
                    for name, result in results.items():
                        if name != ours_name and result.requests:
                            print(ratio_row(results[ours_name], result, name, load, cores))
                print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per server per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64],
                        help="connections (one request in flight on each)")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS))
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in CASES],
                        default=[c.name for c in CASES])
    args = parser.parse_args()
    missing = [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"needs {' and '.join(missing)} (Debian: apt-get install wrk nghttp2-client; "
                 f"scripts/install does it)")
    version = subprocess.run([str(kserve_python()), "-c", "from importlib.metadata import "
                              "version; print(version('kserve'))"],
                             capture_output=True, text=True, check=False).stdout.strip()
    cores = os.cpu_count() or 1
    load_start = os.getloadavg()
    print(f"{cores} cores; load average {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f} at the start; KServe {version}; wrk and h2load, 1 thread, one "
          f"request in flight per connection; {args.rounds} alternating rounds of "
          f"{args.seconds:g} s per server\n")
    print(COLUMNS)
    for case in [c for c in CASES if c.name in args.cases]:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            path, model = case.model(folder / "model")
            servers = [start(command, path) for command in case.servers]
            try:
                for server in servers:
                    wait_until(lambda s=server: call(
                        f"http://127.0.0.1:{s.http_port}/v2/health/ready").status == 200,
                        timeout=120)
                compare(case, servers, args, model, folder, cores)
            finally:
                stop(servers)
    load_end = os.getloadavg()
    print(f"load average {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} at the end; "
          f"ratios: ours over theirs (req/s, p50, p99, p99.9, req/CPU-s)")


if __name__ == "__main__":
    main()
