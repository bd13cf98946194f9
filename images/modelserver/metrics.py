"""Prometheus metrics of one server: requests, latency, requests in progress, queue work.

HTTP and gRPC share them; `protocol` tells them apart and `code` is the HTTP status,
or for gRPC the HTTP status its code maps to (OK 200, INVALID_ARGUMENT 400,
NOT_FOUND 404, UNAVAILABLE 503, INTERNAL 500), so one query finds every error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of `modelserver_request_duration_seconds`; latency objectives
(`serving.slo.p99LatencyMs`) must fall on one of them."""
CONCURRENCY_METRIC = "modelserver_requests_in_progress_seconds"
"""Exposed as `modelserver_requests_in_progress_seconds_total` (the `_total` of a counter)."""


class RequestSeconds(Collector):
    """The time integral of inference requests in progress, in request-seconds: a counter.

    Why a counter and not the gauge of requests in flight: Prometheus samples a gauge
    only when it scrapes, and a request of a few milliseconds is rarely in progress at
    that instant, so the gauge reads 0 or 1 whatever the load. This counter grows by
    `in progress * elapsed seconds` between any two moments and is brought up to date
    when it is read, so `rate(..._total[w])` is exactly the average number of requests in
    progress over the window `w` (Little's law: arrival rate * time in the system),
    whatever the scrape interval; `process_cpu_seconds_total` works the same way for CPUs.
    The `_sum` of the latency histogram would count a request only once it has finished,
    so it lags by a request's duration and misses the ones still waiting. A request
    counts from the moment its headers are read until its answer is written (KServe's
    concurrency: received and not yet answered, waiting for the model included).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._in_progress = 0
        self._seconds = 0.0
        self._since = clock()
        self.model = ""
        """The `model` label; set once the server knows what it serves."""

    def _advance(self) -> None:
        now = self._clock()
        self._seconds += self._in_progress * (now - self._since)
        self._since = now

    def started(self) -> None:
        with self._lock:
            self._advance()
            self._in_progress += 1

    def finished(self) -> None:
        with self._lock:
            self._advance()
            self._in_progress -= 1

    def value(self) -> float:
        """Request-seconds so far, up to this moment."""
        with self._lock:
            self._advance()
            return self._seconds

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            CONCURRENCY_METRIC, "Inference requests in progress integrated over time "
            "(request-seconds); its rate is the average number in progress", labels=["model"])
        family.add_metric([self.model], self.value())
        yield family


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
        self.request_seconds = RequestSeconds()
        self.registry.register(self.request_seconds)
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
        self.request_seconds.model = model

    def inference_started(self) -> None:
        """An inference request was received (HTTP or gRPC): it is in progress until
        `inference_finished`."""
        self.in_flight.labels(self.request_seconds.model).inc()
        self.request_seconds.started()

    def inference_finished(self) -> None:
        """Its answer is written (or the call ended in an error)."""
        self.in_flight.labels(self.request_seconds.model).dec()
        self.request_seconds.finished()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
