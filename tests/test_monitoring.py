"""Scraping the way the cluster does it, and network policies that let the system work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from planner.simulate import Simulation
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.shipped import copy_project, inside

IMAGE = "registry.example/models/m@sha256:" + "c" * 64
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
MANIFEST = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.4.2
    artifact: {{uri: "s3://training-output/fraud/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    serving:
      candidates:
        - {{name: challenger, version: 1.5.0, weight: 10,
           artifact: {{uri: "s3://training-output/fraud/1.5.0/model.joblib"}}}}
    batch: {{maxWorkers: 4}}
"""


def run(repo: GitRepo, **config: str) -> Simulation:
    path = repo.write("models.yaml", MANIFEST)
    settings = {"gateway": "gateway-system/models", **config}
    return deploy(path, config={f"modelfleet:{k}": v for k, v in settings.items()})


def admitted(policy: dict[str, Any]) -> list[tuple[list[str], list[int]]]:
    """(namespaces, ports) of each ingress rule."""
    return [(rule["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
             [port["port"] for port in rule["ports"]]) for rule in policy.get("ingress", [])]


def test_a_pod_monitor_selects_every_pod_of_the_model_with_the_labels_queries_use(
        repo: GitRepo) -> None:
    simulation = run(repo)
    (monitor,) = simulation.of_type(POD_MONITOR)
    assert monitor.name == "fraud"
    metadata, spec = monitor.inputs["metadata"], monitor.inputs["spec"]
    assert metadata["namespace"] == "models"
    assert metadata["labels"]["release"] == "kube-prometheus-stack"
    assert spec["selector"] == {
        "matchLabels": {"app.kubernetes.io/instance": "fraud"},
        "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In",
                              "values": ["server", "worker", "run"]}]}
    # Every Deployment of the model (stable, candidate, workers) has pods it selects.
    for deployment in simulation.of_type(DEPLOYMENT):
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "fraud"
        assert labels["app.kubernetes.io/component"] in ("server", "worker")
        assert "annotations" not in deployment.inputs["spec"]["template"]["metadata"], \
            "no prometheus.io annotations beside a PodMonitor: pods would be scraped twice"
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == \
        ("http", "/metrics", "15s")
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets == {
        "model": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "version": ["__meta_kubernetes_pod_label_app_kubernetes_io_version"],
        "component": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]}


def test_annotations_mode_keeps_the_pod_annotations_and_declares_no_pod_monitor(
        repo: GitRepo) -> None:
    simulation = run(repo, prometheus="annotations")
    assert simulation.of_type(POD_MONITOR) == []
    for deployment in simulation.of_type(DEPLOYMENT):
        annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"


def test_an_unknown_prometheus_mode_is_refused_with_the_key_named(repo: GitRepo) -> None:
    from planner.simulate import ProgramFailed

    with pytest.raises(ProgramFailed) as failed:
        run(repo, prometheus="servicemonitor")
    assert failed.value.simulation.registrations == []
    (error,) = failed.value.simulation.messages("error")
    assert "modelfleet:prometheus" in error
    assert "'servicemonitor' is not one of operator, annotations" in error


def test_the_gateway_reaches_the_serving_port_and_prometheus_the_metrics_port_only(
        repo: GitRepo) -> None:
    simulation = run(repo, prometheusNamespace="observability")
    server = simulation.find(POLICY, "fraud").inputs["spec"]
    assert admitted(server) == [(["models"], [8080, 8081]), (["gateway-system"], [8080]),
                                (["observability"], [8080])]
    workers = simulation.find(POLICY, "fraud-worker").inputs["spec"]
    assert admitted(workers) == [(["observability"], [8080])]
    assert workers["policyTypes"] == ["Ingress"]


