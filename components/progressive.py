"""A progressive rollout run by Flagger: metric-gated traffic steps and automatic rollback.

Flagger (1.44, Gateway API provider) watches the model's Deployment; on a new version it
starts a copy beside the `-primary` one, shifts `steps` percent of the model's Open Inference
Protocol traffic to it through an HTTPRoute on the stack's Gateway, checks the success rate
and latency of the new pods at each step (MetricTemplates over the runtime's request metrics:
p99 where it exports a latency histogram, else the mean, checked against `maxLatencyP99Ms`),
promotes it, or rolls back after `failureBudget` failed checks. Flagger then scales the
Deployment we declare to zero: it carries `pulumi.com/skipAwait` so that Pulumi neither
waits for it nor, having no `spec.replicas`, scales it back.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterSettings
from components.metrics import latency_ms, success_rate
from components.provenance import Provenance, custom_metadata
from components.runtimes.base import RequestMetrics
from components.runtimes.modelserver import REQUESTS
from components.traffic import model_path
from modelfleet.manifest.schema import Serving

FLAGGER_API = "flagger.app/v1beta1"
PROVIDER = "gatewayapi:v1"
COMPONENT = "server"


@dataclass(frozen=True)
class ProgressiveRolloutArgs:
    provenance: Provenance
    cluster: ClusterSettings
    serving: Serving
    deployment: pulumi.Input[str]
    """Name of the Deployment Flagger takes over (the target)."""
    autoscaler: dict[str, str]
    """`apiVersion` and `kind` of the model's autoscaler (named like the Deployment)."""
    primary_scaler_query: str | None = None
    """For a KEDA ScaledObject on request load: its query for the primary's pods."""
    requests: RequestMetrics = REQUESTS
    """The runtime's request metrics the checks read (default: our model server's)."""


class ProgressiveRollout(pulumi.ComponentResource):
    """A Flagger Canary for the model's Deployment and the MetricTemplates it checks."""

    def __init__(self, name: str, args: ProgressiveRolloutArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:serving:ProgressiveRollout", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        templates = [metric_template(f"{name}-{check}", query, args, child)
                     for check, query in (("success-rate", success_rate(args.requests)),
                                          (args.requests.latency_check,
                                           latency_ms(args.requests)))]
        k8s.apiextensions.CustomResource(
            name, api_version=FLAGGER_API, kind="Canary", metadata=metadata(name, args),
            spec=canary_spec(name, args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=templates))
        self.canary_name: pulumi.Output[str] = pulumi.Output.from_input(name)
        self.register_outputs({"canary_name": self.canary_name})


def metadata(name: str, args: ProgressiveRolloutArgs) -> dict[str, Any]:
    return custom_metadata(name, args.cluster.object_namespace, args.provenance, COMPONENT)


def metric_template(name: str, query: str, args: ProgressiveRolloutArgs,
                    opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name, api_version=FLAGGER_API, kind="MetricTemplate", metadata=metadata(name, args),
        spec={"provider": {"type": "prometheus", "address": args.cluster.prometheus_address},
              "query": query},
        opts=opts)


def canary_spec(name: str, args: ProgressiveRolloutArgs) -> dict[str, Any]:
    """Flagger's Canary: target, autoscaler, route on the Gateway, analysis."""
    serving, rollout = args.serving, args.serving.rollout
    namespace, gateway = args.cluster.gateway_ref
    interval = f"{rollout.interval_seconds}s"
    autoscaler: dict[str, Any] = {**args.autoscaler, "name": name}
    if args.primary_scaler_query:
        autoscaler["primaryScalerQueries"] = {"requests": args.primary_scaler_query}
    return {
        "provider": PROVIDER,
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.deployment},
        "autoscalerRef": autoscaler,
        # Long enough for a slow model to load before Flagger gives up on the new version.
        "progressDeadlineSeconds": serving.startup_seconds + 120,
        # When the Canary is deleted (the rollout turns back to rolling), Flagger scales the
        # Deployment back up to the primary's replicas instead of leaving it at zero; the
        # Services, primary and route Flagger made go with the Canary.
        "revertOnDeletion": True,
        "service": {
            "port": serving.port,
            "targetPort": "http",
            "portDiscovery": True,
            "gatewayRefs": [{"name": gateway, "namespace": namespace}],
            "match": [{"uri": {"prefix": model_path(args.provenance.model)}}],
        },
        "analysis": {
            "interval": interval,
            "threshold": rollout.failure_budget,
            "stepWeights": list(rollout.steps),
            "metrics": [
                {"name": "success-rate", "interval": interval,
                 "templateRef": {"name": f"{name}-success-rate"},
                 "thresholdRange": {"min": rollout.min_success_rate}},
                {"name": args.requests.latency_check, "interval": interval,
                 "templateRef": {"name": f"{name}-{args.requests.latency_check}"},
                 "thresholdRange": {"max": rollout.max_latency_p99_ms}},
            ],
            **({"webhooks": [load_test_webhook(name, args)]} if rollout.load_test else {}),
        },
    }


LOAD_TEST_TIMEOUT = "15s"


def load_test_webhook(name: str, args: ProgressiveRolloutArgs) -> dict[str, Any]:
    """Flagger's load tester as a `rollout` webhook: called at each analysis iteration, before
    the metric checks, it runs `hey` against the canary's Service (`<name>-canary`, which
    Flagger makes), so the checks have values even without live traffic.

    Flagger 1.44 `docs/gitbook/usage/webhooks.md` ("Load Testing": `type: rollout`, `url` of
    the flagger-loadtester, `metadata.cmd`) and the loadtester's `hey` (`-z` duration, `-q`
    requests per second per worker, `-c` workers, `-m`, `-T`, `-d` body); read, not run. The
    load tester runs the command in a shell, so the body is shell-quoted.
    """
    serving, test = args.serving, args.serving.rollout.load_test
    assert test is not None
    duration = test.duration_seconds or serving.rollout.interval_seconds
    per_worker = -(-test.rps // test.concurrency)
    target = (f"http://{name}-canary.{args.cluster.namespace}:{serving.port}"
              f"{model_path(args.provenance.model)}/infer")
    body = shlex.quote(json.dumps(test.request, separators=(",", ":"), sort_keys=True))
    return {"name": "load-test", "type": "rollout", "url": test.url,
            "timeout": LOAD_TEST_TIMEOUT,
            "metadata": {"type": "cmd",
                         "cmd": f"hey -z {duration}s -q {per_worker} -c {test.concurrency} "
                                f"-m POST -T application/json -d {body} {target}"}}
