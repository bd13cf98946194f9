"""Rules that span fields of a merged model: bounds, exclusive keys, paths that must exist.

They read the merged data defensively, so that they still report on a model
whose other fields have the wrong type: every problem in one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, Literal, Protocol

from modelfleet.manifest.schema import (
    DEFAULT_SURGE,
    DEFAULT_UNAVAILABLE,
    GPU_SURGE,
    GPU_UNAVAILABLE,
    MODEL_NAME_MAX,
    SATURATION_ENGINES,
    SATURATION_METRICS,
)
from modelfleet.manifest.yamldoc import Path

PathKind = Literal["file", "dir", "empty"]
"""What a relative path is: a file, a folder with files, or a folder with no file at any
depth (`empty`: nothing to upload; git cannot even hold one)."""
Finding = tuple[Path, str]


class PathChecker(Protocol):
    """Tells what a path relative to the manifest's folder is, where the manifest lives."""

    def kind(self, relative: str) -> PathKind | None: ...


class LocalPaths(PathChecker, Protocol):
    """Paths that can also be had on disk, for uploads and image builds."""

    def local(self, relative: str) -> FsPath: ...


@dataclass(frozen=True)
class DirectoryPaths:
    """Paths in a folder on disk (the working tree)."""

    root: FsPath

    def local(self, relative: str) -> FsPath:
        return self.root / relative

    def kind(self, relative: str) -> PathKind | None:
        path = self.root / relative
        if path.is_dir():
            return "dir" if any(item.is_file() for item in path.rglob("*")) else "empty"
        if path.is_file():
            return "file"
        return None


def model_rules(model: dict[str, Any], paths: PathChecker | None) -> list[Finding]:
    """Every cross-field problem of one merged model."""
    found: list[Finding] = []
    if model.get("serving") is None and model.get("batch") is None:
        found.append(((), "has neither `serving` nor `batch`; give one or both"))
    found += _bounds(model, ("serving", "replicas"), "min", "max")
    found += _bounds(model, ("batch",), "minWorkers", "maxWorkers")
    found += _runs(model)
    for section in ("serving", "batch"):
        found += _rollout(model, section)
        found += _tolerations(model, section)
    found += _scaling(model)
    found += _candidates(model)
    found += _exclusive(model, ("artifact",), "uri", "path")
    found += _version_pin(model)
    found += _pinned_files(model, ("artifact",))
    found += _exclusive(model, ("image",), "build", "ref")
    found += _runtime(model)
    found += _adapters(model)
    if paths is not None:
        found += _local_paths(model, paths)
    found += _candidate_artifacts(model, paths)
    return found


def _candidate_artifacts(model: dict[str, Any], paths: PathChecker | None) -> list[Finding]:
    """Each candidate's artifact is a `uri` or a `path`, as the model's is."""
    found: list[Finding] = []
    candidates = _at(model, ("serving", "candidates"))
    for index, item in enumerate(candidates if isinstance(candidates, list) else []):
        if not isinstance(item, dict):
            continue
        at: Path = ("serving", "candidates", index)
        found += [(at + path, message)
                  for path, message in _exclusive(item, ("artifact",), "uri", "path")]
        found += [(at + path, message) for path, message in _pinned_files(item, ("artifact",))]
        artifact = _at(item, ("artifact", "path"))
        problem = _artifact_path(artifact, paths) if paths is not None else None
        if problem:
            found.append((at + ("artifact", "path"), problem))
    return found


def _artifact_path(artifact: Any, paths: PathChecker) -> str | None:
    """Why an `artifact.path` cannot be uploaded: it does not exist, or it is a folder
    with no file in it (the model would deploy with nothing to load)."""
    if not isinstance(artifact, str) or not artifact:
        return None
    kind = paths.kind(artifact)
    if kind is None:
        return f"'{artifact}' does not exist (relative to the manifest's folder)"
    if kind == "empty":
        return (f"'{artifact}' is an empty folder: there is no file to upload (train the "
                "model into it, or point `artifact.path` at the folder that has it)")
    return None


