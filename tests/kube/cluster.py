"""The real API server the Kubernetes tests share: where its parts come from, and how to use it.

`KUBEBUILDER_ASSETS` names the folder holding etcd, kube-apiserver and kubectl (the
convention of controller-runtime's envtest; `setup-envtest use 1.36 -p path` prints one),
plus kube-controller-manager for the tests that need Pods. The CRDs of KEDA, Gateway API
and Flagger are read from `MODELFLEET_KUBE_CRDS` (default `../shared/kube/crds`). Without
them the tests skip and say how to get them; under CI (`CI` set) they fail instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kube.controlplane import ControlPlane, missing_binaries
from tests.kube.kubectl import Kubectl, eventually

PROJECT = Path(__file__).resolve().parent.parent.parent
CRD_FOLDERS = ("keda", "gateway-api", "flagger", "gateway-api-inference-extension",
               "prometheus-operator")
HOW_TO_GET = ("set KUBEBUILDER_ASSETS to a folder with etcd, kube-apiserver, kubectl and "
              "kube-controller-manager v1.36 (e.g. `export KUBEBUILDER_ASSETS=$(setup-envtest "
              "use 1.36 -p path)` plus kube-controller-manager from the Kubernetes server "
              "release; here: `export KUBEBUILDER_ASSETS=$(../shared/kube/unpack)`)")


def unavailable(reason: str) -> None:
    """Skip with how to get what is missing; in CI, fail: these tests must run there."""
    if os.environ.get("CI"):
        pytest.fail(f"the real-API-server tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def assets_folder() -> Path:
    value = os.environ.get("KUBEBUILDER_ASSETS", "")
    if not value:
        unavailable(f"no Kubernetes control plane binaries: {HOW_TO_GET}")
    assets = Path(value)
    missing = missing_binaries(assets)
    if missing:
        unavailable(f"{assets} lacks {', '.join(missing)}: {HOW_TO_GET}")
    return assets


def crds_folder() -> Path:
    folder = Path(os.environ.get("MODELFLEET_KUBE_CRDS", PROJECT.parent / "shared/kube/crds"))
    missing = [name for name in CRD_FOLDERS if not (folder / name).is_dir()]
    if missing:
        unavailable(f"no CRDs for {', '.join(missing)} in {folder}: set MODELFLEET_KUBE_CRDS "
                    "to a folder with keda/ (kedacore/keda config/crd/bases, v2.20), "
                    "gateway-api/ (standard channel, v1.6), flagger/ (v1.44 crd.yaml), "
                    "gateway-api-inference-extension/ (config/crd/bases, v1.6) and "
                    "prometheus-operator/ (example/prometheus-operator-crd, v0.93)")
    return folder


@dataclass
class Cluster:
    """A running control plane with the CRDs installed, and kubectl bound to it."""

    plane: ControlPlane
    kubectl: Kubectl
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def has_controllers(self) -> bool:
        return "kube-controller-manager" in self.plane.processes

    def namespace(self, prefix: str, restricted: bool = True) -> str:
        """A new namespace, by default enforcing the `restricted` Pod Security Standard."""
        name = f"{prefix}-{next(self._names)}"
        self.kubectl.create_namespace(name, restricted)
        return name

    def require_controllers(self) -> None:
        if not self.has_controllers:
            unavailable("kube-controller-manager is not in KUBEBUILDER_ASSETS (envtest's "
                        "assets lack it); Pods are created only by its controllers")

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.kubectl.items("pods", namespace, selector)

    def wait_for_pods(self, namespace: str, selector: str, owner: str,
                      timeout: float = 60) -> list[dict[str, Any]]:
        """The Pods a controller made for `owner`, once at least one is admitted."""
        def found() -> list[dict[str, Any]] | None:
            return self.pods(namespace, selector) or None
        try:
            return eventually(found, timeout, f"Pods of {owner} in {namespace}")
        except AssertionError as error:
            events = self.kubectl.run("get", "events", "-n", namespace).stdout
            raise AssertionError(f"{error}\nevents:\n{events}") from None


def install_crds(kubectl: Kubectl, folder: Path) -> None:
    for name in CRD_FOLDERS:
        kubectl.run("apply", "--server-side", "--field-manager=test-setup", "-f",
                    str(folder / name), check=True)

    def established() -> bool:
        crds = kubectl.get("customresourcedefinitions")["items"]
        return bool(crds) and all(
            any(c["type"] == "Established" and c["status"] == "True"
                for c in (crd.get("status") or {}).get("conditions") or []) for crd in crds)
    eventually(established, 60, "every CRD is established")


def start_cluster(workdir: Path) -> Iterator[Cluster]:
    """Start, install the CRDs, yield; stop every process afterwards, whatever happened."""
    assets = assets_folder()
    crds = crds_folder()
    controllers = os.access(assets / "kube-controller-manager", os.X_OK)
    with ControlPlane(assets, workdir, controllers=controllers) as plane:
        kubectl = Kubectl(assets / "kubectl", plane.kubeconfig)
        install_crds(kubectl, crds)
        yield Cluster(plane, kubectl)

