"""Every shipped stack's Kubernetes objects, applied to a real API server: accepted, Pods admitted.

The objects are those `plan --render` writes, server-side applied (dry-run, then for real)
into namespaces that enforce the `restricted` Pod Security Standard. With the controller
manager running, Deployments and Jobs create Pods, which admission checks for real.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelfleet.manifest.quantities import canonical_quantity
from planner.plan import plan_stack
from planner.render import kubernetes_objects
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.kube.cluster import Cluster
from tests.kube.kubectl import eventually
from tests.shipped import copy_project
from tests.test_rollouts import CANDIDATES, FLAGGER, fraud
from tests.test_rollouts import manifest as manifest_text
from tests.test_runtime_request_metrics import PROGRESSIVE, RPS, triton
from tests.test_runtime_request_metrics import manifest as triton_manifest

pytestmark = pytest.mark.xdist_group("kube")
SHIPPED = ["dev", "growth-dev", "prod", "risk-prod", "staging"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    return copy_project(tmp_path_factory.mktemp("shipped") / "project")


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in ("Deployment", "Job")]


def apply_stack(cluster: Cluster, objects: list[dict[str, Any]]) -> str:
    """Apply a stack's objects into its namespace, made `restricted` here unless it declares it."""
    (namespace,) = {str(obj["metadata"]["namespace"]) for obj in objects
                    if obj["kind"] != "Namespace"}
    declared = [obj for obj in objects if obj["kind"] == "Namespace"]
    if declared:
        created = cluster.kubectl.apply(declared)
        assert created.clean, str(created)
    else:
        cluster.kubectl.create_namespace(namespace)
    others = [obj for obj in objects if obj["kind"] != "Namespace"]
    dry_run = cluster.kubectl.apply(others, dry_run=True)
    assert dry_run.clean, str(dry_run)
    applied = cluster.kubectl.apply(others)
    assert applied.clean, str(applied)
    return namespace


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_object_of_a_shipped_stack_is_accepted_and_its_pods_admitted(
        cluster: Cluster, shipped: GitRepo, stack: str) -> None:
    cluster.require_controllers()
    objects = kubernetes_objects(plan_stack(shipped.root, stack).head.registrations)
    assert {"Deployment", "Service", "NetworkPolicy", "PodMonitor", "PrometheusRule",
            "ConfigMap"} <= {obj["kind"] for obj in objects}
    namespace = apply_stack(cluster, objects)
    labels = cluster.kubectl.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(objects):
        match = workload["spec"]["selector"]["matchLabels"] if workload["kind"] == "Deployment" \
            else {"modelfleet.dev/run": workload["metadata"]["labels"]["modelfleet.dev/run"]}
        pods = cluster.wait_for_pods(namespace, selector(match),
                                     f"{workload['kind']} {workload['metadata']['name']}")
        assert all(pod["spec"]["securityContext"]["runAsNonRoot"] for pod in pods)


def pod(namespace: str, name: str, security: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "main",
                                     "image": "registry.example/app@sha256:" + "a" * 64,
                                     "securityContext": security}]}}


def test_the_server_refuses_privileged_and_unhardened_pods_in_a_restricted_namespace(
        cluster: Cluster) -> None:
    namespace = cluster.namespace("negative")
    privileged = cluster.kubectl.apply([pod(namespace, "privileged", {"privileged": True})])
    assert privileged.returncode != 0
    assert "privileged: Forbidden" in privileged.stderr
    unhardened = cluster.kubectl.apply([pod(namespace, "unhardened", {"runAsUser": 0})])
    assert unhardened.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in unhardened.stderr
    assert cluster.kubectl.items("pods", namespace) == []


def test_the_server_refuses_an_unknown_field(cluster: Cluster) -> None:
    namespace = cluster.namespace("negative")
    result = cluster.kubectl.apply([{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "typo", "namespace": namespace},
        "spec": {"ports": [{"port": 80}], "selectr": {"app": "x"}}}])
    assert result.returncode != 0
    assert ".spec.selectr: field not declared in schema" in result.stderr


