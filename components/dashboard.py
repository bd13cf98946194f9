"""The fleet's Grafana dashboard, generated from the manifest: one row per model.

Each row shows, one series per version (the stable one, each candidate, Flagger's primary and
canary, told apart by the PodMonitor's `version` label) so that versions compare side by side
in the same panel: requests per second, error ratio (5xx), p50 and p99 latency, requests in
progress (the request-seconds counter's rate) and replicas (pods Prometheus scrapes, `up`);
for batch models, queue depth (CloudWatch via YACE, as the alerts read it) and rows predicted
per second by the workers and runs.

Grafana's dashboard JSON model, `schemaVersion` 39 (the version Grafana 10.4 and 11 write;
Grafana migrates older versions when it loads them): `panels` with `gridPos` on a 24-column
grid, `row` panels, `timeseries` panels whose `targets` are PromQL with `$__rate_interval`
(Grafana's own variable: at least four scrape intervals) and a `datasource` template variable.
Delivered as a ConfigMap with the label kube-prometheus-stack's Grafana sidecar watches
(`grafana_dashboard: "1"`, its chart's default); the sidecar must search the stack's namespace
(`sidecar.dashboards.searchNamespace`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.alerts import VISIBLE_MESSAGES, AlertedModel
from components.metrics import DURATION_BUCKETS, REQUEST_SECONDS, REQUESTS, ROWS

SCHEMA_VERSION = 39
SIDECAR_LABEL = {"grafana_dashboard": "1"}
RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Query:
    """One target of a panel: PromQL and the series' legend (`{{version}}`)."""

    expr: str
    legend: str


def _model(model: AlertedModel, extra: str = "") -> str:
    return f'namespace="{model.namespace}",model="{model.spec.name}"{extra}'


def serving_panels(model: AlertedModel) -> dict[str, tuple[str, list[Query]]]:
    """Title -> (unit, queries) of an online model's panels."""
    infer = _model(model, ',route="infer"')
    by = "sum by (version)"
    return {
        "Requests per second": ("reqps", [Query(
            f"{by} (rate({REQUESTS}{{{infer}}}[{RATE}]))", "{{version}}")]),
        "Error ratio (5xx)": ("percentunit", [Query(
            f'{by} (rate({REQUESTS}{{{infer},code=~"5.."}}[{RATE}]))'
            f" / {by} (rate({REQUESTS}{{{infer}}}[{RATE}]))", "{{version}}")]),
        "Latency p50 and p99": ("s", [Query(
            f"histogram_quantile({q}, sum by (version, le) "
            f"(rate({DURATION_BUCKETS}{{{infer}}}[{RATE}])))", f"p{round(q * 100)} {{{{version}}}}")
            for q in (0.5, 0.99)]),
        "Requests in progress": ("short", [Query(
            f"{by} (rate({REQUEST_SECONDS}{{{_model(model)}}}[{RATE}]))", "{{version}}")]),
        "Replicas": ("short", [Query(
            f"count by (version) (up{{{_model(model, SERVER)}}} == 1)", "{{version}}")]),
    }


SERVER = ',component="server"'
BATCH = ',component=~"worker|run"'


def batch_panels(model: AlertedModel) -> dict[str, tuple[str, list[Query]]]:
    """Title -> (unit, queries) of a batch model's panels."""
    queue = model.queue_name or ""
    return {
        "Queue depth": ("short", [
            Query(f'max({VISIBLE_MESSAGES}{{dimension_QueueName="{queue}"}})', "waiting"),
            Query(f'max({VISIBLE_MESSAGES}{{dimension_QueueName="{queue}-dlq"}})',
                  "dead-letter")]),
        "Rows predicted per second": ("short", [Query(
            f"sum by (version) (rate({ROWS}{{{_model(model, BATCH)}}}[{RATE}]))",
            "{{version}}")]),
        "Workers": ("short", [Query(
            f"count by (version) (up{{{_model(model, BATCH)}}} == 1)", "{{version}}")]),
    }


def model_panels(model: AlertedModel) -> dict[str, tuple[str, list[Query]]]:
    """Title -> (Grafana unit, queries) of every panel of one model's row, in order."""
    panels: dict[str, tuple[str, list[Query]]] = {}
    if model.spec.serving is not None:
        panels.update(serving_panels(model))
    if model.spec.batch is not None:
        panels.update(batch_panels(model))
    return panels


def dashboard(title: str, uid: str, models: Sequence[AlertedModel]) -> dict[str, Any]:
    """The dashboard's JSON model."""
    panels: list[dict[str, Any]] = []
    y = 0
    for model in sorted(models, key=lambda m: m.spec.name):
        panels.append({"id": len(panels) + 1, "type": "row", "title": model.spec.name,
                       "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                       "panels": []})
        y += 1
        for index, (name, (unit, queries)) in enumerate(model_panels(model).items()):
            panels.append({
                "id": len(panels) + 1, "type": "timeseries", "title": f"{model.spec.name}: {name}",
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 8, "x": 8 * (index % 3), "y": y + 8 * (index // 3)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom",
                                       "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "none"}},
                "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE,
                             "expr": q.expr, "legendFormat": q.legend}
                            for i, q in enumerate(queries)]})
        y += 8 * -(-len(model_panels(model)) // 3)
    return {
        "uid": uid, "title": title, "schemaVersion": SCHEMA_VERSION, "version": 1,
        "editable": False, "tags": ["modelfleet"], "timezone": "utc",
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus",
                                 "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_json(title: str, uid: str, models: Sequence[AlertedModel]) -> str:
    """The dashboard as the text the sidecar hands to Grafana (stable key order)."""
    return json.dumps(dashboard(title, uid, models), indent=1, sort_keys=True)
