"""Helpers for the model server's tests: tiny models, real servers on 127.0.0.1, moto.

torch is imported inside the helpers that export programs: it is slow to import and
only the torch tests need it. The server's gRPC side (modelserver.rpc.server and its
generated modules) runs only in server processes: it defines the same `inference.*`
protobuf messages as tritonclient.grpc, and protobuf refuses both in one process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import error, request

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from tests.conftest import PROJECT

IMAGES = PROJECT / "images"


class SlowEstimator:
    """Predicts like `model`, taking `delay` seconds per batch: for tests of stopping mid-work."""

    def __init__(self, model: Any, delay: float) -> None:
        self.model = model
        self.delay = delay
        self.n_features_in_ = model.n_features_in_

    def predict(self, rows: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(self.model.predict(rows))


def trained_model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return LogisticRegression().fit(x, y)


def labelled_model(seed: int = 0) -> LogisticRegression:
    """Like `trained_model`, with string classes: its `predict` output is BYTES."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 4))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "churn", "stay")
    return LogisticRegression().fit(x, y)


EVERY_DATATYPE = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                  "INT64", "FP16", "FP32", "FP64"]
"""Every numeric datatype of the protocol, as `flip_program` names its inputs (lower case)."""


def scoring_program(folder: Path) -> tuple[Path, Any]:
    """A torch.export program (.pt2): `features` FP32 [batch, 3] -> softmax FP32 [batch, 2]."""
    import torch

    torch.manual_seed(0)

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.linear(features), dim=1)

    module = Scorer().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.zeros(2, 3),),
                                  dynamic_shapes={"features": {0: batch}})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt2"
    torch.export.save(program, str(path))
    return path, module


def flip_program(folder: Path) -> Path:
    """A torch.export program with one input per numeric datatype (`bool`, `uint8`, ...
    `fp64`, each [batch, 3]); output-i is input i with its rows in reverse order."""
    import torch

    class Flip(torch.nn.Module):
        def forward(self, bool: torch.Tensor, uint8: torch.Tensor, uint16: torch.Tensor,
                    uint32: torch.Tensor, uint64: torch.Tensor, int8: torch.Tensor,
                    int16: torch.Tensor, int32: torch.Tensor, int64: torch.Tensor,
                    fp16: torch.Tensor, fp32: torch.Tensor, fp64: torch.Tensor,
                    ) -> tuple[torch.Tensor, ...]:
            return tuple(torch.flip(x, [0]) for x in (bool, uint8, uint16, uint32, uint64, int8,
                                                       int16, int32, int64, fp16, fp32, fp64))

    dtypes = [torch.bool, torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int8,
              torch.int16, torch.int32, torch.int64, torch.float16, torch.float32, torch.float64]
    batch = torch.export.Dim("batch")
    examples = tuple(torch.zeros(2, 3, dtype=dtype) for dtype in dtypes)
    program = torch.export.export(Flip(), examples, dynamic_shapes={
        name.lower(): {0: batch} for name in EVERY_DATATYPE})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt2"
    torch.export.save(program, str(path))
    return path


def save_model(model: Any, folder: Path, name: str = "model.joblib") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    joblib.dump(model, path)
    return path


@dataclass
class Response:
    status: int
    body: Any
    text: str


def call(url: str, payload: Any = None, method: str | None = None,
         timeout: float = 10) -> Response:
    data = json.dumps(payload).encode() if payload is not None else None
    req = request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                          headers={"Content-Type": "application/json"})
    try:
        with request.urlopen(req, timeout=timeout) as answer:
            text = answer.read().decode()
            status = answer.status
    except error.HTTPError as failure:
        text = failure.read().decode()
        status = failure.code
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        body = None
    return Response(status, body, text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(model_uri: str, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODEL_")}
    env.update({"MODEL_NAME": "churn", "MODEL_VERSION": "1.2.0", "MODEL_URI": model_uri,
                "MODEL_PORT": str(port), "MODEL_HOST": "127.0.0.1", "MODEL_GRPC_PORT": "0",
                "PYTHONPATH": os.pathsep.join([str(IMAGES), str(PROJECT)])})
    env.update(extra)
    return env


@contextmanager
def server_process(env: Mapping[str, str], wait_ready: bool = True) -> Iterator[
        subprocess.Popen[str]]:
    """`python -m modelserver` as its own process, stopped (SIGTERM) at the end."""
    process = subprocess.Popen([sys.executable, "-m", "modelserver"], env=dict(env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if wait_ready:
            wait_until(lambda: call(f"http://127.0.0.1:{env['MODEL_PORT']}/v2/health/ready")
                       .status == 200 if process.poll() is None else _died(process))
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _died(process: subprocess.Popen[str]) -> bool:
    raise AssertionError(f"server exited {process.returncode}: {process.stderr.read()}"
                         if process.stderr else f"server exited {process.returncode}")


def wait_until(condition: Any, timeout: float = 30, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (OSError, error.URLError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `target(*args)` in a thread; its result lands in the returned dict."""
    result: dict[str, Any] = {}

    def run() -> None:
        result["value"] = target(*args)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result