ML_MANIFEST = """\
apiVersion: modelfleet/v1
models:
  - name: chat
    team: ml
    version: 1.0.0
    artifact: {{uri: "s3://training-output/chat/model.pt2"}}
    image: {{ref: "registry.example/ml/chat@sha256:{digest}"}}
    serving:
      scaleMetric: concurrency
      scaleTarget: 4
      startupSeconds: 1800
      resources: {{cpu: 1000m, memory: 2048Mi, gpu: 1}}
      nodeSelector: {{nvidia.com/gpu.product: NVIDIA-A10G}}
      tolerations: [{{key: dedicated, value: ml, effect: NoSchedule}}]
  - name: rank
    team: ml
    version: 1.0.0
    artifact: {{uri: "s3://training-output/rank/model.joblib"}}
    image: {{ref: "registry.example/ml/rank@sha256:{digest}"}}
    serving:
      scaleMetric: rps
      scaleTarget: 50
      rollout: {{maxSurge: 50%, maxUnavailable: 1}}
      resources: {{cpu: '0.5', memory: 0.5Gi}}
  - name: embed
    team: ml
    version: 1.0.0
    artifact: {{uri: "s3://training-output/embed/model.pt2"}}
    image: {{ref: "registry.example/ml/embed@sha256:{digest}"}}
    batch:
      resources: {{cpu: "2", memory: 8Gi, gpu: 1}}
      startupSeconds: 900
""".format(digest="d" * 64)


