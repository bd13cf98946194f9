"""What the stack shows and tells about its models: alert rules and a dashboard.

A `PrometheusRule` (`monitoring.coreos.com/v1`, Prometheus Operator) with one rule group per
model (`components/alerts.py`), declared with `modelfleet:prometheus: operator` (without the
Operator nothing reads it), labelled with `modelfleet:monitoringLabels` for its `ruleSelector`;
and the fleet's Grafana dashboard (`components/dashboard.py`) as a ConfigMap for Grafana's
sidecar. A changed dashboard replaces its ConfigMap (`data` is immutable to
pulumi-kubernetes): the sidecar reloads it either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.alerts import AlertedModel, rule_groups
from components.cluster import ClusterSettings
from components.dashboard import SIDECAR_LABEL, dashboard_json
from components.provenance import MANAGED_BY, StackScope
from components.scrape import MONITORING_API


@dataclass(frozen=True)
class FleetMonitoringArgs:
    """The stack, its cluster settings, and what the rules and panels need of each model."""

    scope: StackScope
    cluster: ClusterSettings
    models: tuple[AlertedModel, ...]


class FleetMonitoring(pulumi.ComponentResource):
    """The stack's PrometheusRule `<project>-<stack>`."""

    def __init__(self, name: str, args: FleetMonitoringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:monitoring:FleetMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = f"{args.scope.project}-{args.scope.stack}"
        if args.models:
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard",
                metadata=metadata(f"{stack}-dashboard", args, SIDECAR_LABEL),
                data={f"{stack}.json": dashboard_json(
                    f"Models: {args.scope.project} {args.scope.stack}", stack[:40],
                    args.models)}, opts=child)
        if args.cluster.operator and args.models:
            k8s.apiextensions.CustomResource(
                f"{name}-rules", api_version=MONITORING_API, kind="PrometheusRule",
                metadata=metadata(stack, args),
                spec={"groups": rule_groups(args.models)}, opts=child)
        self.register_outputs({})


def metadata(name: str, args: FleetMonitoringArgs,
             extra: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    """Stack-wide objects carry the stack's labels (no model's: they list every model)."""
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=args.cluster.object_namespace,
        labels={"app.kubernetes.io/part-of": MANAGED_BY, "app.kubernetes.io/managed-by": "pulumi",
                "modelfleet.dev/environment": args.scope.environment,
                **args.cluster.monitoring_labels, **(extra or {})})
