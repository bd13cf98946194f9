"""A throwaway Kubernetes control plane on 127.0.0.1, envtest style: etcd, kube-apiserver and,
optionally, kube-controller-manager, from the binaries in `$KUBEBUILDER_ASSETS`.

What a real API server checks that schema validators do not: admission (Pod Security
`restricted`), CEL rules of built-in types and CRDs, defaulting, server-side apply field
ownership and immutable fields. Nothing schedules Pods: they are admitted and stay Pending.

Every process is started in its own session and stopped by its PID (SIGTERM, then SIGKILL
after a grace period), also when a test fails: `ControlPlane` is a context manager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 60.0
CONTROLLERS = "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route," \
              "-persistentvolume-binder"
"""Every controller but those that need nodes or a cloud (kube-controller-manager --controllers)."""
BINARIES = ("etcd", "kube-apiserver", "kubectl")


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message carries the tail of its log."""


def missing_binaries(assets: Path) -> list[str]:
    """The binaries a control plane needs that `assets` lacks."""
    return [name for name in BINARIES if not os.access(assets / name, os.X_OK)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Credentials:
    """Throwaway certificates (CA, API server, service-account signing) and an admin token."""

    folder: Path
    token: str

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @classmethod
    def create(cls, folder: Path) -> Credentials:
        folder.mkdir(parents=True, exist_ok=True)
        p = str(folder)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{p}/ca.key",
                 "-out", f"{p}/ca.crt", "-days", "2", "-subj", "/CN=modelfleet-test-ca")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{p}/server.key",
                 "-out", f"{p}/server.csr", "-subj", "/CN=kube-apiserver")
        (folder / "san.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", f"{p}/server.csr", "-CA", f"{p}/ca.crt",
                 "-CAkey", f"{p}/ca.key", "-CAcreateserial", "-out", f"{p}/server.crt",
                 "-days", "2", "-extfile", f"{p}/san.ext")
        _openssl("genrsa", "-out", f"{p}/sa.key", "2048")
        _openssl("rsa", "-in", f"{p}/sa.key", "-pubout", "-out", f"{p}/sa.pub")
        token = os.urandom(24).hex()
        (folder / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
        return cls(folder, token)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) in `workdir`, talking on 127.0.0.1."""

    assets: Path
    workdir: Path
    controllers: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0
    credentials: Credentials | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.credentials = Credentials.create(self.workdir / "pki")
        pki = self.credentials.folder
        client, peer, self.port = free_port(), free_port(), free_port()
        self._spawn("etcd", [
            str(self.assets / "etcd"), "--name", "test", "--data-dir", str(self.workdir / "etcd"),
            "--unsafe-no-fsync", "--log-level", "error",
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer}"])
        self._spawn("kube-apiserver", [
            str(self.assets / "kube-apiserver"), "--etcd-servers", f"http://127.0.0.1:{client}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port),
            "--tls-cert-file", str(pki / "server.crt"),
            "--tls-private-key-file", str(pki / "server.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--token-auth-file", str(pki / "tokens.csv"), "--authorization-mode", "RBAC",
            "--enable-admission-plugins",
            "NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,PodSecurity",
            "--service-cluster-ip-range", "10.0.0.0/24", "--endpoint-reconciler-type", "none",
            "--profiling=false", "--cert-dir", str(self.workdir / "certs")])
        self._write_kubeconfig()
        self._wait_ready()
        if self.controllers:
            self._spawn("kube-controller-manager", [
                str(self.assets / "kube-controller-manager"),
                "--kubeconfig", str(self.kubeconfig), "--bind-address", "127.0.0.1",
                "--secure-port", "0",
                "--service-account-private-key-file", str(pki / "sa.key"),
                "--root-ca-file", str(pki / "ca.crt"),
                "--use-service-account-credentials=false", "--controllers", CONTROLLERS,
                "--leader-elect=false",
                # Short sync periods: HPAs act within seconds, not the default 15.
                "--horizontal-pod-autoscaler-sync-period", "2s"])

    def _spawn(self, name: str, command: Sequence[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        with log:
            self.processes[name] = subprocess.Popen(
                list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def _write_kubeconfig(self) -> None:
        assert self.credentials is not None
        self.kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters: [{{name: test, cluster: {{server: "{self.server}",
  certificate-authority: "{self.credentials.ca}"}}}}]
users: [{{name: admin, user: {{token: "{self.credentials.token}"}}}}]
contexts: [{{name: test, context: {{cluster: test, user: admin}}}}]
current-context: test
""")

    def _wait_ready(self) -> None:
        assert self.credentials is not None
        context = ssl.create_default_context(cafile=str(self.credentials.ca))
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.credentials.token}"})
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ControlPlaneError(f"{name} exited with {process.returncode}:\n"
                                            + self.log_tail(name))
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(request, context=context, timeout=2) as answer:
                if answer.read() == b"ok":
                    return
            time.sleep(0.1)
        raise ControlPlaneError("kube-apiserver was not ready in time:\n"
                                + self.log_tail("kube-apiserver"))

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop every process started here, newest first, by PID."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()

