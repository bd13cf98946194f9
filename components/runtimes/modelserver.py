"""Our own model server (images/modelserver): the Open Inference Protocol over HTTP and gRPC.

The default runtime. What it renders is what the serving component rendered before runtimes
existed, byte for byte (tests/test_runtimes.py compares the shipped stacks' renders).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi_kubernetes as k8s

from components.identity import read_uri
from components.podspec import ModelContainer, http_probes, model_env
from components.runtimes.base import (
    COMPONENT,
    RequestMetrics,
    RuntimeInputs,
    RuntimeMetrics,
    RuntimePod,
    Scrape,
    Series,
)
from modelfleet.manifest.schema import ModelSpec, Serving

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
"""The Open Inference Protocol's health endpoints (KServe's open_inference_rest.yaml)."""

REQUESTS = RequestMetrics(
    family="modelserver",
    requests=(Series("modelserver_requests_total", 'route="infer"'),),
    succeeded=Series("modelserver_requests_total", 'route="infer",code!~"5.."'),
    latency_buckets=Series("modelserver_request_duration_seconds_bucket", 'route="infer"'),
    duration=Series("modelserver_requests_in_progress_seconds_total"))
"""What images/modelserver/metrics.py exports: requests by `route` and status `code`, a
latency histogram in seconds, and request-seconds in progress (a counter whose rate is the
average number of requests in progress, Little's law: the concurrency KEDA scales on; the
`modelserver_requests_in_flight` gauge, sampled at a scrape, would read about zero)."""


class ModelServerRuntime:
    """Serves `artifact` over OIP on `serving.port` (HTTP) and `serving.grpcPort` (gRPC)."""

    engine: ClassVar[str] = "modelserver"
    metrics: ClassVar[RuntimeMetrics] = RuntimeMetrics()

    def ports(self, spec: ModelSpec) -> list[k8s.core.v1.ContainerPortArgs]:
        serving = _serving(spec)
        return [k8s.core.v1.ContainerPortArgs(name="http", container_port=serving.port,
                                              protocol="TCP"),
                k8s.core.v1.ContainerPortArgs(name="grpc", container_port=serving.grpc_port,
                                              protocol="TCP")]

    def pod(self, inputs: RuntimeInputs) -> RuntimePod:
        serving = inputs.serving
        artifact = inputs.spec.artifact
        container = ModelContainer(
            name=COMPONENT, image=inputs.image,
            env=model_env(inputs.provenance, inputs.artifact_uri, artifact.sha256,
                          {"MODEL_PORT": str(serving.port),
                           "MODEL_GRPC_PORT": str(serving.grpc_port), **serving.env},
                          object_version=artifact.version_id),
            resources=serving.resources,
            ports=self.ports(inputs.spec),
            probes=http_probes("http", READY_PATH, LIVE_PATH, serving.startup_seconds),
            pre_stop_seconds=5)
        return RuntimePod(container=container)

    def scrape(self, spec: ModelSpec) -> Scrape:
        """The server's own `/metrics`, on its HTTP port (`images/modelserver/metrics.py`)."""
        return Scrape("http", _serving(spec).port, "/metrics")

    def reads(self, spec: ModelSpec) -> list[dict[str, Any]]:
        """Its external artifact (the registry prefix is every runtime's)."""
        if not spec.artifact.uri:
            return []
        return read_uri(spec.artifact.uri, "ReadArtifact", spec.artifact.version_id)

    def requests(self, spec: ModelSpec) -> RequestMetrics | None:
        return REQUESTS


def _serving(spec: ModelSpec) -> Serving:
    if spec.serving is None:
        raise ValueError(f"model {spec.name} has no serving section")
    return spec.serving
