"""Declared resources as files: Kubernetes objects as YAML, AWS resources' inputs as JSON.

The YAML is what `kubectl apply --dry-run=client -f DIR` reads; the same files
are what kubernetes-validate and checkov check in CI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pulumi.output import Unknown

from modelfleet.release.release import file_sha256
from planner.placeholders import references_in
from planner.recorder import Registration

UNKNOWN = "(known after apply)"
"""An output the plan cannot even name (none of `planner.placeholders`)."""
SECRET = "[secret]"
UNKNOWN_HOST = "known-after-apply.invalid"
UNKNOWN_IMAGE = f"{UNKNOWN_HOST}/image@sha256:" + "0" * 64
"""In rendered YAML, an image whose digest only the build will tell: a digest reference in
form, on a reserved `.invalid` host, so it can be validated but never pulled."""


def plain(value: Any) -> Any:
    """Mock inputs as a manifest would write them: whole numbers as ints, unknowns marked."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Unknown):
        return UNKNOWN
    path = getattr(value, "path", None)
    if isinstance(path, str):
        return {"asset": path, "sha256": _file_sha256(path)}
    return value


def _file_sha256(path: str) -> str | None:
    """Assets compare by content, as Pulumi does: not by where the file was read from."""
    try:
        status = Path(path).stat()
    except OSError:
        return None
    return _hashed(path, status.st_mtime_ns, status.st_size)


@cache
def _hashed(path: str, _mtime: int, _size: int) -> str:
    """Each file is read once per version of it, however often a plan renders its inputs."""
    return file_sha256(Path(path))


def is_kubernetes(registration: Registration) -> bool:
    return registration.custom and registration.type.startswith("kubernetes:") \
        and not registration.type.startswith("pulumi:providers:")


def image_for_validators(image: str) -> str:
    """`${fraud-detector-image.repoDigest}` -> `known-after-apply.invalid/fraud-detector-image@
    sha256:000…`: which build it waits for, in a form the validators accept."""
    built = [name for name, _ in references_in(image)]
    if not built and image != UNKNOWN:
        return image
    path = re.sub(r"[^a-z0-9]+", "-", built[0].lower()).strip("-") if built else ""
    return f"{UNKNOWN_HOST}/{path}@sha256:" + "0" * 64 if path else UNKNOWN_IMAGE


def _images_marked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: image_for_validators(item) if key == "image" and isinstance(item, str)
                else _images_marked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_images_marked(item) for item in value]
    return value


def kubernetes_object(registration: Registration) -> dict[str, Any]:
    """The object as the API server would receive it."""
    obj = _images_marked(plain(registration.inputs))
    ordered = {key: obj[key] for key in ("apiVersion", "kind", "metadata") if key in obj}
    ordered.update({key: value for key, value in obj.items() if key not in ordered})
    return ordered


def kubernetes_objects(registrations: Iterable[Registration]) -> list[dict[str, Any]]:
    return [kubernetes_object(r) for r in registrations if is_kubernetes(r)]


def _file_name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def write_kubernetes(registrations: Iterable[Registration], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for obj in kubernetes_objects(registrations):
        name = obj.get("metadata", {}).get("name", "unnamed")
        path = folder / (_file_name(obj["kind"].lower(), str(name)) + ".yaml")
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


def write_aws(registrations: Iterable[Registration], folder: Path) -> list[Path]:
    """Each AWS resource's inputs (secrets masked), one JSON document per resource."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for registration in registrations:
        if not (registration.custom and registration.type.startswith("aws:")):
            continue
        inputs = mask(plain(registration.inputs), registration.secrets)
        path = folder / (_file_name(registration.type.split(":")[-1], registration.name)
                         + ".json")
        path.write_text(json.dumps({"type": registration.type, "name": registration.name,
                                    "inputs": inputs}, indent=2, sort_keys=True) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written


def mask(value: Any, secrets: Iterable[str], path: str = "") -> Any:
    """Replace the values at secret paths by `[secret]`."""
    hidden = set(secrets)
    if path in hidden:
        return SECRET
    if isinstance(value, dict):
        return {k: mask(v, hidden, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, hidden, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
