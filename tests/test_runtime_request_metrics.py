"""Request metrics per runtime: the KEDA triggers and Flagger's checks read the engine's own
metrics, so a custom OIP runtime (Triton, MLServer) scales on request load and rolls out
progressively like our model server (issue 19, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from components.metrics import latency_ms, request_query, success_rate
from components.runtimes.custom import MLSERVER, TRITON
from components.runtimes.modelserver import REQUESTS
from planner.simulate import Simulation
from tests.deploy import deploy
from tests.gitrepo import GitRepo
from tests.test_rollouts import FLAGGER

DIGEST = "a" * 64
CANARY = "kubernetes:flagger.app/v1beta1:Canary"
TEMPLATE = "kubernetes:flagger.app/v1beta1:MetricTemplate"
SCALED = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PODS = 'namespace="models",pod=~"ranker-[a-z0-9]+-[a-z0-9]+"'
CANARY_PODS = 'namespace="{{ namespace }}",pod=~"{{ target }}-[a-z0-9]+-[a-z0-9]+"'


def triton(serving: str, metrics: str = "triton", name: str = "ranker") -> str:
    """A Triton model as a custom OIP runtime; `serving` lines go under `serving:`."""
    return f"""\
  - name: {name}
    team: search
    version: 2.0.0
    artifact: {{uri: "s3://models/{name}/2.0.0/"}}
    image: {{ref: "nvcr.io/nvidia/tritonserver@sha256:{DIGEST}"}}
    runtime:
      engine: custom
      port: 8000
      protocol: oip
      health: {{live: /v2/health/live, ready: /v2/health/ready}}
      metricsPath: /metrics
      metricsPort: 8002
      metrics: {metrics}
    serving:
