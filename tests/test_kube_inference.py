"""An LLM with candidates behind the Gateway, on a real API server with the Gateway API and
Inference Extension CRDs: every pool, endpoint picker object, route and ScaledObject (on
KV-cache use) accepted, every Pod
admitted under `restricted`, and each pool's selector, evaluated by the server, taking in
exactly its own version's serving pods."""

from __future__ import annotations

from typing import Any

import pytest

from planner.render import kubernetes_objects
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.kube.cluster import Cluster
from tests.test_inference_gateway import CANDIDATE, CONFIG, KV_CACHE, PROMETHEUS, llm, manifest
from tests.test_kube_stacks import selector, workloads

pytestmark = pytest.mark.xdist_group("kube")
VERSIONS = ("assistant", "assistant-next", "assistant-shadow")


def deployment_of(pod: dict[str, Any], replica_sets: dict[str, str]) -> str:
    """The Deployment whose ReplicaSet made the pod, from the owner references the
    controllers wrote."""
    (owner,) = pod["metadata"]["ownerReferences"]
    return replica_sets[owner["name"]]


def test_each_pool_selects_exactly_its_versions_pods_on_the_server(
        cluster: Cluster, repo: GitRepo) -> None:
    cluster.require_controllers()
    namespace = cluster.namespace("llm")
    path = repo.write("models.yaml", manifest(llm(serving=KV_CACHE + CANDIDATE)))
    simulation = deploy(path, config={**CONFIG, **PROMETHEUS,
                                      "modelfleet:namespace": namespace})
    objects = kubernetes_objects(simulation.registrations)
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    for version in VERSIONS:
        assert {("InferencePool", version), ("Deployment", f"{version}-epp"),
                ("Service", f"{version}-epp"), ("Role", f"{version}-epp"),
                ("RoleBinding", f"{version}-epp"), ("ConfigMap", f"{version}-epp"),
                ("NetworkPolicy", f"{version}-epp"), ("ScaledObject", version)} <= kinds
    dry_run = cluster.kubectl.apply(objects, dry_run=True)
    assert dry_run.clean, str(dry_run)
    applied = cluster.kubectl.apply(objects)
    assert applied.clean, str(applied)
    for workload in workloads(objects):
        pods = cluster.wait_for_pods(
            namespace, selector(workload["spec"]["selector"]["matchLabels"]),
            workload["metadata"]["name"])
        assert all(pod["spec"]["securityContext"]["runAsNonRoot"] for pod in pods)

    replica_sets = {rs["metadata"]["name"]: rs["metadata"]["ownerReferences"][0]["name"]
                    for rs in cluster.kubectl.items("replicasets", namespace)}
    every_pod = cluster.kubectl.items("pods", namespace)
    assert {deployment_of(pod, replica_sets) for pod in every_pod} == {
        *VERSIONS, *[f"{version}-epp" for version in VERSIONS]}
    for version in VERSIONS:
        pool = cluster.kubectl.get("inferencepool", version, namespace)["spec"]
        selected = cluster.pods(namespace, selector(pool["selector"]["matchLabels"]))
        own = {pod["metadata"]["name"] for pod in every_pod
               if deployment_of(pod, replica_sets) == version}
        assert own, f"the Deployment {version} made no pod"
        assert {pod["metadata"]["name"] for pod in selected} == own
        assert pool["endpointPickerRef"]["name"] == f"{version}-epp"

    route = cluster.kubectl.get("httproute", "assistant", namespace)["spec"]
    assert [(b["kind"], b["name"], b["weight"]) for b in route["rules"][0]["backendRefs"]] == [
        ("InferencePool", "assistant", 80), ("InferencePool", "assistant-next", 20)]
