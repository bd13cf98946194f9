"""LLMs behind the stack's Gateway: an InferencePool per version, its endpoint picker, the
route by model name (Gateway API Inference Extension), and the bad input refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.runtimes import RUNTIMES
from modelfleet.manifest.schema import SATURATION_ENGINES
from modelfleet.rollout.promote import promote_text
from planner.render import kubernetes_objects
from planner.simulate import ProgramFailed, Simulation
from tests.deploy import deploy

DIGEST = "a" * 64
EPP_IMAGE = "ghcr.io/llm-d/llm-d-router-endpoint-picker@sha256:" + "e" * 64
FETCH_IMAGE = "registry.example/modelfleet/fetch@sha256:" + "f" * 64
CONFIG = {"modelfleet:gateway": "gateway-system/models",
          "modelfleet:fetchImage": FETCH_IMAGE,
          "modelfleet:endpointPickerImage": EPP_IMAGE}
ADAPTER = """\
        - name: ticket-triage
          version: 1.2.0
          artifact:
            uri: s3://weights/adapters/triage/1.2.0/
            files:
              - {path: adapter_config.json, sha256: '%s', size: 733}
""" % ("c" * 64)


def llm(name: str = "assistant", adapter: str = ADAPTER, serving: str = "") -> str:
    return f"""\
  - name: {name}
    team: support
    version: 1.0.0
    runtime: {{engine: vllm}}
    artifact: {{uri: s3://weights/{name}/}}
    image: {{ref: "docker.io/vllm/vllm-openai@sha256:{DIGEST}"}}
    serving:
      resources: {{cpu: "8", memory: 48Gi, gpu: 1}}
{serving}      adapters:
{adapter}"""


CANDIDATE = """\
      candidates:
        - name: next
          version: 1.1.0
          artifact: {uri: s3://weights/assistant-next/}
          weight: 20
        - name: shadow
          version: 1.2.0
          artifact: {uri: s3://weights/assistant-shadow/}
          mirror: 50
"""


def manifest(*models: str) -> str:
    return "apiVersion: modelfleet/v1\nmodels:\n" + "".join(models)


def objects_of(simulation: Simulation) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o
            for o in kubernetes_objects(simulation.registrations)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    path = tmp_path_factory.mktemp("gateway") / "models.yaml"
    path.write_text(manifest(llm(serving=CANDIDATE)), encoding="utf-8")
    return objects_of(deploy(path, config=CONFIG))


def test_each_version_gets_a_pool_of_exactly_its_serving_pods_on_the_engine_port(
        fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    for workload in ("assistant", "assistant-next", "assistant-shadow"):
        pool = fleet[("InferencePool", workload)]
        assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
        deployment = fleet[("Deployment", workload)]
        assert pool["spec"]["selector"]["matchLabels"] == \
            deployment["spec"]["selector"]["matchLabels"]
        assert pool["spec"]["targetPorts"] == [{"number": 8000}]
        assert pool["spec"]["endpointPickerRef"] == {
            "kind": "Service", "name": f"{workload}-epp", "port": {"number": 9002},
            "failureMode": "FailOpen"}
    selectors = {tuple(sorted(fleet[("InferencePool", w)]["spec"]["selector"]
                              ["matchLabels"].items()))
                 for w in ("assistant", "assistant-next", "assistant-shadow")}
    assert len(selectors) == 3, "no two versions' pools may select the same pods"


def test_the_endpoint_picker_runs_as_upstreams_chart_with_the_stacks_pinned_image(
        fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployment = fleet[("Deployment", "assistant-epp")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == EPP_IMAGE
    assert container["args"] == [
        "--pool-name", "assistant", "--pool-namespace", "models",
        "--pool-group", "inference.networking.k8s.io",
        "--config-file", "/config/default-plugins.yaml", "--grpc-health-port", "9003",
        "--tracing=false", "--metrics-endpoint-auth=false"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 9002, "grpc-health": 9003, "metrics": 9090}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["grpc"] == {"port": 9003, "service": "inference-extension"}
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["serviceAccountName"] == "assistant-epp"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["kube-api-access"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert mounts["config"] == "/config"
    (config,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert config["configMap"]["name"] == "assistant-epp"


def test_the_endpoint_picker_scores_queue_kv_cache_and_prefix_cache_as_upstream(
        fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    text = fleet[("ConfigMap", "assistant-epp")]["data"]["default-plugins.yaml"]
    config = yaml.safe_load(text)
    assert config["kind"] == "EndpointPickerConfig"
    (profile,) = config["schedulingProfiles"]
    assert {p["pluginRef"]: p["weight"] for p in profile["plugins"]} == {
        "queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
    declared = {p["type"] for p in config["plugins"]}
    assert {"metrics-data-source", "core-metrics-extractor"} <= declared


def test_the_endpoint_picker_may_only_read_pods_and_inference_objects_in_its_namespace(
        fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    role = fleet[("Role", "assistant-epp")]
    assert role["metadata"]["namespace"] == "models"
    granted = {(group, resource, verb) for rule in role["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    assert {verb for _, _, verb in granted} == {"get", "list", "watch"}
    assert {(group, resource) for group, resource, _ in granted} == {
        ("", "pods"), ("inference.networking.k8s.io", "inferencepools"),
        ("inference.networking.x-k8s.io", "inferenceobjectives"),
        ("inference.networking.x-k8s.io", "inferencemodelrewrites"),
        ("llm-d.ai", "inferenceobjectives"), ("llm-d.ai", "inferencemodelrewrites")}
    assert not any(kind == "ClusterRole" for kind, _ in fleet)
    binding = fleet[("RoleBinding", "assistant-epp")]
    assert binding["roleRef"]["name"] == "assistant-epp"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "assistant-epp",
                                    "namespace": "models"}]


def test_only_the_gateways_namespace_reaches_the_pickers_ext_proc_port_over_h2c(
        fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    service = fleet[("Service", "assistant-epp")]
    (ext_proc,) = [p for p in service["spec"]["ports"] if p["port"] == 9002]
    assert ext_proc["appProtocol"] == "kubernetes.io/h2c"
    rules = fleet[("NetworkPolicy", "assistant-epp")]["spec"]["ingress"]
    (from_gateway,) = [r for r in rules if r["ports"] == [{"port": 9002, "protocol": "TCP"}]]
    (peer,) = from_gateway["from"]
    assert peer["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["gateway-system"]}]


def test_the_route_matches_the_openai_api_by_model_name_and_splits_between_pools(
        fleet: dict[tuple[str, str], dict[str, Any]]) -> None:
    (rule,) = fleet[("HTTPRoute", "assistant")]["spec"]["rules"]
    assert [(m["path"], m["headers"]) for m in rule["matches"]] == [
        ({"type": "PathPrefix", "value": "/v1/"},
         [{"type": "Exact", "name": "X-Gateway-Model-Name", "value": name}])
        for name in ("assistant", "ticket-triage")]
    pool = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}
    assert rule["backendRefs"] == [{**pool, "name": "assistant", "weight": 80},
                                   {**pool, "name": "assistant-next", "weight": 20}]
    assert rule["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {**pool, "name": "assistant-shadow"}, "percent": 50}}]


def test_a_stack_without_a_gateway_gets_no_pool_and_needs_no_picker(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(manifest(llm()), encoding="utf-8")
    objects = objects_of(deploy(path, config={"modelfleet:fetchImage": FETCH_IMAGE}))
    assert not {kind for kind, _ in objects} & {"InferencePool", "HTTPRoute", "Role"}
    assert ("Deployment", "assistant") in objects


def failure_of(tmp_path: Path, text: str, config: dict[str, str]) -> list[str]:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramFailed) as failure:
        deploy(path, config=config)
    assert failure.value.simulation.registrations == [], "nothing may be declared"
    return failure.value.simulation.messages("error")


def test_an_llm_behind_the_gateway_needs_the_stacks_endpoint_picker_image(
        tmp_path: Path) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "modelfleet:endpointPickerImage"}
    (error,) = failure_of(tmp_path, manifest(llm()), config)
    assert error.endswith(
        "models.yaml:6: model 'assistant' (environment 'dev'): runtime.engine: an LLM behind "
        "the Gateway is routed by an endpoint picker (Gateway API Inference Extension), but "
        "the stack has no modelfleet:endpointPickerImage; set it (`pulumi config set "
        "modelfleet:endpointPickerImage "
        "ghcr.io/llm-d/llm-d-router-endpoint-picker@sha256:<digest>`)")


def test_an_endpoint_picker_image_without_a_digest_is_refused(tmp_path: Path) -> None:
    config = {**CONFIG, "modelfleet:endpointPickerImage":
              "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"}
    (error,) = failure_of(tmp_path, manifest(llm()), config)
    assert "modelfleet:endpointPickerImage: 'ghcr.io/llm-d/llm-d-router-endpoint-picker:" \
        "v0.10.0' is not pinned" in error


PROMETHEUS = {"modelfleet:prometheusAddress": "http://prometheus-operated.monitoring.svc:9090"}
QUEUE = "      scaleMetric: queue\n      scaleTarget: 5\n"
KV_CACHE = "      scaleMetric: kv-cache\n      scaleTarget: 80\n"
PODS = 'namespace="models",pod=~"assistant-[a-z0-9]+-[a-z0-9]+"'


def scaled(tmp_path: Path, serving: str) -> dict[tuple[str, str], dict[str, Any]]:
    path = tmp_path / "models.yaml"
    path.write_text(manifest(llm(serving=serving)), encoding="utf-8")
    return objects_of(deploy(path, config={**CONFIG, **PROMETHEUS}))


@pytest.mark.parametrize(("serving", "query", "threshold"), [
    (QUEUE, f"sum(vllm:num_requests_waiting{{{PODS}}})", "5"),
    (KV_CACHE, f"100 * sum(vllm:kv_cache_usage_perc{{{PODS}}})", "80"),
])
def test_an_llm_scales_on_its_engines_queue_or_kv_cache_per_pod(
        tmp_path: Path, serving: str, query: str, threshold: str) -> None:
    objects = scaled(tmp_path, serving)
    spec = objects[("ScaledObject", "assistant")]["spec"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["query"] == query
    assert trigger["metadata"]["threshold"] == threshold
    assert spec["scaleTargetRef"]["name"] == "assistant"
    assert "replicas" not in objects[("Deployment", "assistant")]["spec"]
    assert ("HorizontalPodAutoscaler", "assistant") not in objects


def test_an_llm_scales_up_within_a_minute_and_down_one_pod_after_fifteen_calm_minutes(
        tmp_path: Path) -> None:
    behavior = scaled(tmp_path, QUEUE)[("ScaledObject", "assistant")]["spec"]["advanced"][
        "horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert {p["type"]: (p["value"], p["periodSeconds"])
            for p in behavior["scaleUp"]["policies"]} == {"Percent": (100, 60), "Pods": (2, 60)}
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1,
                                                  "periodSeconds": 300}]


def test_switching_an_llm_from_cpu_to_queue_hands_the_deployment_over_to_keda(
        tmp_path: Path) -> None:
    before = scaled(tmp_path, "")
    hpa = before[("HorizontalPodAutoscaler", "assistant")]
    assert hpa["metadata"]["annotations"]["validations.keda.sh/hpa-ownership"] == "false"
    after = scaled(tmp_path, QUEUE)
    assert after[("ScaledObject", "assistant")]["spec"]["scaleTargetRef"] == \
        hpa["spec"]["scaleTargetRef"]
    for objects in (before, after):
        assert "replicas" not in objects[("Deployment", "assistant")]["spec"]


def test_every_engine_that_may_scale_on_saturation_names_both_metrics() -> None:
    exports = {engine for engine, runtime in RUNTIMES.items()
               if runtime.metrics.waiting and runtime.metrics.kv_cache}
    assert exports == set(SATURATION_ENGINES) == {"vllm"}
    assert RUNTIMES["vllm"].metrics.waiting == "vllm:num_requests_waiting"
    assert RUNTIMES["vllm"].metrics.kv_cache == "vllm:kv_cache_usage_perc"


TRITON = f"""\
  - name: ranker
    team: search
    version: 2.3.0
    runtime:
      engine: custom
      port: 8000
      protocol: oip
      health: {{live: /v2/health/live, ready: /v2/health/ready}}
    artifact: {{uri: s3://weights/ranker/}}
    image: {{ref: "nvcr.io/nvidia/tritonserver@sha256:{DIGEST}"}}
    serving:
      resources: {{gpu: 1}}
      scaleMetric: queue
      scaleTarget: 5
"""


def test_saturation_scaling_is_refused_on_a_runtime_without_those_metrics(
        tmp_path: Path) -> None:
    (error,) = failure_of(tmp_path, manifest(TRITON), {**CONFIG, **PROMETHEUS})
    assert error.endswith(
        "models.yaml:15: model 'ranker' (environment 'dev'): serving.scaleMetric: queue is "
        "read from an LLM engine's own metrics (vllm: vllm:num_requests_waiting, "
        "vllm:kv_cache_usage_perc), which engine custom does not export; use cpu")


def test_a_kv_cache_target_above_100_percent_is_refused(tmp_path: Path) -> None:
    text = manifest(llm(serving=KV_CACHE.replace("80", "150")))
    (error,) = failure_of(tmp_path, text, {**CONFIG, **PROMETHEUS})
    assert error.endswith("models.yaml:12: model 'assistant' (environment 'dev'): "
                          "serving.scaleTarget: 150 is a KV-cache use above 100 percent")


def test_a_name_two_llms_serve_on_one_stack_is_refused_where_the_second_sets_it(
        tmp_path: Path) -> None:
    second = llm("helpdesk", adapter=ADAPTER.replace("ticket-triage", "assistant"))
    errors = failure_of(tmp_path, manifest(llm(), second), CONFIG)
    assert [error.split("models.yaml:", 1)[1] for error in errors] == [
        "27: model 'helpdesk' (environment 'dev'): serving.adapters[0].name: 'assistant' is "
        "already served by the LLM 'assistant' on this stack; clients name the model they "
        "want in the OpenAI API's `model` and the Gateway routes by it, so each name may "
        "belong to one LLM"]


def test_a_custom_openai_runtime_gets_a_pool_on_its_own_port(tmp_path: Path) -> None:
    openai = TRITON.replace("name: ranker", "name: chat").replace("protocol: oip",
                                                                  "protocol: openai").replace(
        "      scaleMetric: queue\n      scaleTarget: 5\n", "").replace("port: 8000",
                                                                        "port: 8080")
    path = tmp_path / "models.yaml"
    path.write_text(manifest(openai), encoding="utf-8")
    objects = objects_of(deploy(path, config=CONFIG))
    assert objects[("InferencePool", "chat")]["spec"]["targetPorts"] == [{"number": 8080}]
    (rule,) = objects[("HTTPRoute", "chat")]["spec"]["rules"]
    assert [m["headers"][0]["value"] for m in rule["matches"]] == ["chat"]


def test_promoting_an_llm_candidate_moves_the_stable_pool_to_its_version(
        tmp_path: Path) -> None:
    text = manifest(llm(serving=CANDIDATE))
    edited = promote_text(text, "models.yaml", "assistant", "next").text
    path = tmp_path / "models.yaml"
    path.write_text(edited, encoding="utf-8")
    simulation = deploy(path, config=CONFIG)
    objects = objects_of(simulation)
    assert sorted(name for kind, name in objects if kind == "InferencePool") == [
        "assistant", "assistant-shadow"]
    stable = objects[("Deployment", "assistant")]["spec"]["template"]
    assert stable["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    assert stable["spec"]["containers"][0]["args"][0] == "s3://weights/assistant-next/"
    (rule,) = objects[("HTTPRoute", "assistant")]["spec"]["rules"]
    assert [b["name"] for b in rule["backendRefs"]] == ["assistant"]


def test_an_llm_with_candidates_needs_the_stacks_gateway(tmp_path: Path) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "modelfleet:gateway"}
    (error,) = failure_of(tmp_path, manifest(llm(serving=CANDIDATE)), config)
    assert error.endswith(
        "models.yaml:11: model 'assistant' (environment 'dev'): serving.candidates: "
        "candidates share traffic through a Gateway API HTTPRoute, but the stack has no "
        "modelfleet:gateway; set it (`pulumi config set modelfleet:gateway "
        "gateway-system/models`)")
