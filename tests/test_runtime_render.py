"""`runtime.engine: modelserver`, explicit or by default, renders exactly what it did before.

Every shipped stack is planned twice from one clone of the project: with the manifest as
shipped, and with `runtime: {engine: modelserver}` written into every model. Each stack
reads the working tree here (its `manifestRef` dropped), so the pinned stacks' settings
are rendered against the edited manifest too; except `risk-prod`, whose settings (no
gateway) do not fit today's manifest (candidates), and which plans at its pinned commit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelfleet.stacks.config import StackConfig, load_stack
from planner.plan import run_plan
from planner.render import kubernetes_objects, mask, plain
from tests.gitrepo import GitRepo
from tests.shipped import copy_project

SHIPPED = sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml")
                 for path in (Path(__file__).resolve().parent.parent / "stacks").glob("*.yaml"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    return copy_project(tmp_path_factory.mktemp("runtime-render") / "project")


AT_PIN = {"risk-prod"}


def working_tree(stack: StackConfig) -> StackConfig:
    if stack.name in AT_PIN:
        return stack
    values = {k: v for k, v in stack.values.items() if k != "modelfleet:manifestRef"}
    return StackConfig(stack.name, stack.file, values, stack.secrets)


def rendered(root: Path, name: str) -> dict[tuple[str, str], Any]:
    """Every Kubernetes object and every AWS resource's inputs, as `plan --render` writes."""
    simulation = run_plan(root, working_tree(load_stack(root, name)), name)
    found: dict[tuple[str, str], Any] = {
        (obj["kind"], obj["metadata"]["name"]): obj
        for obj in kubernetes_objects(simulation.registrations)}
    found.update({(r.type, r.name): mask(plain(r.inputs), r.secrets)
                  for r in simulation.registrations
                  if r.custom and r.type.startswith("aws:")})
    return found


def with_explicit_modelserver(text: str) -> str:
    """`runtime: {engine: modelserver}` under the name of every model that has no runtime
    (the example's vLLM and Triton models keep theirs)."""
    head, *models = re.split(r"(?m)^(?=  - name: )", text)
    return head + "".join(
        model if re.search(r"(?m)^    runtime:", model)
        else re.sub(r"^(  - name: .+)$", r"\1\n    runtime: {engine: modelserver}", model,
                    count=1, flags=re.MULTILINE)
        for model in models)


def test_an_explicit_modelserver_runtime_renders_every_shipped_stack_unchanged(
        project: GitRepo) -> None:
    manifest = project.root / "models.yaml"
    shipped = manifest.read_text(encoding="utf-8")
    before = {name: rendered(project.root, name) for name in SHIPPED}
    edited = with_explicit_modelserver(shipped)
    assert edited.count("runtime: {engine: modelserver}") == \
        shipped.count("\n  - name: ") - shipped.count("\n    runtime:")
    manifest.write_text(edited, encoding="utf-8")
    try:
        after = {name: rendered(project.root, name) for name in SHIPPED}
    finally:
        manifest.write_text(shipped, encoding="utf-8")
    assert SHIPPED
    assert all(before[name] for name in SHIPPED)
    for name in SHIPPED:
        assert before[name].keys() == after[name].keys(), name
        changed = [key for key in before[name] if before[name][key] != after[name][key]]
        assert changed == [], f"{name}: {changed}"
