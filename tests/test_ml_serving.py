"""Serving that fits ML workloads: request-load scaling, GPU-safe rollouts, startup budgets,
placement, and quantities that compare by value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from planner.simulate import ProgramFailed, Simulation
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.shipped import copy_project, inside

IMAGE = "registry.example/models/m@sha256:" + "c" * 64
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def model(name: str, serving: str = "", batch: str = "", gpu: int = 0) -> str:
    text = f"""\
  - name: {name}
    team: ml
    version: 1.0.0
    artifact: {{uri: "s3://training-output/{name}/model.pt"}}
    image: {{ref: "{IMAGE}"}}
"""
    resources = f"resources: {{cpu: '4', memory: 16Gi, gpu: {gpu}}}"
    if serving is not None:
        text += f"    serving:\n      {resources}\n" + "".join(
            f"      {line}\n" for line in serving.splitlines() if line)
    if batch:
        text += f"    batch:\n      {resources}\n" + "".join(
            f"      {line}\n" for line in batch.splitlines() if line)
    return text


def manifest(*models: str) -> str:
    return "apiVersion: modelfleet/v1\nmodels:\n" + "".join(models)


def run(repo: GitRepo, text: str, **config: str) -> Simulation:
    path = repo.write("models.yaml", text)
    return deploy(path, config={f"modelfleet:{k}": v for k, v in config.items()})


def spec_of(simulation: Simulation, name: str) -> dict[str, Any]:
    return dict(simulation.find(DEPLOYMENT, name).inputs["spec"])


def test_concurrency_and_rps_scale_through_keda_on_the_servers_own_metrics(
        repo: GitRepo) -> None:
    simulation = run(repo, manifest(
        model("chat", "scaleMetric: concurrency\nscaleTarget: 4\nreplicas: {min: 1, max: 8}"),
        model("rank", "scaleMetric: rps\nscaleTarget: 50"),
        model("fraud", "targetCPUUtilization: 60")), prometheusAddress=PROMETHEUS,
        prometheus="annotations")
    chat = simulation.find(SCALED_OBJECT, "chat").inputs["spec"]
    assert chat["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "chat"}
    assert (chat["minReplicaCount"], chat["maxReplicaCount"]) == (1, 8)
    (trigger,) = chat["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "serverAddress": PROMETHEUS, "threshold": "4",
        "query": 'sum(rate(modelserver_requests_in_progress_seconds_total{namespace="models",'
                 'pod=~"chat-[a-z0-9]+-[a-z0-9]+"}[1m]))'}
    rank = simulation.find(SCALED_OBJECT, "rank").inputs["spec"]["triggers"][0]["metadata"]
    assert rank["query"] == ('sum(rate(modelserver_requests_total{namespace="models",'
                             'pod=~"rank-[a-z0-9]+-[a-z0-9]+",route="infer"}[1m]))')
    assert rank["threshold"] == "50"
    hpas = {r.name for r in simulation.of_type(HPA)}
    assert hpas == {"fraud"}, "a model scaled by KEDA has no HPA of ours"
    fraud = simulation.find(HPA, "fraud").inputs["spec"]["metrics"][0]["resource"]["target"]
    assert fraud == {"type": "Utilization", "averageUtilization": 60}
    for name in ("chat", "rank", "fraud"):
        assert "replicas" not in spec_of(simulation, name)
        annotations = spec_of(simulation, name)["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"


def test_gpu_models_roll_without_a_surge_pod_and_others_keep_the_default(repo: GitRepo) -> None:
    simulation = run(repo, manifest(
        model("tagger", gpu=1),
        model("embedder", "rollout: {maxSurge: 1, maxUnavailable: 0}", gpu=1),
        model("fraud"),
        model("scorer", None, batch="maxWorkers: 4", gpu=2)))  # type: ignore[arg-type]
    def strategy(name: str) -> dict[str, Any]:
        return dict(spec_of(simulation, name)["strategy"]["rollingUpdate"])
    assert strategy("tagger") == {"maxSurge": 0, "maxUnavailable": 1}
    assert strategy("embedder") == {"maxSurge": 1, "maxUnavailable": 0}
    assert strategy("fraud") == {"maxSurge": "25%", "maxUnavailable": 0}
    assert strategy("scorer-worker") == {"maxSurge": 0, "maxUnavailable": 1}


def test_the_startup_budget_is_per_model_and_liveness_waits_for_readiness(
        repo: GitRepo) -> None:
    simulation = run(repo, manifest(model("llm", "startupSeconds: 1800"), model("fraud")))
    for name, budget in (("llm", 1800), ("fraud", 600)):
        (container,) = spec_of(simulation, name)["template"]["spec"]["containers"]
        startup, ready, live = (container[k] for k in ("startupProbe", "readinessProbe",
                                                       "livenessProbe"))
        assert startup["periodSeconds"] * startup["failureThreshold"] >= budget
        assert startup["periodSeconds"] * (startup["failureThreshold"] - 1) < budget
        assert startup["httpGet"]["path"] == ready["httpGet"]["path"] == "/v2/health/ready"
        assert live["periodSeconds"] * live["failureThreshold"] > \
            ready["periodSeconds"] * ready["failureThreshold"]


def test_placement_merges_over_the_stacks_gpu_placement(repo: GitRepo) -> None:
    simulation = run(repo, manifest(
        model("tagger", "nodeSelector: {nvidia.com/gpu.product: NVIDIA-A10G}\n"
                        "tolerations: [{key: dedicated, value: ml, effect: NoSchedule}]\n"
                        "priorityClassName: model-serving", gpu=1),
        model("fraud", "nodeSelector: {pool: cpu}")))
    tagger = spec_of(simulation, "tagger")["template"]["spec"]
    assert tagger["nodeSelector"] == {"nvidia.com/gpu.present": "true",
                                      "nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert tagger["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert tagger["priorityClassName"] == "model-serving"
    fraud = spec_of(simulation, "fraud")["template"]["spec"]
    assert fraud["nodeSelector"] == {"pool": "cpu"}
    assert "tolerations" not in fraud
    assert "priorityClassName" not in fraud


BAD = {
    "target of 0": ("scaleMetric: concurrency\nscaleTarget: 0",
                    "serving.scaleTarget: must be at least 1"),
    "request metric without target": ("scaleMetric: rps",
                                      "serving.scaleTarget: is required with scaleMetric rps"),
    "memory": ("scaleMetric: memory",
               "serving.scaleMetric: memory is not a scaling signal for a model server"),
    "surge and unavailable both 0": ("rollout: {maxSurge: 0, maxUnavailable: 0}",
                                     "serving.rollout: maxSurge and maxUnavailable are both 0"),
    "no surge, default unavailable": ("rollout: {maxSurge: '0%'}",
                                      "serving.rollout: maxSurge and maxUnavailable are both 0"),
    "startup budget too long": ("startupSeconds: 86400",
                                "serving.startupSeconds: must be at most 7200"),
    "startup budget too short": ("startupSeconds: 1",
                                 "serving.startupSeconds: must be at least 10"),
    "toleration without a key": ("tolerations: [{operator: Exists}]",
                                 "serving.tolerations[0].key: is required: a toleration without "
                                 "a key tolerates every taint"),
    "priority class not a DNS name": ("priorityClassName: Model_Serving",
                                      "serving.priorityClassName: 'Model_Serving' is not a DNS "
                                      "subdomain name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_serving_settings_are_refused_with_file_line_model_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    serving, expected = BAD[case]
    path = tmp_path / "models.yaml"
    path.write_text(manifest(model("fraud", serving)))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:"), first
    assert f": model 'fraud': {expected}" in first, first


def test_a_request_metric_needs_the_stacks_prometheus_and_keda(repo: GitRepo) -> None:
    text = manifest(model("chat", "scaleMetric: concurrency\nscaleTarget: 4"))
    with pytest.raises(ProgramFailed) as failure:
        run(repo, text)
    assert failure.value.simulation.registrations == [], "nothing may be declared"
    (message,) = failure.value.simulation.messages("error")
    assert message.endswith(": model 'chat' (environment 'dev'): serving.scaleMetric: "
                            "'concurrency' is read from Prometheus, but the stack has no "
                            "modelfleet:prometheusAddress; set it (`pulumi config set "
                            "modelfleet:prometheusAddress http://prometheus-operated.monitoring"
                            ".svc:9090`)")
    assert "models.yaml:10: model 'chat'" in message, "the line of scaleMetric"
    with pytest.raises(ProgramFailed) as without_keda:
        run(repo, text, prometheusAddress=PROMETHEUS, keda="false")
    assert "scales through KEDA, which this stack does not have" in \
        without_keda.value.simulation.messages("error")[0]


RESPELLED = [('cpu: "1", memory: 2Gi', "cpu: 1000m, memory: 2048Mi"),
             ("cpu: 500m, memory: 1Gi", "cpu: '0.5', memory: 1024Mi")]


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return copy_project(tmp_path / "project")


def edit_manifest(project: GitRepo, old: str, new: str) -> None:
    path = project.root / "models.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_a_respelled_quantity_changes_nothing_in_diff_or_plan(
        project: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    for old, new in RESPELLED:
        edit_manifest(project, old, new)
    with inside(project.root):
        assert main(["diff"]) == 0
        diff = capsys.readouterr().out
        assert main(["plan", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 0
        plan = capsys.readouterr().out
    assert "Summary: no changes" in diff, diff
    assert '"changes": []' in plan


def test_a_real_quantity_change_is_still_shown(project: GitRepo,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(project, 'cpu: "1", memory: 2Gi', 'cpu: "1", memory: 3Gi')
    with inside(project.root):
        assert main(["diff", "--environment", "dev"]) == 0
        diff = capsys.readouterr().out
    assert "    serving.resources.memory: 2Gi → 3Gi" in diff.splitlines()
