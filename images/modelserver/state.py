"""What the HTTP and gRPC servers share: the model, readiness, requests in flight, metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelserver.inference import infer
from modelserver.metrics import Metrics
from modelserver.models import Predictor
from modelserver.protocol import InferRequest, ProtocolError

SERVER_NAME = "modelfleet-model-server"
SERVER_VERSION = "1.1.0"
EXTENSIONS = ["binary_tensor_data"]
"""The protocol extensions this server speaks (in the server metadata)."""


@dataclass
class ServerState:
    """The model once loaded, and whether the server is stopping.

    Liveness holds from the start; readiness once the model is loaded and until
    the server drains.
    """

    model_name: str
    model_version: str
    metrics: Metrics = field(default_factory=Metrics)
    predictor: Predictor | None = None
    draining: bool = False
    in_flight: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)
    _answered: dict[tuple[str, str, int], tuple[Any, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics.serving(self.model_name, self.model_version)
        self._rows = self.metrics.rows.labels(self.model_name)

    def answered(self, protocol: str, route: str, code: int, seconds: float) -> None:
        """Counts one answer (`code`: its HTTP status) and observes its duration (seconds).

        The labelled series are looked up once per (protocol, route, code), not per
        request: prometheus_client's `labels()` takes a lock and builds a key each time.
        """
        key = (protocol, route, code)
        series = self._answered.get(key)
        if series is None:
            series = self._answered[key] = (
                self.metrics.latency.labels(self.model_name, protocol, route),
                self.metrics.requests.labels(self.model_name, protocol, route, str(code)))
        series[0].observe(seconds)
        series[1].inc()

    @property
    def ready(self) -> bool:
        return self.predictor is not None and not self.draining

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.in_flight == 0, timeout)

    def check_model(self, name: str, version: str | None) -> None:
        """Raises ProtocolError (404) unless `name` (and `version`, if given) is served here."""
        if name != self.model_name:
            raise ProtocolError(f"unknown model '{name}'; this server serves "
                                f"'{self.model_name}'", 404)
        if version and version != self.model_version:
            raise ProtocolError(f"unknown version '{version}' of '{name}'; this server serves "
                                f"{self.model_version}", 404)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}

    def model_metadata(self) -> dict[str, Any]:
        """The protocol's model metadata: the tensors responses carry, -1 for any size."""
        predictor = self.predictor
        return {
            "name": self.model_name,
            "versions": [self.model_version],
            "platform": predictor.platform if predictor else "",
            "inputs": [t.as_json() for t in predictor.inputs] if predictor else [],
            "outputs": [t.as_json() for t in predictor.outputs] if predictor else [],
        }

    def infer(self, request: InferRequest) -> dict[str, np.ndarray]:
        """Every output of the model for the request; raises ProtocolError (400, 503)."""
        predictor = self.predictor
        if predictor is None:  # a request accepted before a stop is still answered
            raise ProtocolError(f"model '{self.model_name}' is not ready", 503)
        outputs = infer(predictor, request.inputs)
        first = next(iter(request.inputs.values()))
        self._rows.inc(first.shape[0] if first.ndim else 1)
        return outputs
