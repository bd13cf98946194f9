"""The plan of an LLM behind the Gateway: a new pool for a candidate, the weights between
pools, a new endpoint picker image and a switch of scaling signal, each in the model's
summary.

The example `assistant` (vLLM) is changed in a copy of the project and dev is planned
against the commit before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.changes import ResourceChange
from planner.gateway import POOL, pool_lines
from planner.recorder import Registration
from planner.review import ModelView
from tests.gitrepo import GitRepo
from tests.shipped import copy_project
from tests.test_plan_review import by_model, document

NEW_PICKER = "ghcr.io/llm-d/llm-d-router-endpoint-picker@sha256:" + "9" * 64


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return copy_project(tmp_path / "project")


def test_a_candidate_pool_a_picker_image_and_a_scaling_switch_show_in_the_summary(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    models = project.root / "models.yaml"
    text = models.read_text(encoding="utf-8")
    anchor = "      resources: {cpu: \"8\", memory: 48Gi, gpu: 1}\n"
    assert text.count(anchor) == 1
    models.write_text(text.replace(anchor, anchor + (
        "      scaleMetric: kv-cache\n"
        "      scaleTarget: 80\n"
        "      candidates:\n"
        "        - name: next\n"
        "          version: 1.1.0\n"
        "          artifact: {uri: s3://training-output/assistant/llama-3.1-8b-next/}\n"
        "          weight: 10\n")), encoding="utf-8")
    stack = project.root / "stacks/Pulumi.dev.yaml"
    config = stack.read_text(encoding="utf-8")
    old_picker = next(line.split(": ", 1)[1] for line in config.splitlines()
                      if "modelfleet:endpointPickerImage" in line)
    stack.write_text(config.replace(old_picker, NEW_PICKER), encoding="utf-8")
    project.commit("assistant: a candidate on kv-cache scaling, a new endpoint picker")
    lines = by_model(document(project, capsys))["assistant"]["lines"]
    assert ("new InferencePool assistant-next, with its endpoint picker assistant-next-epp: "
            "the Gateway sends the model's requests there by model name") in lines
    assert ("traffic of HTTPRoute assistant: pool assistant 100% → pool assistant 90%, "
            "pool assistant-next 10%") in lines
    assert (f"endpoint picker assistant-epp: image {old_picker} → {NEW_PICKER}; it restarts "
            "(Recreate, one replica), and until it is ready its pool fails open: the Gateway "
            "picks pods by its own balancing, without queue, KV-cache and prefix-cache "
            "scores") in lines
    assert ("scaling of assistant: 1 to 2 replicas on cpu at 70% → 1 to 2 replicas on "
            "KV-cache use (percent) at 80 per pod (KEDA)") in lines


def test_a_replaced_pool_is_flagged_with_what_breaks_meanwhile() -> None:
    def pool(namespace: str) -> Registration:
        return Registration(type=POOL, name="assistant-pool", urn="urn:pool", parent="",
                            custom=True, inputs={"metadata": {"name": "assistant",
                                                              "namespace": namespace}})
    view = ModelView("assistant", base=[pool("models")], head=[pool("llm")],
                     changes=[ResourceChange("replace", POOL, "assistant-pool", "urn:pool")])
    assert pool_lines(view) == [
        "replaces InferencePool assistant: while it is deleted and created again the route's "
        "backend is missing, and the Gateway answers its share of requests with 500 (Gateway "
        "API HTTPRoute `backendRefs`)"]
