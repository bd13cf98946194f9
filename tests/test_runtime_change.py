"""The rule under `runtime-change`: an image is the runtime unless it carries the model, and a
built image's tag follows what it is built from. Models are written as the manifest has them."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.release.images import image_carries_model, image_tag, slot_spec

S3 = {"uri": "s3://training/fraud/1.4.2/model.joblib"}
BUILT = {"build": {"context": "images", "dockerfile": "images/sklearn.Dockerfile"}}
VLLM = {"ref": "registry.example/vllm/vllm-openai@sha256:" + "a" * 64}


@pytest.mark.parametrize(("artifact", "image"), [
    (S3, BUILT),                                              # our server, weights in S3
    (S3, VLLM),                                               # vLLM bump, pinned weights
    ({"path": "artifacts/churn"}, BUILT),                     # uploaded beside the context
    ({"path": "images-data/churn"}, BUILT),                   # a prefix is not a folder
    ({"path": "artifacts/churn"}, VLLM),
])
def test_an_image_beside_its_artifact_is_the_runtime(artifact: dict[str, Any],
                                                     image: dict[str, Any]) -> None:
    assert image_carries_model({"version": "1.4.2", "artifact": artifact, "image": image}) \
        is None


@pytest.mark.parametrize(("artifact", "image", "why"), [
    ({"path": "artifacts/churn"}, {"build": {"context": "."}},
     "its build context . holds its artifact path artifacts/churn"),
    ({"path": "models/churn/weights"}, {"build": {"context": "models/"}},
     "its build context models/ holds its artifact path models/churn/weights"),
    ({"path": "images"}, BUILT, "its build context images holds its artifact path images"),
    ({}, VLLM, "the model names no artifact apart from its image"),
])
def test_an_image_that_holds_the_model_carries_it(artifact: dict[str, Any],
                                                  image: dict[str, Any], why: str) -> None:
    assert image_carries_model({"version": "1.0.0", "artifact": artifact, "image": image}) == why


def test_a_candidate_slot_runs_its_own_artifact_on_the_models_image_by_default() -> None:
    model = {"version": "1.4.2", "artifact": {"path": "artifacts/fraud"},
             "image": {"build": {"context": "."}},
             "serving": {"candidates": [
                 {"name": "challenger", "version": "1.5.0", "artifact": S3},
                 {"name": "own", "version": "1.6.0", "artifact": {"path": "artifacts/x"},
                  "image": VLLM}]}}
    assert slot_spec(model, "challenger") == {"version": "1.5.0", "artifact": S3,
                                              "image": {"build": {"context": "."}}}
    assert image_carries_model(slot_spec(model, "challenger")) is None
    assert image_carries_model(slot_spec(model, "own")) is None
    assert image_carries_model(slot_spec(model, None)) is not None
    assert slot_spec(model, "gone") is None


def test_a_built_tag_is_the_version_and_twelve_hex_of_the_build() -> None:
    digest = "sha256:" + "45044c0a9e1f" + "0" * 52
    assert image_tag("1.4.2", digest) == "1.4.2-45044c0a9e1f"
    assert image_tag("1.0.0+build.5", digest) == "1.0.0_build.5-45044c0a9e1f"
    assert image_tag("1.4.2", None) == "1.4.2"
    assert image_tag("1.4.2", digest) != image_tag("1.4.2", "sha256:" + "b" * 64), \
        "a runtime change pushes a tag of its own"
