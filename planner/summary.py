"""What a change does to each model, in words: the first thing a reviewer reads.

One entry per model the change touches: it rolls from version A to B (whose
pods restart, how many at a time), its image is rebuilt or unchanged, its
artifact, scaling, traffic, runs or permissions change, it is added, or it is
removed (and what the cloud keeps). Provenance labels, annotations and tags that
follow a version bump are not news of their own: they are in the resource list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelfleet.diff.report import plural, show
from planner.changes import ResourceChange
from planner.describe import (
    artifact_files,
    image_candidate,
    is_route,
    scalings,
    short_type,
    traffic,
)
from planner.gateway import POOL, pool_lines
from planner.llm import llm_of
from planner.recorder import Registration
from planner.render import plain
from planner.review import ModelView, document_changes
from planner.rollout import DEPLOYMENT, canary_targeting, rollout_of, scalers_of

DOCKER_IMAGE = "docker:index/image:Image"
JOB = "kubernetes:batch/v1:Job"
BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
EXPLAINED_FIELDS = ("version", "artifact.", "image.", "serving.replicas.",
                    "serving.targetCPUUtilization", "batch.minWorkers", "batch.maxWorkers",
                    "batch.messagesPerWorker", "batch.runs", "serving.candidates",
                    "serving.adapters")
"""Manifest fields the summary tells in its own words; the others are listed as they are."""
MAX_LISTED = 4


@dataclass(frozen=True)
class ModelSummary:
    """One model's change in words: a headline and a line per thing that happens to it."""

    model: str
    """A model's name, or `(stack-wide)`."""
    change: str
    """added, removed or changed."""
    old_version: str | None
    new_version: str | None
    headline: str
    lines: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"model": self.model, "change": self.change,
                "version": {"old": self.old_version, "new": self.new_version},
                "headline": self.headline, "lines": list(self.lines)}


def summarize(views: list[ModelView]) -> list[ModelSummary]:
    """One summary per model with resource changes; a model whose resources stay is not news."""
    found = []
    for view in views:
        if view.stack_wide:
            summary = _stack_wide(view)
        elif not view.changes:
            continue
        elif view.old is None and view.new is not None:
            summary = _added(view)
        elif view.new is None:
            summary = _removed(view)
        else:
            summary = _changed(view)
        if summary is not None:
            found.append(summary)
    return found


def _added(view: ModelView) -> ModelSummary:
    lines = [f"creates {plural(sum(c.op == 'create' for c in view.changes), 'resource')}"]
    scalers = scalers_of(view.head)
    for registration in view.head:
        if registration.type == DEPLOYMENT:
            rollout = rollout_of(registration, scalers)
            gpus = f", {plural(rollout.gpus_per_pod, 'GPU')} per pod" \
                if rollout.gpus_per_pod else ""
            lines.append(f"{rollout.component} pods start (Deployment {rollout.deployment}, "
                         f"{rollout.bounds()}{gpus})")
    if llm := llm_of(view.new):
        lines.append(llm.summary())
    lines += pool_lines(view)
    if any(r.type == DOCKER_IMAGE for r in view.head):
        lines.append("image built from its build context")
    elif view.new and (view.new.get("image") or {}).get("ref"):
        lines.append(f"prebuilt image {view.new['image']['ref']}")
    return ModelSummary(view.name, "added", None, view.new_version,
                        f"added at {view.new_version}", tuple(lines))


def _removed(view: ModelView) -> ModelSummary:
    deleted = [c for c in view.changes if c.op == "delete"]
    gone = [_named(c) for c in deleted if not c.retained]
    kept = [_named(c) for c in deleted if c.retained]
    lines = []
    if gone:
        lines.append("deletes " + ", ".join(gone))
    if kept:
        lines.append("retains (the cloud keeps them): " + ", ".join(kept))
    return ModelSummary(view.name, "removed", view.old_version, None,
                        f"removed (was {view.old_version})", tuple(lines))


def _changed(view: ModelView) -> ModelSummary:
    rolls = rollout_lines(view)
    lines = [*rolls, *_image(view, bool(rolls)), *_artifact(view), *_scaling(view),
             *_candidates(view), *_traffic(view), *_runs(view), *_permissions(view),
             *pool_lines(view), *_replaced(view), *_adapters(view),
             *_other_fields(view)]
    if lines and (llm := llm_of(view.new)):
        lines.append(llm.summary())
    if not lines:
        lines = [_resources_line(view.changes)]
    if view.version_changed:
        headline = f"rolls from {view.old_version} to {view.new_version}" if rolls \
            else f"version {view.old_version} → {view.new_version}"
    else:
        headline = f"changes at version {view.new_version} (the version stays)"
    return ModelSummary(view.name, "changed", view.old_version, view.new_version, headline,
                        tuple(lines))


