"""A version's image: its tag, and whether a new image under the same version is a runtime change.

A model version names its content forever: the artifact it serves (and whatever else the
manifest pins beside it, such as adapters). The image is the runtime that serves that
content, as KServe keeps the `ServingRuntime` (how a server runs) apart from the
`InferenceService`'s `storageUri` (which model): our model server, vLLM, Triton. So an
image that changes while the version and its artifact stay (a fix in `images/modelserver/`,
which every built image contains; a vLLM bump to another `image.ref` digest) is a
**runtime change**: the pods roll onto the new image and load the same artifact.

It is a change of the version's content only when the image carries the model itself,
which the manifest tells in two ways (`image_carries_model`):

- the model names no artifact apart from its image (`artifact` without `uri` or `path`):
  whatever the server answers with is in the image;
- its artifact is an uploaded `artifact.path` inside the image's `build.context`: the
  build can copy the model into the image (a `.dockerignore` may leave it out, but the plan
  cannot run Docker's matcher on every rule, so the folder decides, on the safe side).

Nothing here reads an engine: the rule holds for any runtime, built or prebuilt.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from modelfleet.manifest.semver import label_safe

BUILD_TAG_CHARS = 12
"""Hex digits of the build digest in a built image's tag."""


def image_tag(version: str, build_digest: str | None) -> str:
    """The tag a built image is pushed under: `<version>-<12 hex of its build digest>`
    (`1.4.2-45044c0a9e1f`).

    Tags are immutable in the model's repository, so a runtime change (the same version
    built from another context or other arguments) needs a tag of its own; the same
    version built from the same context keeps its tag (and a second push of it is refused,
    see `REBUILT_TAG`). Docker's tag grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) allows
    the result: `label_safe` turns a semantic version's `+` into `_`.
    """
    tag = label_safe(version)
    hexdigits = (build_digest or "").rpartition(":")[2]  # `sha256:<hex>`, or the hex alone
    return f"{tag}-{hexdigits[:BUILD_TAG_CHARS]}" if hexdigits else tag


def image_carries_model(model: Mapping[str, Any] | None) -> str | None:
    """Why the image of `model` holds its version's content, or None when it is the runtime.

    `model` is a model (or one candidate's slot, see `slot_spec`) as written: the manifest's
    keys (`artifact.uri`, `artifact.path`, `image.build.context`), as `as_written` and a
    deployment record's `deployed` entries give it.
    """
    if not isinstance(model, Mapping):
        return None
    artifact = model.get("artifact")
    artifact = artifact if isinstance(artifact, Mapping) else {}
    if not artifact.get("uri") and not artifact.get("path"):
        return "the model names no artifact apart from its image"
    image = model.get("image")
    build = image.get("build") if isinstance(image, Mapping) else None
    context = build.get("context") if isinstance(build, Mapping) else None
    path = artifact.get("path")
    if isinstance(context, str) and isinstance(path, str) and _inside(path, context):
        return f"its build context {context} holds its artifact path {path}"
    return None


def slot_spec(model: Mapping[str, Any] | None, candidate: str | None) -> dict[str, Any] | None:
    """The version, artifact and image a slot runs in a model as written: the model's own for
    the stable slot (`candidate` None), a candidate's with the model's image by default."""
    if not isinstance(model, Mapping):
        return None
    if candidate is None:
        return {key: model.get(key) for key in ("version", "artifact", "image")}
    serving = model.get("serving")
    listed = serving.get("candidates") if isinstance(serving, Mapping) else None
    for item in listed if isinstance(listed, list) else ():
        if isinstance(item, Mapping) and item.get("name") == candidate:
            return {"version": item.get("version"), "artifact": item.get("artifact"),
                    "image": item.get("image") or model.get("image")}
    return None


def _inside(path: str, folder: str) -> bool:
    path, folder = posixpath.normpath(path), posixpath.normpath(folder)
    return folder in (".", path) or path.startswith(folder + "/")
