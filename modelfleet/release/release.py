"""Everything one stack deploys, worked out before any resource is declared.

The manifest is read at the stack's ref, validated and resolved for its
environment, filtered and gated; local artifacts are hashed, pins verified,
and files of a pinned ref written out so that uploads and builds use that
ref's content, not the working tree's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from modelfleet.git.provenance import VersionHistory, VersionOrigin
from modelfleet.git.source import ManifestText, UnknownRefError
from modelfleet.manifest.load import load_resolution
from modelfleet.manifest.problems import ManifestError, Problem, SourceError
from modelfleet.manifest.resolve import Resolution, ResolvedModel
from modelfleet.manifest.rules import dockerfile_of
from modelfleet.manifest.schema import ModelSpec
from modelfleet.manifest.yamldoc import Path as Path_
from modelfleet.stacks.settings import NAMESPACE, StackSettings

_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    key: str
    """Path of the file below the artifact's folder (its name, for a single file)."""
    path: str
    sha256: str


@dataclass(frozen=True)
class ModelRelease:
    """One model as this stack deploys it, with what the components need to know of files."""

    spec: ModelSpec
    origin: VersionOrigin
    """The commit that set the model's current version (or `uncommitted`), and the
    manifest's digest at that commit."""
    artifact_files: tuple[LocalFile, ...] = ()
    single_file_artifact: bool = False
    build_context: str | None = None
    dockerfile: str | None = None
    build_digest: str | None = None
    """Digest of the build context's files and build args: what the image is built from."""
    candidate: str | None = None
    """For a candidate's own release: its name (its spec carries its version and artifact)."""
    candidates: tuple[ModelRelease, ...] = ()
    """The releases of the model's candidates, each deployed beside the stable version."""


@dataclass(frozen=True)
class Release:
    settings: StackSettings
    source: ManifestText
    resolution: Resolution
    models: tuple[ModelRelease, ...]


def load_release(settings: StackSettings, project_root: Path,
                 history: VersionHistory | None = None) -> Release:
    """Read, validate, resolve and prepare the stack's manifest; raise on any problem."""
    file = project_root / settings.manifest
    try:
        source, resolution = load_resolution(file, settings.manifest_ref, settings.environment,
                                             display=settings.manifest)
    except UnknownRefError as error:
        raise SourceError(unknown_pin(settings, project_root, error)) from error
    resolution = resolution.select(settings.team, settings.require_approved)
    origins = (history or VersionHistory()).version_origins(
        source, file, settings.environment, {m.name: m.version for m in resolution.models})
    problems = [problem for item in resolution.resolved
                for problem in stack_problems(item, resolution, settings)]
    problems += shared_served_names(resolution)
    models = tuple(_prepare(item, source, resolution, origins[item.spec.name], problems)
                   for item in resolution.resolved)
    if problems:
        raise ManifestError(problems)
    return Release(settings, source, resolution, models)


def unknown_pin(settings: StackSettings, project_root: Path, error: UnknownRefError) -> str:
    """Where the stack pins an unknown ref; the error says the two ways out."""
    key = f"{NAMESPACE}:manifestRef"
    where = settings.config_file or "the stack's configuration"
    config = project_root / settings.config_file if settings.config_file else None
    if config is not None and config.is_file():
        lines = config.read_text(encoding="utf-8").splitlines()
        line = next((n for n, text in enumerate(lines, 1) if text.strip().startswith(key)), None)
        where += f":{line}" if line else ""
    return f"{where}: {key}: {error}"


def stack_problems(item: ResolvedModel, resolution: Resolution,
                   settings: StackSettings) -> list[Problem]:
    """What a model asks of the stack that the stack does not give."""
    serving = item.spec.serving
    if serving is None:
        return []
    found = []

    def needs(path: Path_, present: object, what: str, key: str, example: str) -> None:
        if not present:
            found.append(resolution.problem(
                item, path, f"{what}, but the stack has no {NAMESPACE}:{key}; set it "
                f"(`pulumi config set {NAMESPACE}:{key} {example}`)"))

    spec = item.spec
    if spec.runtime.engine == "vllm":
        if spec.artifact.files or serving.adapters:
            needs(("runtime", "engine"), settings.fetch_image,
                  "pinned files are fetched and verified by an init container",
                  "fetchImage", "<registry>/modelfleet-fetch@sha256:<digest>")
        if settings.require_approved and not spec.artifact.files:
            found.append(resolution.problem(
                item, ("artifact",), "an LLM's weights must be pinned file by file in this "
                "stack (it requires approved models): list every file with its sha256 and "
                "size in `files` (`python -m modelfleet artifact lock`)"))

    if spec.speaks_openai and settings.gateway:
        needs(("runtime", "engine"), settings.endpoint_picker_image,
              "an LLM behind the Gateway is routed by an endpoint picker (Gateway API "
              "Inference Extension)", "endpointPickerImage",
              "ghcr.io/llm-d/llm-d-router-endpoint-picker@sha256:<digest>")
    if serving.scale_metric != "cpu":
        metric = ("serving", "scaleMetric")
        needs(metric, settings.prometheus_address,
              f"'{serving.scale_metric}' is read from Prometheus", "prometheusAddress",
              PROMETHEUS_EXAMPLE)
        if not settings.keda:
            found.append(resolution.problem(
                item, metric, f"'{serving.scale_metric}' scales through KEDA, which this stack "
                f"does not have ({NAMESPACE}:keda is false); scale on cpu"))
    if serving.candidates:
        needs(("serving", "candidates"), settings.gateway,
              "candidates share traffic through a Gateway API HTTPRoute", "gateway",
              "gateway-system/models")
    if serving.rollout.strategy == "progressive":
        strategy = ("serving", "rollout", "strategy")
        needs(strategy, settings.flagger, "a progressive rollout is run by Flagger",
              "flagger", "true")
        needs(strategy, settings.gateway, "Flagger shifts traffic through a Gateway API route",
              "gateway", "gateway-system/models")
        needs(strategy, settings.prometheus_address,
              "Flagger's analysis reads the model server's metrics from Prometheus",
              "prometheusAddress", PROMETHEUS_EXAMPLE)
    return found


