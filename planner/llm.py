"""What the plan checks of a large language model: does it fit its GPUs, can it start in time.

Read from the model as the manifest wrote it (the head's `manifest.deployed` record) and the
stack's `modelfleet:gpuMemoryGiB` and `modelfleet:weightsDownloadMBps`.

- `gpu-memory` (danger): vLLM takes `--gpu-memory-utilization` (0.90 by default,
  vllm@001999d2 vllm/engine/arg_utils.py) of each GPU's memory for the weights, the
  activations and the KV cache, and fails to start when no memory is left for KV-cache blocks.
  The rule here: the weights (split over the tensor-parallel GPUs) may take at most
  `WEIGHTS_SHARE` of that, leaving the rest for activations and a KV cache worth serving.
- `cold-start` (warning): the pinned files' total size over the stated download rate exceeds
  `startupSeconds`: a new pod spends longer fetching its weights than it is given to start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.stacks.settings import DEFAULT_DOWNLOAD_MBPS

GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's default share of each GPU (vllm@001999d2: `gpu_memory_utilization: float = 0.90`)."""
WEIGHTS_SHARE = 0.8
"""At most this part of vLLM's share may go to the weights: the other fifth is for the
activations and the KV cache (a KV cache too small for one `max-model-len` sequence makes
vLLM refuse to start)."""
GIB = 1024 ** 3
MB = 1000 ** 2


@dataclass(frozen=True)
class Llm:
    """An LLM's serving facts, as the plan summarises and checks them."""

    name: str
    gpus: int
    weight_files: int
    weight_bytes: int | None
    """None: the weights are not pinned, so their size is unknown."""
    adapters: tuple[tuple[str, str, int], ...]
    """(name, version, bytes) of each LoRA adapter."""
    startup_seconds: int

    @property
    def fetched_bytes(self) -> int:
        return (self.weight_bytes or 0) + sum(size for _, _, size in self.adapters)

    def summary(self) -> str:
        """`vLLM: weights 16.1 GB (10 files), 1 GPU, adapters ticket-triage 1.2.0, ...`."""
        weights = f"weights {gb(self.weight_bytes)} ({self.weight_files} files, pinned)" \
            if self.weight_bytes is not None else "weights not pinned (streamed from S3)"
        adapters = ", ".join(f"{name} {version}" for name, version, _ in self.adapters) \
            or "none"
        gpus = f"{self.gpus} GPU" + ("s" if self.gpus != 1 else "")
        return f"vLLM: {weights}, {gpus} (tensor-parallel {self.gpus}), adapters: {adapters}"


def llm_of(model: Mapping[str, Any] | None) -> Llm | None:
    """The LLM facts of a model as written, or None for a model not served by vLLM."""
    if not model or (model.get("runtime") or {}).get("engine") != "vllm":
        return None
    serving = model.get("serving") or {}
    files = (model.get("artifact") or {}).get("files") or []
    adapters = tuple(
        (str(a.get("name")), str(a.get("version")),
         sum(int(f.get("size", 0)) for f in (a.get("artifact") or {}).get("files") or []))
        for a in serving.get("adapters") or [])
    return Llm(name=str(model.get("name")),
               gpus=max(1, int(str((serving.get("resources") or {}).get("gpu", 1)))),
               weight_files=len(files),
               weight_bytes=sum(int(f.get("size", 0)) for f in files) if files else None,
               adapters=adapters,
               startup_seconds=int(serving.get("startupSeconds", 1800)))


def gb(size: int | None) -> str:
    return "unknown" if size is None else f"{size / 1e9:.1f} GB"


def gpu_memory_problem(llm: Llm, gpu_memory_gib: int) -> str | None:
    """Why the weights do not fit the model's GPUs with room for the KV cache (None: they do;
    also None when the stack does not state its GPUs' memory or the weights are unpinned)."""
    if gpu_memory_gib <= 0 or llm.weight_bytes is None:
        return None
    usable = llm.gpus * gpu_memory_gib * GIB * GPU_MEMORY_UTILIZATION
    if llm.weight_bytes <= usable * WEIGHTS_SHARE:
        return None
    room = int(usable * WEIGHTS_SHARE)
    return (f"weights of {gb(llm.weight_bytes)} on {llm.gpus} GPU(s) of {gpu_memory_gib} GiB: "
            f"vLLM takes {GPU_MEMORY_UTILIZATION:.0%} of GPU memory ({gb(int(usable))}), and "
            f"the weights may fill at most {WEIGHTS_SHARE:.0%} of that ({gb(room)}) to leave "
            "room for activations and the KV cache; give the model more GPUs "
            "(tensor parallelism) or larger ones, or a quantized model")


def cold_start_problem(llm: Llm, download_mbps: int) -> str | None:
    """Why a new pod cannot fetch its files within its startup budget (None: it can)."""
    seconds = llm.fetched_bytes / (max(download_mbps, 1) * MB)
    if not llm.fetched_bytes or seconds <= llm.startup_seconds:
        return None
    return (f"fetching {gb(llm.fetched_bytes)} at {download_mbps} MB/s takes about "
            f"{seconds:.0f} s, more than its startupSeconds ({llm.startup_seconds} s): raise "
            "startupSeconds, or state the nodes' real rate (modelfleet:weightsDownloadMBps)")


def stack_numbers(values: Mapping[str, Any]) -> tuple[int, int]:
    """(gpuMemoryGiB, weightsDownloadMBps) of a stack's config, defaults filled in."""
    def number(key: str, default: int) -> int:
        try:
            return int(str(values.get(f"modelfleet:{key}", default)))
        except ValueError:
            return default
    return number("gpuMemoryGiB", 0), number("weightsDownloadMBps", DEFAULT_DOWNLOAD_MBPS)