def test_the_plan_warns_when_a_network_policy_admits_a_new_namespace(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = copy_project(tmp_path / "project")
    stack = project.root / "stacks/Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  modelfleet:prometheusNamespace: observability\n")
    project.commit("dev: Prometheus runs in observability")
    with inside(project.root):
        code = main(["plan", "--stack", "dev", "--base", "HEAD~1", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    widened = [r for r in json.loads(out)["risks"] if r["kind"] == "network-widened"]
    assert widened, "every model's policy now admits observability"
    assert all(r["level"] == "warning" for r in widened)
    for risk in widened:  # the HTTP port (metrics) only: 8080, or a model's own port
        (admitted,) = risk["admitted"]
        assert admitted.startswith("namespace observability (port "), admitted
        assert "," not in admitted, "one port, never the gRPC one"
    assert any(r["resource"]["name"].endswith("-worker") for r in widened), "workers too"


RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def test_one_prometheus_rule_carries_each_models_alerts_at_its_own_thresholds(
        repo: GitRepo) -> None:
    simulation = run(repo)
    (rule,) = simulation.of_type(RULE)
    assert rule.inputs["metadata"]["namespace"] == "models"
    assert rule.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule.inputs["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"] if "alert" in r}
    assert set(alerts) == {"ModelErrorBudgetBurn", "ModelLatencyBudgetBurn",
                           "ModelQueueMessagesOld", "ModelDeadLetterMessages",
                           "ModelAutoscalerAtMaximum"}
    assert "(14.4 * 0.01)" in alerts["ModelErrorBudgetBurn"]["expr"], "the default 1% budget"
    assert 'le="0.5"' in next(r["expr"] for r in group["rules"]
                              if r.get("record", "").endswith("slow:ratio_rate5m"))
    assert '"modelfleet-dev-fraud-dlq"' in alerts["ModelDeadLetterMessages"]["expr"]
    assert "fraud-challenger" in alerts["ModelAutoscalerAtMaximum"]["expr"]
    assert run(repo, prometheus="annotations").of_type(RULE) == []


CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def test_the_dashboard_is_a_sidecar_config_map_of_valid_grafana_json(repo: GitRepo) -> None:
    simulation = run(repo)
    (config_map,) = [c for c in simulation.of_type(CONFIG_MAP)
                     if c.inputs["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert config_map.inputs["metadata"]["namespace"] == "models"
    ((key, text),) = config_map.inputs["data"].items()
    assert key.endswith(".json")
    board = json.loads(text)
    assert board["schemaVersion"] == 39
    assert 0 < len(board["uid"]) <= 40
    assert [v["type"] for v in board["templating"]["list"]] == ["datasource"]
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        taken = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not taken & cells, f"{panel['title']} overlaps another panel"
        cells |= taken
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["fraud"]
    titles = [p["title"] for p in panels if p["type"] == "timeseries"]
    assert titles == ["fraud: Requests per second", "fraud: Error ratio (5xx)",
                      "fraud: Latency p50 and p99", "fraud: Requests in progress",
                      "fraud: Replicas", "fraud: Queue depth", "fraud: Rows predicted per second",
                      "fraud: Workers"]
    for panel in panels[1:]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["expr"] and t["refId"] for t in panel["targets"])


LOAD_TEST = """\
      rollout:
        strategy: progressive
        loadTest:
          url: http://flagger-loadtester.test/
          request: {inputs: [{name: input-0, shape: [1, 4], datatype: FP64,
                              data: [[0.5, -1.0, 0.2, 0.0]]}]}
          rps: 20
          concurrency: 4
"""


def progressive(loaded: bool) -> str:
    return (f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.4.2
    artifact: {{uri: "s3://training-output/fraud/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    serving:
""" + (LOAD_TEST if loaded else "      rollout: {strategy: progressive}\n"))


def test_a_load_test_is_flaggers_rollout_webhook_running_hey_against_the_canary(
        repo: GitRepo) -> None:
    path = repo.write("models.yaml", progressive(loaded=True))
    simulation = deploy(path, config={
        "modelfleet:gateway": "gateway-system/models", "modelfleet:flagger": "true",
        "modelfleet:prometheusAddress": "http://prometheus-operated.monitoring.svc:9090"})
    canary = simulation.find("kubernetes:flagger.app/v1beta1:Canary", "fraud").inputs["spec"]
    (hook,) = canary["analysis"]["webhooks"]
    assert (hook["name"], hook["type"], hook["url"]) == (
        "load-test", "rollout", "http://flagger-loadtester.test/")
    assert hook["metadata"]["type"] == "cmd"
    assert hook["metadata"]["cmd"] == (
        "hey -z 60s -q 5 -c 4 -m POST -T application/json -d "
        """'{"inputs":[{"data":[[0.5,-1.0,0.2,0.0]],"datatype":"FP64","name":"input-0","""
        """"shape":[1,4]}]}' http://fraud-canary.models:8080/v2/models/fraud/infer""")
    policy = simulation.find(POLICY, "fraud").inputs["spec"]
    assert (["test"], [8080]) in admitted(policy), "the load tester may reach the HTTP port"


def test_a_progressive_bump_without_a_load_test_warns_that_the_analysis_needs_traffic(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = copy_project(tmp_path / "project")
    stack = project.root / "stacks/Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  modelfleet:flagger: true\n")

    def bump(loaded: bool) -> list[dict[str, Any]]:
        (project.root / "models.yaml").write_text(progressive(loaded))
        project.commit(f"fraud, progressive (load test: {loaded})")
        models = project.root / "models.yaml"
        models.write_text(models.read_text().replace("version: 1.4.2", "version: 1.5.0"))
        with inside(project.root):
            code = main(["plan", "--stack", "dev", "--base", "HEAD", "--format", "json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        return [r for r in json.loads(out)["risks"] if r["kind"] == "analysis-needs-traffic"]

    (warning,) = bump(loaded=False)
    assert (warning["level"], warning["model"]) == ("warning", "fraud")
    assert "each 60s check finds no values" in warning["message"]
    assert bump(loaded=True) == []


def test_bad_monitoring_settings_are_refused_with_the_key_named(repo: GitRepo) -> None:
    from planner.simulate import ProgramFailed

    with pytest.raises(ProgramFailed) as failed:
        run(repo, prometheusNamespace="Monitoring", monitoringLabels="release")
    errors = failed.value.simulation.messages("error")
    assert any("modelfleet:prometheusNamespace" in e and "'Monitoring' is not a DNS label" in e
               for e in errors), errors
    assert any("modelfleet:monitoringLabels" in e and "label=value" in e for e in errors), errors
    assert failed.value.simulation.registrations == []
