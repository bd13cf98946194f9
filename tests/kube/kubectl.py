"""kubectl (from the same assets as the API server) for server-side apply, reads and waits.

kubectl reports what the server said, warnings included (`Warning: ...` on stderr), and
uses strict field validation for server-side apply, so an unknown field is an error.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

FIELD_MANAGER = "pulumi-kubernetes"
"""Pulumi's provider applies server-side under a field manager of its own, without forcing
conflicts (unless `pulumi.com/patchForce` is set), which is what these tests do too."""
T = TypeVar("T")


@dataclass(frozen=True)
class ApplyResult:
    """What the server answered to an apply: kubectl's exit status, output and messages."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Warning:")]

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines()
                if line.strip() and not line.startswith("Warning:")]

    @property
    def clean(self) -> bool:
        """Accepted, with neither errors nor warnings."""
        return self.returncode == 0 and not self.errors and not self.warnings

    def __str__(self) -> str:
        return f"exit {self.returncode}\n{self.stdout}\n{self.stderr}"


def as_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(obj) for obj in objects], sort_keys=False)


class TimedOut(AssertionError):  # noqa: N818 - reads as what happened
    """A condition did not hold in time."""


def eventually(check: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.25) -> T:
    """Poll `check` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(f"{what}: not so after {timeout:.0f} s")
        time.sleep(interval)


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
                                input=stdin, capture_output=True, text=True, check=False,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(self, objects: Iterable[Mapping[str, Any]], *, dry_run: bool = False,
              field_manager: str = FIELD_MANAGER) -> ApplyResult:
        """Server-side apply, as Pulumi's Kubernetes provider does it by default."""
        args = ["apply", "--server-side", f"--field-manager={field_manager}", "-f", "-"]
        if dry_run:
            args.append("--dry-run=server")
        result = self.run(*args, stdin=as_yaml(objects))
        return ApplyResult(result.returncode, result.stdout, result.stderr)

    def get(self, kind: str, name: str | None = None, namespace: str | None = None,
            selector: str | None = None) -> dict[str, Any]:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        result = self.run(*args, check=True)
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def items(self, kind: str, namespace: str, selector: str | None = None,
              ) -> list[dict[str, Any]]:
        return list(self.get(kind, namespace=namespace, selector=selector).get("items", []))

    def delete(self, obj: Mapping[str, Any]) -> None:
        """Delete one object, as Pulumi does for a removed or replaced resource."""
        metadata = obj["metadata"]
        args = ["delete", f"{obj['kind']}.{_group(obj['apiVersion'])}".rstrip("."),
                metadata["name"], "--wait=false"]
        if metadata.get("namespace"):
            args += ["-n", metadata["namespace"]]
        self.run(*args, check=True)

    def create_namespace(self, name: str, restricted: bool = True) -> None:
        labels = {"pod-security.kubernetes.io/enforce": "restricted",
                  "pod-security.kubernetes.io/enforce-version": "latest"} if restricted else {}
        result = self.apply([{"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": name, "labels": labels}}],
                            field_manager="test-setup")
        assert result.clean, str(result)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""
