"""vLLM's OpenAI-compatible server, for large language models (`runtime.engine: vllm`).

Every flag, default, path and metric name below was read in vLLM's source (not run: vLLM
needs a GPU), at these commits of vllm-project/vllm:

- `vllm/engine/arg_utils.py` @001999d2 (`EngineArgs.add_cli_args`): `--tensor-parallel-size`
  (`-tp`, int), `--served-model-name` (nargs `+`), `--enable-lora` (store_true),
  `--max-loras` (int, default 1), `--max-lora-rank` (int, default 16), `--load-format`
  (choices include `runai_streamer`), `--gpu-memory-utilization` (default 0.90).
- `vllm/entrypoints/openai/cli_args.py` @00522333: `--port` (default 8000), `--host`,
  `--lora-modules` (`name=path` items, parsed by `LoRAParserAction`).
- `vllm/v1/metrics/loggers.py` @005a810b: `vllm:kv_cache_usage_perc` (1 = 100%),
  `vllm:time_to_first_token_seconds`, `vllm:e2e_request_latency_seconds`,
  `vllm:request_success`, `vllm:lora_requests_info`; `vllm:num_requests_waiting` and
  `vllm:num_requests_running` (the scheduler gauges) as the Gateway API Inference
  Extension's endpoint picker reads them (llm-d-router@v0.10.0 pkg/epp/server/options.go).
- `vllm/envs.py` @001f69f8: `VLLM_CACHE_ROOT` defaults to `${XDG_CACHE_HOME:-~/.cache}/vllm`,
  `VLLM_CONFIG_ROOT` to `${XDG_CONFIG_HOME:-~/.config}/vllm`, `VLLM_RPC_BASE_PATH` to the
  temporary folder (`/tmp`, an emptyDir); usage stats are off with `VLLM_NO_USAGE_STATS=1`
  and `DO_NOT_TRACK=1` (read as `VLLM_DO_NOT_TRACK`). `HF_HOME`, `HF_HUB_OFFLINE` are
  huggingface_hub's, `TRITON_CACHE_DIR` Triton's, `TORCHINDUCTOR_CACHE_DIR` torch's.
- `/dev/shm`: PyTorch shares tensors between the tensor-parallel workers through shared
  memory (docs.vllm.ai deployment/docker); the vLLM production-stack mounts a Memory
  emptyDir there when tensor parallelism is on (helm/templates, vllm-stack-0.1.12).

The tests parse the argv built here with an argparse built from those definitions
(tests/test_runtimes.py), so a misspelt flag or a wrong type fails there.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi_kubernetes as k8s

from components.identity import read_prefix
from components.podspec import (
    STARTUP_PERIOD_SECONDS,
    ModelContainer,
    Mount,
    Probes,
)
from components.runtimes.base import (
    COMPONENT,
    RequestMetrics,
    RuntimeInputs,
    RuntimeMetrics,
    RuntimePod,
    Scrape,
    http_port,
)
from components.runtimes.fetch import (
    ADAPTERS_PATH,
    WEIGHTS_PATH,
    fetch_container,
    fetched_artifacts,
    models_mount,
    models_volume,
    object_arns,
    pinned_files,
)
from modelfleet.manifest.schema import VLLM_PORT, ModelSpec

COMMAND = ("vllm", "serve")
"""`vllm serve <model> [flags]`: the model is the positional argument (docs.vllm.ai,
deployment/docker: the image's arguments go to `vllm serve`)."""
HEALTH_PATH = "/health"
"""200 once the engine is up; vLLM opens its HTTP server only after the model has loaded
(llm-d-router@v0.10.0 config/manifests/vllm/gpu-deployment.yaml probes it)."""
MODELS_PATH = "/v1/models"
GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's default share of each GPU's memory it takes (weights + activations + KV cache):
`--gpu-memory-utilization` 0.90 at vllm@001999d2 (later commits raise it to 0.92)."""
CACHE_VOLUME = "cache"
CACHE_PATH = "/cache"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"
SHM_GIB_PER_GPU = 2
"""Shared memory per tensor-parallel worker, in GiB. A Memory emptyDir counts against the
container's memory limit, so it is bounded (the production-stack's default is a flat 20Gi)."""
CACHE_ENV = (
    ("HOME", CACHE_PATH),
    ("XDG_CACHE_HOME", f"{CACHE_PATH}/.cache"),
    ("XDG_CONFIG_HOME", f"{CACHE_PATH}/.config"),
    ("HF_HOME", f"{CACHE_PATH}/huggingface"),
    ("VLLM_CACHE_ROOT", f"{CACHE_PATH}/vllm"),
    ("VLLM_CONFIG_ROOT", f"{CACHE_PATH}/vllm-config"),
    ("TRITON_CACHE_DIR", f"{CACHE_PATH}/triton"),
    ("TORCHINDUCTOR_CACHE_DIR", f"{CACHE_PATH}/torchinductor"),
    ("OUTLINES_CACHE_DIR", f"{CACHE_PATH}/outlines"),
)
"""Every cache vLLM and its libraries write, on a writable emptyDir: the root filesystem is
read-only."""
OFFLINE_ENV = (
    ("HF_HUB_OFFLINE", "1"),
    ("VLLM_NO_USAGE_STATS", "1"),
    ("DO_NOT_TRACK", "1"),
)
"""Never a network fetch from a model hub at run time, and no usage reports."""
MODELS_LISTED = (
    "import json,sys,urllib.request\n"
    "u='http://127.0.0.1:%s/v1/models'%sys.argv[1]\n"
    "d=json.load(urllib.request.urlopen(u,timeout=2))\n"
    "sys.exit(0 if set(sys.argv[2:])<={m.get('id') for m in d.get('data',[])} else 1)\n"
)
"""The startup check: `/v1/models` (OpenAI's list, `{"data": [{"id": ...}]}`) names the
model and every adapter; run with the image's own python."""


class VllmRuntime:
    """vLLM serving the OpenAI API for one model and its LoRA adapters."""

    engine: ClassVar[str] = "vllm"
    metrics: ClassVar[RuntimeMetrics] = RuntimeMetrics(
        waiting="vllm:num_requests_waiting", running="vllm:num_requests_running",
        kv_cache="vllm:kv_cache_usage_perc")

    def ports(self, spec: ModelSpec) -> list[k8s.core.v1.ContainerPortArgs]:
        return [http_port(port(spec))]

    def pod(self, inputs: RuntimeInputs) -> RuntimePod:
        spec, serving = inputs.spec, inputs.serving
        artifacts = fetched_artifacts(spec)
        mounts = [Mount(CACHE_VOLUME, CACHE_PATH, read_only=False),
                  Mount(SHM_VOLUME, SHM_PATH, read_only=False)]
        volumes = [cache_volume(), shm_volume(serving.gpus)]
        init = []
        if artifacts:
            mounts.append(models_mount())
            volumes.append(models_volume(artifacts))
            init.append(fetch_container(artifacts, inputs.cluster.fetch_image,
                                        inputs.cluster.region))
        env: list[tuple[str, Any]] = [*CACHE_ENV, *OFFLINE_ENV]
        if not spec.artifact.files:  # streamed from S3 by vLLM itself
            env.append(("AWS_REGION", inputs.cluster.region))
        env += sorted(serving.env.items())
        container = ModelContainer(
            name=COMPONENT, image=inputs.image, command=COMMAND,
            args=serve_args(spec, inputs.artifact_uri if not spec.artifact.files else None),
            env=env, resources=serving.resources, ports=self.ports(spec),
            probes=probes(spec), pre_stop_seconds=5, mounts=mounts)
        return RuntimePod(container=container, init_containers=init, volumes=volumes)

    def scrape(self, spec: ModelSpec) -> Scrape:
        """vLLM's `/metrics` on its serving port (`vllm/entrypoints/openai/api_server.py`
        mounts the Prometheus app there)."""
        return Scrape("http", port(spec), "/metrics")

    def requests(self, spec: ModelSpec) -> RequestMetrics | None:
        """None until vLLM's request metrics are wired to the analyses (issue 19, item 7)."""
        return None

    def reads(self, spec: ModelSpec) -> list[dict[str, Any]]:
        """Exactly the pinned files; unpinned weights: their prefix (vLLM lists and streams
        it). The init container and the engine share the pod's identity."""
        found = object_arns(pinned_files(fetched_artifacts(spec)))
        if not spec.artifact.files and spec.artifact.uri:
            bucket, _, prefix = spec.artifact.uri.removeprefix("s3://").partition("/")
            found += read_prefix(bucket, prefix, "StreamWeights")
        return found


def port(spec: ModelSpec) -> int:
    return spec.serving.port if spec.serving else VLLM_PORT


def serve_args(spec: ModelSpec, streamed_uri: Any = None) -> list[Any]:
    """`vllm serve`'s arguments: the weights (fetched to /models/weights, or streamed from S3
    with the Run:ai streamer when not pinned), the served name, the port, tensor parallelism
    over the pod's GPUs, the adapters, then the manifest's own `runtime.args`."""
    serving = spec.serving
    gpus = serving.gpus if serving else 1
    args: list[Any] = [streamed_uri if streamed_uri is not None else WEIGHTS_PATH,
                       "--served-model-name", spec.name,
                       "--host", "0.0.0.0", "--port", str(port(spec)),
                       "--tensor-parallel-size", str(max(gpus, 1))]
    if streamed_uri is not None:
        args += ["--load-format", "runai_streamer"]
    adapters = serving.adapters if serving else []
    if adapters:
        args += ["--enable-lora", "--max-loras", str(len(adapters)), "--lora-modules",
                 *[f"{a.name}={ADAPTERS_PATH}/{a.name}" for a in adapters]]
    return args + list(spec.runtime.args)


def probes(spec: ModelSpec) -> Probes:
    """Startup: `/v1/models` lists the model and its adapters (an exec check, since an HTTP
    probe cannot read a body), for `startupSeconds`; then readiness and liveness on
    `/health`, cheap enough to run every few seconds."""
    serving = spec.serving
    budget = serving.startup_seconds if serving else 1800
    names = [spec.name, *[a.name for a in (serving.adapters if serving else [])]]

    def health(period: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=HEALTH_PATH, port="http"),
            period_seconds=period, timeout_seconds=2, failure_threshold=failures)
    startup = k8s.core.v1.ProbeArgs(
        exec_=k8s.core.v1.ExecActionArgs(
            command=["python3", "-c", MODELS_LISTED, str(port(spec)), *names]),
        period_seconds=STARTUP_PERIOD_SECONDS, timeout_seconds=5,
        failure_threshold=max(1, -(-budget // STARTUP_PERIOD_SECONDS)))
    return Probes(readiness=health(5, 3), liveness=health(10, 3), startup=startup)


def cache_volume() -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name=CACHE_VOLUME,
                                  empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())


def shm_volume(gpus: int) -> k8s.core.v1.VolumeArgs:
    """`/dev/shm` in memory, `SHM_GIB_PER_GPU` per tensor-parallel worker."""
    return k8s.core.v1.VolumeArgs(name=SHM_VOLUME, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
        medium="Memory", size_limit=f"{SHM_GIB_PER_GPU * max(gpus, 1)}Gi"))
