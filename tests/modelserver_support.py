"""Helpers for the model server's tests: tiny models, real servers on 127.0.0.1, moto."""

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
                "MODEL_PORT": str(port), "MODEL_HOST": "127.0.0.1",
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
