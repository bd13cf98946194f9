"""The planner's update/replace calls, checked against a real API server.

For each manifest change of a catalogue, the stack's objects before the change are applied,
then what the planner says of each Kubernetes object is confronted with the server: where the
server refuses an in-place update (an immutable field), the plan must say replace; where the
plan says update, the server must accept it in place. Then the change is applied as Pulumi
would (creates and updates, replacements as delete-then-create since names are fixed, then
deletes), which must go through without error or warning.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest

from components.autoscaling import KEDA_HPA_OWNERSHIP
from planner.changes import ResourceChange, resource_changes
from planner.recorder import Registration
from planner.render import is_kubernetes, kubernetes_object
from planner.simulate import Simulation
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.kube.cluster import Cluster
from tests.kube.kubectl import as_yaml, eventually

pytestmark = pytest.mark.xdist_group("kube")
IMAGE = "registry.example/models/fraud@sha256:" + "a" * 64
OTHER_IMAGE = "registry.example/models/fraud@sha256:" + "b" * 64
BASE = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.4.2
    artifact: {{uri: "s3://training-output/fraud/1.4.2/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    serving:
      port: 8080
      replicas: {{min: 2, max: 4}}
      resources: {{cpu: "1", memory: 2Gi}}
      env: {{LOG_LEVEL: info}}
  - name: churn
    team: growth
    version: 2.1.0
    artifact: {{uri: "s3://training-output/churn/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    batch:
      maxWorkers: 3
      resources: {{cpu: 500m, memory: 1Gi}}
      runs: [{{id: backfill, input: "s3://exports/2026-10/", partitions: 4}}]
"""
AS_BATCH = BASE.replace("""    serving:
      port: 8080
      replicas: {min: 2, max: 4}
      resources: {cpu: "1", memory: 2Gi}
      env: {LOG_LEVEL: info}
""", """    batch:
      maxWorkers: 2
""")


@dataclass(frozen=True)
class Change:
    """A manifest (or stack setting) before and after."""

    name: str
    base: str = BASE
    head: str = BASE
    base_config: tuple[tuple[str, str], ...] = ()
    head_config: tuple[tuple[str, str], ...] = ()


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


NO_KEDA = (("modelfleet:keda", "false"),)
PROMETHEUS = (("modelfleet:prometheusAddress", "http://prometheus.monitoring.svc:9090"),)
ON_RPS = edit("env: {LOG_LEVEL: info}", "env: {LOG_LEVEL: info}\n      scaleMetric: rps\n"
              "      scaleTarget: 20")
FLAGGER = (("modelfleet:gateway", "gateways/public"), ("modelfleet:flagger", "true"),
           *PROMETHEUS)
