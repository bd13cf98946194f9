"""The `runtime` section and LoRA adapters: what each engine takes, and every bad input refused
with file, line, model and field, exit 1 (issue 19, items 1, 4 and 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from modelfleet.diff.compare import diff_models
from modelfleet.manifest.parse import parse_manifest
from modelfleet.manifest.resolve import resolve
from modelfleet.manifest.schema import Health, ModelSpec, Serving

DIGEST = "a" * 64
FILE_DIGEST = "b" * 64
LLM = f"""\
apiVersion: modelfleet/v1
models:
  - name: assistant
    team: ml
    version: 1.0.0
    artifact:
      uri: s3://weights/llama-3.1-8b/
      files:
        - {{path: config.json, sha256: "{FILE_DIGEST}", size: 855}}
        - {{path: model.safetensors, sha256: "{FILE_DIGEST}", size: 16060522496}}
    image: {{ref: "docker.io/vllm/vllm-openai@sha256:{DIGEST}"}}
    runtime:
      engine: vllm
      args: ["--max-model-len=8192"]
    serving:
      resources: {{cpu: "8", memory: 48Gi, gpu: 2}}
      adapters:
        - name: sql
          version: 1.0.0
          artifact:
            uri: s3://weights/adapters/sql/
            files: [{{path: adapter_config.json, sha256: "{FILE_DIGEST}", size: 700}}]
"""
TRITON = f"""\
apiVersion: modelfleet/v1
models:
  - name: ranker
    team: search
    version: 2.0.0
    artifact: {{uri: "s3://models/ranker/2.0.0/"}}
    image: {{ref: "nvcr.io/nvidia/tritonserver@sha256:{DIGEST}"}}
    runtime:
      engine: custom
      port: 8000
      protocol: oip
      health: {{live: /v2/health/live, ready: /v2/health/ready}}
      metricsPath: /metrics
    serving: {{}}
