"""A real Prometheus (Debian's `prometheus` package) for the tests, scraping real servers on
127.0.0.1 with the labels a Kubernetes scrape gives them.

`pod_monitor_job` turns one of our PodMonitors into the scrape job the Prometheus Operator
would generate for it (prometheus-operator `pkg/prometheus/promcfg.go`,
`generatePodMonitorConfig`: keep the selected pods and port, then `namespace`, `container`,
`pod`, `job`, `endpoint`, then the endpoint's own relabelings), with each pod given as a
static target carrying the `__meta_kubernetes_*` labels that Kubernetes discovery would
set. So the relabelings we ship run on a real Prometheus, not a copy of them.

Without `prometheus` and `promtool` on the PATH the tests skip and say how to get them;
in CI (`CI` set) they fail instead.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib import parse, request

import yaml

from components.scrape import meta_label
from tests.kube.cluster import unavailable
from tests.modelserver_support import call, free_port, wait_until

HOW_TO_GET = "install Debian's prometheus package (`apt-get install -y prometheus`, 2.42)"


def binary(name: str) -> str:
    """`prometheus` or `promtool` from the PATH; skips (fails in CI) without it."""
    found = shutil.which(name)
    if not found:
        unavailable(f"no `{name}` on the PATH: {HOW_TO_GET}")
    return str(found)


@dataclass(frozen=True)
class Pod:
    """A model server on 127.0.0.1 as Kubernetes would show it to Prometheus."""

    name: str
    namespace: str
    labels: dict[str, str]
    port: int
    port_name: str = "http"
    container: str = "server"

    def discovery_labels(self) -> dict[str, str]:
        """What Prometheus' Kubernetes pod discovery sets on this pod's port."""
        found = {"__meta_kubernetes_namespace": self.namespace,
                 "__meta_kubernetes_pod_name": self.name,
                 "__meta_kubernetes_pod_container_name": self.container,
                 "__meta_kubernetes_pod_container_port_name": self.port_name,
                 "__meta_kubernetes_pod_phase": "Running"}
        for key, value in self.labels.items():
            found[meta_label(key)] = value
            found[meta_label(key).replace("_pod_label_", "_pod_labelpresent_")] = "true"
        return found


def _relabel(rule: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor relabeling (camelCase) as Prometheus' relabel config (snake_case)."""
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label",
             "action": "action", "regex": "regex", "replacement": "replacement",
             "separator": "separator", "modulus": "modulus"}
    return {names[key]: value.lower() if key == "action" else value
            for key, value in rule.items()}


def pod_monitor_job(name: str, namespace: str, spec: dict[str, Any],
                    pods: list[Pod]) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for PodMonitor `namespace/name`
    (its first endpoint), over `pods` as static targets."""
    endpoint = spec["podMetricsEndpoints"][0]
    relabelings: list[dict[str, Any]] = [
        {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "drop",
         "regex": "(Failed|Succeeded)"}]
    for key, value in sorted(spec["selector"].get("matchLabels", {}).items()):
        relabelings.append({"source_labels": [meta_label(key), _present(key)], "action": "keep",
                            "regex": f"({value});true"})
    for expression in spec["selector"].get("matchExpressions", []):
        assert expression["operator"] == "In", "the harness maps matchLabels and In only"
        relabelings.append({"source_labels": [meta_label(expression["key"]),
                                              _present(expression["key"])],
                            "action": "keep", "regex": f"({'|'.join(expression['values'])});true"})
    relabelings += [
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "action": "keep",
         "regex": endpoint["port"]},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{namespace}/{name}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
        *[_relabel(rule) for rule in endpoint.get("relabelings", [])]]
    return {
        "job_name": f"podMonitor/{namespace}/{name}/0",
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": [{"targets": [f"127.0.0.1:{pod.port}"],
                            "labels": pod.discovery_labels()} for pod in pods],
        "relabel_configs": relabelings,
        "metric_relabel_configs": [_relabel(rule)
                                   for rule in endpoint.get("metricRelabelings", [])],
    }


def _present(key: str) -> str:
    return meta_label(key).replace("_pod_label_", "_pod_labelpresent_")


class Prometheus:
    """One Prometheus process on 127.0.0.1: scrapes and evaluates every second."""

    def __init__(self, folder: Path, jobs: list[dict[str, Any]],
                 rule_groups: list[dict[str, Any]] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "scrape_configs": jobs}
        if rule_groups:
            (folder / "rules.yml").write_text(yaml.safe_dump({"groups": rule_groups}))
            config["rule_files"] = [str(folder / "rules.yml")]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        with open(self.folder / "prometheus.log", "wb") as log:
            self.process = subprocess.Popen(
                [binary("prometheus"), f"--config.file={self.folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=log)
        wait_until(self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError("prometheus exited: "
                                 + (self.folder / "prometheus.log").read_text()[-2000:])
        with request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query's series: (labels, value); raises on a PromQL error."""
        fields = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        with request.urlopen(f"{self.url}/api/v1/query?{parse.urlencode(fields)}",
                             timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str, at: float | None = None) -> float:
        """The one value of a query that returns exactly one series."""
        found = self.query(expr, at)
        assert len(found) == 1, f"{expr} returned {found}"
        return found[0][1]

    def targets_up(self, count: int) -> None:
        """Wait until `count` targets have been scraped successfully."""
        def up() -> bool:
            return sum(v for _, v in self.query("up")) >= count
        wait_until(up, timeout=30, interval=0.2)


def now() -> float:
    return time.time()


def servers(stack: ExitStack, launches: Sequence[tuple[Mapping[str, str], Path]]) -> None:
    """`python -m modelserver` once per (environment, log file), started together and waited
    for together (loading a model takes seconds), each stopped by its PID when `stack` closes.
    Their logs go to files: a pipe nobody reads would fill and block the servers."""
    processes = []
    for env, log in launches:
        with open(log, "wb") as output:
            process = subprocess.Popen([sys.executable, "-m", "modelserver"], env=dict(env),
                                       stdout=output, stderr=subprocess.STDOUT)
        stack.callback(_stop, process)
        processes.append((process, env["MODEL_PORT"], log))
    for process, port, log in processes:
        def ready(process: subprocess.Popen[bytes] = process, port: str = port,
                  log: Path = log) -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited {process.returncode}: {log.read_text()}")
            return call(f"http://127.0.0.1:{port}/v2/health/ready").status == 200
        wait_until(ready, timeout=60)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def exposition(text: str) -> Iterator[int]:
    """A server on 127.0.0.1 answering every GET with `text` in Prometheus' text format, for
    exporters that cannot run here; yields its port."""
    body = text.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
