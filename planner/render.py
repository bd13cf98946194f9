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

from modelfleet.manifest.problems import SourceError
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


RENDER_RECORD = ".modelfleet-render"
"""In a render's folder: every file the render wrote, one relative path a line. The next
render removes exactly those, so the folder holds one render (a model removed from the
manifest leaves no YAML behind for `kubectl apply -f` to bring back)."""


def check_render_folder(folder: Path) -> None:
    """Refuse (`SourceError`, one line) a `--render` folder that is not a folder, or that
    holds files no render wrote: the render would mix with them, or remove them."""
    if folder.exists() and not folder.is_dir():
        raise SourceError(f"{folder}: exists and is not a folder; --render needs a new or "
                          "empty folder, or one an earlier render wrote")
    foreign = sorted(_files(folder) - _recorded(folder) - {RENDER_RECORD})
    if foreign:
        others = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise SourceError(f"{folder}: holds {foreign[0]}{others}, which no render wrote; "
                          "--render needs a new or empty folder, or one an earlier render "
                          "wrote (it replaces that render whole)")


def write_render(registrations: list[Registration], folder: Path) -> tuple[list[Path],
                                                                           list[Path]]:
    """Replace the render in `folder` with this one: (Kubernetes YAML files, AWS JSON files).

    `check_render_folder` first; the earlier render's files are removed, then the new
    ones written and recorded. An unwritable folder is a `SourceError`.
    """
    check_render_folder(folder)
    try:
        for relative in sorted(_recorded(folder)):
            (folder / relative).unlink(missing_ok=True)
        for sub in ("kubernetes", "aws"):
            if (folder / sub).is_dir() and not any((folder / sub).iterdir()):
                (folder / sub).rmdir()
        kubernetes = write_kubernetes(registrations, folder / "kubernetes")
        aws = write_aws(registrations, folder / "aws")
        (folder / RENDER_RECORD).write_text(
            "".join(f"{path.relative_to(folder).as_posix()}\n" for path in kubernetes + aws),
            encoding="utf-8")
    except OSError as error:
        raise SourceError(f"{folder}: cannot write the render ({error.strerror or error})") \
            from error
    return kubernetes, aws


def _files(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")
            if not path.is_dir()}


def _recorded(folder: Path) -> set[str]:
    try:
        text = (folder / RENDER_RECORD).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return {line for line in text.splitlines() if line and ".." not in line.split("/")}