def dockerfile_of(context: str, dockerfile: str | None) -> str:
    """The Dockerfile a build uses, relative to the manifest's folder."""
    return dockerfile or f"{context.rstrip('/')}/Dockerfile"


def _at(data: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _bounds(model: dict[str, Any], path: Path, low: str, high: str) -> list[Finding]:
    section = _at(model, path)
    if not isinstance(section, dict):
        return []
    lower, upper = section.get(low), section.get(high)
    if isinstance(lower, int) and isinstance(upper, int) and lower > upper:
        return [(path, f"{low} ({lower}) is greater than {high} ({upper})")]
    return []


JOB_NAME_MAX = 63


def _runs(model: dict[str, Any]) -> list[Finding]:
    """Run ids are unique, `<model>-<id>` fits a Job name, parallelism fits partitions."""
    runs = _at(model, ("batch", "runs"))
    if not isinstance(runs, list):
        return []
    found: list[Finding] = []
    seen: set[str] = set()
    name = model.get("name") if isinstance(model.get("name"), str) else ""
    for index, run in enumerate(runs):
        if not isinstance(run, dict):
            continue
        path: Path = ("batch", "runs", index)
        run_id = run.get("id")
        if isinstance(run_id, str):
            if run_id in seen:
                found.append((path + ("id",), f"'{run_id}' is used by another run of this model"))
            seen.add(run_id)
            if len(f"{name}-{run_id}") > JOB_NAME_MAX:
                found.append((path + ("id",), f"the Job name '{name}-{run_id}' is longer than "
                                              f"{JOB_NAME_MAX} characters; shorten the id"))
        partitions, parallelism = run.get("partitions"), run.get("parallelism")
        if isinstance(partitions, int) and isinstance(parallelism, int) \
                and parallelism > partitions:
            found.append((path + ("parallelism",),
                          f"{parallelism} is more than the {partitions} partitions"))
    return found


def _zero(value: Any) -> bool:
    return bool(value in {0, "0%"})


def _rollout(model: dict[str, Any], section: str) -> list[Finding]:
    """maxSurge and maxUnavailable both 0 would let no pod be added or removed: Kubernetes
    refuses such a Deployment, so refuse it here, where the line can be named."""
    rollout = _at(model, (section, "rollout"))
    if not isinstance(rollout, dict):
        return []
    gpu = _at(model, (section, "resources", "gpu"))
    gpus = str(gpu) not in ("0", "None") if gpu is not None else False
    surge = rollout.get("maxSurge", GPU_SURGE if gpus else DEFAULT_SURGE)
    unavailable = rollout.get("maxUnavailable", GPU_UNAVAILABLE if gpus else DEFAULT_UNAVAILABLE)
    if _zero(surge) and _zero(unavailable):
        return [((section, "rollout"),
                 "maxSurge and maxUnavailable are both 0, so a rollout could neither add a pod "
                 "nor remove one; allow one of them (for GPU models: maxUnavailable: 1)")]
    return []


def _tolerations(model: dict[str, Any], section: str) -> list[Finding]:
    tolerations = _at(model, (section, "tolerations"))
    if not isinstance(tolerations, list):
        return []
    return [((section, "tolerations", index, "key"),
             "is required: a toleration without a key tolerates every taint, the control "
             "plane's included; name the taint's key (e.g. nvidia.com/gpu)")
            for index, item in enumerate(tolerations)
            if isinstance(item, dict) and not item.get("key")]


def _scaling(model: dict[str, Any]) -> list[Finding]:
    serving = _at(model, ("serving",))
    if not isinstance(serving, dict):
        return []
    found: list[Finding] = []
    metric, target = serving.get("scaleMetric", "cpu"), serving.get("scaleTarget")
    units = {"concurrency": ("requests in flight", 4), "rps": ("requests per second", 4),
             "queue": ("requests waiting in the engine's queue", 5),
             "kv-cache": ("percent of its KV cache", 80)}
    if metric in units and target is None:
        unit, example = units[metric]
        found.append((("serving", "scaleTarget"),
                      f"is required with scaleMetric {metric}: the {unit} one pod should "
                      f"take (e.g. {example})"))
    if metric == "cpu" and isinstance(target, int) and target > 100:
        found.append((("serving", "scaleTarget"),
                      f"{target} is a CPU utilization above 100 percent of the request"))
    if metric == "kv-cache" and isinstance(target, int) and target > 100:
        found.append((("serving", "scaleTarget"),
                      f"{target} is a KV-cache use above 100 percent"))
    runtime = _at(model, ("runtime",))
    engine = runtime.get("engine", "modelserver") if isinstance(runtime, dict) else "modelserver"
    if metric in SATURATION_METRICS and engine not in SATURATION_ENGINES:
        found.append((("serving", "scaleMetric"),
                      f"{metric} is read from an LLM engine's own metrics (vllm: "
                      "vllm:num_requests_waiting, vllm:kv_cache_usage_perc), which engine "
                      f"{engine} does not export; use cpu"
                      + ("" if engine != "modelserver" else ", concurrency or rps")))
    port, grpc = serving.get("port", 8080), serving.get("grpcPort", 8081)
    if isinstance(port, int) and port == grpc:
        found.append((("serving", "grpcPort"),
                      f"{grpc} is also the HTTP port; give the gRPC endpoint its own port"))
    return found


WORKLOAD_NAME_MAX = MODEL_NAME_MAX
"""`<model>-<candidate>` names a Deployment, a ServiceAccount `<...>-server` and an IAM role:
the same bound as a model's name."""


MAX_WEIGHTED_CANDIDATES = 14
"""Gateway API v1.6.1 (`config/crd/standard/gateway.networking.k8s.io_httproutes.yaml`): an
HTTPRoute has at most 16 rules; the model's route has one for the model's path, one for the
stable version's path and one for each weighted candidate's (components/traffic.py)."""
MAX_MIRRORS = 16
"""The same CRD: a rule has at most 16 filters, one RequestMirror per shadow."""


def _candidates(model: dict[str, Any]) -> list[Finding]:
    """Weights below 100 in all, one of weight or mirror each, own versions, unique names."""
    candidates = _at(model, ("serving", "candidates"))
    if not isinstance(candidates, list) or not candidates:
        return []
    found: list[Finding] = []
    name = model.get("name") if isinstance(model.get("name"), str) else ""
    seen: set[str] = set()
    versions: set[str] = set()
    total = 0
    for index, item in enumerate(candidates):
        if not isinstance(item, dict):
            continue
        path: Path = ("serving", "candidates", index)
        given = [key for key in ("weight", "mirror") if item.get(key) is not None]
        if len(given) != 1:
            found.append((path, "give exactly one of `weight` (percent of live traffic) and "
                                "`mirror` (percent copied, answers discarded)"
                          + (f"; it has {' and '.join(given)}" if given else "")))
        if isinstance(item.get("weight"), int):
            total += item["weight"]
        candidate = item.get("name")
        if isinstance(candidate, str):
            if candidate in seen:
                found.append((path + ("name",), f"'{candidate}' is used by another candidate "
                                                "of this model"))
            seen.add(candidate)
            if len(f"{name}-{candidate}") > WORKLOAD_NAME_MAX:
                found.append((path + ("name",), f"'{name}-{candidate}' would name its "
                              f"Deployment, but is longer than {WORKLOAD_NAME_MAX} characters "
                              "(derived names must fit Kubernetes' and AWS's limits); shorten it"))
        version = item.get("version")
        if version is not None and version == model.get("version"):
            found.append((path + ("version",), f"{version} is the model's own version; "
                                               "a candidate is another version"))
        elif isinstance(version, str) and version in versions:
            found.append((path + ("version",), f"{version} is another candidate's version too; "
                          "a version names one artifact, so one candidate deploys it"))
        if isinstance(version, str):
            versions.add(version)
    weighted = sum(1 for item in candidates if isinstance(item, dict)
                   and isinstance(item.get("weight"), int))
    mirrored = sum(1 for item in candidates if isinstance(item, dict)
                   and isinstance(item.get("mirror"), int))
    if weighted > MAX_WEIGHTED_CANDIDATES:
        found.append((("serving", "candidates"), f"{weighted} candidates have a weight; at most "
                      f"{MAX_WEIGHTED_CANDIDATES}: the model's HTTPRoute holds a rule for its "
                      "path and one for each served version's path, and Gateway API allows 16"))
    if mirrored > MAX_MIRRORS:
        found.append((("serving", "candidates"), f"{mirrored} candidates mirror traffic; at most "
                      f"{MAX_MIRRORS}: each is a RequestMirror filter of the model's HTTPRoute "
                      "rule, and Gateway API allows 16"))
    if total >= 100:
        found.append((("serving", "candidates"), f"the weights add up to {total} percent, "
                      "leaving the stable version none; keep them below 100 (to switch over "
                      "entirely, `python -m modelfleet promote`)"))
    if _at(model, ("serving", "rollout", "strategy")) == "progressive":
        found.append((("serving", "candidates"), "a progressive rollout shifts traffic itself; "
                      "give either candidates or `rollout.strategy: progressive`, not both"))
    return found


def _exclusive(model: dict[str, Any], path: Path, first: str, second: str) -> list[Finding]:
    section = _at(model, path)
    if not isinstance(section, dict):
        return []
    given = [key for key in (first, second) if section.get(key) is not None]
    if not given:
        return [(path, f"give `{first}` or `{second}`")]
    if len(given) == 2:
        return [(path + (second,), f"give either `{first}` or `{second}`, not both")]
    return []


def _version_pin(model: dict[str, Any]) -> list[Finding]:
    """`artifact.versionId` pins one S3 object: it needs a `uri` that names one, not a prefix."""
    artifact = _at(model, ("artifact",))
    if not isinstance(artifact, dict) or artifact.get("versionId") is None:
        return []
    where: Path = ("artifact", "versionId")
    uri = artifact.get("uri")
    if artifact.get("path") is not None:
        return [(where, "pins an S3 object version, so it needs `uri`; an uploaded `path` "
                        "is versioned by the model's version")]
    if isinstance(uri, str) and uri.endswith("/"):
        return [(where, f"pins one object, but '{uri}' is a prefix; name the object in `uri`")]
    return []


def _pinned_files(model: dict[str, Any], where: Path) -> list[Finding]:
    """`artifact.files` pins every object of an S3 prefix: it needs a `uri` ending in `/`,
    replaces the single-object pins (`sha256`, `versionId`), and names each key once."""
    artifact = _at(model, where)
    if not isinstance(artifact, dict) or not artifact.get("files"):
        return []
    found: list[Finding] = []
    at = where + ("files",)
    uri = artifact.get("uri")
    if artifact.get("path") is not None:
        found.append((at, "pins the objects of an S3 prefix, so it needs `uri`; an uploaded "
                          "`path` is versioned by the model's version"))
    elif isinstance(uri, str) and not uri.endswith("/"):
        found.append((at, f"lists the objects of a prefix, but '{uri}' names one object; "
                          "end `uri` with '/'"))
    for single in ("sha256", "versionId"):
        if artifact.get(single) is not None:
            found.append((where + (single,), f"give either `{single}` or `files`, not both: "
                                             "each file carries its own"))
    files = artifact["files"]
    if isinstance(files, list):
        seen: set[str] = set()
        for index, item in enumerate(files):
            key = item.get("path") if isinstance(item, dict) else None
            if isinstance(key, str):
                if key in seen:
                    found.append((at + (index, "path"), f"'{key}' is listed twice"))
                seen.add(key)
    return found


OWNED_ENGINE_FLAGS = {
    "vllm": ("--model", "--port", "--host", "--served-model-name", "--tensor-parallel-size",
             "-tp", "--enable-lora", "--lora-modules", "--max-loras", "--load-format"),
}
"""Flags each engine's runtime sets from the manifest (components/runtimes/<engine>.py), so
`runtime.args` may not set them again: vLLM's argument parser would take the last one."""
GPU_ENGINES = ("vllm",)


def _owned_flag(arg: str, owned: tuple[str, ...]) -> str | None:
    """The owned flag `arg` sets (`--port 9000`, `--port=9000`, `-tp 2`), if any."""
    flag = arg.split("=", 1)[0]
    return flag if flag in owned else None


def _request_metrics(serving: dict[str, Any], runtime: dict[str, Any],
                     engine: str) -> list[Finding]:
    """Progressive rollouts and request-load scaling read the engine's request metrics: a
    custom image must name the family it exports (`runtime.metrics`), vLLM's are not wired."""
    family = runtime.get("metrics", "none") if engine == "custom" else "none"
    found: list[Finding] = []
    rollout = serving.get("rollout")
    if isinstance(rollout, dict) and rollout.get("strategy") == "progressive":
        if engine == "custom" and runtime.get("protocol") == "openai":
            found.append((("serving", "rollout", "strategy"),
                          "progressive rollouts route the Open Inference Protocol's paths; "
                          "a custom runtime needs `protocol: oip` for them"))
        elif family == "none":
            found.append((("serving", "rollout", "strategy"),
                          f"progressive rollouts {_metrics_hint(engine)}; use candidates "
                          "with a weight, or rolling"))
    if serving.get("scaleMetric") in ("concurrency", "rps") and family == "none":
        found.append((("serving", "scaleMetric"),
                      f"{serving['scaleMetric']} scaling {_metrics_hint(engine)}; use cpu"))
    return found


def _metrics_hint(engine: str) -> str:
    """Why the engine's request metrics cannot be read, and what to do about it."""
    if engine == "custom":
        return ("read the image's request metrics: set `runtime.metrics` to the family it "
                "exports (triton, mlserver) and `runtime.metricsPath`")
    return (f"with engine {engine} are not supported yet: its request metrics are not wired "
            "to the analyses")


def _runtime(model: dict[str, Any]) -> list[Finding]:
    """What each engine takes and refuses (issue 19, item 7)."""
    runtime = _at(model, ("runtime",))
    runtime = runtime if isinstance(runtime, dict) else {}
    engine = runtime.get("engine", "modelserver")
    if engine not in ("modelserver", "vllm", "custom"):
        return []  # the schema names the engines
    found: list[Finding] = []
    serving = _at(model, ("serving",))
    serving = serving if isinstance(serving, dict) else {}
    custom_only = ("protocol", "health", "metricsPath", "metricsPort", "metrics")
    if engine == "modelserver":
        for key in ("args", "port", *custom_only):
            if runtime.get(key) is not None:
                found.append((("runtime", key), "is for the vllm and custom engines; our model "
                              "server takes `serving.port` and `serving.env`"))
        return found
    if engine == "vllm":
        found += [(("runtime", key), "is for the custom engine only") for key in custom_only
                  if runtime.get(key) is not None]
    else:
        found += [(("runtime", key), f"is required with engine custom: {what}")
                  for key, what in (("port", "the port the image serves HTTP on"),
                                    ("protocol", "oip or openai"),
                                    ("health", "its live and ready paths"))
                  if runtime.get(key) is None]
        for key in ("metricsPort", "metrics"):
            if runtime.get(key) not in (None, "none") and runtime.get("metricsPath") is None:
                found.append((("runtime", key), "needs `metricsPath`: the path "
                              "Prometheus scrapes (e.g. /metrics)"))
    found += _engine_args(runtime, engine)
    for key in ("port", "grpcPort"):
        if key in serving:
            found.append((("serving", key), f"sets our model server's port; with engine "
                          f"{engine} the engine's port is `runtime.port`"))
    if model.get("batch") is not None:
        found.append((("batch",), f"batch workers with engine {engine} are not supported yet: "
                      "they speak our model server's queue protocol; serve the model online"))
    found += _request_metrics(serving, runtime, engine)
    if engine in GPU_ENGINES and "serving" in model:
        gpu = _at(model, ("serving", "resources", "gpu"))
        if gpu is None or str(gpu) == "0":
            found.append((("serving", "resources", "gpu"),
                          f"engine {engine} runs on GPUs; give resources.gpu (1 or more: "
                          "the tensor-parallel size)"))
    if engine == "vllm":
        found += _llm_weights(model, ("artifact",))
        candidates = _at(model, ("serving", "candidates"))
        for index, item in enumerate(candidates if isinstance(candidates, list) else []):
            if isinstance(item, dict):
                found += _llm_weights(item, ("serving", "candidates", index, "artifact"),
                                      inner=("artifact",))
    return found


def _engine_args(runtime: dict[str, Any], engine: str) -> list[Finding]:
    args = runtime.get("args")
    owned = OWNED_ENGINE_FLAGS.get(engine, ())
    found: list[Finding] = []
    for index, arg in enumerate(args if isinstance(args, list) else []):
        flag = _owned_flag(arg, owned) if isinstance(arg, str) else None
        if flag:
            found.append((("runtime", "args", index),
                          f"'{flag}' is set by modelfleet from the manifest (the model's name, "
                          "its port, resources.gpu, its weights and adapters); remove it"))
    return found


def _llm_weights(item: dict[str, Any], where: Path, inner: Path = ("artifact",)) -> list[Finding]:
    """An LLM's weights are a Hugging Face folder in S3: a `uri` prefix ending in `/`."""
    artifact = _at(item, inner)
    if not isinstance(artifact, dict):
        return []
    uri = artifact.get("uri")
    if artifact.get("path") is not None:
        return [(where + ("path",), "an LLM's weights are read from S3: give `uri`, the prefix "
                                    "of a Hugging Face model folder ending in '/'")]
    if isinstance(uri, str) and not uri.endswith("/") and not artifact.get("files"):
        return [(where + ("uri",), f"'{uri}' names one object; an LLM's weights are a Hugging "
                                   "Face model folder: end `uri` with '/'")]
    return []


def _adapters(model: dict[str, Any]) -> list[Finding]:
    """LoRA adapters: vLLM only, unique names other than the model's, pinned file by file."""
    adapters = _at(model, ("serving", "adapters"))
    if not isinstance(adapters, list) or not adapters:
        return []
    engine = _at(model, ("runtime", "engine")) or "modelserver"
    if engine not in ("modelserver", "vllm", "custom"):
        return []  # the schema names the engines
    if engine != "vllm":
        return [(("serving", "adapters"), f"LoRA adapters are served by engine vllm; this "
                                          f"model's engine is {engine}")]
    found: list[Finding] = []
    seen: set[str] = set()
    for index, item in enumerate(adapters):
        if not isinstance(item, dict):
            continue
        at: Path = ("serving", "adapters", index)
        name = item.get("name")
        if isinstance(name, str):
            if name in seen:
                found.append((at + ("name",), f"'{name}' is used by another adapter of this "
                                              "model"))
            elif name == model.get("name"):
                found.append((at + ("name",), f"'{name}' is the base model's served name; "
                                              "give the adapter its own"))
            seen.add(name)
        artifact = item.get("artifact")
        if isinstance(artifact, dict):
            if artifact.get("uri") is None:
                found.append((at + ("artifact", "uri"), "is required: the S3 prefix of the "
                              "adapter's files, ending in '/'"))
            if not artifact.get("files"):
                found.append((at + ("artifact", "files"), "is required: every file of the "
                              "adapter with its sha256 and size (`python -m modelfleet "
                              "artifact lock`), so it is verified before the engine starts"))
        found += [(at + path, message) for path, message in _pinned_files(item, ("artifact",))]
    return found


def _local_paths(model: dict[str, Any], paths: PathChecker) -> list[Finding]:
    found: list[Finding] = []
    problem = _artifact_path(_at(model, ("artifact", "path")), paths)
    if problem:
        found.append((("artifact", "path"), problem))
    context = _at(model, ("image", "build", "context"))
    given = _at(model, ("image", "build", "dockerfile"))
    if isinstance(context, str) and context:
        dockerfile = given if isinstance(given, str) and given else dockerfile_of(context, None)
        where = ("image", "build", "dockerfile" if given else "context")
        if paths.kind(context) not in ("dir", "empty"):
            found.append((("image", "build", "context"),
                          f"'{context}' is not a folder (relative to the manifest's folder)"))
        elif paths.kind(dockerfile) != "file":
            found.append((where, f"'{dockerfile}' does not exist"))
    return found
