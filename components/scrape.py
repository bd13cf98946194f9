"""How Prometheus finds a model's pods: a Prometheus Operator `PodMonitor`, or pod annotations.

`modelfleet:prometheus` chooses. `operator` (the default): one `PodMonitor`
(`monitoring.coreos.com/v1`) per model, in the model's namespace, selecting every pod of the
model whatever its version or who made it (the stable Deployment, candidates, Flagger's
primary and canary, batch workers and run pods) by `app.kubernetes.io/instance`.
`annotations`: the `prometheus.io/*` pod annotations that Prometheus' example
`kubernetes-pods` job reads; the Prometheus Operator ignores them.

What a PodMonitor's targets are labelled with (prometheus-operator
`pkg/prometheus/promcfg.go`, `generatePodMonitorConfig`, as ported to grafana/agent; read,
not run): `namespace`, `pod`, `container`, `endpoint` (the port's name) and
`job` (`<namespace>/<podmonitor>`), then the endpoint's `relabelings`. Ours add `model`
(the pods' `app.kubernetes.io/instance`, which Flagger keeps on its primary while it renames
`app.kubernetes.io/name`), `version` (`app.kubernetes.io/version`) and `component`. The
server's own `model` and `version` labels (equal by construction) would then arrive as
`exported_model` / `exported_version` (Prometheus' `honor_labels: false`): the metric
relabelings drop them. The queries rely on `namespace`, `pod`, `model` and `version`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.provenance import Provenance, custom_metadata

MONITORING_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"
"""Four samples in the triggers' 1 m window (kube-prometheus-stack's default interval, 30 s,
would leave two)."""
METRICS_PORT_NAME = "http"
METRICS_PATH = "/metrics"
SCRAPED_COMPONENTS = ("server", "worker", "run")
POD_LABELS = {"model": "app.kubernetes.io/instance", "version": "app.kubernetes.io/version",
              "component": "app.kubernetes.io/component"}
"""Target label -> pod label it is copied from."""


def meta_label(pod_label: str) -> str:
    """Prometheus' Kubernetes discovery name of a pod label (`__meta_kubernetes_pod_label_*`,
    non-alphanumerics as `_`)."""
    return "__meta_kubernetes_pod_label_" + "".join(
        c if c.isalnum() else "_" for c in pod_label)


def pod_monitor_spec(provenance: Provenance, port_name: str = METRICS_PORT_NAME,
                     path: str = METRICS_PATH) -> dict[str, Any]:
    """The PodMonitor's `spec`: every pod of the model, `path` on its port named `port_name`
    (our model server's and vLLM's: `http`, `/metrics`; a custom runtime's from the manifest)."""
    return {
        "selector": {
            "matchLabels": {"app.kubernetes.io/instance": provenance.model},
            "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In",
                                  "values": list(SCRAPED_COMPONENTS)}]},
        "podMetricsEndpoints": [{
            "port": port_name,
            "path": path,
            "interval": SCRAPE_INTERVAL,
            "relabelings": [{"action": "replace", "sourceLabels": [meta_label(pod_label)],
                             "targetLabel": target}
                            for target, pod_label in POD_LABELS.items()],
            "metricRelabelings": [{"action": "labeldrop", "regex": "exported_(model|version)"}],
        }],
    }



def pod_monitor(name: str, provenance: Provenance, cluster: ClusterSettings,
                opts: pulumi.ResourceOptions, port_name: str = METRICS_PORT_NAME,
                path: str = METRICS_PATH) -> k8s.apiextensions.CustomResource:
    """The model's PodMonitor `<model>`, in its namespace, with the labels the Prometheus
    Operator's `podMonitorSelector` matches (`modelfleet:monitoringLabels`)."""
    metadata = custom_metadata(name, cluster.object_namespace, provenance, "monitoring")
    metadata["labels"] = {**metadata["labels"], **cluster.monitoring_labels}
    return k8s.apiextensions.CustomResource(
        name, api_version=MONITORING_API, kind="PodMonitor", metadata=metadata,
        spec=pod_monitor_spec(provenance, port_name, path), opts=opts)