PROGRESSIVE = edit("port: 8080", "port: 8080\n      rollout: {strategy: progressive}")
CATALOGUE = [
    Change("version bump", head=edit("version: 1.4.2", "version: 1.5.0")),
    Change("resources", head=edit('resources: {cpu: "1", memory: 2Gi}',
                                  'resources: {cpu: "2", memory: 3Gi}')),
    Change("env", head=edit("env: {LOG_LEVEL: info}", "env: {LOG_LEVEL: debug, WORKERS: '4'}")),
    Change("port", head=edit("port: 8080", "port: 9000")),
    Change("replicas", head=edit("replicas: {min: 2, max: 4}", "replicas: {min: 3, max: 6}")),
    Change("team", head=edit("team: risk", "team: fraud-ops")),
    Change("run partitions", head=edit("partitions: 4", "partitions: 8")),
    Change("image reference", head=BASE.replace(IMAGE, OTHER_IMAGE)),
    Change("artifact", head=edit("fraud/1.4.2/model.joblib", "fraud/1.4.2/model-v2.joblib")),
    Change("serving to batch", head=AS_BATCH),
    Change("batch to serving", base=AS_BATCH),
    Change("keda off", head_config=NO_KEDA),
    Change("keda on", base_config=NO_KEDA),
    Change("cpu to rps", head=ON_RPS, base_config=PROMETHEUS, head_config=PROMETHEUS),
    Change("rps to cpu", base=ON_RPS, base_config=PROMETHEUS, head_config=PROMETHEUS),
    Change("rollout budget", head=edit("port: 8080", "port: 8080\n"
                                       "      rollout: {maxSurge: 0, maxUnavailable: 1}")),
    Change("startup budget", head=edit("port: 8080", "port: 8080\n      startupSeconds: 1200")),
    Change("rolling to progressive", head=PROGRESSIVE, base_config=FLAGGER,
           head_config=FLAGGER),
    Change("progressive to rolling", base=PROGRESSIVE, base_config=FLAGGER,
           head_config=FLAGGER),
    Change("placement", head=edit("port: 8080", "port: 8080\n      nodeSelector: {pool: ml}\n"
                                  "      priorityClassName: model-serving")),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = GitRepo(tmp_path_factory.mktemp("changes") / "repo")
    repo.write("models.yaml", BASE)
    repo.commit("base")
    return repo


def simulate(project: GitRepo, text: str, config: tuple[tuple[str, str], ...],
             namespace: str) -> Simulation:
    manifest = project.write(f"manifests/{abs(hash((text, config)))}.yaml", text)
    return deploy(manifest, config={"modelfleet:namespace": namespace, **dict(config)})


def sent(old: Registration | None, new: Registration) -> dict[str, Any]:
    """What Pulumi sends for `new`: ignored properties keep their old values."""
    inputs = dict(new.inputs)
    for key in new.ignore_changes:
        if old is not None and key in old.inputs:
            inputs[key] = old.inputs[key]
    return kubernetes_object(Registration(**{**new.__dict__, "inputs": inputs}))


def keda_would_refuse(cluster: Cluster, scaled_object: dict[str, Any]) -> str | None:
    """KEDA's admission rule for a new ScaledObject, as its webhook applies it (KEDA 2.20,
    `apis/keda/v1alpha1/scaledobject_webhook.go`): refused when another HPA already scales
    its target, unless that HPA says `validations.keda.sh/hpa-ownership: "false"`."""
    namespace = scaled_object["metadata"]["namespace"]
    target = scaled_object["spec"]["scaleTargetRef"]["name"]
    for hpa in cluster.kubectl.items("hpa", namespace):
        annotations = hpa["metadata"].get("annotations") or {}
        if hpa["spec"]["scaleTargetRef"]["name"] == target \
                and annotations.get(KEDA_HPA_OWNERSHIP) != "false":
            return f"the workload '{target}' is already managed by the hpa " \
                   f"'{hpa['metadata']['name']}'"
    return None


def apply_as_pulumi(cluster: Cluster, base: Simulation, head: Simulation,
                    changes: list[ResourceChange]) -> None:
    """Creates and updates (in registration order), replacements, then deletes."""
    old = {r.key: r for r in base.registrations if is_kubernetes(r)}
    ops = {(c.type, c.name): c.op for c in changes}
    for registration in (r for r in head.registrations if is_kubernetes(r)):
        op = ops.get(registration.key)
        if op is None:
            continue
        obj = sent(old.get(registration.key), registration)
        if op == "replace":
            cluster.kubectl.delete(kubernetes_object(old[registration.key]))
        if obj["kind"] == "ScaledObject" and op == "create":
            refusal = keda_would_refuse(cluster, obj)
            assert refusal is None, f"KEDA's webhook would refuse: {refusal}"
        result = cluster.kubectl.apply([obj])
        assert result.clean, f"{op} of {registration.key}: {result}"
    for change in changes:
        if change.op == "delete" and change.type.startswith("kubernetes:"):
            cluster.kubectl.delete(kubernetes_object(old[(change.type, change.name)]))


@pytest.mark.parametrize("change", CATALOGUE, ids=lambda change: change.name)
def test_the_plan_and_the_server_agree_on_update_or_replace(
        cluster: Cluster, project: GitRepo, change: Change) -> None:
    namespace = cluster.namespace("change")
    base = simulate(project, change.base, change.base_config, namespace)
    head = simulate(project, change.head, change.head_config, namespace)
    before = [kubernetes_object(r) for r in base.registrations if is_kubernetes(r)]
    applied = cluster.kubectl.apply(before)
    assert applied.clean, str(applied)
    changes = [c for c in resource_changes(base.registrations, head.registrations)
               if c.type.startswith("kubernetes:")]
    ops = {(c.type, c.name): c.op for c in changes}
    old = {r.key: r for r in base.registrations if is_kubernetes(r)}
    differing = [r for r in head.registrations if is_kubernetes(r) and r.key in old
                 and kubernetes_object(r) != kubernetes_object(old[r.key])]
    assert differing or changes, "every change of the catalogue changes some Kubernetes object"
    for new in differing:
        op = ops.get(new.key)
        in_place = cluster.kubectl.apply([kubernetes_object(new)], dry_run=True)
        if "immutable" in in_place.stderr:
            # Pulumi must either replace it, or never send the change (ignore_changes).
            assert op == "replace" or (op is None and new.ignore_changes), \
                f"the server refuses {new.key} in place, the plan says {op}: {in_place}"
        if op == "update":
            as_sent = cluster.kubectl.apply([sent(old[new.key], new)], dry_run=True)
            assert as_sent.clean, f"the plan says update, the server says: {as_sent}"
    apply_as_pulumi(cluster, base, head, changes)


def hpa_replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    replicas = cluster.kubectl.get("deployment", name, namespace)["spec"].get("replicas")
    return int(replicas) if replicas is not None else None


def test_reapplying_a_deployment_leaves_the_replicas_the_hpa_set(
        cluster: Cluster, project: GitRepo) -> None:
    cluster.require_controllers()
    namespace = cluster.namespace("hpa")
    base = simulate(project, BASE, (), namespace)
    objects = [kubernetes_object(r) for r in base.registrations if is_kubernetes(r)]
    assert cluster.kubectl.apply(objects).clean
    eventually(lambda: hpa_replicas(cluster, namespace, "fraud") == 2, 60,
               "the HPA scales fraud to its minimum of 2")
    head = simulate(project, edit("env: {LOG_LEVEL: info}", "env: {LOG_LEVEL: debug}"), (),
                    namespace)
    deployment = kubernetes_object(head.find("kubernetes:apps/v1:Deployment", "fraud"))
    reapplied = applied_object(cluster, deployment)
    assert reapplied["spec"]["replicas"] == 2
    assert "pulumi-kubernetes" not in replica_managers(reapplied)
    assert hpa_replicas(cluster, namespace, "fraud") == 2
    # The control: a Deployment that sets spec.replicas takes the field and the count from
    # the HPA at every update (the HPA takes them back at its next sync).
    fighting = copy.deepcopy(deployment)
    fighting["spec"]["replicas"] = 1
    fought = applied_object(cluster, fighting)
    assert fought["spec"]["replicas"] == 1
    assert "pulumi-kubernetes" in replica_managers(fought)


def applied_object(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply as Pulumi does, and the object as the server stored it right then."""
    result = cluster.kubectl.run("apply", "--server-side", "--field-manager=pulumi-kubernetes",
                                 "--show-managed-fields", "-o", "json", "-f", "-",
                                 stdin=as_yaml([obj]))
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr, result.stderr
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored


def replica_managers(deployment: dict[str, Any]) -> set[str]:
    """Who owns a Deployment's `spec.replicas` (server-side apply field managers)."""
    return {entry["manager"] for entry in deployment["metadata"]["managedFields"]
            if "f:replicas" in entry.get("fieldsV1", {}).get("f:spec", {})}


@pytest.mark.parametrize(("base_config", "head_config"), [((), NO_KEDA), (NO_KEDA, ())],
                         ids=["keda to cpu", "cpu to keda"])
def test_switching_between_keda_and_cpu_autoscaling_is_one_update(
        cluster: Cluster, project: GitRepo, base_config: tuple[tuple[str, str], ...],
        head_config: tuple[tuple[str, str], ...]) -> None:
    namespace = cluster.namespace("switch")
    base = simulate(project, BASE, base_config, namespace)
    head = simulate(project, BASE, head_config, namespace)
    assert cluster.kubectl.apply([kubernetes_object(r) for r in base.registrations
                                  if is_kubernetes(r)]).clean
    changes = resource_changes(base.registrations, head.registrations)
    apply_as_pulumi(cluster, base, head, changes)
    scalers = {(item["kind"], item["metadata"]["name"])
               for kind in ("hpa", "scaledobjects.keda.sh")
               for item in cluster.kubectl.items(kind, namespace)}
    worker = "churn-worker"
    expected = ("ScaledObject" if not head_config else "HorizontalPodAutoscaler", worker)
    assert expected in scalers
    assert {kind for kind, name in scalers if name == worker} == {expected[0]}
    for hpa in cluster.kubectl.items("hpa", namespace):
        assert hpa["metadata"]["annotations"][KEDA_HPA_OWNERSHIP] == "false"


def test_an_edited_run_is_reported_as_left_alone(project: GitRepo) -> None:
    """The run-partitions case above: the server refuses the new Job in place and the program
    never sends it; the update says so instead of staying silent."""
    base = simulate(project, BASE, (), "models")
    manifest = project.write("manifests/runs.yaml", edit("partitions: 4", "partitions: 8"))
    head = deploy(manifest, previous=base.outputs)
    assert "modelfleet: warning: model 'churn': run 'backfill' was changed, but a started run " \
           "is never changed (its Job is immutable); this update leaves it as it was. Give the " \
           "run a new id to start another." in head.messages()
    unchanged = deploy(project.root / "models.yaml", previous=base.outputs)
    assert not any("run 'backfill'" in line for line in unchanged.messages())
