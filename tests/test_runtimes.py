"""What each runtime gives its engine: vLLM's arguments, environment, volumes and probes, the
fetch-and-verify init container and its exact IAM reads, and a custom runtime's probes.

vLLM cannot run here (it needs a GPU). Its argv is parsed by an argparse built from vLLM's
own argument definitions as read at pinned commits of vllm-project/vllm:
`vllm/engine/arg_utils.py` @001999d2 (`EngineArgs.add_cli_args`) and
`vllm/entrypoints/openai/cli_args.py` @00522333 (`FrontendArgs`, `LoRAParserAction`).
"""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from components.runtimes.vllm import MODELS_LISTED
from planner.render import kubernetes_objects
from planner.simulate import ProgramFailed, Simulation
from tests.deploy import deploy

DIGEST = "a" * 64
FETCH_IMAGE = "registry.example/modelfleet/fetch@sha256:" + "f" * 64
WEIGHTS = [("config.json", 855), ("model-00001-of-00002.safetensors", 9_976_576_152),
           ("model-00002-of-00002.safetensors", 6_083_926_000), ("tokenizer.json", 9_085_657)]


def files(entries: Sequence[tuple[str, int]], pin: str = "b") -> str:
    return "".join(f"\n        - {{path: {path}, sha256: '{pin * 64}', size: {size}}}"
                   for path, size in entries)


LLM = f"""\
apiVersion: modelfleet/v1
models:
  - name: assistant
    team: support
    version: 1.0.0
    runtime:
      engine: vllm
      args: ["--max-model-len=8192", "--max-lora-rank", "64"]
    artifact:
      uri: s3://weights/llama-3.1-8b/
      files:{files(WEIGHTS)}
    image: {{ref: "docker.io/vllm/vllm-openai@sha256:{DIGEST}"}}
    serving:
      resources: {{cpu: "8", memory: 64Gi, gpu: 2}}
      adapters:
        - name: ticket-triage
          version: 1.2.0
          artifact:
            uri: s3://weights/adapters/triage/1.2.0/
            files:{files([("adapter_config.json", 733), ("adapter_model.safetensors", 41961648)])
                         .replace(chr(10) + "        ", chr(10) + "              ")}
        - name: reply-tone
          version: 0.3.1
          artifact:
            uri: s3://weights/adapters/tone/0.3.1/
            files:
              - {{path: adapter_config.json, sha256: '{"c" * 64}', size: 733, versionId: v7}}
"""
TRITON = f"""\
apiVersion: modelfleet/v1
models:
  - name: ranker
    team: search
    version: 2.3.0
    runtime:
      engine: custom
      port: 8000
      protocol: oip
      health: {{live: /v2/health/live, ready: /v2/health/ready}}
      metricsPath: /metrics
      metricsPort: 8002
      args: ["tritonserver", "--model-repository=/models"]
    artifact: {{uri: "s3://models/ranker/2.3.0/repository/"}}
    image: {{ref: "nvcr.io/nvidia/tritonserver@sha256:{DIGEST}"}}
    serving:
      startupSeconds: 300
"""