def shared_served_names(resolution: Resolution) -> list[Problem]:
    """An LLM's names in the OpenAI API (its own, its adapters') that an LLM before it on the
    stack already serves: the Gateway routes by that name (`X-Gateway-Model-Name`), so a
    shared one would send a client to either model."""
    owners: dict[str, str] = {}
    found = []
    for item in resolution.resolved:
        spec = item.spec
        if spec.serving is None or not spec.speaks_openai:
            continue
        paths: list[Path_] = [("name",)] + [("serving", "adapters", index, "name")
                                            for index in range(len(spec.serving.adapters))]
        for name, path in zip(spec.served_names, paths, strict=True):
            owner = owners.setdefault(name, spec.name)
            if owner != spec.name:
                found.append(resolution.problem(
                    item, path, f"'{name}' is already served by the LLM '{owner}' on this "
                    "stack; clients name the model they want in the OpenAI API's `model` "
                    "and the Gateway routes by it, so each name may belong to one LLM"))
    return found


PROMETHEUS_EXAMPLE = "http://prometheus-operated.monitoring.svc:9090"


def _prepare(item: ResolvedModel, source: ManifestText, resolution: Resolution,
             origin: VersionOrigin, problems: list[Problem]) -> ModelRelease:
    """The model's release, and one for each of its candidates."""
    release = _release_of(item.spec, (), item, source, resolution, origin, problems)
    serving = item.spec.serving
    if serving is None or not serving.candidates:
        return release
    return replace(release, candidates=tuple(
        replace(_release_of(item.spec.candidate_spec(candidate),
                            ("serving", "candidates", index), item, source, resolution, origin,
                            problems, None if candidate.image else release),
                candidate=candidate.name)
        for index, candidate in enumerate(serving.candidates)))


def _release_of(spec: ModelSpec, at: Path_, item: ResolvedModel, source: ManifestText,
                resolution: Resolution, origin: VersionOrigin, problems: list[Problem],
                same_image: ModelRelease | None = None) -> ModelRelease:
    """Local files hashed and pins checked; `at` is where `spec`'s artifact is written.

    `same_image`: a release built from the same image settings (a candidate's default), whose
    build context is already hashed.
    """
    files: tuple[LocalFile, ...] = ()
    single = False
    if spec.artifact.path:
        root = source.paths.local(spec.artifact.path)
        single = root.is_file()
        files = tuple(local_files(root))
        if spec.artifact.sha256 and not single:
            problems.append(resolution.problem(
                item, (*at, "artifact", "sha256"),
                f"pins one file, but '{spec.artifact.path}' is a folder; remove the pin "
                "(each uploaded file's sha256 is recorded in the metadata)"))
        elif spec.artifact.sha256 and files[0].sha256 != spec.artifact.sha256:
            problems.append(resolution.problem(
                item, (*at, "artifact", "sha256"),
                f"'{spec.artifact.path}' has sha256 {files[0].sha256}, not the pinned "
                f"{spec.artifact.sha256}"))
    build = spec.image.build
    if build is None:
        return ModelRelease(spec, origin, files, single)
    if same_image is not None:
        return ModelRelease(spec, origin, files, single, same_image.build_context,
                            same_image.dockerfile, same_image.build_digest)
    context = source.paths.local(build.context)
    dockerfile = source.paths.local(dockerfile_of(build.context, build.dockerfile))
    digest = context_digest(context, {**build.args, "dockerfile": file_sha256(dockerfile)})
    return ModelRelease(spec, origin, files, single, str(context), str(dockerfile), digest)


def local_files(root: Path) -> list[LocalFile]:
    """A file, or every file below a folder in a stable order, with its sha256."""
    if root.is_file():
        return [LocalFile(root.name, str(root), file_sha256(root))]
    return [LocalFile(path.relative_to(root).as_posix(), str(path), file_sha256(path))
            for path in sorted(root.rglob("*")) if path.is_file()]


def context_digest(context: Path, args: Mapping[str, str]) -> str:
    """sha256 over every file Docker would send (minus `.dockerignore`) and the build args."""
    ignored = dockerignore(context)
    digest = hashlib.sha256(json.dumps(dict(sorted(args.items()))).encode())
    for path in sorted(context.rglob("*")):
        relative = path.relative_to(context).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(relative, p) for p in ignored):
            digest.update(relative.encode() + b"\0" + file_sha256(path).encode())
    return "sha256:" + digest.hexdigest()


def dockerignore(context: Path) -> list[str]:
    """Patterns of `.dockerignore` (plain globs; `!` exceptions are not honoured)."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")):
            patterns += [line.strip("/"), line.strip("/") + "/*"]
    return patterns


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

