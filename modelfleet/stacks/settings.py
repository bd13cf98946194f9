"""A stack's `modelfleet:*` configuration as one typed, checked object.

Pulumi hands configuration over as strings; the offline planner reads the same
keys from `stacks/Pulumi.<stack>.yaml`. Both go through `StackSettings.parse`,
so a typo in a boolean fails the same way, with the key named, everywhere.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.manifest.problems import ManifestError, Problem
from modelfleet.manifest.schema import image_ref_problem

NAMESPACE = "modelfleet"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CONFIG_KEYS = ("environment", "namespace", "manifest", "manifestRef", "team", "requireApproved",
               "oidcProviderArn", "oidcProviderUrl", "kubeconfig", "kmsKeyArn",
               "noncurrentVersionDays", "imagePlatform", "untaggedImageDays", "createNamespace",
               "allowedNamespaces", "gpuNodeSelector", "gpuTolerationKey", "keda",
               "kedaServiceAccount", "prometheusAddress", "gateway", "flagger",
               "fetchImage", "gpuMemoryGiB", "weightsDownloadMBps", "prometheus",
               "prometheusNamespace", "monitoringLabels", "endpointPickerImage")
DEFAULT_DOWNLOAD_MBPS = 100
"""Megabytes per second a pod is assumed to download weights at, unless the stack says: a
conservative figure for one S3 client stream into a node's disk."""
_IRSA = "pods get their AWS permissions through IRSA, from the cluster's OIDC provider"
PROMETHEUS_MODES = ("operator", "annotations")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class StackSettings:
    """What one stack deploys, and where."""

    environment: str
    """Selects `environments.<environment>` overrides in the manifest."""
    namespace: str
    """Kubernetes namespace of the stack's models."""
    manifest: str = "models.yaml"
    manifest_ref: str | None = None
    """Git ref to read the manifest at; None: the working tree."""
    team: str | None = None
    """Deploy this team's models only; None: every model."""
    require_approved: bool = False
    oidc_provider_arn: str | None = None
    oidc_provider_url: str | None = None
    kubeconfig: str | None = field(default=None, repr=False)
    """A kubeconfig's text, or the name of a context in the ambient kubeconfig."""
    kms_key_arn: str | None = None
    """Encrypt the registry with this key instead of one of the stack's own."""
    noncurrent_version_days: int = 90
    """Days an overwritten registry object's old version is kept."""
    image_platform: str = "linux/amd64"
    untagged_image_days: int = 14
    create_namespace: bool = False
    allowed_namespaces: tuple[str, ...] = ()
    """Namespaces (besides the stack's own) whose pods may call the models."""
    gpu_node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    gpu_toleration_key: str = "nvidia.com/gpu"
    keda: bool = True
    keda_service_account: str = "keda/keda-operator"
    prometheus_address: str | None = None
    """Prometheus that KEDA asks for request metrics (models scaled on concurrency or rps)."""
    gateway: str | None = None
    """`namespace/name` of the Gateway (Gateway API) every online model gets a route on."""
    flagger: bool = False
    """Flagger (1.44+, Gateway API provider) runs progressive rollouts in the cluster."""
    fetch_image: str | None = None
    """The fetch-and-verify image (images/fetch.Dockerfile), pinned by digest: the init
    container of every model whose files are pinned (LLM weights, LoRA adapters)."""
    endpoint_picker_image: str | None = None
    """The Gateway API Inference Extension's endpoint picker (llm-d-router's
    `ghcr.io/llm-d/llm-d-router-endpoint-picker`), pinned by digest: one per LLM behind the
    stack's Gateway picks the pod for each request."""
    gpu_memory_gib: int = 0
    """Memory of one GPU of the stack's GPU nodes, in GiB; 0: unknown (no `gpu-memory`
    check)."""
    weights_download_mbps: int = DEFAULT_DOWNLOAD_MBPS
    """Rate at which a pod downloads weights from S3, in megabytes per second (the
    `cold-start` check)."""
    prometheus: str = "operator"
    """How Prometheus finds the models' pods: `operator` (a PodMonitor per model, alert rules
    as a PrometheusRule; the Prometheus Operator ignores pod annotations) or `annotations`
    (the `prometheus.io/*` pod annotations of Prometheus' example `kubernetes-pods` job)."""
    prometheus_namespace: str = "monitoring"
    """Namespace of the Prometheus that scrapes the models: admitted to their metrics port."""
    monitoring_labels: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    """Labels on the PodMonitors, the PrometheusRule and the dashboard, which the Prometheus
    Operator's `podMonitorSelector` / `ruleSelector` match (kube-prometheus-stack selects
    `release: <its Helm release>` unless told otherwise)."""
    config_file: str = field(default="", compare=False)
    """The stack file the settings were read from, for messages."""

    @classmethod
    def parse(cls, config: Mapping[str, Any], file: str) -> StackSettings:
        """Settings from `modelfleet:*` keys (full or short names); every problem at once."""
        values = {key.removeprefix(f"{NAMESPACE}:"): value for key, value in config.items()
                  if key.startswith(f"{NAMESPACE}:") or ":" not in key}
        reader = _Reader(values, file)
        settings = cls(
            environment=reader.label("environment", required=True) or "",
            namespace=reader.label("namespace", required=True) or "",
            manifest=reader.text("manifest") or "models.yaml",
            manifest_ref=reader.text("manifestRef"),
            team=reader.label("team"),
            require_approved=reader.boolean("requireApproved"),
            oidc_provider_arn=reader.text("oidcProviderArn", required=True, why=_IRSA),
            oidc_provider_url=_strip_scheme(reader.text("oidcProviderUrl", required=True,
                                                        why=_IRSA)),
            kubeconfig=reader.text("kubeconfig"),
            kms_key_arn=reader.text("kmsKeyArn"),
            noncurrent_version_days=reader.integer("noncurrentVersionDays", 90, low=1),
            image_platform=reader.text("imagePlatform") or "linux/amd64",
            untagged_image_days=reader.integer("untaggedImageDays", 14, low=1),
            create_namespace=reader.boolean("createNamespace"),
            allowed_namespaces=tuple(reader.labels("allowedNamespaces")),
            gpu_node_selector=reader.pairs("gpuNodeSelector", "nvidia.com/gpu.present=true"),
            gpu_toleration_key=reader.text("gpuTolerationKey") or "nvidia.com/gpu",
            keda=reader.boolean("keda", default=True),
            keda_service_account=reader.service_account("kedaServiceAccount",
                                                        "keda/keda-operator"),
            prometheus_address=reader.url("prometheusAddress"),
            gateway=reader.reference("gateway"),
            flagger=reader.boolean("flagger"),
            fetch_image=reader.image("fetchImage"),
            endpoint_picker_image=reader.image("endpointPickerImage"),
            gpu_memory_gib=reader.integer("gpuMemoryGiB", 0, low=0),
            weights_download_mbps=reader.integer("weightsDownloadMBps", DEFAULT_DOWNLOAD_MBPS,
                                                 low=1),
            prometheus=reader.choice("prometheus", PROMETHEUS_MODES),
            prometheus_namespace=reader.label("prometheusNamespace") or "monitoring",
            monitoring_labels=reader.pairs("monitoringLabels", "release=kube-prometheus-stack"),
            config_file=file,
        )
        reader.unknown_keys()
        if reader.problems:
            raise ManifestError(reader.problems)
        return settings