def _adapters(view: ModelView) -> list[str]:
    """LoRA adapters added, removed or bumped, by name."""
    def versions(model: dict[str, Any] | None) -> dict[str, str]:
        adapters = ((model or {}).get("serving") or {}).get("adapters") or []
        return {str(a.get("name")): str(a.get("version")) for a in adapters}
    old, new = versions(view.old), versions(view.new)
    lines = [f"adapter {name} {version} added" for name, version in new.items()
             if name not in old]
    lines += [f"adapter {name} {old[name]} → {version}" for name, version in new.items()
              if name in old and old[name] != version]
    lines += [f"adapter {name} {version} removed" for name, version in old.items()
              if name not in new]
    return lines


def _stack_wide(view: ModelView) -> ModelSummary | None:
    # The registry's index lists every model's version and image: it follows the models.
    news = [c for c in view.changes if not (c.type == BUCKET_OBJECT and c.op == "update")]
    if not news:
        return None
    headline = "the stack's own resources are created" if all(
        c.op == "create" for c in news) else "the stack's own resources change"
    return ModelSummary(view.name, "changed", None, None, headline, (_resources_line(news),))


def rollout_lines(view: ModelView) -> list[str]:
    """Whose pods start, restart (and how many at a time) or stop, one line per Deployment."""
    lines = []
    scalers = scalers_of(view.head)
    for change in view.changes:
        if change.type != DEPLOYMENT:
            continue
        head = view.after(DEPLOYMENT, change.name)
        if change.op == "create" and head is not None:
            rollout = rollout_of(head, scalers)
            lines.append(f"new Deployment {rollout.deployment}: {rollout.component} pods "
                         f"start ({rollout.bounds()})")
        elif change.op == "delete":
            lines.append(f"Deployment {change.name} is deleted: its pods stop")
        elif change.op == "replace":
            lines.append(f"Deployment {change.name} is replaced (forced by "
                         f"{', '.join(change.replaced_by)}): all its pods are deleted, then "
                         "recreated")
        elif head is not None and any(p.path.startswith("spec.template.")
                                      for p in change.paths):
            canary = canary_of(view, head)
            if canary is not None:
                lines.append(canary)
                continue
            rollout = rollout_of(head, scalers)
            idle = "; none while scaled to zero" if rollout.min_replicas == 0 else ""
            lines.append(f"{rollout.component} pods restart (Deployment {rollout.deployment}): "
                         f"{rollout.pace()} ({rollout.strategy()}; {rollout.bounds()}{idle})")
    return lines


def canary_of(view: ModelView, deployment: Registration) -> str | None:
    """How Flagger rolls a Deployment it targets out: steps, pace, and when it rolls back."""
    name = (plain(deployment.inputs).get("metadata") or {}).get("name", deployment.name)
    spec = canary_targeting(view.head, name)
    if spec is None:
        return None
    analysis = spec.get("analysis") or {}
    checks = ", ".join(_threshold(metric) for metric in analysis.get("metrics") or [])
    steps = ", ".join(f"{w}%" for w in analysis.get("stepWeights") or [])
    return (f"the new version is analysed by Flagger before it takes all traffic "
            f"(Canary {name}): {steps} of traffic, a step every {analysis.get('interval')}, "
            f"rolled back after {analysis.get('threshold')} failed checks ({checks})")


def _threshold(metric: dict[str, Any]) -> str:
    bounds = metric.get("thresholdRange") or {}
    if "min" in bounds:
        return f"{metric.get('name')} ≥ {bounds['min']}"
    return f"{metric.get('name')} ≤ {bounds.get('max')}"


def _image(view: ModelView, rolls: bool) -> list[str]:
    lines = []
    for change in view.changes:
        if change.type != DOCKER_IMAGE:
            continue
        candidate = image_candidate(view.name, change.name)
        if candidate and change.op == "create":
            lines.append(f"image of candidate {candidate} built from the model's build context")
        elif candidate and change.op == "delete":
            lines.append(f"image of candidate {candidate} no longer built")
        elif change.op == "create":
            lines.append("image now built from its build context")
        elif change.op == "delete":
            lines.append("image no longer built here")
        elif view.old_build and view.new_build and view.old_build != view.new_build:
            lines.append("image rebuilt: its build context or build arguments changed")
        elif view.version_changed:
            lines.append(f"image rebuilt for {view.new_version} from an unchanged build "
                         "context")
        else:
            lines.append("image rebuilt: " + ", ".join(p.path for p in change.paths[:MAX_LISTED]))
    lines += [f"prebuilt image changed: {show(f.old)} → {show(f.new)}"
              for f in view.fields("image.ref")]
    if not lines and rolls:
        lines.append("image unchanged")
    return lines


