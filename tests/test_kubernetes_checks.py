"""Every Kubernetes object the program declares, checked by tools nobody here wrote.

The objects are rendered to YAML exactly as `plan --render` writes them, then
validated against the official OpenAPI schemas (kubernetes-validate, strict)
for the oldest supported and the newest Kubernetes, and scanned by checkov.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.render import kubernetes_objects, write_kubernetes
from planner.simulate import Simulation
from tests.conftest import PROJECT
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.kubernetes_crds import custom_resource_errors
from tests.test_rollouts import FLAGGER
from tests.test_runtime_request_metrics import PROGRESSIVE, RPS, triton
from tests.test_runtime_request_metrics import manifest as triton_manifest
from tests.validators import is_custom, kubernetes_versions, run_checkov, schema_errors

FETCH_IMAGE = "registry.example/modelfleet/fetch@sha256:" + "f" * 64
EPP_IMAGE = "ghcr.io/llm-d/llm-d-router-endpoint-picker@sha256:" + "e" * 64


@pytest.fixture(scope="module")
def example() -> Simulation:
    """The example manifest as prod deploys it: serving, GPU, workers, a run, the namespace,
    an LLM on vLLM with its fetch-and-verify init container, its InferencePool and endpoint
    picker, Triton as a custom runtime."""
    return deploy(PROJECT / "models.yaml", stack="prod", environment="prod",
                  config={"modelfleet:createNamespace": "true",
                          "modelfleet:gateway": "gateway-system/models",
                          "modelfleet:prometheusAddress": "http://prometheus.monitoring:9090",
                          "modelfleet:fetchImage": FETCH_IMAGE,
                          "modelfleet:endpointPickerImage": EPP_IMAGE})


def test_every_built_in_object_is_valid_for_supported_kubernetes(example: Simulation) -> None:
    objects = kubernetes_objects(example.registrations)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "ServiceAccount", "Namespace", "Job"} <= kinds
    problems = [f"{version} {obj['kind']}/{obj['metadata']['name']}: {error}"
                for version in kubernetes_versions()
                for obj in objects if not is_custom(obj)
                for error in schema_errors(obj, version)]
    assert problems == []


def test_every_keda_object_is_valid_for_kedas_crds(example: Simulation) -> None:
    keda = [obj for obj in kubernetes_objects(example.registrations)
            if obj["apiVersion"].startswith("keda.sh/")]
    assert {obj["kind"] for obj in keda} == {"ScaledObject", "TriggerAuthentication"}
    assert [error for obj in keda for error in custom_resource_errors(obj)] == []


def test_every_inference_pool_is_valid_for_the_inference_extensions_crd(
        example: Simulation) -> None:
    pools = [obj for obj in kubernetes_objects(example.registrations)
             if obj["kind"] == "InferencePool"]
    assert [pool["metadata"]["name"] for pool in pools] == ["assistant"]
    assert [error for obj in pools for error in custom_resource_errors(obj)] == []


def test_the_validator_catches_a_misspelled_field(example: Simulation) -> None:
    deployment = next(o for o in kubernetes_objects(example.registrations)
                      if o["kind"] == "Deployment" and "rollingUpdate" in o["spec"]["strategy"])
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    broken["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = [0]
    errors = schema_errors(broken, kubernetes_versions()[-1])
    assert len(errors) == 2, errors


def test_checkov_finds_no_failed_check(example: Simulation, tmp_path: Path) -> None:
    written = write_kubernetes(example.registrations, tmp_path / "kubernetes")
    report = run_checkov(tmp_path / "kubernetes")
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["failed"]]
    assert failed == []
    checked = {Path(c["file_path"]).name for c in report["passed"]}
    workloads = {p.name for p in written if p.name.startswith(("deployment-", "job-"))}
    assert any(name.startswith("job-") for name in workloads)
    assert workloads <= checked, "every Deployment and Job must actually be scanned"
    assert len(report["passed"]) > 100


def test_checkov_fails_an_unhardened_deployment(tmp_path: Path) -> None:
    """The scan is not vacuous: a plain Deployment fails many checks."""
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "plain", "namespace": "models"},
        "spec": {"selector": {"matchLabels": {"app": "plain"}},
                 "template": {"metadata": {"labels": {"app": "plain"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
    report = run_checkov(tmp_path)
    assert len(report["failed"]) >= 10


def test_a_triton_models_flagger_and_keda_objects_are_valid(repo: GitRepo) -> None:
    """A custom OIP runtime rolled out by Flagger and scaled by KEDA on Triton's metrics:
    KEDA's objects against its CRDs here, Flagger's against the real API server
    (tests/test_kube_stacks.py)."""
    manifest = repo.write("models.yaml", triton_manifest(
        triton(PROGRESSIVE), triton(RPS, name="reranker")))
    simulation = deploy(manifest, config={f"modelfleet:{k}": v for k, v in FLAGGER.items()})
    objects = kubernetes_objects(simulation.registrations)
    custom = [obj for obj in objects if is_custom(obj)]
    assert {obj["kind"] for obj in custom} == {"Canary", "MetricTemplate", "ScaledObject",
                                               "HTTPRoute", "PodMonitor", "PrometheusRule"}
    keda = [obj for obj in custom if obj["apiVersion"].startswith("keda.sh/")]
    assert len(keda) == 2
    assert [error for obj in keda for error in custom_resource_errors(obj)] == []
    problems = [f"{obj['kind']}/{obj['metadata']['name']}: {error}"
                for obj in objects if not is_custom(obj)
                for error in schema_errors(obj, kubernetes_versions()[-1])]
    assert problems == []