"""


def validate(tmp_path: Path, text: str,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    (tmp_path / "models.yaml").write_text(text, encoding="utf-8")
    code = main(["validate", str(tmp_path / "models.yaml")])
    _, err = capsys.readouterr()
    lines = err.replace(str(tmp_path) + "/", "").splitlines()
    return code, [line for line in lines if line.startswith("models.yaml")]


def resolved(tmp_path: Path, text: str) -> ModelSpec:
    return resolve(parse_manifest(text, str(tmp_path / "models.yaml"))).models[0]


def test_a_vllm_model_gets_port_8000_and_half_an_hour_to_start(tmp_path: Path) -> None:
    spec = resolved(tmp_path, LLM)
    assert spec.runtime.engine == "vllm"
    assert served(spec).port == 8000
    assert served(spec).startup_seconds == 1800
    assert [a.name for a in served(spec).adapters] == ["sql"]


def test_a_given_startup_budget_and_port_win_over_the_llm_defaults(tmp_path: Path) -> None:
    spec = resolved(tmp_path, LLM.replace("      args:", "      port: 8100\n      args:")
                    .replace("gpu: 2}", "gpu: 2}\n      startupSeconds: 900"))
    assert served(spec).port == 8100
    assert served(spec).startup_seconds == 900


def test_a_model_without_runtime_is_served_by_our_model_server(tmp_path: Path) -> None:
    spec = resolved(tmp_path, TRITON.replace(
        "    runtime:\n      engine: custom\n      port: 8000\n      protocol: oip\n"
        "      health: {live: /v2/health/live, ready: /v2/health/ready}\n"
        "      metricsPath: /metrics\n", ""))
    assert spec.runtime.engine == "modelserver"
    assert served(spec).port == 8080
    assert served(spec).startup_seconds == 600


def test_a_custom_oip_runtime_takes_the_images_port(tmp_path: Path) -> None:
    spec = resolved(tmp_path, TRITON)
    assert served(spec).port == 8000
    assert (spec.runtime.health or Health(live='/', ready='/')).ready == "/v2/health/ready"


def served(spec: ModelSpec) -> Serving:
    assert spec.serving is not None
    return spec.serving


CASES = {
    "unknown engine": (
        LLM.replace("engine: vllm", "engine: sglang"),
        ["models.yaml:13: model 'assistant': runtime.engine: must be 'modelserver', 'vllm' or "
         "'custom', got 'sglang'"]),
    "vllm with batch workers": (
        LLM + "    batch: {}\n",
        ["models.yaml:23: model 'assistant': batch: batch workers with engine vllm are not "
         "supported yet: they speak our model server's queue protocol; serve the model online"]),
    "vllm with a progressive rollout": (
        LLM.replace("gpu: 2}", "gpu: 2}\n      rollout: {strategy: progressive}"),
        ["models.yaml:17: model 'assistant': serving.rollout.strategy: progressive rollouts "
         "with engine vllm are not supported yet: its request metrics are not wired to the "
         "analyses; use candidates with a weight, or rolling"]),
    "engine args that set what modelfleet owns": (
        LLM.replace('["--max-model-len=8192"]',
                    '["--port", "9000", "--served-model-name=x", "--model=/w", '
                    '"--tensor-parallel-size", "4"]'),
        [f"models.yaml:14: model 'assistant': runtime.args[{index}]: '{flag}' is set by "
         "modelfleet from the manifest (the model's name, its port, resources.gpu, its "
         "weights and adapters); remove it"
         for index, flag in ((0, "--port"), (2, "--served-model-name"), (3, "--model"),
                             (4, "--tensor-parallel-size"))]),
    "files key outside the prefix": (
        LLM.replace("path: config.json", "path: ../secrets.json"),
        ["models.yaml:9: model 'assistant': artifact.files[0].path: '../secrets.json' is "
         "outside the artifact's prefix; give the key below `uri` (no leading '/', no '.' or "
         "'..' segments, no empty segments)"]),
    "files key listed twice": (
        LLM.replace("path: model.safetensors", "path: config.json"),
        ["models.yaml:10: model 'assistant': artifact.files[1].path: 'config.json' is "
         "listed twice"]),
    "adapters with duplicate names": (
        LLM + "        - {name: sql, version: 1.1.0, artifact: {uri: 's3://weights/a/', "
        f"files: [{{path: a.json, sha256: '{FILE_DIGEST}', size: 1}}]}}}}\n",
        ["models.yaml:23: model 'assistant': serving.adapters[1].name: 'sql' is used by "
         "another adapter of this model"]),
    "adapter without pinned files": (
        LLM.replace("            files: [{path: adapter_config.json, sha256: "
                    f'"{FILE_DIGEST}", size: 700}}]\n', ""),
        ["models.yaml:20: model 'assistant': serving.adapters[0].artifact.files: is required: "
         "every file of the adapter with its sha256 and size (`python -m modelfleet artifact "
         "lock`), so it is verified before the engine starts"]),
    "adapters on our model server": (
        LLM.replace("engine: vllm", "engine: modelserver").replace(
            '      args: ["--max-model-len=8192"]\n', "").replace("gpu: 2", "gpu: 1"),
        ["models.yaml:16: model 'assistant': serving.adapters: LoRA adapters are served by "
         "engine vllm; this model's engine is modelserver"]),
    "vllm without a gpu": (
        LLM.replace("gpu: 2", "gpu: 0"),
        ["models.yaml:16: model 'assistant': serving.resources.gpu: engine vllm runs on GPUs; "
         "give resources.gpu (1 or more: the tensor-parallel size)"]),
    "vllm weights that are one object": (
        LLM.replace("uri: s3://weights/llama-3.1-8b/\n      files:\n"
                    f'        - {{path: config.json, sha256: "{FILE_DIGEST}", size: 855}}\n'
                    f'        - {{path: model.safetensors, sha256: "{FILE_DIGEST}", '
                    "size: 16060522496}\n", "uri: s3://weights/llama.safetensors\n"),
        ["models.yaml:7: model 'assistant': artifact.uri: 's3://weights/llama.safetensors' "
         "names one object; an LLM's weights are a Hugging Face model folder: end `uri` with "
         "'/'"]),
    "vllm with the model server's port": (
        LLM.replace("gpu: 2}", "gpu: 2}\n      port: 9000"),
        ["models.yaml:17: model 'assistant': serving.port: sets our model server's port; with "
         "engine vllm the engine's port is `runtime.port`"]),
    "custom runtime without port, protocol and health": (
        TRITON.replace("      port: 8000\n      protocol: oip\n"
                       "      health: {live: /v2/health/live, ready: /v2/health/ready}\n", ""),
        [f"models.yaml:8: model 'ranker': runtime.{key}: is required with engine custom: {what}"
         for key, what in (("health", "its live and ready paths"),
                           ("port", "the port the image serves HTTP on"),
                           ("protocol", "oip or openai"))]),
    "custom runtime with a bad protocol and health path": (
        TRITON.replace("protocol: oip", "protocol: grpc").replace("ready: /v2/health/ready",
                                                                   "ready: v2/ready"),
        ["models.yaml:11: model 'ranker': runtime.protocol: must be 'oip' or 'openai', got "
         "'grpc'",
         "models.yaml:12: model 'ranker': runtime.health.ready: 'v2/ready' is not an absolute "
         "HTTP path (e.g. /v2/health/ready)"]),
    "engine settings on our model server": (
        TRITON.replace("engine: custom", "engine: modelserver").replace(
            "      protocol: oip\n      health: {live: /v2/health/live, ready: /v2/health/ready}\n"
            "      metricsPath: /metrics\n", ""),
        ["models.yaml:10: model 'ranker': runtime.port: is for the vllm and custom engines; "
         "our model server takes `serving.port` and `serving.env`"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_runtime_input_fails_with_a_located_message(case: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    text, expected = CASES[case]
    code, lines = validate(tmp_path, text, capsys)
    assert code == 1
    assert lines == expected


@pytest.mark.parametrize("text", [LLM, TRITON])
def test_good_runtimes_validate(text: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(tmp_path, text, capsys)
    assert (code, lines) == (0, [])


def test_the_diff_names_an_added_removed_or_bumped_adapter(tmp_path: Path) -> None:
    added = LLM + (
        "        - name: summarize\n          version: 0.1.0\n          artifact:\n"
        "            uri: s3://weights/adapters/summarize/\n"
        f'            files: [{{path: adapter_config.json, sha256: "{FILE_DIGEST}", '
        "size: 700}]\n")
    bumped = added.replace("name: sql\n          version: 1.0.0", "name: sql\n"
                                                                 "          version: 1.1.0")
    diff = diff_models([resolved(tmp_path, LLM)], [resolved(tmp_path, added)])
    (model,) = diff.models
    assert [change.path for change in model.changes] == ["serving.adapters.summarize"]
    assert model.changes[0].old is None
    diff = diff_models([resolved(tmp_path, added)], [resolved(tmp_path, bumped)])
    assert [(c.path, c.old, c.new) for c in diff.models[0].changes] == [
        ("serving.adapters.sql.version", "1.0.0", "1.1.0")]
    diff = diff_models([resolved(tmp_path, added)], [resolved(tmp_path, LLM)])
    assert [(c.path, c.new) for c in diff.models[0].changes] == [
        ("serving.adapters.summarize", None)]