def _artifact(view: ModelView) -> list[str]:
    fields = view.fields("artifact.")
    lines = []
    if fields:
        lines.append("artifact changed: " + "; ".join(
            f"{f.path.removeprefix('artifact.')} {show(f.old)} → {show(f.new)}" for f in fields))
    old, new = artifact_files(view.name, view.base), artifact_files(view.name, view.head)
    altered = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    added, dropped = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    if (altered or added or dropped) and not fields:
        parts = ([f"new content of {', '.join(altered)}"] if altered else []) \
            + ([f"added {', '.join(added)}"] if added else []) \
            + ([f"dropped {', '.join(dropped)}"] if dropped else [])
        lines.append("uploaded artifact changed: " + "; ".join(parts))
    if not lines and view.version_changed:
        again = " (its files are uploaded again under the new version's prefix)" if new else ""
        lines.append(f"artifact unchanged{again}")
    return lines


def _scaling(view: ModelView) -> list[str]:
    before, after = scalings(view.base), scalings(view.head)
    return [f"scaling of {target}: {before.get(target, 'none')} → {after.get(target, 'none')}"
            for target in sorted(before.keys() | after.keys())
            if before.get(target) != after.get(target) and target in after]


def _traffic(view: ModelView) -> list[str]:
    before = {r.name: traffic(r) for r in view.base if is_route(r)}
    after = {r.name: traffic(r) for r in view.head if is_route(r)}
    return [f"traffic of HTTPRoute {name}: {before.get(name, 'none')} → "
            f"{after.get(name, 'none (route removed)')}"
            for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)]


def _candidates(view: ModelView) -> list[str]:
    """Candidates added, removed, or given another version (their traffic is `_traffic`'s)."""
    lines = []
    for field in view.fields("serving.candidates."):
        name = field.path.removeprefix("serving.candidates.")
        if "." in name:
            name, _, leaf = name.partition(".")
            if leaf in ("version", "artifact.uri", "artifact.sha256", "artifact.path",
                        "artifact.versionId"):
                lines.append(f"candidate {name}: {leaf} {show(field.old)} → {show(field.new)}")
        elif field.old is None and isinstance(field.new, dict):
            share = (f"{field.new['weight']}% of live traffic" if field.new.get("weight")
                     else f"a copy of {field.new.get('mirror')}% of live traffic (shadow)")
            lines.append(f"candidate {name} {field.new.get('version')} added beside the stable "
                         f"version: {share}")
        elif field.new is None and isinstance(field.old, dict):
            lines.append(f"candidate {name} {field.old.get('version')} removed: its "
                         "Deployment stops; its image and artifact stay in the registry")
    return lines


def _runs(view: ModelView) -> list[str]:
    lines = []
    for change in view.changes:
        if change.type != JOB:
            continue
        if change.op == "create":
            job = next(r for r in view.head if r.type == JOB and r.name == change.name)
            spec = plain(job.inputs).get("spec") or {}
            lines.append(f"starts run {change.name}: {spec.get('completions')} partitions, "
                         f"{spec.get('parallelism')} at a time")
        elif change.op == "delete":
            lines.append(f"run {change.name} leaves the manifest; its Job "
                         + ("is retained and finishes" if change.retained else "is deleted"))
    return lines


def _permissions(view: ModelView) -> list[str]:
    lines = []
    for changed in document_changes(view):
        name, diff = changed.change.name, changed.diff
        if diff.added:
            lines.append(f"{name} now allows " + _listed([g.describe() for g in diff.added]))
        if diff.removed:
            lines.append(f"{name} no longer allows "
                         + _listed([g.describe() for g in diff.removed]))
    return lines


def _replaced(view: ModelView) -> list[str]:
    """Replacements not told above. A version's metadata object moves to the new version's
    key on every bump (the old one is retained): that is routine, not news."""
    others = [_named(c) for c in view.changes if c.op == "replace"
              and c.type not in (DEPLOYMENT, BUCKET_OBJECT, POOL)]
    return [f"also replaces {_listed(others)}"] if others else []


def _other_fields(view: ModelView) -> list[str]:
    if view.diff is None:
        return []
    rest = [f for f in view.diff.changes
            if not any(f.path == p or f.path.startswith(p) for p in EXPLAINED_FIELDS)]
    if not rest:
        return []
    return ["also changes " + "; ".join(f"{f.path} {show(f.old)} → {show(f.new)}"
                                        for f in rest)]


def _resources_line(changes: list[ResourceChange]) -> str:
    """`creates 2 (Key registry-key, Bucket registry-bucket); updates 1 (...)`."""
    parts = []
    for op, verb in (("create", "creates"), ("update", "updates"), ("replace", "replaces"),
                     ("delete", "deletes")):
        named = [_named(c) for c in changes if c.op == op]
        if named:
            parts.append(f"{verb} {len(named)} ({_listed(named)})")
    return "; ".join(parts)


def _named(change: ResourceChange) -> str:
    return f"{short_type(change.type)} {change.name}"


def _listed(items: list[str]) -> str:
    if len(items) <= MAX_LISTED:
        return ", ".join(items)
    return ", ".join(items[:MAX_LISTED]) + f" and {len(items) - MAX_LISTED} more"
