"""Rules that span fields of a merged model: bounds, exclusive keys, paths that must exist.

They read the merged data defensively, so that they still report on a model
whose other fields have the wrong type: every problem in one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, Literal, Protocol

from modelfleet.yamldoc import Path

PathKind = Literal["file", "dir"]
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
            return "dir"
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
    found += _exclusive(model, ("artifact",), "uri", "path")
    found += _version_pin(model)
    found += _exclusive(model, ("image",), "build", "ref")
    if paths is not None:
        found += _local_paths(model, paths)
    return found


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


def _local_paths(model: dict[str, Any], paths: PathChecker) -> list[Finding]:
    found: list[Finding] = []
    artifact = _at(model, ("artifact", "path"))
    if isinstance(artifact, str) and artifact and paths.kind(artifact) is None:
        found.append((("artifact", "path"),
                      f"'{artifact}' does not exist (relative to the manifest's folder)"))
    context = _at(model, ("image", "build", "context"))
    given = _at(model, ("image", "build", "dockerfile"))
    if isinstance(context, str) and context:
        dockerfile = given if isinstance(given, str) and given else dockerfile_of(context, None)
        where = ("image", "build", "dockerfile" if given else "context")
        if paths.kind(context) != "dir":
            found.append((("image", "build", "context"),
                          f"'{context}' is not a folder (relative to the manifest's folder)"))
        elif paths.kind(dockerfile) != "file":
            found.append((where, f"'{dockerfile}' does not exist"))
    return found
