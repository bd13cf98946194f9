"""What an update changes, model by model, against what the stack deployed last.

The program exports the models it deployed (`manifest.deployed`); the next
update reads them back from the stack's own outputs and reports the semantic
diff as log lines, which `pulumi preview` and `pulumi up` print.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from modelfleet.diff.compare import as_written, diff_models
from modelfleet.diff.report import render_text
from modelfleet.manifest.schema import ModelSpec
from modelfleet.release.images import image_carries_model, image_tag, slot_spec
from modelfleet.release.release import ModelRelease, Release

PREFIX = "modelfleet: "


def deployed_record(release: Release) -> dict[str, Any]:
    """What the next update needs to know of this one: exported under `manifest`."""
    source = release.source
    return {
        "file": release.settings.manifest,
        "ref": source.ref,
        "commit": source.commit.sha if source.commit else None,
        "digest": source.digest,
        "environment": release.settings.environment,
        "models": [model.spec.name for model in release.models],
        "deployed": {model.spec.name: as_written(model.spec) for model in release.models},
        "builds": {model.spec.name: model.build_digest for model in release.models
                   if model.build_digest},
        "artifacts": {model.spec.name: artifact_identity(model) for model in release.models},
        "versions": version_identities(release),
    }


def version_history(previous: Mapping[str, Any] | None, release: Release,
                    ) -> dict[str, dict[str, dict[str, Any]]]:
    """Every version any deployment of the stack recorded, per model, with this release's
    own on top: exported as `versionHistory`, so that a version that was removed and comes
    back later is still held to the artifact it named. (A version whose artifact changed
    anyway, where that is only warned about, records the artifact it names now, as its
    `metadata.json` in the registry does.)"""
    merged = previous_versions(previous)
    _merge_versions(merged, version_identities(release))
    return {name: {version: _compact(identity) for version, identity in versions.items()}
            for name, versions in merged.items()}


def _compact(identity: dict[str, Any]) -> dict[str, Any]:
    """An identity as the history keeps it: an uploaded path's files as one digest, so the
    history grows by a few strings per version, whatever the number of files."""
    if "files" not in identity:
        return identity
    rest = {key: value for key, value in identity.items() if key != "files"}
    return {**rest, "filesDigest": files_digest(identity["files"])}


def files_digest(files: Mapping[str, Any]) -> str:
    """sha256 over an uploaded artifact's files: each key and its sha256, in key order."""
    lines = "".join(f"{key}\0{files[key]}\n" for key in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def _merge_versions(into: dict[str, dict[str, dict[str, Any]]],
                    newer: Mapping[str, Mapping[str, dict[str, Any]]]) -> None:
    """Newer identities replace older ones, except that a version built once keeps its
    build digest when it is later deployed from a prebuilt image: its tag exists, and a
    rebuild would still be refused."""
    for name, versions in newer.items():
        known = into.setdefault(name, {})
        for version, identity in versions.items():
            built = known.get(version, {}).get("build")
            known[version] = {**identity, **({"build": built} if built and "build" not in
                                              identity else {})}


def previous_versions(previous: Mapping[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """What the last deployment's outputs say each version named: its history, then its
    record (`manifest`) on top."""
    history = (previous or {}).get("versionHistory")
    merged = recorded_versions({"versions": history}) if isinstance(history, Mapping) else {}
    record = (previous or {}).get("manifest")
    if isinstance(record, Mapping):
        _merge_versions(merged, recorded_versions(record))
    return merged


def version_identities(release: Release) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model, the artifact identity of each version the release deploys: the stable
    version's and every candidate's (a candidate's version is as permanent as any other)."""
    return {model.spec.name: {each.spec.version: version_identity(each)
                              for each in (model, *model.candidates)}
            for model in release.models}


def version_identity(release: ModelRelease) -> dict[str, Any]:
    """A version's artifact identity, and the digest of what its image is built from (its
    tag is the version, and tags are immutable) when it is built here."""
    identity = artifact_identity(release)
    if release.build_digest:
        identity["build"] = release.build_digest
    return identity


def recorded_versions(record: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """What a deployment record says each model version's artifact was, as
    `version_identities` gives it; records from before candidates were recorded give the
    stable versions (from their artifact identities, or else from what the manifest said)."""
    versions = record.get("versions")
    if isinstance(versions, Mapping):
        return {name: {str(version): dict(identity) for version, identity in by_version.items()
                       if isinstance(identity, Mapping)}
                for name, by_version in versions.items() if isinstance(by_version, Mapping)}
    deployed = record.get("deployed")
    identities = record.get("artifacts")
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name, before in (deployed.items() if isinstance(deployed, Mapping) else ()):
        if not isinstance(before, Mapping) or before.get("version") is None:
            continue
        versions = found.setdefault(name, {})
        serving = before.get("serving")
        candidates = serving.get("candidates") if isinstance(serving, Mapping) else None
        for candidate in candidates if isinstance(candidates, list) else ():
            written = _written_identity(candidate.get("artifact")) \
                if isinstance(candidate, Mapping) else None
            if written is not None and candidate.get("version") is not None:
                versions[str(candidate["version"])] = written
        if isinstance(identities, Mapping) and isinstance(identities.get(name), Mapping):
            versions[str(before["version"])] = dict(identities[name])
        elif (written := _written_identity(before.get("artifact"))) is not None:
            versions[str(before["version"])] = written  # a record from before identities
    return {name: versions for name, versions in found.items() if versions}


def _written_identity(artifact: Any) -> dict[str, Any] | None:
    """An S3 artifact's identity as the manifest wrote it; None for an uploaded path, whose
    content the manifest does not hold."""
    if not isinstance(artifact, Mapping) or "uri" not in artifact:
        return None
    return {k: v for k, v in artifact.items() if k in ("uri", "sha256", "versionId")}


def artifact_identity(model: ModelRelease) -> dict[str, Any]:
    """What a model version's artifact is: its URI, pins and object version (and one digest
    over its pinned `files`), or for an uploaded `artifact.path` the sha256 of each file (a
    path may move, its content may not)."""
    artifact = model.spec.artifact
    if artifact.path is not None:
        return {"files": {f.key: f.sha256 for f in model.artifact_files}}
    identity: dict[str, Any] = {
        key: value for key, value in (("uri", artifact.uri), ("sha256", artifact.sha256),
                                      ("versionId", artifact.version_id)) if value}
    if artifact.files:  # `artifact lock`'s pins: one digest over path, sha256, size, version
        identity["pinnedFiles"] = files_digest(
            {f.path: f"{f.sha256} {f.size} {f.version_id or ''}" for f in artifact.files})
    return identity


def version_conflicts(previous: Mapping[str, Any] | None, release: Release) -> list[str]:
    """Model versions (stable or candidate) that the last deployment recorded with another
    artifact.

    A version names one artifact forever: clients that pulled `name@version` must
    be able to trust it. One line per version, naming what changed.
    """
    record = (previous or {}).get("manifest")
    if not isinstance(record, Mapping) or not isinstance(record.get("deployed"), Mapping):
        return []
    recorded = previous_versions(previous)
    lines = []
    for model in release.models:
        for each in (model, *model.candidates):
            name, version = model.spec.name, each.spec.version
            old = recorded.get(name, {}).get(version)
            changes = artifact_changes(old, artifact_identity(each)) if old else []
            if changes:
                which = f" (candidate '{each.candidate}')" if each.candidate else ""
                lines.append(f"{PREFIX}model '{name}' version {version}{which} already names "
                             f"another artifact: {'; '.join(changes)}. A version names one "
                             "artifact forever: bump the version.")
    return lines


def artifact_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two artifact identities (`artifact_identity`), one phrase each."""
    changes = []
    for key in ("uri", "sha256", "versionId"):
        if old.get(key) != new.get(key):
            changes.append(f"artifact.{key} {old.get(key) or '(none)'} → "
                           f"{new.get(key) or '(none)'}")
    if old.get("pinnedFiles") != new.get("pinnedFiles"):
        changes.append(f"artifact.files changed (files digest {_digest(old.get('pinnedFiles'))} "
                       f"→ {_digest(new.get('pinnedFiles'))})")
    if _uploaded(old) != _uploaded(new):
        changes.append("the artifact moved between an uploaded path and an S3 URI")
    elif "files" in old and "files" in new:
        before, after = dict(old["files"]), dict(new["files"])
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            changes.append("uploaded files changed: " + ", ".join(
                f"{k} ({_digest(before.get(k))} → {_digest(after.get(k))})" for k in changed))
    elif _uploaded(old) and _files_digest_of(old) != _files_digest_of(new):
        changes.append("uploaded files changed (files digest "
                       f"{_digest(_files_digest_of(old))} → {_digest(_files_digest_of(new))})")
    return changes


def _uploaded(identity: Mapping[str, Any]) -> bool:
    return "files" in identity or "filesDigest" in identity


def _files_digest_of(identity: Mapping[str, Any]) -> str | None:
    if "files" in identity:
        return files_digest(identity["files"])
    digest = identity.get("filesDigest")
    return str(digest) if digest else None


def _digest(sha256: Any) -> str:
    return f"sha256 {str(sha256)[:12]}…" if sha256 else "absent"


def change_report(previous: Mapping[str, Any] | None, release: Release) -> list[str]:
    """Log lines: first deployment, no change, or the diff and what it will do to images."""
    record = (previous or {}).get("manifest")
    models = release.models
    if not isinstance(record, Mapping) or not isinstance(record.get("deployed"), Mapping):
        listed = ", ".join(f"{m.spec.name} {m.spec.version}" for m in models) or "none"
        return [f"{PREFIX}first deployment of this stack: {len(models)} model(s): {listed}"]
    before, unreadable = _specs(record["deployed"])
    current = release.source.commit.sha if release.source.commit else None
    head = f"{_short(record.get('commit'))} → {_short(current)}"
    diff = diff_models(before, [m.spec for m in models], base_label="last deployment",
                       head_label="this update", environment=release.settings.environment)
    lines = [f"{PREFIX}{line}" for line in render_text(diff).splitlines()]
    lines[0] = f"{PREFIX}changes since the last deployment ({head})"
    lines += [f"{PREFIX}note: the last deployment's record of '{name}' could not be read; "
              "it is shown as added" for name in unreadable]
    lines += immutable_tag_warnings(previous, release)
    lines += changed_run_warnings(before, release)
    return lines


def changed_run_warnings(before: list[ModelSpec], release: Release) -> list[str]:
    """A started run is history: its Job is never changed (Kubernetes refuses a new pod
    template, and the program ignores changes to it), so an edit of it does nothing."""
    deployed = {spec.name: spec for spec in before}
    warnings = []
    for model in release.models:
        old, new = deployed.get(model.spec.name), model.spec
        if old is None or old.batch is None or new.batch is None:
            continue
        runs = {run.id: run for run in old.batch.runs}
        for run in new.batch.runs:
            if run.id in runs and runs[run.id] != run:
                warnings.append(
                    f"{PREFIX}warning: model '{new.name}': run '{run.id}' was changed, but a "
                    "started run is never changed (its Job is immutable); this update leaves "
                    "it as it was. Give the run a new id to start another.")
    return warnings


def immutable_tag_warnings(previous: Mapping[str, Any] | None, release: Release) -> list[str]:
    """What a new image under an unchanged version means, and a rebuild that would be refused.

    Checked for the stable version and every candidate (each image is tagged with its own
    version and build digest, `image_tag`), against every version the stack recorded:

    - the image is built from another context or other arguments, or its prebuilt
      `image.ref` changes, while the version stays: a runtime change (the pods roll onto the
      new image, the artifact stays), unless the image carries the model
      (`image_carries_model`): then the version's content changes, and it must be bumped;
    - the same build of a version moves to another slot (a promotion): its tag exists.
    """
    recorded = previous_versions(previous)
    record = (previous or {}).get("manifest")
    record = record if isinstance(record, Mapping) else {}
    builds = record["builds"] if isinstance(record.get("builds"), Mapping) else {}
    deployed = record["deployed"] if isinstance(record.get("deployed"), Mapping) else {}
    warnings = []
    for model in release.models:
        name = model.spec.name
        written = as_written(model.spec)
        for each in (model, *model.candidates):
            version = each.spec.version
            built = recorded.get(name, {}).get(version, {}).get("build")
            before = deployed.get(name)
            if built is None and each is model and isinstance(before, Mapping) \
                    and before.get("version") == version:
                built = builds.get(name)  # a record from before builds were kept per version
            which = f" (candidate '{each.candidate}')" if each.candidate else ""
            now = slot_spec(written, each.candidate)
            if each.build_digest and built not in (None, each.build_digest):
                warnings.append(_image_change(
                    name, which, version, now, "its image build context or build arguments "
                    f"changed (new tag {image_tag(version, each.build_digest)})"))
            elif each.build_digest and built == each.build_digest \
                    and slot_version(before, each.candidate) != version:
                reason = REBUILT_TAG.format(version=version,
                                            tag=image_tag(version, each.build_digest))
                warnings.append(f"{PREFIX}warning: model '{name}'{which}: {reason}")
            elif (old_ref := _same_version_ref(before, each.candidate, version)) \
                    and (new_ref := _ref(now)) and old_ref != new_ref:
                warnings.append(_image_change(
                    name, which, version, now, f"its image.ref changed ({old_ref} → {new_ref})"))
    return warnings


def _image_change(name: str, which: str, version: str, slot: Mapping[str, Any] | None,
                  what: str) -> str:
    carried = image_carries_model(slot)
    if carried:
        return (f"{PREFIX}warning: model '{name}'{which}: {what} but its version {version} did "
                f"not, and the image carries the model ({carried}): version {version} would "
                "name other content. Bump the version.")
    return (f"{PREFIX}warning: model '{name}'{which}: runtime change: {what} under version "
            f"{version}, whose artifact stays; its pods roll onto the new image. Check the "
            "new runtime as you would a new version (a candidate, or a stack before this one).")


def _same_version_ref(deployed: Any, candidate: str | None, version: str) -> str | None:
    """The prebuilt image a slot ran at `version` in the last deployment, if it did."""
    slot = slot_spec(deployed, candidate) if isinstance(deployed, Mapping) else None
    if slot is None or str(slot.get("version")) != version:
        return None
    return _ref(slot)


def _ref(slot: Mapping[str, Any] | None) -> str | None:
    image = (slot or {}).get("image")
    ref = image.get("ref") if isinstance(image, Mapping) else None
    return str(ref) if ref else None


REBUILT_TAG = (
    "version {version} moves here from another slot (promoted, rolled back, or a candidate "
    "again), so its image is built again, but this stack pushed tag {tag} before and "
    "image tags are immutable: unless the build reproduces that image byte for byte, the push "
    "is refused. Set `image.ref` to the pushed image (`<repository>@sha256:…`, see `registry "
    "show`) for this step, or bump the version.")
"""Why building a version's image a second time fails, and the ways out."""


def slot_version(deployed: Any, candidate: str | None) -> str | None:
    """The version a slot (the stable one, or candidate `candidate`) ran in a deployed
    model as written: the same slot with the same version reuses its built image."""
    if not isinstance(deployed, Mapping):
        return None
    if candidate is None:
        return str(deployed["version"]) if deployed.get("version") is not None else None
    serving = deployed.get("serving")
    listed = serving.get("candidates") if isinstance(serving, Mapping) else None
    for item in listed if isinstance(listed, list) else ():
        if isinstance(item, Mapping) and item.get("name") == candidate:
            return str(item["version"]) if item.get("version") is not None else None
    return None


def whole_numbers(value: Any) -> Any:
    """Stack outputs travel as protobuf values, in which every number is a float."""
    if isinstance(value, Mapping):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def deployed_specs(outputs: Mapping[str, Any] | None) -> tuple[list[ModelSpec], list[str]]:
    """The models a stack's outputs say it deployed, and the names that could not be read."""
    record = (outputs or {}).get("manifest")
    deployed = record.get("deployed") if isinstance(record, Mapping) else None
    return _specs(deployed) if isinstance(deployed, Mapping) else ([], [])


def _specs(deployed: Mapping[str, Any]) -> tuple[list[ModelSpec], list[str]]:
    specs, unreadable = [], []
    for name, data in deployed.items():
        try:
            specs.append(ModelSpec.model_validate(whole_numbers(data)))
        except ValidationError:
            unreadable.append(str(name))
    return specs, unreadable


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "uncommitted"

