"""Safe rollouts: a route per model, candidates beside the stable version (A/B/N and shadow),
progressive rollouts with Flagger, their bad input, and traffic in diffs and plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from planner.simulate import ProgramFailed, Simulation
from tests.deploy import deploy
from tests.gitrepo import GitRepo

IMAGE = "registry.example/models/fraud@sha256:" + "e" * 64
GATEWAY = {"gateway": "gateway-system/models"}
FLAGGER = {**GATEWAY, "flagger": "true",
           "prometheusAddress": "http://prometheus-operated.monitoring.svc:9090"}
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CANARY = "kubernetes:flagger.app/v1beta1:Canary"
TEMPLATE = "kubernetes:flagger.app/v1beta1:MetricTemplate"
METADATA = "aws:s3/bucketObjectv2:BucketObjectv2"


def fraud(serving: str = "") -> str:
    return """\
  - name: fraud
    team: risk
    version: 1.4.2
    artifact: {uri: "s3://training-output/fraud/1.4.2/model.joblib"}
    image: {build: {context: images}}
    serving:
      port: 8080
""" + "".join(f"      {line}\n" for line in serving.splitlines())


CANDIDATES = f"""\
candidates:
  - name: challenger
    version: 1.5.0
    artifact: {{uri: "s3://training-output/fraud/1.5.0/model.joblib"}}
    weight: 10
  - name: shadow
    version: 1.6.0-rc.1
    artifact: {{uri: "s3://training-output/fraud/1.6.0/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    mirror: 100"""
BATCH_ONLY = f"""\
  - name: churn
    team: growth
    version: 2.1.0
    artifact: {{uri: "s3://training-output/churn/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    batch: {{}}
"""


def manifest(*models: str) -> str:
    return "apiVersion: modelfleet/v1\nmodels:\n" + "".join(models)


def run(repo: GitRepo, text: str, config: dict[str, str] | None = None) -> Simulation:
    repo.write("images/Dockerfile", "FROM python:3.11-slim\n")
    path = repo.write("models.yaml", text)
    return deploy(path, config={f"modelfleet:{k}": v for k, v in (config or {}).items()})


def names(simulation: Simulation, type_: str) -> set[str]:
    return {r.name for r in simulation.of_type(type_)}


def test_each_online_model_gets_a_route_on_the_gateway_and_none_without_one(
        repo: GitRepo) -> None:
    routed = run(repo, manifest(fraud(), BATCH_ONLY), GATEWAY)
    assert names(routed, ROUTE) == {"fraud"}
    spec = routed.find(ROUTE, "fraud").inputs["spec"]
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "name": "models", "namespace": "gateway-system"}]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2/models/fraud"}}]
    assert rule["backendRefs"] == [{"name": "fraud", "port": 8080, "weight": 100}]
    assert names(run(repo, manifest(fraud(), BATCH_ONLY)), ROUTE) == set()