def vllm_parser() -> argparse.ArgumentParser:
    """`vllm serve`'s flags that modelfleet generates or the tests pass, as vLLM defines them."""
    parser = argparse.ArgumentParser(prog="vllm serve", exit_on_error=False, allow_abbrev=False)
    parser.add_argument("model_tag")  # `vllm serve <model_tag>` (vllm/entrypoints/cli/serve.py)
    # vllm/engine/arg_utils.py @001999d2
    parser.add_argument("--served-model-name", nargs="+", type=str, default=None)
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--max-loras", type=int, default=1)
    parser.add_argument("--max-lora-rank", type=int, default=16)
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--load-format", type=str, default="auto", choices=[
        "auto", "pt", "safetensors", "npcache", "dummy", "tensorizer", "runai_streamer",
        "bitsandbytes"])
    # vllm/entrypoints/openai/cli_args.py @00522333
    parser.add_argument("--host", type=str, default=None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--lora-modules", type=str, nargs="+", action=LoraModules, default=None)
    return parser


class LoraModules(argparse.Action):
    """`LoRAParserAction`: `name=path` items (the old format, the one generated here)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        found = []
        for item in values:
            if "=" not in item or "," in item:
                raise argparse.ArgumentError(self, f"not name=path: {item}")
            name, path = item.split("=")
            found.append((name, path))
        setattr(namespace, self.dest, found)


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    manifest = tmp_path_factory.mktemp("llm") / "models.yaml"
    manifest.write_text(LLM, encoding="utf-8")
    return deploy(manifest, config={"modelfleet:fetchImage": FETCH_IMAGE})


def pod_spec(simulation: Simulation, name: str) -> dict[str, Any]:
    (deployment,) = [o for o in kubernetes_objects(simulation.registrations)
                     if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def engine(simulation: Simulation, name: str) -> dict[str, Any]:
    (container,) = pod_spec(simulation, name)["containers"]
    return dict(container)


def test_vllm_parses_the_generated_arguments_as_intended(llm: Simulation) -> None:
    container = engine(llm, "assistant")
    assert container["command"] == ["vllm", "serve"]
    parsed = vllm_parser().parse_args(container["args"])
    assert parsed.model_tag == "/models/weights"
    assert parsed.served_model_name == ["assistant"]
    assert (parsed.host, parsed.port) == ("0.0.0.0", 8000)
    assert parsed.tensor_parallel_size == 2
    assert parsed.enable_lora
    assert parsed.max_loras == 2
    assert parsed.lora_modules == [("ticket-triage", "/models/adapters/ticket-triage"),
                                   ("reply-tone", "/models/adapters/reply-tone")]
    assert parsed.max_model_len == 8192
    assert parsed.max_lora_rank == 64
    assert parsed.load_format == "auto"


def test_the_parser_refuses_what_vllm_would(llm: Simulation) -> None:
    """The check is not vacuous: a misspelt flag or a wrong type fails it."""
    args = engine(llm, "assistant")["args"]
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        vllm_parser().parse_args([*args, "--tensor-paralel-size", "2"])
    with pytest.raises(argparse.ArgumentError):
        vllm_parser().parse_args([*args, "--max-loras", "two"])


def test_vllm_writes_its_caches_to_volumes_and_never_calls_a_hub(llm: Simulation) -> None:
    container = engine(llm, "assistant")
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["DO_NOT_TRACK"] == "1"
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    caches = ("HOME", "XDG_CACHE_HOME", "HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR",
              "TORCHINDUCTOR_CACHE_DIR", "XDG_CONFIG_HOME", "VLLM_CONFIG_ROOT")
    for key in caches:
        assert any(env[key] == root or env[key].startswith(root + "/") for root in writable), key
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_vllm_gets_shared_memory_for_tensor_parallelism_and_the_models_read_only(
        llm: Simulation) -> None:
    spec = pod_spec(llm, "assistant")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    mounts = {m["mountPath"]: m for m in engine(llm, "assistant")["volumeMounts"]}
    assert mounts["/dev/shm"]["name"] == "dshm"
    assert mounts["/models"]["readOnly"] is True
    total = sum(size for _, size in WEIGHTS) + 733 + 41961648 + 733
    assert int(volumes["models"]["emptyDir"]["sizeLimit"]) == -(-total * 11 // 10)


def test_the_fetch_init_container_gets_the_plan_of_the_contract(llm: Simulation) -> None:
    (init,) = pod_spec(llm, "assistant")["initContainers"]
    assert init["image"] == FETCH_IMAGE
    assert init["command"] == ["python", "-m", "modelserver.fetch"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "models", "mountPath": "/models"} in init["volumeMounts"]
    env = {item["name"]: item["value"] for item in init["env"]}
    plan = json.loads(env["FETCH_PLAN"])
    assert [(a["name"], a["uri"], a["dest"]) for a in plan["artifacts"]] == [
        ("weights", "s3://weights/llama-3.1-8b/", "/models/weights"),
        ("adapter-ticket-triage", "s3://weights/adapters/triage/1.2.0/",
         "/models/adapters/ticket-triage"),
        ("adapter-reply-tone", "s3://weights/adapters/tone/0.3.1/",
         "/models/adapters/reply-tone")]
    assert plan["artifacts"][0]["files"][1] == {
        "path": "model-00001-of-00002.safetensors", "sha256": "b" * 64,
        "size": 9_976_576_152, "versionId": None}
    assert plan["artifacts"][2]["files"][0]["versionId"] == "v7"


def test_the_pod_may_read_exactly_its_pinned_files(llm: Simulation) -> None:
    (policy,) = [r for r in llm.registrations if r.type == "aws:iam/rolePolicy:RolePolicy"
                 and r.name == "assistant-server-policy"]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    outside = [s for s in statements if not s["Sid"].startswith(("ReadModel", "Decrypt"))]
    by_sid = {s["Sid"]: s for s in outside}
    assert set(by_sid) == {"ReadPinnedFiles", "ReadPinnedFileVersion1"}
    assert by_sid["ReadPinnedFiles"]["Action"] == ["s3:GetObject"]
    assert sorted(by_sid["ReadPinnedFiles"]["Resource"]) == sorted(
        [f"arn:aws:s3:::weights/llama-3.1-8b/{path}" for path, _ in WEIGHTS]
        + ["arn:aws:s3:::weights/adapters/triage/1.2.0/adapter_config.json",
           "arn:aws:s3:::weights/adapters/triage/1.2.0/adapter_model.safetensors"])
    assert by_sid["ReadPinnedFileVersion1"] == {  # that version only, not the key's current
        "Sid": "ReadPinnedFileVersion1", "Effect": "Allow", "Action": ["s3:GetObjectVersion"],
        "Resource": "arn:aws:s3:::weights/adapters/tone/0.3.1/adapter_config.json",
        "Condition": {"StringEquals": {"s3:VersionId": "v7"}}}
    assert not any("s3:ListBucket" in s["Action"] for s in outside)


def test_unpinned_weights_are_streamed_from_s3_by_vllm(tmp_path: Path) -> None:
    manifest = tmp_path / "models.yaml"
    manifest.write_text(LLM.split("      files:", maxsplit=1)[0] + (
        f'    image: {{ref: "docker.io/vllm/vllm-openai@sha256:{DIGEST}"}}\n'
        "    serving:\n      resources: {gpu: 1}\n"), encoding="utf-8")
    simulation = deploy(manifest)
    spec = pod_spec(simulation, "assistant")
    assert "initContainers" not in spec
    parsed = vllm_parser().parse_args(engine(simulation, "assistant")["args"])
    assert parsed.model_tag == "s3://weights/llama-3.1-8b/"
    assert parsed.load_format == "runai_streamer"
    assert parsed.tensor_parallel_size == 1
    assert not parsed.enable_lora


@pytest.fixture
def models_endpoint() -> Iterator[tuple[int, list[str]]]:
    """An OpenAI `/v1/models` on 127.0.0.1 listing the names in the yielded list."""
    listed: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [
                {"id": name, "object": "model"} for name in listed]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], listed
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_startup_check_waits_until_the_model_and_its_adapters_are_listed(
        llm: Simulation, models_endpoint: tuple[int, list[str]]) -> None:
    port, listed = models_endpoint
    command = engine(llm, "assistant")["startupProbe"]["exec"]["command"]
    assert command[:3] == ["python3", "-c", MODELS_LISTED]
    names = command[4:]
    assert names == ["assistant", "ticket-triage", "reply-tone"]

    def check() -> int:
        return subprocess.run([sys.executable, "-c", MODELS_LISTED, str(port), *names],
                              capture_output=True, timeout=30, check=False).returncode
    listed += ["assistant", "ticket-triage"]
    assert check() == 1
    listed.append("reply-tone")
    assert check() == 0


def test_vllm_is_probed_on_health_and_gets_half_an_hour_to_start(llm: Simulation) -> None:
    container = engine(llm, "assistant")
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1800
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_a_custom_oip_runtime_is_probed_and_scraped_where_the_manifest_says(
        tmp_path: Path) -> None:
    manifest = tmp_path / "models.yaml"
    manifest.write_text(TRITON, encoding="utf-8")
    simulation = deploy(manifest)
    objects = {(o["kind"], o["metadata"]["name"]): o
               for o in kubernetes_objects(simulation.registrations)}
    template = objects[("Deployment", "ranker")]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["args"] == ["tritonserver", "--model-repository=/models"]
    assert "command" not in container
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["failureThreshold"] == 60
    assert "annotations" not in template["metadata"]  # the Prometheus Operator scrapes it
    (endpoint,) = objects[("PodMonitor", "ranker")]["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert {"name": "metrics", "containerPort": 8002, "protocol": "TCP"} in container["ports"]
    service_ports = objects[("Service", "ranker")]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in service_ports] == [("http", 8000)]
    rules = objects[("NetworkPolicy", "ranker")]["spec"]["ingress"]
    assert sorted(p["port"] for p in rules[0]["ports"]) == [8000, 8002]
    (scraper,) = [r for r in rules
                  if r["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
                  == ["monitoring"]]
    assert [p["port"] for p in scraper["ports"]] == [8002]  # Prometheus: the metrics port only


def failure_of(tmp_path: Path, text: str, config: dict[str, str]) -> list[str]:
    manifest = tmp_path / "models.yaml"
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramFailed) as failure:
        deploy(manifest, config=config)
    assert failure.value.simulation.registrations == [], "nothing may be declared"
    return failure.value.simulation.messages("error")


def test_pinned_files_need_the_stacks_fetch_image(tmp_path: Path) -> None:
    (error,) = failure_of(tmp_path, LLM, {})
    assert error.endswith("models.yaml:7: model 'assistant' (environment 'dev'): "
                          "runtime.engine: pinned files are fetched and "
                          "verified by an init container, but the stack has no "
                          "modelfleet:fetchImage; set it (`pulumi config set "
                          "modelfleet:fetchImage <registry>/modelfleet-fetch@sha256:<digest>`)")


def test_unpinned_llm_weights_are_refused_where_models_must_be_approved(tmp_path: Path) -> None:
    unpinned = LLM.split("      files:", maxsplit=1)[0].replace(
        "    version: 1.0.0\n", "    version: 1.0.0\n    stage: approved\n") + (
        f'    image: {{ref: "docker.io/vllm/vllm-openai@sha256:{DIGEST}"}}\n'
        "    serving:\n      resources: {gpu: 1}\n")
    (error,) = failure_of(tmp_path, unpinned, {"modelfleet:requireApproved": "true"})
    assert error.endswith("models.yaml:10: model 'assistant' (environment 'dev'): "
                          "artifact: an LLM's weights must be pinned file "
                          "by file in this stack (it requires approved models): list every "
                          "file with its sha256 and size in `files` (`python -m modelfleet "
                          "artifact lock`)")


def test_the_rendered_fetch_plan_is_what_the_fetcher_reads(llm: Simulation) -> None:
    """The init container's FETCH_PLAN parses with the fetcher's own parser, file for file."""
    from modelfleet.release.pinned import parse_plan

    (init,) = pod_spec(llm, "assistant")["initContainers"]
    env = {item["name"]: item.get("value") for item in init["env"]}
    artifacts = parse_plan(env["FETCH_PLAN"])
    assert [(a.name, a.dest) for a in artifacts] == [
        ("weights", "/models/weights"),
        ("adapter-ticket-triage", "/models/adapters/ticket-triage"),
        ("adapter-reply-tone", "/models/adapters/reply-tone")]
    assert artifacts[2].files[0].version_id == "v7"