""" + "".join(f"      {line}\n" for line in serving.splitlines())


def manifest(*models: str) -> str:
    return "apiVersion: modelfleet/v1\nmodels:\n" + "".join(models)


PROGRESSIVE = ("rollout: {strategy: progressive, minSuccessRate: 99, maxLatencyP99Ms: 300}\n"
               "scaleMetric: concurrency\nscaleTarget: 8")
RPS = "scaleMetric: rps\nscaleTarget: 40"


def test_our_model_servers_queries_are_unchanged() -> None:
    """The PromQL our model server's autoscalers and canary checks read: concurrency from
    the request-seconds counter (Little's law), the rest as they always were."""
    assert request_query("concurrency", "models", "ranker", REQUESTS) == \
        f"sum(rate(modelserver_requests_in_progress_seconds_total{{{PODS}}}[1m]))"
    assert request_query("rps", "models", "ranker", REQUESTS) == \
        f'sum(rate(modelserver_requests_total{{{PODS},route="infer"}}[1m]))'
    assert success_rate(REQUESTS) == (
        f'100 * sum(rate(modelserver_requests_total{{{CANARY_PODS},route="infer",'
        'code!~"5.."}[{{ interval }}])) / sum(rate(modelserver_requests_total'
        f'{{{CANARY_PODS},route="infer"}}[{{{{ interval }}}}]))')
    assert latency_ms(REQUESTS) == (
        "1000 * histogram_quantile(0.99, sum by (le) (rate(modelserver_request_duration_"
        f'seconds_bucket{{{CANARY_PODS},route="infer"}}[{{{{ interval }}}}])))')
    assert REQUESTS.latency_check == "latency-p99"


def test_triton_load_is_read_from_its_request_counters() -> None:
    assert request_query("rps", "models", "ranker", TRITON) == (
        f"(sum(rate(nv_inference_request_success{{{PODS}}}[1m]))"
        f" + sum(rate(nv_inference_request_failure{{{PODS}}}[1m])))")
    # Little's law: microseconds of request handling a second over 10^6 = requests in flight.
    assert request_query("concurrency", "models", "ranker", TRITON) == \
        f"sum(rate(nv_inference_request_duration_us{{{PODS}}}[1m])) / 1000000"


def test_triton_canary_checks_its_success_rate_and_mean_latency() -> None:
    total = (f"(sum(rate(nv_inference_request_success{{{CANARY_PODS}}}[{{{{ interval }}}}]))"
             f" + sum(rate(nv_inference_request_failure{{{CANARY_PODS}}}[{{{{ interval }}}}])))")
    assert success_rate(TRITON) == \
        f"100 * sum(rate(nv_inference_request_success{{{CANARY_PODS}}}[{{{{ interval }}}}]))" \
        f" / {total}"
    assert latency_ms(TRITON) == (
        f"sum(rate(nv_inference_request_duration_us{{{CANARY_PODS}}}[{{{{ interval }}}}]))"
        f" / {total} / 1000"), "microseconds a request, over 1000: milliseconds"
    assert TRITON.latency_check == "latency-mean", "no histogram by default: named for the mean"


def test_mlserver_reads_its_prometheus_client_counters_and_summary() -> None:
    assert request_query("rps", "models", "ranker", MLSERVER) == (
        f"(sum(rate(model_infer_request_success_total{{{PODS}}}[1m]))"
        f" + sum(rate(model_infer_request_failure_total{{{PODS}}}[1m])))")
    assert request_query("concurrency", "models", "ranker", MLSERVER) == \
        f"sum(rate(model_infer_request_duration_sum{{{PODS}}}[1m]))", "seconds a second"
    assert latency_ms(MLSERVER) == (
        "1000 * sum(rate(model_infer_request_duration_sum"
        f"{{{CANARY_PODS}}}[{{{{ interval }}}}]))"
        f" / (sum(rate(model_infer_request_success_total{{{CANARY_PODS}}}[{{{{ interval }}}}]))"
        " + sum(rate(model_infer_request_failure_total"
        f"{{{CANARY_PODS}}}[{{{{ interval }}}}])))"), "seconds a request, times 1000: ms"


def run(repo: GitRepo, text: str, config: dict[str, str]) -> Simulation:
    path = repo.write("models.yaml", text)
    return deploy(path, config={f"modelfleet:{k}": v for k, v in config.items()})


def test_a_triton_model_rolls_out_with_flagger_and_scales_on_its_metrics(
        repo: GitRepo) -> None:
    simulation = run(repo, manifest(triton(PROGRESSIVE), triton(RPS, name="reranker")),
                     FLAGGER)
    analysis = simulation.find(CANARY, "ranker").inputs["spec"]["analysis"]
    assert {m["name"]: m["thresholdRange"] for m in analysis["metrics"]} == {
        "success-rate": {"min": 99}, "latency-mean": {"max": 300}}
    templates = {r.name: r.inputs["spec"]["query"] for r in simulation.of_type(TEMPLATE)}
    assert templates == {"ranker-success-rate": success_rate(TRITON),
                         "ranker-latency-mean": latency_ms(TRITON)}
    scaled = {r.name: r.inputs["spec"] for r in simulation.of_type(SCALED)}
    trigger = scaled["ranker"]["triggers"][0]["metadata"]
    assert trigger["query"] == request_query("concurrency", "models", "ranker", TRITON)
    assert trigger["threshold"] == "8"
    primary = simulation.find(CANARY, "ranker").inputs["spec"]["autoscalerRef"]
    assert primary["primaryScalerQueries"] == {
        "requests": request_query("concurrency", "models", "ranker-primary", TRITON)}
    assert scaled["reranker"]["triggers"][0]["metadata"]["query"] == \
        request_query("rps", "models", "reranker", TRITON)


def refusals(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    return capsys.readouterr().err.strip().splitlines()


def test_a_custom_runtime_without_request_metrics_may_not_roll_out_or_scale_on_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = refusals(tmp_path, manifest(triton(PROGRESSIVE, metrics="none")), capsys)
    hint = ("read the image's request metrics: set `runtime.metrics` to the family it exports "
            "(triton, mlserver) and `runtime.metricsPath`")
    assert errors == [
        f"{tmp_path / 'models.yaml'}:17: model 'ranker': serving.rollout.strategy: "
        f"progressive rollouts {hint}; use candidates with a weight, or rolling",
        f"{tmp_path / 'models.yaml'}:18: model 'ranker': serving.scaleMetric: concurrency "
        f"scaling {hint}; use cpu",
        "2 problems; nothing was done"]


def test_request_metrics_need_a_scraped_path_and_a_custom_engine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unscraped = triton(RPS).replace("      metricsPath: /metrics\n      metricsPort: 8002\n", "")
    served = triton("").replace("engine: custom", "engine: modelserver").replace(
        "      port: 8000\n      protocol: oip\n"
        "      health: {live: /v2/health/live, ready: /v2/health/ready}\n"
        "      metricsPath: /metrics\n      metricsPort: 8002\n", "").replace(
        "name: ranker", "name: fraud").replace("    serving:\n", "    serving: {}\n")
    errors = refusals(tmp_path, manifest(unscraped, served), capsys)
    assert errors == [
        f"{tmp_path / 'models.yaml'}:13: model 'ranker': runtime.metrics: needs `metricsPath`: "
        "the path Prometheus scrapes (e.g. /metrics)",
        f"{tmp_path / 'models.yaml'}:24: model 'fraud': runtime.metrics: is for the vllm and "
        "custom engines; our model server takes `serving.port` and `serving.env`",
        "2 problems; nothing was done"]


def test_a_custom_openai_runtime_may_not_roll_out_progressively(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The canary's route matches the Open Inference Protocol's paths of the model."""
    openai = triton("rollout: {strategy: progressive}").replace("protocol: oip",
                                                                "protocol: openai")
    assert refusals(tmp_path, manifest(openai), capsys) == [
        f"{tmp_path / 'models.yaml'}:17: model 'ranker': serving.rollout.strategy: progressive "
        "rollouts route the Open Inference Protocol's paths; a custom runtime needs "
        "`protocol: oip` for them",
        "1 problem; nothing was done"]
