"""Properties of the diff over generated manifests: it is empty on itself and symmetric."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.diff.compare import Status, diff_models
from modelfleet.manifest.schema import ModelSpec

names = st.sampled_from(["fraud", "churn", "tagger", "ranker", "eta", "spam"])
versions = st.builds(lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-rc.{pre}" if pre else ""),
                     st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
                     st.integers(0, 2))
cpu = st.sampled_from(["250m", "500m", "1", "2"])
memory = st.sampled_from(["512Mi", "1Gi", "2Gi"])


@st.composite
def replicas(draw: st.DrawFn) -> dict[str, int]:
    low = draw(st.integers(1, 5))
    return {"min": low, "max": draw(st.integers(low, 20))}


serving = st.fixed_dictionaries({
    "port": st.sampled_from([8080, 9000]),
    "replicas": replicas(),
    "targetCPUUtilization": st.integers(30, 90),
    "resources": st.fixed_dictionaries({"cpu": cpu, "memory": memory}),
    "env": st.dictionaries(st.sampled_from(["LOG_LEVEL", "THREADS"]),
                           st.sampled_from(["info", "debug", "4"]), max_size=2),
})
batch = st.fixed_dictionaries({
    "minWorkers": st.integers(0, 2),
    "maxWorkers": st.integers(3, 30),
    "messagesPerWorker": st.integers(1, 10),
})


@st.composite
def model(draw: st.DrawFn, name: str) -> ModelSpec:
    data: dict[str, Any] = {
        "name": name,
        "team": draw(st.sampled_from(["risk", "growth"])),
        "version": draw(versions),
        "stage": draw(st.sampled_from(["candidate", "approved"])),
        "artifact": {"uri": f"s3://training/{name}/{draw(st.integers(0, 2))}/model"},
        "image": {"ref": f"registry.example/{name}@sha256:" + draw(st.sampled_from("ab")) * 64},
    }
    sections = draw(st.sampled_from([("serving",), ("batch",), ("serving", "batch")]))
    if "serving" in sections:
        data["serving"] = draw(serving)
    if "batch" in sections:
        data["batch"] = draw(batch)
    return ModelSpec.model_validate(data)


@st.composite
def fleet(draw: st.DrawFn) -> list[ModelSpec]:
    chosen = draw(st.lists(names, unique=True, max_size=5))
    return [draw(model(name)) for name in chosen]


@settings(max_examples=200, deadline=None)
@given(fleet())
def test_a_manifest_diffed_with_itself_is_empty(models: list[ModelSpec]) -> None:
    diff = diff_models(models, models)
    assert diff.empty
    assert sorted(diff.unchanged) == sorted(m.name for m in models)


@settings(max_examples=200, deadline=None)
@given(fleet(), fleet())
def test_diffing_back_swaps_added_and_removed(a: list[ModelSpec], b: list[ModelSpec]) -> None:
    forward, backward = diff_models(a, b), diff_models(b, a)
    assert [m.name for m in forward.by_status(Status.ADDED)] == [
        m.name for m in backward.by_status(Status.REMOVED)]
    assert [m.name for m in forward.by_status(Status.REMOVED)] == [
        m.name for m in backward.by_status(Status.ADDED)]
    assert forward.unchanged == backward.unchanged
    for there, back in zip(forward.by_status(Status.CHANGED), backward.by_status(Status.CHANGED),
                           strict=True):
        assert there.name == back.name
        assert sorted((c.path, c.old, c.new) for c in there.changes) == sorted(
            (c.path, c.new, c.old) for c in back.changes)


@settings(max_examples=200, deadline=None)
@given(fleet(), fleet())
def test_every_model_is_accounted_for_exactly_once(a: list[ModelSpec],
                                                   b: list[ModelSpec]) -> None:
    diff = diff_models(a, b)
    reported = [m.name for m in diff.models] + list(diff.unchanged)
    assert sorted(reported) == sorted({m.name for m in a} | {m.name for m in b})
