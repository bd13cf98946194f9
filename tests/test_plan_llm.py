"""The plan of an LLM: its summary (weights, GPUs, adapters), adapter changes by name, and the
`gpu-memory` and `cold-start` checks against the stack's stated GPUs and download rate.

Each test commits a change to the example `assistant` (Llama-3.1-8B-Instruct on vLLM, 16.1 GB
of weights, one 24 GiB L4 in the dev stack) in a copy of the project and plans dev against
the commit before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.llm import Llm, cold_start_problem, gpu_memory_problem
from tests.gitrepo import GitRepo
from tests.shipped import copy_project
from tests.test_plan_review import by_model, document, kinds

LLAMA_8B_BYTES = 16_069_706_689
"""The example's weight files, in bytes."""


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return copy_project(tmp_path / "project")


def change_adapters(project: GitRepo, stack_lines: str = "") -> None:
    """Bump one adapter and drop the other, in one commit (with stack settings, if any)."""
    models = project.root / "models.yaml"
    text = models.read_text(encoding="utf-8")
    start = text.index("        - name: ticket-triage")
    end = text.index("        - name: reply-tone")
    text = text[:start] + text[end:]
    text = text.replace("version: 0.3.1\n", "version: 0.4.0\n").replace(
        "adapters/reply-tone/0.3.1/", "adapters/reply-tone/0.4.0/")
    models.write_text(text, encoding="utf-8")
    if stack_lines:
        stack = project.root / "stacks/Pulumi.dev.yaml"
        stack.write_text(stack.read_text(encoding="utf-8").replace(
            "  modelfleet:gpuMemoryGiB: 24\n", stack_lines), encoding="utf-8")
    project.commit("assistant: reply-tone 0.4.0, ticket-triage retired")


def test_adapter_changes_show_by_name_with_the_llms_weights_gpus_and_adapters(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    change_adapters(project)
    planned = document(project, capsys)
    lines = by_model(planned)["assistant"]["lines"]
    assert "adapter reply-tone 0.3.1 → 0.4.0" in lines
    assert "adapter ticket-triage 1.2.0 removed" in lines
    assert ("vLLM: weights 16.1 GB (10 files, pinned), 1 GPU (tensor-parallel 1), adapters: "
            "reply-tone 0.4.0") in lines
    assert not [k for k in kinds(planned) if k[2] in ("gpu-memory", "cold-start")]
    deployment = next(c for c in planned["changes"] if c["name"] == "assistant"
                      and c["type"] == "kubernetes:apps/v1:Deployment")
    assert deployment["op"] == "update"


def test_weights_too_large_for_the_gpus_and_a_slow_download_are_flagged(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    change_adapters(project, "  modelfleet:gpuMemoryGiB: 16\n"
                            "  modelfleet:weightsDownloadMBps: 5\n")
    planned = document(project, capsys)
    assert ("danger", "assistant", "gpu-memory") in kinds(planned)
    assert ("warning", "assistant", "cold-start") in kinds(planned)
    risk = next(r for r in planned["risks"] if r["kind"] == "cold-start")
    assert risk["message"].startswith("fetching 16.1 GB at 5 MB/s takes about 3222 s, more "
                                      "than its startupSeconds (1800 s)")


def llama(gpus: int = 1, startup: int = 1800) -> Llm:
    return Llm("assistant", gpus, 10, LLAMA_8B_BYTES, (("reply-tone", "0.4.0", 41_962_381),),
               startup)


def test_the_gpu_memory_rule_leaves_a_fifth_of_vllms_share_for_the_kv_cache() -> None:
    """16.1 GB of weights: over 80% of 90% of one 16 GiB GPU (12.4 GB), within one 24 GiB L4
    (18.6 GB), and within two 16 GiB GPUs under tensor parallelism (24.7 GB)."""
    assert gpu_memory_problem(llama(), 16) is not None
    assert gpu_memory_problem(llama(), 24) is None
    assert gpu_memory_problem(llama(gpus=2), 16) is None
    assert gpu_memory_problem(llama(), 0) is None  # the stack does not say: no check


def test_the_cold_start_rule_compares_the_download_with_the_startup_budget() -> None:
    assert cold_start_problem(llama(), 100) is None  # 161 s
    assert cold_start_problem(llama(startup=120), 100) is not None
