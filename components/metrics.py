"""PromQL over the model server's own Prometheus metrics, for the autoscalers and the analyses.

The server exports `modelserver_requests_total{route, code}`,
`modelserver_request_duration_seconds_bucket{route}` and `modelserver_requests_in_flight`;
Prometheus' standard `kubernetes-pods` job (the pods' `prometheus.io/*` annotations) adds
`namespace` and `pod`. A Deployment's pods are `<deployment>-<hash>-<id>`, which the pattern
below matches and no other Deployment's pods do (not `<deployment>-primary-...`).
"""

from __future__ import annotations

REQUEST_WINDOW = "1m"


def pods(namespace: str, deployment: str) -> str:
    """A label matcher for the pods of one Deployment."""
    return f'namespace="{namespace}",pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+"'


def request_query(metric: str, namespace: str, deployment: str) -> str:
    """Request load summed over a Deployment's pods: requests in flight (`concurrency`) or
    inference requests per second (`rps`). KEDA divides it by the replica count
    (metricType AverageValue) and compares that with the target per pod."""
    if metric == "concurrency":
        return f"sum(modelserver_requests_in_flight{{{pods(namespace, deployment)}}})"
    return (f'sum(rate(modelserver_requests_total{{{pods(namespace, deployment)},'
            f'route="infer"}}[{REQUEST_WINDOW}]))')


def saturation_query(metric: str, waiting: str, kv_cache: str, namespace: str,
                     deployment: str) -> str:
    """An LLM engine's saturation summed over a Deployment's pods: requests waiting in its
    queue (`queue`, the gauge `waiting`), or KV-cache use in percent (`kv-cache`, the gauge
    `kv_cache`, whose 1 is 100%). KEDA divides it by the replica count (AverageValue), so the
    target is per pod: waiting requests, or percent of one pod's KV cache.

    vLLM's gauges, read at vllm-project/vllm@005a810b `vllm/v1/metrics/loggers.py`
    (`PrometheusStatLogger`): `vllm:num_requests_waiting` ("Number of requests waiting to be
    processed") and `vllm:kv_cache_usage_perc` ("1 means 100 percent usage"), both labelled
    `model_name` and `engine` (one series per engine core of a pod, so the sum adds them);
    the older `vllm:gpu_cache_usage_perc` is deprecated there."""
    if metric == "queue":
        return f"sum({waiting}{{{pods(namespace, deployment)}}})"
    return f"100 * sum({kv_cache}{{{pods(namespace, deployment)}}})"


# Flagger's MetricTemplates: `{{ namespace }}`, `{{ target }}` (the canary Deployment) and
# `{{ interval }}` are Flagger's own template variables.
_CANARY = pods("{{ namespace }}", "{{ target }}") + ',route="infer"'
SUCCESS_RATE = (
    f'100 * sum(rate(modelserver_requests_total{{{_CANARY},code!~"5.."}}[{{{{ interval }}}}]))'
    f' / sum(rate(modelserver_requests_total{{{_CANARY}}}[{{{{ interval }}}}]))')
"""Percent of the canary's inference requests answered without a server error."""
LATENCY_P99_MS = (
    "1000 * histogram_quantile(0.99, sum by (le) (rate("
    f"modelserver_request_duration_seconds_bucket{{{_CANARY}}}[{{{{ interval }}}}])))")
"""The canary's p99 inference latency, in milliseconds."""
