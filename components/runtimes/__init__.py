"""Runtimes: one module per engine, each the one place that knows how its engine runs.

A new engine (SGLang, TGI) is a module with a class that has the `Runtime` protocol's
members, listed in `RUNTIMES`, and its name in the manifest's `runtime.engine`.
"""

from __future__ import annotations

from components.runtimes.base import Runtime, RuntimeInputs, RuntimeMetrics, RuntimePod
from components.runtimes.custom import CustomRuntime
from components.runtimes.modelserver import ModelServerRuntime
from components.runtimes.vllm import VllmRuntime
from modelfleet.manifest.schema import ModelSpec

RUNTIMES: dict[str, Runtime] = {
    runtime.engine: runtime
    for runtime in (ModelServerRuntime(), VllmRuntime(), CustomRuntime())
}


def runtime_for(spec: ModelSpec) -> Runtime:
    """The runtime of the model's `runtime.engine` (validated, so always one of RUNTIMES)."""
    return RUNTIMES[spec.runtime.engine]


__all__ = ["RUNTIMES", "Runtime", "RuntimeInputs", "RuntimeMetrics", "RuntimePod",
           "runtime_for"]