def test_candidates_get_their_own_workload_and_the_route_shares_or_mirrors_traffic(
        repo: GitRepo) -> None:
    simulation = run(repo, manifest(fraud(CANDIDATES)), GATEWAY)
    assert names(simulation, DEPLOYMENT) == {"fraud", "fraud-challenger", "fraud-shadow"}
    assert names(simulation, SERVICE) == {"fraud", "fraud-challenger", "fraud-shadow"}
    for kind in ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
                 "kubernetes:policy/v1:PodDisruptionBudget"):
        assert names(simulation, kind) == {"fraud", "fraud-challenger", "fraud-shadow"}
    assert names(simulation, "kubernetes:core/v1:ServiceAccount") == {
        "fraud-server-sa", "fraud-challenger-server-sa", "fraud-shadow-server-sa"}
    challenger = simulation.find(DEPLOYMENT, "fraud-challenger").inputs
    labels = challenger["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "1.5.0"
    assert labels["modelfleet.dev/candidate"] == "challenger"
    assert challenger["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "fraud-challenger", "app.kubernetes.io/component": "server"}
    stable = simulation.find(SERVICE, "fraud").inputs["spec"]["selector"]
    assert stable == {"app.kubernetes.io/name": "fraud", "app.kubernetes.io/component": "server"}
    env = {e["name"]: e["value"] for e in
           challenger["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["MODEL_NAME"], env["MODEL_VERSION"]) == ("fraud", "1.5.0")
    assert env["MODEL_URI"] == "s3://training-output/fraud/1.5.0/model.joblib"
    built = simulation.find("docker:index/image:Image", "fraud-challenger-image").inputs
    assert built["build"]["args"]["MODEL_VERSION"] == "1.5.0"
    assert str(built["imageName"]).rpartition(":")[2].startswith("1.5.0-")
    shadow = simulation.find(DEPLOYMENT, "fraud-shadow").inputs
    assert shadow["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    keys = {r.inputs["key"] for r in simulation.of_type(METADATA) if "metadata" in r.name}
    assert {"models/fraud/1.5.0/metadata.json", "models/fraud/1.6.0-rc.1/metadata.json",
            "models/fraud/1.4.2/metadata.json"} <= keys
    rule, *_ = simulation.find(ROUTE, "fraud").inputs["spec"]["rules"]  # then version paths
    assert rule["backendRefs"] == [{"name": "fraud", "port": 8080, "weight": 90},
                                   {"name": "fraud-challenger", "port": 8080, "weight": 10}]
    assert rule["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "fraud-shadow", "port": 8080}, "percent": 100}}]
    policies = names(simulation, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert policies == {"fraud"}, "one policy covers every version of the model"
    selector = simulation.find("kubernetes:networking.k8s.io/v1:NetworkPolicy", "fraud").inputs
    assert selector["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "fraud", "app.kubernetes.io/component": "server"}


def gateway_backend(spec: dict[str, Any], path: str) -> str:
    """The Service a Gateway sends `path` to, as the Gateway API v1.6 spec orders an
    HTTPRoute's matches: PathPrefix matches whole `/`-separated elements, the longest
    matching prefix wins, ties go to the first rule. Weighted rules answer
    `weighted:<names>` (a request goes to any of them)."""
    best: tuple[int, int, dict[str, Any]] | None = None
    for index, rule in enumerate(spec["rules"]):
        for match in rule["matches"]:
            prefix = match["path"]["value"].rstrip("/")
            matched = path == prefix or path.startswith(prefix + "/")
            if matched and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index, rule)
    assert best is not None, f"no rule matches {path}: the gateway answers 404"
    names = [b["name"] for b in best[2]["backendRefs"]]
    return names[0] if len(names) == 1 else "weighted:" + ",".join(names)


def test_a_pinned_version_path_reaches_the_pods_that_serve_that_version(
        repo: GitRepo) -> None:
    """/v2/models/fraud/versions/<v>/infer through the route with a canary and a shadow."""
    simulation = run(repo, manifest(fraud(CANDIDATES)), GATEWAY)
    spec = simulation.find(ROUTE, "fraud").inputs["spec"]

    def version_served_by(service: str) -> str:
        selector = simulation.find(SERVICE, service).inputs["spec"]["selector"]
        (deployment,) = [d for d in simulation.of_type(DEPLOYMENT) if selector.items()
                         <= d.inputs["spec"]["template"]["metadata"]["labels"].items()]
        env = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
        return str({e["name"]: e.get("value") for e in env}["MODEL_VERSION"])

    for version in ("1.4.2", "1.5.0"):
        for rest in ("/infer", "/ready", ""):
            path = f"/v2/models/fraud/versions/{version}{rest}"
            service = gateway_backend(spec, path)
            assert not service.startswith("weighted:"), f"{path} goes by weight: {service}"
            assert version_served_by(service) == version, path
    weighted = "weighted:fraud,fraud-challenger"
    assert gateway_backend(spec, "/v2/models/fraud/infer") == weighted, "unversioned: weights"
    assert gateway_backend(spec, "/v2/models/fraud/versions/1.5.01/infer") == weighted, \
        "a prefix matches whole path elements only"
    assert gateway_backend(spec, "/v2/models/fraud/versions/1.6.0-rc.1/infer") == weighted, \
        "a shadow's answers are never served, so its version has no path of its own"
    (weights, *pinned) = spec["rules"]
    assert weights["filters"][0]["requestMirror"]["backendRef"]["name"] == "fraud-shadow"
    assert all("filters" not in rule for rule in pinned), "a pinned request is not mirrored"
    assert [r["matches"][0]["path"]["value"] for r in pinned] == [
        "/v2/models/fraud/versions/1.4.2", "/v2/models/fraud/versions/1.5.0"]
    alone = run(repo, manifest(fraud()), GATEWAY).find(ROUTE, "fraud").inputs["spec"]
    assert len(alone["rules"]) == 1, "one version only: every path already reaches it"


def test_a_progressive_rollout_is_a_flagger_canary_gated_on_the_servers_metrics(
        repo: GitRepo) -> None:
    simulation = run(repo, manifest(fraud(
        "rollout: {strategy: progressive, steps: [5, 20, 50], intervalSeconds: 120, "
        "failureBudget: 3, minSuccessRate: 99.5, maxLatencyP99Ms: 250}")), FLAGGER)
    assert names(simulation, SERVICE) == set(), "Flagger makes the Services"
    assert names(simulation, ROUTE) == set(), "Flagger makes the route"
    deployment = simulation.find(DEPLOYMENT, "fraud").inputs
    assert deployment["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert "replicas" not in deployment["spec"]
    budget = simulation.find("kubernetes:policy/v1:PodDisruptionBudget", "fraud").inputs
    assert budget["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "fraud", "app.kubernetes.io/component": "server"}, \
        "Flagger renames the primary's name label: the budget selects by instance"
    canary = simulation.find(CANARY, "fraud").inputs["spec"]
    assert canary["revertOnDeletion"] is True, "turning back to rolling must not leave 0 pods"
    assert canary["provider"] == "gatewayapi:v1"
    assert canary["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": "fraud"}
    assert canary["autoscalerRef"] == {"apiVersion": "autoscaling/v2",
                                       "kind": "HorizontalPodAutoscaler", "name": "fraud"}
    assert canary["service"]["gatewayRefs"] == [{"name": "models",
                                                 "namespace": "gateway-system"}]
    analysis = canary["analysis"]
    assert (analysis["interval"], analysis["threshold"], analysis["stepWeights"]) == \
        ("120s", 3, [5, 20, 50])
    thresholds = {m["name"]: m["thresholdRange"] for m in analysis["metrics"]}
    assert thresholds == {"success-rate": {"min": 99.5}, "latency-p99": {"max": 250}}
    templates = {r.name: r.inputs["spec"] for r in simulation.of_type(TEMPLATE)}
    assert set(templates) == {"fraud-success-rate", "fraud-latency-p99"}
    success = templates["fraud-success-rate"]
    assert success["provider"] == {"type": "prometheus",
                                   "address": FLAGGER["prometheusAddress"]}
    assert 'modelserver_requests_total{namespace="{{ namespace }}",pod=~"{{ target }}-' \
        in success["query"]
    assert 'code!~"5.."' in success["query"]
    assert "histogram_quantile(0.99" in templates["fraud-latency-p99"]["query"]


BAD = {
    "weights of 100 or more": (
        CANDIDATES.replace("weight: 10", "weight: 60").replace("mirror: 100", "weight: 40"),
        "serving.candidates: the weights add up to 100 percent"),
    "both weight and mirror": (CANDIDATES.replace("weight: 10", "weight: 10\n    mirror: 5"),
                               "serving.candidates[0]: give exactly one of `weight`"),
    "neither weight nor mirror": (CANDIDATES.replace("    weight: 10\n", ""),
                                  "serving.candidates[0]: give exactly one of `weight`"),
    "the model's own version": (CANDIDATES.replace("version: 1.5.0", "version: 1.4.2"),
                                "serving.candidates[0].version: 1.4.2 is the model's own"),
    "one version for two candidates": (
        CANDIDATES.replace("version: 1.6.0-rc.1", "version: 1.5.0"),
        "serving.candidates[1].version: 1.5.0 is another candidate's version too"),
    "duplicate names": (CANDIDATES.replace("name: shadow", "name: challenger"),
                        "serving.candidates[1].name: 'challenger' is used by another"),
    "a name too long for Kubernetes": (
        CANDIDATES.replace("name: challenger", "name: challenger-of-the-month-of-november"),
        "serving.candidates[0].name: 'fraud-challenger-of-the-month-of-november' would name its "
        "Deployment, but is longer than 40 characters"),
    "a threshold out of range": ("rollout: {strategy: progressive, minSuccessRate: 101}",
                                 "serving.rollout.minSuccessRate: must be at most 100"),
    "progressive with candidates": ("rollout: {strategy: progressive}\n" + CANDIDATES,
                                    "serving.candidates: a progressive rollout shifts traffic"),
    "more weighted candidates than an HTTPRoute has rules for": (
        "candidates:\n" + "".join(
            f"  - {{name: c{i}, version: 2.0.{i}, weight: 1, "
            f'artifact: {{uri: "s3://training-output/fraud/c{i}.joblib"}}}}\n'
            for i in range(15)),
        "serving.candidates: 15 candidates have a weight; at most 14: the model's HTTPRoute "
        "holds a rule for its path and one for each served version's path"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rollouts_are_refused_with_file_line_model_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    serving, expected = BAD[case]
    (tmp_path / "images").mkdir()
    (tmp_path / "images/Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "models.yaml"
    path.write_text(manifest(fraud(serving)))
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"{path}:") and f": model 'fraud': {expected}" in line
               for line in lines), lines


@pytest.mark.parametrize(("serving", "config", "expected"), [
    (CANDIDATES, {}, "serving.candidates: candidates share traffic through a Gateway API "
                     "HTTPRoute, but the stack has no modelfleet:gateway"),
    ("rollout: {strategy: progressive}", GATEWAY,
     "serving.rollout.strategy: a progressive rollout is run by Flagger, but the stack has no "
     "modelfleet:flagger"),
])
def test_what_the_stack_must_give_is_checked_before_anything_is_declared(
        repo: GitRepo, serving: str, config: dict[str, str], expected: str) -> None:
    with pytest.raises(ProgramFailed) as failure:
        run(repo, manifest(fraud(serving)), config)
    assert failure.value.simulation.registrations == []
    messages = failure.value.simulation.messages("error")
    assert any(f"model 'fraud' (environment 'dev'): {expected}" in m for m in messages), messages


def test_a_weight_change_or_a_new_candidate_shows_as_a_traffic_change(
        repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("images/Dockerfile", "FROM python:3.11-slim\n")
    repo.write("models.yaml", manifest(fraud()))
    repo.commit("stable only")
    repo.write("models.yaml", manifest(fraud(CANDIDATES)))
    assert main(["diff", str(repo.root / "models.yaml")]) == 0
    out = capsys.readouterr().out
    assert "    traffic: stable 100% → stable 90%, challenger 10%, shadow mirrors 100%" in \
        out.splitlines()
    repo.commit("candidates")
    repo.write("models.yaml", manifest(fraud(CANDIDATES.replace("weight: 10", "weight: 25"))))
    assert main(["diff", str(repo.root / "models.yaml"), "--format", "json"]) == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert model["traffic"] == {"old": "stable 90%, challenger 10%, shadow mirrors 100%",
                                "new": "stable 75%, challenger 25%, shadow mirrors 100%"}
    assert [c["path"] for c in model["changes"]] == ["serving.candidates.challenger.weight"]



def test_a_progressive_models_version_bump_is_summarized_as_flaggers_analysis(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.shipped import copy_project, inside

    project = copy_project(tmp_path / "project")
    models = project.root / "models.yaml"
    text = models.read_text()
    start = text.index("      candidates:              # a canary")
    end = text.index("    environments:", start)
    models.write_text(text[:start] + "      rollout: {strategy: progressive, steps: [20, 50]}\n"
                      + text[end:])
    stack = project.root / "stacks/Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  modelfleet:flagger: true\n")
    project.commit("the fraud detector rolls out progressively")
    models.write_text(models.read_text().replace("version: 1.4.2", "version: 1.5.0", 1))
    with inside(project.root):
        assert main(["plan", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    (fraud,) = [s for s in planned["summary"] if s["model"] == "fraud-detector"]
    assert fraud["headline"] == "rolls from 1.4.2 to 1.5.0"
    assert any(line.startswith("the new version is analysed by Flagger before it takes all "
                               "traffic (Canary fraud-detector): 20%, 50% of traffic, a step "
                               "every 60s, rolled back after 5 failed checks (success-rate ≥ "
                               "99, latency-p99 ≤ 500)") for line in fraud["lines"]), fraud["lines"]


def test_a_candidates_artifact_changed_under_its_version_is_a_danger_in_the_plan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.shipped import copy_project, inside

    project = copy_project(tmp_path / "project")
    models = project.root / "models.yaml"
    models.write_text(models.read_text().replace(
        "uri: s3://training-output/fraud/1.5.0/model.joblib",
        "uri: s3://training-output/fraud/1.5.0-retrained/model.joblib", 1))
    with inside(project.root):
        assert main(["plan", "--stack", "dev", "--base", "HEAD", "--format", "json",
                     "--fail-on", "danger"]) == 3
    planned = json.loads(capsys.readouterr().out)
    mutated = [r for r in planned["risks"] if r["kind"] == "artifact-mutated"]
    assert [(r["level"], r["model"]) for r in mutated] == [("danger", "fraud-detector")]
    assert mutated[0]["message"].startswith(
        "candidate 'challenger' version 1.5.0 was deployed before with another artifact "
        "(artifact.uri s3://training-output/fraud/1.5.0/model.joblib → "
        "s3://training-output/fraud/1.5.0-retrained/model.joblib)")


ANALYSIS_NEEDS = (
    "server pods hold 1 GPU each and Flagger runs the new version's pods (Deployment "
    "image-tagger, 1 replica at its autoscaler's minimum, more under load) beside the "
    "primary's during the analysis: it needs 1 spare GPU, without which they stay Pending "
    "and Flagger rolls back after 1320 s")
PROMOTION_STOPS = (
    "when Flagger promotes the new version, the primary (Deployment image-tagger-primary) "
    "rolls with maxSurge 0, maxUnavailable 1 at a minimum of 1 replica: its pods stop "
    "before their replacements are ready while it still answers 50% of traffic")


@pytest.mark.parametrize(("rollout", "expected"), [
    ("", {"gpu-surge": ANALYSIS_NEEDS, "serving-stops": PROMOTION_STOPS}),
    (", maxSurge: 50%, maxUnavailable: 0", {"gpu-surge": ANALYSIS_NEEDS + (
        "; at promotion Deployment image-tagger-primary surges with maxSurge 50%: 1 more GPU "
        "at 1 replica, up to 2 at 4")}),
], ids=["default GPU rollout", "a surging primary"])
def test_a_progressive_gpu_models_bump_needs_spare_gpus_for_flaggers_canary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], rollout: str,
        expected: dict[str, str]) -> None:
    """Flagger runs the new pods beside the primary's, whatever the Deployment's own surge;
    then the primary rolls with that strategy while it still takes the last step's rest."""
    from tests.shipped import copy_project, inside

    project = copy_project(tmp_path / "project")
    models = project.root / "models.yaml"
    text = models.read_text()
    start = text.index("      candidates:              # a shadow")
    end = text.index("          mirror: 100\n", start) + len("          mirror: 100\n")
    models.write_text(text[:start] + "      rollout: {strategy: progressive, steps: [20, 50]"
                      + rollout + "}\n" + text[end:])
    stack = project.root / "stacks/Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  modelfleet:flagger: true\n")
    project.commit("the image tagger rolls out progressively")
    models.write_text(models.read_text().replace("version: 1.0.0", "version: 1.1.0", 1))
    with inside(project.root):
        assert main(["plan", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    tagger = {r["kind"]: r for r in planned["risks"] if r["model"] == "image-tagger"}
    assert tagger.pop("analysis-needs-traffic")["level"] == "warning", "no load test declared"
    assert {kind: risk["message"] for kind, risk in tagger.items()} == expected
    assert tagger["gpu-surge"]["level"] == "warning"


@pytest.mark.parametrize(("base", "head", "starts"), [
    ("", "      rollout: {strategy: progressive}\n", "image-tagger moves to Flagger: "),
    ("      rollout: {strategy: progressive}\n", "", "image-tagger leaves Flagger: "),
], ids=["to Flagger", "back from Flagger"])
def test_a_switch_between_rolling_and_flagger_is_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, head: str,
        starts: str) -> None:
    from tests.shipped import copy_project, inside

    project = copy_project(tmp_path / "project")
    models = project.root / "models.yaml"
    text = models.read_text()
    start = text.index("      candidates:              # a shadow")
    end = text.index("          mirror: 100\n", start) + len("          mirror: 100\n")
    models.write_text(text[:start] + base + text[end:])
    stack = project.root / "stacks/Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  modelfleet:flagger: true\n")
    project.commit("before the switch")
    models.write_text(text[:start] + head + text[end:])
    with inside(project.root):
        assert main(["plan", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    switches = [r for r in planned["risks"] if r["kind"] == "strategy-switch"]
    assert [(r["level"], r["model"]) for r in switches] == [("danger", "image-tagger")]
    assert switches[0]["message"].startswith(starts)
    assert switches[0]["message"].endswith("while they hand over, so it needs 1 spare GPU")


def test_promoting_a_built_candidate_flags_its_tag_pushed_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.shipped import copy_project, inside

    project = copy_project(tmp_path / "project")
    with inside(project.root):
        assert main(["promote", "fraud-detector", "challenger"]) == 0
        project.commit("promote the challenger")
        capsys.readouterr()
        assert main(["plan", "--stack", "dev", "--base", "HEAD~1", "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    (tag,) = [r for r in planned["risks"] if r["kind"] == "image-tag-exists"]
    assert (tag["level"], tag["model"]) == ("danger", "fraud-detector")
    assert tag["message"].startswith("the stable version: version 1.5.0 moves here from another "
                                     "slot")
