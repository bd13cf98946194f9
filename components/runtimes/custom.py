"""Any image that serves HTTP (`runtime.engine: custom`): Triton, MLServer, TGI, ...

The manifest says everything the image does not: its port, its protocol, its liveness and
readiness paths, where its metrics are. The image keeps its own entrypoint; `runtime.args`
replaces its arguments when given. It is told the model's name, version and artifact
(`MODEL_NAME`, `MODEL_VERSION`, `MODEL_URI`) like our own server, and reads the artifact
with the pod's identity.
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
    http_port,
)
from modelfleet.manifest.schema import ModelSpec

TRITON = RequestMetrics(
    family="triton",
    requests=(Series("nv_inference_request_success"), Series("nv_inference_request_failure")),
    succeeded=Series("nv_inference_request_success"),
    duration=Series("nv_inference_request_duration_us"),
    duration_per_second=1_000_000)
"""Triton Inference Server's per-model request metrics (labels `model`, `version`), read
from triton-inference-server/server `docs/user_guide/metrics.md` at commit 067c1e96 (read,
not run). Counters, updated per request: `nv_inference_request_success` and
`nv_inference_request_failure` (each request counts 1, whatever its batch; a failure is any
failed request, the docs do not tell a client's mistake from a server error), and
`nv_inference_request_duration_us`, the cumulative end-to-end handling time in microseconds.
Latency histograms are not exported by default (summaries only with `--metrics-config
summary_latencies=true`), so the canary checks the *mean* latency (duration over requests)
and concurrency is the mean number of requests being handled (duration a second, Little's
law); Triton exports no in-flight gauge at that version."""

MLSERVER = RequestMetrics(
    family="mlserver",
    requests=(Series("model_infer_request_success_total"),
              Series("model_infer_request_failure_total")),
    succeeded=Series("model_infer_request_success_total"),
    duration=Series("model_infer_request_duration_sum"))
"""MLServer's per-model request metrics (labels `model`, `version`), read from
SeldonIO/MLServer `mlserver/handlers/dataplane.py` at commit 38a6c1c6 (read, not run):
counters `model_infer_request_success` and `model_infer_request_failure` (any exception while
serving, a missing model included), exposed with prometheus_client's `_total` suffix, and the
summary `model_infer_request_duration` in seconds (`_sum`, `_count`, no quantiles). As for
Triton: the canary checks the mean latency and concurrency is read by Little's law."""

FAMILIES: dict[str, RequestMetrics] = {family.family: family for family in (TRITON, MLSERVER)}
"""`runtime.metrics`: the request metrics a custom image exports (`none`: not read)."""


class CustomRuntime:
    """An image of the team's choosing, hardened like every model pod."""

    engine: ClassVar[str] = "custom"
    metrics: ClassVar[RuntimeMetrics] = RuntimeMetrics()

    def ports(self, spec: ModelSpec) -> list[k8s.core.v1.ContainerPortArgs]:
        """HTTP, and the metrics port when it is another (open to the namespaces that may
        call the model, as the HTTP port's metrics are; not exposed by the Service)."""
        runtime = spec.runtime
        found = [http_port(runtime.port or 0)]
        if runtime.metrics_path and runtime.metrics_port not in (None, runtime.port):
            found.append(k8s.core.v1.ContainerPortArgs(
                name="metrics", container_port=runtime.metrics_port, protocol="TCP"))
        return found

    def pod(self, inputs: RuntimeInputs) -> RuntimePod:
        spec, serving = inputs.spec, inputs.serving
        runtime = spec.runtime
        if runtime.health is None or runtime.port is None:
            raise ValueError(f"model {spec.name}: a custom runtime needs port and health")
        container = ModelContainer(
            name=COMPONENT, image=inputs.image, args=list(runtime.args),
            env=model_env(inputs.provenance, inputs.artifact_uri, spec.artifact.sha256,
                          {"AWS_REGION": inputs.cluster.region, **serving.env},
                          object_version=spec.artifact.version_id),
            resources=serving.resources, ports=self.ports(spec),
            probes=http_probes("http", runtime.health.ready, runtime.health.live,
                               serving.startup_seconds),
            pre_stop_seconds=5)
        return RuntimePod(container=container)

    def scrape(self, spec: ModelSpec) -> Scrape | None:
        """`runtime.metricsPath` on `runtime.metricsPort` (its own container port, `metrics`)
        or on the HTTP port; None without a metrics path."""
        runtime = spec.runtime
        if not runtime.metrics_path or runtime.port is None:
            return None
        if runtime.metrics_port not in (None, runtime.port):
            return Scrape("metrics", runtime.metrics_port, runtime.metrics_path)
        return Scrape("http", runtime.port, runtime.metrics_path)

    def reads(self, spec: ModelSpec) -> list[dict[str, Any]]:
        if not spec.artifact.uri:
            return []
        return read_uri(spec.artifact.uri, "ReadArtifact", spec.artifact.version_id)

    def requests(self, spec: ModelSpec) -> RequestMetrics | None:
        """The family `runtime.metrics` names; None for `none`."""
        return FAMILIES.get(spec.runtime.metrics)