def test_request_scaling_gpu_rollouts_placement_and_startup_budgets_are_accepted(
        cluster: Cluster, repo: GitRepo) -> None:
    cluster.require_controllers()
    namespace = cluster.namespace("ml")
    manifest = repo.write("models.yaml", ML_MANIFEST)
    simulation = deploy(manifest, config={
        "modelfleet:namespace": namespace,
        "modelfleet:prometheusAddress": "http://prometheus-operated.monitoring.svc:9090"})
    objects = kubernetes_objects(simulation.registrations)
    assert {("ScaledObject", "chat"), ("ScaledObject", "rank"), ("ScaledObject", "embed-worker")
            } <= {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    dry_run = cluster.kubectl.apply(objects, dry_run=True)
    assert dry_run.clean, str(dry_run)
    applied = cluster.kubectl.apply(objects)
    assert applied.clean, str(applied)
    for workload in workloads(objects):
        cluster.wait_for_pods(namespace, selector(workload["spec"]["selector"]["matchLabels"]),
                              workload["metadata"]["name"])
    stored = cluster.kubectl.get("deployment", "chat", namespace)["spec"]
    container = stored["template"]["spec"]["containers"][0]
    assert stored["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert stored["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    # Kubernetes stores quantities canonically; the manifest's respellings already are.
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi",
                                                "nvidia.com/gpu": "1"}
    rank = cluster.kubectl.get("deployment", "rank", namespace)["spec"]["template"]["spec"]
    assert rank["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}


def test_canonical_quantities_are_what_the_server_stores(cluster: Cluster) -> None:
    namespace = cluster.namespace("quantities")
    cpus = ["1000m", "1.5", "0.1", "250m", "2000", "1e3"]
    memories = ["2048Mi", "0.5Gi", "1536", "1000M", "1536Ki", "2000"]
    hardened = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    containers = [{"name": f"c{index}", "image": "registry.example/app@sha256:" + "a" * 64,
                   "resources": {"limits": {"cpu": cpu, "memory": memory}},
                   "securityContext": hardened}
                  for index, (cpu, memory) in enumerate(zip(cpus, memories, strict=True))]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q", "namespace": namespace},
           "spec": {"containers": containers}}
    applied = cluster.kubectl.apply([pod])
    assert applied.clean, str(applied)
    stored = cluster.kubectl.get("pod", "q", namespace)["spec"]["containers"]
    assert [c["resources"]["limits"] for c in stored] == [
        {"cpu": canonical_quantity(cpu), "memory": canonical_quantity(memory)}
        for cpu, memory in zip(cpus, memories, strict=True)]


def test_routes_candidates_and_flagger_canaries_are_accepted(
        cluster: Cluster, repo: GitRepo) -> None:
    cluster.require_controllers()
    namespace = cluster.namespace("rollouts")
    repo.write("images/Dockerfile", "FROM python:3.11-slim\n")
    manifest = repo.write("models.yaml", manifest_text(
        fraud(CANDIDATES), fraud("rollout: {strategy: progressive}").replace(
            "name: fraud", "name: rank")))
    simulation = deploy(manifest, config={"modelfleet:namespace": namespace,
                                          **{f"modelfleet:{k}": v for k, v in FLAGGER.items()}})
    objects = kubernetes_objects(simulation.registrations)
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert {("HTTPRoute", "fraud"), ("Deployment", "fraud-challenger"),
            ("Deployment", "fraud-shadow"), ("Canary", "rank"),
            ("MetricTemplate", "rank-success-rate"), ("MetricTemplate", "rank-latency-p99")
            } <= kinds
    dry_run = cluster.kubectl.apply(objects, dry_run=True)
    assert dry_run.clean, str(dry_run)
    applied = cluster.kubectl.apply(objects)
    assert applied.clean, str(applied)
    for workload in workloads(objects):
        cluster.wait_for_pods(namespace, selector(workload["spec"]["selector"]["matchLabels"]),
                              workload["metadata"]["name"])
    route = cluster.kubectl.get("httproute", "fraud", namespace)["spec"]
    assert [b["weight"] for b in route["rules"][0]["backendRefs"]] == [90, 10]
    pinned = {r["matches"][0]["path"]["value"]: [b["name"] for b in r["backendRefs"]]
              for r in route["rules"][1:]}
    assert pinned == {"/v2/models/fraud/versions/1.4.2": ["fraud"],
                      "/v2/models/fraud/versions/1.5.0": ["fraud-challenger"]}, \
        "each served version's path to its own Service, as stored by the API server"


def flagger_primary(deployment: dict[str, Any], replicas: int) -> dict[str, Any]:
    """The `<name>-primary` Deployment Flagger 1.44 makes from a Canary's target: the same
    pod template, its `app.kubernetes.io/name` label (one of Flagger's default
    `selectorLabels`) renamed to `<name>-primary`, in selector and template alike."""
    name = deployment["metadata"]["name"]
    primary = copy.deepcopy(deployment)
    primary["metadata"] = {"name": f"{name}-primary",
                           "namespace": deployment["metadata"]["namespace"]}
    for labels in (primary["spec"]["selector"]["matchLabels"],
                   primary["spec"]["template"]["metadata"]["labels"]):
        labels["app.kubernetes.io/name"] = f"{name}-primary"
    primary["spec"]["replicas"] = replicas
    return primary


def test_under_flagger_the_disruption_budget_covers_the_pods_that_serve(
        cluster: Cluster, repo: GitRepo) -> None:
    """Flagger scales the Canary's target to zero once its primary runs: a budget that
    selected the target's pods would protect nothing during a node drain."""
    cluster.require_controllers()
    namespace = cluster.namespace("flagger-budget")
    repo.write("images/Dockerfile", "FROM python:3.11-slim\n")
    manifest = repo.write("models.yaml", manifest_text(fraud("rollout: {strategy: progressive}")))
    simulation = deploy(manifest, config={"modelfleet:namespace": namespace,
                                          **{f"modelfleet:{k}": v for k, v in FLAGGER.items()}})
    objects = kubernetes_objects(simulation.registrations)
    applied = cluster.kubectl.apply(objects)
    assert applied.clean, str(applied)
    target = cluster.kubectl.get("deployment", "fraud", namespace)
    primary = flagger_primary(target, replicas=3)
    assert cluster.kubectl.apply([primary], field_manager="flagger").clean
    cluster.kubectl.run("scale", "deployment/fraud", "--replicas=0", "-n", namespace, check=True)

    def expected_pods() -> int | None:
        status = cluster.kubectl.get("pdb", "fraud", namespace).get("status", {})
        return status.get("expectedPods") if status.get("expectedPods") == 3 else None

    eventually(expected_pods, 60, "the budget of 'fraud' counts the primary's 3 pods")
    pdb = cluster.kubectl.get("pdb", "fraud", namespace)
    assert pdb["spec"]["maxUnavailable"] == 1
    pods = cluster.pods(namespace, selector(pdb["spec"]["selector"]["matchLabels"]))
    assert {pod["metadata"]["labels"]["app.kubernetes.io/name"] for pod in pods} == \
        {"fraud-primary"}


def test_a_triton_models_canary_metric_templates_and_scaled_object_are_accepted(
        cluster: Cluster, repo: GitRepo) -> None:
    """A custom OIP runtime with Triton's metrics: Flagger and KEDA objects built from them."""
    namespace = cluster.namespace("triton")
    manifest = repo.write("models.yaml", triton_manifest(
        triton(PROGRESSIVE), triton(RPS, name="reranker")))
    simulation = deploy(manifest, config={"modelfleet:namespace": namespace,
                                          **{f"modelfleet:{k}": v for k, v in FLAGGER.items()}})
    objects = [obj for obj in kubernetes_objects(simulation.registrations)
               if obj["kind"] in ("Canary", "MetricTemplate", "ScaledObject")]
    assert {(obj["kind"], obj["metadata"]["name"]) for obj in objects} == {
        ("Canary", "ranker"), ("MetricTemplate", "ranker-success-rate"),
        ("MetricTemplate", "ranker-latency-mean"), ("ScaledObject", "ranker"),
        ("ScaledObject", "reranker")}
    applied = cluster.kubectl.apply(objects)
    assert applied.clean, str(applied)
    stored = cluster.kubectl.get("metrictemplate", "ranker-latency-mean", namespace)
    assert "nv_inference_request_duration_us" in stored["spec"]["query"]
