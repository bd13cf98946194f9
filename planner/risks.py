"""Risk flags of a change, each with a level (`info`, `warning`, `danger`), a model and a kind.

Computed from the two simulations (base and head) and what the program
exported of each model (`manifest.deployed`, `manifest.builds`):

| kind | level | when |
| --- | --- | --- |
| `replacement` | danger | a Deployment, Service, queue, repository, bucket or role is replaced |
| `deletion` | danger (a handed-over autoscaler: warning) | a resource not retained is deleted |
| `gpu-surge` | warning | GPU pods surge, or run beside Flagger's primary: spare GPUs needed |
| `serving-stops` | warning (danger in prod) | a rollout (or Flagger's promotion) stops every pod |
| `artifact-mutated` | danger | a version (stable or candidate) names another artifact than before |
| `image-mutated` | danger | a version's image changes and carries the model itself |
| `runtime-change` | warning | a version's image changes, its artifact stays: the pods roll |
| `strategy-switch` | danger | a model moves to Flagger or back: Services and route change hands |
| `image-tag-exists` | danger | an image is built again for a version built before (promotion) |
| `iam-widened` | warning | an IAM policy allows an action or resource it did not (or denies less) |
| `network-widened` | warning | a NetworkPolicy admits a namespace (or a port of it) it did not |
| `analysis-needs-traffic` | warning | Flagger analyses a new version with no load test declared |
| `production` | info | a production stack (`modelfleet:requireApproved`) changes |
| `single-replica` | warning | in production, a changed model runs with a minimum of one replica |
| `gpu-memory` | danger | an LLM's weights do not fit its GPUs with room for the KV cache |
| `cold-start` | warning | an LLM's files take longer to download than its `startupSeconds` |

The two LLM checks and their rules: `planner.llm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelfleet.diff.report import plural
from modelfleet.release.images import image_carries_model, image_tag, slot_spec
from modelfleet.release.updates import REBUILT_TAG, artifact_changes, slot_version
from planner.describe import artifact_files, image_candidate, scaling, short_type
from planner.llm import cold_start_problem, gpu_memory_problem, llm_of, stack_numbers
from planner.network import NETWORK_POLICY, widened
from planner.plan import Plan
from planner.render import plain
from planner.review import ModelView, document_changes, production
from planner.rollout import DEPLOYMENT, Rollout, canary_targeting, rollout_of, scalers_of
from planner.summary import DOCKER_IMAGE, rollout_lines

LEVELS = ("info", "warning", "danger")
GUARDED = {
    "kubernetes:apps/v1:Deployment": "all its pods are deleted, then recreated",
    "kubernetes:core/v1:Service": "its cluster IP changes: clients lose their connections",
    "aws:sqs/queue:Queue": "a new, empty queue: messages waiting in the old one stay there",
    "aws:ecr/repository:Repository": "a new, empty repository: the images are pushed again",
    "aws:s3/bucket:Bucket": "a new, empty bucket: objects stay in the old one",
    "aws:iam/role:Role": "a new role and ARN: pods keep the old credentials until they restart",
}
"""Types whose replacement is never routine, and what it does."""


@dataclass(frozen=True)
class Risk:
    """One risk flag of a change."""

    level: str
    model: str | None
    """The model at risk; None for the stack as a whole."""
    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    """For `iam-widened`: the resource, the grants added, the documents before and after."""

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "model": self.model, "kind": self.kind,
                "message": self.message, **self.details}


def at_least(level: str, risks: list[Risk]) -> list[Risk]:
    """The risks of `level` or above (`warning` also counts `danger`)."""
    floor = LEVELS.index(level)
    return [risk for risk in risks if LEVELS.index(risk.level) >= floor]


def assess(plan: Plan, views: list[ModelView]) -> list[Risk]:
    """Every risk of the change, most severe first."""
    live = production(plan)
    gpu_memory, download_rate = stack_numbers(plan.stack.values)
    risks: list[Risk] = []
    for view in views:
        model = None if view.stack_wide else view.name
        if model and view.changes:
            risks += _llm(view, model, gpu_memory, download_rate)
        risks += _replacements_and_deletes(view, model)
        risks += _rollouts(view, model, live)
        risks += _mutations(view, model)
        risks += _strategy_switch(view, model)
        risks += _rebuilt_tags(view, model)
        risks += _widened(view, model)
        risks += _network_widened(view, model)
        if live and model and view.changes and view.new is not None:
            risks += _single_replica(view, model)
    touched = [v.name for v in views if v.changes and not v.stack_wide]
    if live and any(v.changes for v in views):
        risks.append(Risk("info", None, "production", (
            f"production stack {plan.stack.name} (modelfleet:requireApproved): "
            + (f"{plural(len(touched), 'model')} change ({', '.join(touched)})"
               if touched else "stack-wide resources change")
            + "; only approved models deploy, and the deployment waits for approval")))
    return sorted(risks, key=lambda r: (-LEVELS.index(r.level), r.model or "", r.kind))


def _llm(view: ModelView, model: str, gpu_memory: int, download_rate: int) -> list[Risk]:
    llm = llm_of(view.new)
    if llm is None:
        return []
    found = []
    if problem := gpu_memory_problem(llm, gpu_memory):
        found.append(Risk("danger", model, "gpu-memory", problem))
    if problem := cold_start_problem(llm, download_rate):
        found.append(Risk("warning", model, "cold-start", problem))
    return found


def _replacements_and_deletes(view: ModelView, model: str | None) -> list[Risk]:
    risks = [Risk("danger", model, "replacement", (
        f"replaces {short_type(c.type)} {c.name} (forced by {', '.join(c.replaced_by)}): "
        f"{GUARDED[c.type]}")) for c in view.changes if c.op == "replace" and c.type in GUARDED]
    handed_over = _autoscaler_handovers(view)
    deleted = [f"{short_type(c.type)} {c.name}" for c in view.changes
               if c.op == "delete" and not c.retained and (c.type, c.name) not in handed_over]
    if deleted:
        risks.append(Risk("danger", model, "deletion", (
            f"deletes {plural(len(deleted), 'resource')} the cloud does not keep (not retained "
            f"on delete): {', '.join(deleted)}")))
    for (type_, name), successor in sorted(handed_over.items()):
        risks.append(Risk("warning", model, "deletion", (
            f"deletes {short_type(type_)} {name}: {successor}, created in this update, takes "
            "over scaling the same Deployment (a change of scaling metric)")))
    return risks


def _autoscaler_handovers(view: ModelView) -> dict[tuple[str, str], str]:
    """Deleted autoscalers whose Deployment an autoscaler created in this update now scales:
    `(type, name)` to `ScaledObject x` (or `HorizontalPodAutoscaler x`)."""
    created = {(c.type, c.name) for c in view.changes if c.op == "create"}
    successors = {scaled[0]: f"{short_type(r.type)} {r.name}" for r in view.head
                  if r.key in created and (scaled := scaling(r))}
    handovers = {}
    for change in view.changes:
        old = view.before(change.type, change.name) if change.op == "delete" else None
        scaled = scaling(old) if old is not None else None
        if scaled and scaled[0] in successors:
            handovers[(change.type, change.name)] = successors[scaled[0]]
    return handovers


def _rollouts(view: ModelView, model: str | None, live: bool) -> list[Risk]:
    risks = []
    for change in view.changes:
        if change.type != DEPLOYMENT or change.op != "update" \
                or not any(p.path.startswith("spec.template.") for p in change.paths):
            continue
        head = view.after(change.type, change.name)
        if head is None:
            continue
        rollout = rollout_of(head, scalers_of(view.head))
        canary = canary_targeting(view.head, rollout.deployment)
        if canary is not None:
            risks += _progressive_rollout(rollout, canary, model, live)
            continue
        low, high = rollout.running_range
        at_low, at_high = rollout.spare_gpus()
        if rollout.gpus_per_pod and at_high:
            spare = plural(at_low, "spare GPU") + f" at {plural(low, 'replica')}"
            if at_high != at_low:
                spare += f", up to {at_high} at {high}"
            risks.append(Risk("warning", model, "gpu-surge", (
                f"{rollout.component} pods (Deployment {rollout.deployment}) hold "
                f"{plural(rollout.gpus_per_pod, 'GPU')} each and roll with maxSurge "
                f"{rollout.max_surge}: the rollout needs {spare}; without them the new pods "
                "stay Pending and the rollout stalls")))
        if rollout.stops_serving():
            risks.append(Risk("danger" if live else "warning", model, "serving-stops", (
                f"{rollout.component} pods (Deployment {rollout.deployment}) stop serving "
                f"during the rollout: {rollout.strategy()} with a minimum of "
                f"{plural(rollout.min_replicas, 'replica')} stops every pod before its "
                "replacement is ready")))
    return risks


def _progressive_rollout(rollout: Rollout, canary: dict[str, Any], model: str | None,
                         live: bool) -> list[Risk]:
    """A Deployment that Flagger targets: its new pods run beside the primary's during the
    analysis (Flagger scales it from zero to one, its autoscaler to the minimum), then the
    primary rolls with the same strategy while it still takes the traffic of the last step
    (Flagger's promotion: copy the template, wait for the primary, then route all to it)."""
    risks = _analysis_traffic(canary, model)
    primary = f"{rollout.deployment}-primary"
    if rollout.gpus_per_pod:
        low, high = rollout.running_range
        beside = rollout.gpus_per_pod * low
        at_low, at_high = rollout.spare_gpus()
        promotion = ""
        if at_high:
            promotion = (f"; at promotion Deployment {primary} surges with maxSurge "
                         f"{rollout.max_surge}: {plural(at_low, 'more GPU')} at "
                         f"{plural(low, 'replica')}"
                         + (f", up to {at_high} at {high}" if at_high != at_low else ""))
        risks.append(Risk("warning", model, "gpu-surge", (
            f"{rollout.component} pods hold {plural(rollout.gpus_per_pod, 'GPU')} each and "
            f"Flagger runs the new version's pods (Deployment {rollout.deployment}, "
            f"{plural(low, 'replica')} at its autoscaler's minimum, more under load) beside the "
            f"primary's during the analysis: it needs {plural(beside, 'spare GPU')}, without "
            f"which they stay Pending and Flagger rolls back after "
            f"{canary.get('progressDeadlineSeconds')} s{promotion}")))
    if rollout.stops_serving():
        steps = (canary.get("analysis") or {}).get("stepWeights") or [0]
        kept = 100 - int(steps[-1])
        risks.append(Risk("danger" if live else "warning", model, "serving-stops", (
            f"when Flagger promotes the new version, the primary (Deployment {primary}) rolls "
            f"with {rollout.strategy()} at a minimum of {plural(rollout.min_replicas, 'replica')}"
            f": its pods stop before their replacements are ready while it still answers "
            f"{kept}% of traffic")))
    return risks


def _analysis_traffic(canary: dict[str, Any], model: str | None) -> list[Risk]:
    """A Canary without a `rollout` webhook (`serving.rollout.loadTest`) is analysed on live
    traffic only; with none, every check finds no values, which Flagger counts as a failure
    (Flagger 1.44 docs, "Metrics": "no values found"), and it rolls the new version back."""
    analysis = canary.get("analysis") or {}
    if any(hook.get("type") == "rollout" for hook in analysis.get("webhooks") or []):
        return []
    return [Risk("warning", model, "analysis-needs-traffic", (
        f"Flagger analyses the new version on live traffic only (no serving.rollout.loadTest): "
        f"if requests stop during the analysis, each {analysis.get('interval')} check finds no "
        f"values, counts as failed, and after {analysis.get('threshold')} failed checks the new "
        "version is rolled back; declare a load test so the analysis cannot starve"))]


def _rebuilt_tags(view: ModelView, model: str | None) -> list[Risk]:
    """An image built for a version this stack built before in another slot: its tag
    exists in the immutable repository (a promotion, or a version back as a candidate)."""
    if model is None or view.new is None:
        return []
    risks = []
    for change in view.changes:
        if change.type != DOCKER_IMAGE or change.op == "delete":
            continue
        candidate = image_candidate(model, change.name)
        version = slot_version(view.new, candidate)
        if version is None or slot_version(view.old, candidate) == version:
            continue
        built = view.old_versions.get(version, {}).get("build")
        if not built or built != view.new_versions.get(version, {}).get("build"):
            continue  # never built, or built from other settings: another tag
        which = f"candidate '{candidate}'" if candidate else "the stable version"
        risks.append(Risk("danger", model, "image-tag-exists", (
            f"{which}: {REBUILT_TAG.format(version=version, tag=image_tag(version, built))}")))
    return risks


def _strategy_switch(view: ModelView, model: str | None) -> list[Risk]:
    """Pods, Services and the route of a model change hands between Pulumi and Flagger.

    Flagger makes `<model>-primary` and its own Services and route only once it has
    initialized the Canary; the ones it made are owned by the Canary and deleted with it.
    pulumi-kubernetes (4.29 and later) creates objects client-side, so a create of an
    object that still exists stops on AlreadyExists, and a failed update runs no deletes.
    """
    before, after = _strategy(view.old), _strategy(view.new)
    if model is None or before is None or after is None or before == after:
        return []
    head = view.after(DEPLOYMENT, model)
    rollout = rollout_of(head, scalers_of(view.head)) if head is not None else None
    gpus = ""
    if rollout is not None and rollout.gpus_per_pod:
        low, _ = rollout.running_range
        gpus = (f"; the primary runs beside Deployment {model}'s pods while they hand over, so "
                f"it needs {plural(rollout.gpus_per_pod * low, 'spare GPU')}")
    if after == "progressive":
        return [Risk("danger", model, "strategy-switch", (
            f"{model} moves to Flagger: this update deletes Service {model} and HTTPRoute "
            f"{model}, and Flagger makes its own only once {model}-primary is ready, so "
            f"requests fail for at least the model's startup time{gpus}"))]
    return [Risk("danger", model, "strategy-switch", (
        f"{model} leaves Flagger: this update creates Service {model} and HTTPRoute {model} "
        "before it deletes the Canary, and they still exist (Flagger's), so it stops on "
        "AlreadyExists and deletes nothing. Remove the Canary first (`pulumi destroy "
        f"--target` its URN; Flagger scales Deployment {model} back up and deletes "
        f"{model}-primary, its Services and route), then run this update; requests fail "
        f"in between{gpus}"))]


def _strategy(model: dict[str, Any] | None) -> str | None:
    """`rolling` or `progressive` for an online model as written; None for a batch-only one."""
    if model is None or not isinstance(model.get("serving"), dict):
        return None
    rollout = model["serving"].get("rollout") or {}
    return str(rollout.get("strategy") or "rolling")


def _mutations(view: ModelView, model: str | None) -> list[Risk]:
    """A version names one artifact forever, and its image too where the image carries the
    model; another runtime image under the same version is a runtime change."""
    if model is None or view.old is None or view.new is None:
        return []
    risks, images = _version_reuses(view, model)
    if not view.version_changed:
        version = view.new_version
        fields = view.fields("artifact.")
        old, new = artifact_files(view.name, view.base), artifact_files(view.name, view.head)
        altered = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if fields or altered:
            what = [f"{f.path} {_short(f.old)} → {_short(f.new)}" for f in fields]
            what += [f"uploaded file {key}" for key in altered]
            risks.append(Risk("danger", model, "artifact-mutated", (
                f"the artifact changes ({'; '.join(what)}) but the version stays {version}: a "
                "version must name one artifact forever; bump the version")))
        refs = view.fields("image.")
        if view.old_build and view.new_build and view.old_build != view.new_build:
            images.insert(0, (None, str(version),
                              "its build context or build arguments change"))
        elif refs:
            images.insert(0, (None, str(version), "; ".join(
                f"{f.path} {_short(f.old)} → {_short(f.new)}" for f in refs)))
    return risks + _image_changes(view, model, images)


ImageChange = tuple[str | None, str, str]
"""A slot whose image changes under an unchanged version: (candidate or None, version, how)."""


def _image_changes(view: ModelView, model: str, images: list[ImageChange]) -> list[Risk]:
    """`image-mutated` for each image that carries its model, one `runtime-change` for the
    rest: the model's pods roll onto a new runtime and serve the same artifacts."""
    risks, runtimes = [], []
    for candidate, version, how in images:
        which = f"candidate '{candidate}' version {version}" if candidate \
            else f"version {version}"
        carried = image_carries_model(slot_spec(view.new, candidate))
        if carried:
            risks.append(Risk("danger", model, "image-mutated", (
                f"the image of {which} changes ({how}) and carries the model ({carried}): "
                f"{which} would name other content; bump the version")))
        else:
            runtimes.append(f"{which} ({how})")
    if runtimes:
        rolls = rollout_lines(view)
        risks.append(Risk("warning", model, "runtime-change", (
            "a runtime change, not a model change: "
            + (f"the image of {runtimes[0]} changes" if len(runtimes) == 1
               else f"the images of {' and of '.join(runtimes)} change")
            + " while the version and its artifact stay; "
            + ("; ".join(rolls) if rolls else "no pods restart")
            + ". Check the new runtime as you would a new version")))
    return risks


def _version_reuses(view: ModelView, model: str) -> tuple[list[Risk], list[ImageChange]]:
    """A version deployed before (as the stable version or a candidate) that now names another
    artifact: a candidate kept under its version, or a version that moves between the
    stable slot and a candidate. The stable version kept in place is `_mutations`' own.
    With them, each such version whose image is now built from other settings."""
    risks, images = [], []
    for version, identity in sorted(view.new_versions.items()):
        old = view.old_versions.get(version)
        if old is None or (version == view.new_version and not view.version_changed):
            continue
        changes = artifact_changes(old, identity)
        if changes:
            risks.append(Risk("danger", model, "artifact-mutated", (
                f"{_deployed_as(view.new, version)} version {version} was deployed before with "
                f"another artifact ({'; '.join(changes)}): a version must name one artifact "
                "forever; bump the version")))
        if old.get("build") and identity.get("build") and old["build"] != identity["build"]:
            images.append((_candidate_of(view.new, version), version,
                           "built before from another build context or build arguments"))
    return risks, images


def _candidate_of(model: dict[str, Any] | None, version: str) -> str | None:
    """The candidate that deploys `version` in a model as written; None for the stable slot."""
    serving = (model or {}).get("serving") or {}
    for candidate in serving.get("candidates") or ():
        if str(candidate.get("version")) == version:
            return str(candidate.get("name"))
    return None


def _deployed_as(model: dict[str, Any] | None, version: str) -> str:
    """`candidate 'challenger'` or `the stable`: what deploys `version` in a model as written."""
    serving = (model or {}).get("serving") or {}
    for candidate in serving.get("candidates") or ():
        if str(candidate.get("version")) == version:
            return f"candidate '{candidate.get('name')}'"
    return "the stable"


def _widened(view: ModelView, model: str | None) -> list[Risk]:
    risks = []
    for changed in document_changes(view):
        diff, change = changed.diff, changed.change
        if not diff.widens:
            continue
        granted = [g.describe() for g in diff.added]
        granted += [f"no longer denied: {g.describe()}" for g in diff.lifted]
        instead = f" (and drops {plural(len(diff.removed), 'grant')} it had)" \
            if diff.removed else ""
        risks.append(Risk("warning", model, "iam-widened", (
            f"{short_type(change.type)} {change.name} ({changed.input}) grants more than "
            "before: " + "; ".join(granted) + instead), {
                "resource": {"type": change.type, "name": change.name, "input": changed.input},
                "granted": granted, "before": changed.before, "after": changed.after}))
    return risks


def _network_widened(view: ModelView, model: str | None) -> list[Risk]:
    """An updated NetworkPolicy that lets a namespace in where it could not connect before."""
    risks = []
    for change in view.changes:
        if change.type != NETWORK_POLICY or change.op not in ("update", "replace"):
            continue
        before, after = view.before(change.type, change.name), view.after(change.type, change.name)
        if before is None or after is None:
            continue
        added = widened(plain(before.inputs), plain(after.inputs))
        if added:
            risks.append(Risk("warning", model, "network-widened", (
                f"NetworkPolicy {change.name} admits more than before: {'; '.join(added)}"),
                {"resource": {"type": change.type, "name": change.name}, "admitted": added}))
    return risks


def _single_replica(view: ModelView, model: str) -> list[Risk]:
    risks = []
    scalers = scalers_of(view.head)
    for registration in view.head:
        if registration.type != DEPLOYMENT:
            continue
        rollout = rollout_of(registration, scalers)
        # Online pods only: a queue's workers leave messages waiting, not requests failing.
        if rollout.min_replicas == 1 and rollout.component != "worker":
            risks.append(Risk("warning", model, "single-replica", (
                f"{rollout.component} pods (Deployment {rollout.deployment}) run with a minimum "
                "of 1 replica in production: one node drain or crash and it stops serving")))
    return risks


def _short(value: Any) -> str:
    text = "(unset)" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "…"