def _strip_scheme(url: str | None) -> str | None:
    """IAM trust conditions name the issuer without `https://`."""
    return url.removeprefix("https://") if url else url


@dataclass
class _Reader:
    values: Mapping[str, Any]
    file: str
    problems: list[Problem] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)
    """Every key `parse` reads: the keys a stack may set, declared once, by reading them."""

    def _problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, None, message, path=f"{NAMESPACE}:{key}"))

    def _get(self, key: str) -> Any:
        self.asked.add(key)
        return self.values.get(key)

    def unknown_keys(self) -> None:
        """A key `parse` never read is a typo (or a key of another version): an error,
        with the closest known key, since a misspelt key would silently stay unset."""
        for key in sorted(set(self.values) - self.asked):
            close = difflib.get_close_matches(key, sorted(self.asked), n=1)
            hint = f"; did you mean '{NAMESPACE}:{close[0]}'?" if close else ""
            self._problem(key, f"unknown key: modelfleet reads no such setting{hint}")

    def text(self, key: str, required: bool = False, why: str = "") -> str | None:
        value = self._get(key)
        if value is None or value == "":
            if required:
                reason = f" ({why})" if why else ""
                self._problem(key, f"is required{reason}; set it with "
                              f"`pulumi config set {NAMESPACE}:{key} <value>`")
            return None
        if isinstance(value, (dict, list)):
            self._problem(key, "must be a single value")
            return None
        return str(value)

    def image(self, key: str) -> str | None:
        """An image reference pinned by digest."""
        value = self.text(key)
        reason = image_ref_problem(value) if value is not None else None
        if reason:
            self._problem(key, reason)
        return value

    def url(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            self._problem(key, f"'{value}' is not an http(s) URL, e.g. "
                          "http://prometheus-operated.monitoring.svc:9090")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        """One of `choices`; the first when not given."""
        value = self.text(key)
        if value is None:
            return choices[0]
        if value not in choices:
            self._problem(key, f"'{value}' is not one of {', '.join(choices)}")
            return choices[0]
        return value

    def label(self, key: str, required: bool = False) -> str | None:
        value = self.text(key, required)
        if value is not None and not _DNS_LABEL.match(value):
            self._problem(key, f"'{value}' is not a DNS label (lowercase letters, digits, '-')")
        return value

    def integer(self, key: str, default: int, low: int) -> int:
        value = self._get(key)
        if value is None or value == "":
            return default
        try:
            number = int(str(value))
        except ValueError:
            self._problem(key, f"must be a whole number, got '{value}'")
            return default
        if number < low:
            self._problem(key, f"must be at least {low}, got {number}")
            return default
        return number

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if value is not None else ""
        if text == "":
            return default
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        self._problem(key, f"must be true or false, got '{value}'")
        return default

    def items(self, key: str) -> list[str]:
        """A list: YAML/JSON list, or comma-separated text (as `pulumi config set` gives)."""
        value = self._get(key)
        if value is None or value == "":
            return []
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                self._problem(key, f"is not a JSON list: {value}")
                return []
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list):
            return [str(item) for item in value]
        self._problem(key, f"must be a list, got '{value}'")
        return []

    def labels(self, key: str) -> list[str]:
        found = self.items(key)
        for item in found:
            if not _DNS_LABEL.match(item):
                self._problem(key, f"'{item}' is not a namespace name")
        return found

    def reference(self, key: str, default: str | None = None,
                  form: str = "namespace/name") -> str | None:
        """`namespace/name` of an object, `default` when not given; `form` names the shape
        in the message."""
        value = self.text(key) or default
        if value is None:
            return None
        namespace, slash, name = value.partition("/")
        if not slash or not _DNS_LABEL.match(namespace) or not _DNS_LABEL.match(name):
            self._problem(key, f"'{value}' is not of the form {form}")
        return value

    def service_account(self, key: str, default: str) -> str:
        return self.reference(key, default, "namespace/serviceaccount") or default

    def pairs(self, key: str, default: str) -> tuple[tuple[str, str], ...]:
        """`key=value,key2=value2` as pairs."""
        found = []
        for item in self.items(key) or default.split(","):
            name, equals, value = item.partition("=")
            if not equals or not name:
                self._problem(key, f"'{item}' is not of the form label=value")
                continue
            found.append((name.strip(), value.strip()))
        return tuple(found)
