"""Prometheus metrics of one server: requests, latency, requests in flight, queue work.

HTTP and gRPC share them; `protocol` tells them apart and `code` is the HTTP status,
or for gRPC the HTTP status its code maps to (OK 200, INVALID_ARGUMENT 400,
NOT_FOUND 404, UNAVAILABLE 503, INTERNAL 500), so one query finds every error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("modelserver_requests", "HTTP and gRPC requests answered",
                                ["model", "protocol", "route", "code"], registry=self.registry)
        self.latency = Histogram("modelserver_request_duration_seconds",
                                 "Time to answer a request", ["model", "protocol", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("modelserver_requests_in_flight",
                               "Inference requests being answered", ["model"],
                               registry=self.registry)
        self.messages = Counter("modelserver_messages", "Queue messages handled",
                                ["model", "outcome"], registry=self.registry)
        self.rows = Counter("modelserver_rows_predicted", "Input rows predicted",
                            ["model"], registry=self.registry)
        self.model = Info("modelserver_model", "The model this server runs, and its version",
                          registry=self.registry)

    def serving(self, model: str, version: str) -> None:
        """Say which version answers: a candidate's series and the stable version's can then
        be told apart and compared (joined on the pod), as the pods' labels also allow."""
        self.model.info({"model": model, "version": version})

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
