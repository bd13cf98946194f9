"""PromQL over a runtime's request metrics, for the autoscalers and the analyses.

Each runtime says which metrics its engine exports (`RequestMetrics`, in its module under
`components/runtimes/`). Our model server exports `modelserver_requests_total{model, route,
code}`, `modelserver_request_duration_seconds_bucket{model, route, le}` and
`modelserver_requests_in_progress_seconds_total{model}` (request-seconds, see
`images/modelserver/metrics.py`). A Kubernetes scrape adds `namespace` and `pod`: the
model's PodMonitor (`modelfleet:prometheus: operator`, see `components/scrape.py`) and
Prometheus' standard `kubernetes-pods` job (`annotations`) alike. A Deployment's pods are
`<deployment>-<hash>-<id>`, which the pattern below matches and no other Deployment's pods
do (not `<deployment>-primary-...`).
"""

from __future__ import annotations

from components.runtimes.base import RequestMetrics, Series

REQUEST_WINDOW = "1m"
"""The window of the request-load triggers: four samples at the PodMonitor's 15 s interval."""
REQUESTS = "modelserver_requests_total"
DURATION_BUCKETS = "modelserver_request_duration_seconds_bucket"
DURATION_COUNT = "modelserver_request_duration_seconds_count"
REQUEST_SECONDS = "modelserver_requests_in_progress_seconds_total"
ROWS = "modelserver_rows_predicted_total"
"""Our model server's metric names, which the alerts and the dashboard read."""


def pods(namespace: str, deployment: str) -> str:
    """A label matcher for the pods of one Deployment."""
    return f'namespace="{namespace}",pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+"'


def request_query(metric: str, namespace: str, deployment: str,
                  requests: RequestMetrics, window: str = REQUEST_WINDOW) -> str:
    """Request load summed over a Deployment's pods: requests in flight (`concurrency`) or
    inference requests per second (`rps`), from the runtime's `requests` metrics. KEDA
    divides it by the replica count (metricType AverageValue) and compares that with the
    target per pod. Raises ValueError when the runtime has neither an in-flight gauge nor a
    duration counter."""
    matcher = pods(namespace, deployment)
    if metric == "concurrency":
        if requests.in_flight is not None:
            return f"sum({requests.in_flight.select(matcher)})"
        busy = _rate(_duration(requests), matcher, window)
        per_second = requests.duration_per_second
        return busy if per_second == 1 else f"{busy} / {per_second}"
    return _total(requests, matcher, window)


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
_CANARY = pods("{{ namespace }}", "{{ target }}")
_INTERVAL = "{{ interval }}"


def success_rate(requests: RequestMetrics) -> str:
    """Percent of the canary's inference requests answered without a server error."""
    return (f"100 * {_rate(requests.succeeded, _CANARY, _INTERVAL)}"
            f" / {_total(requests, _CANARY, _INTERVAL)}")


def latency_ms(requests: RequestMetrics) -> str:
    """The canary's inference latency, in milliseconds: p99 from the latency histogram, or
    the mean (time spent over requests) when the runtime exports no histogram. Raises
    ValueError when it has neither."""
    if requests.latency_buckets is not None:
        return ("1000 * histogram_quantile(0.99, sum by (le) (rate("
                f"{requests.latency_buckets.select(_CANARY)}[{_INTERVAL}])))")
    mean = (f"{_rate(_duration(requests), _CANARY, _INTERVAL)}"
            f" / {_total(requests, _CANARY, _INTERVAL)}")
    per_second = requests.duration_per_second
    if per_second >= 1000:  # microseconds: / 1000
        return f"{mean} / {per_second // 1000}"
    return f"{1000 // per_second} * {mean}"  # seconds: 1000 *


def _duration(requests: RequestMetrics) -> Series:
    if requests.duration is None:
        raise ValueError(f"{requests.family} exports no request duration counter")
    return requests.duration


def _rate(series: Series, matcher: str, window: str) -> str:
    return f"sum(rate({series.select(matcher)}[{window}]))"


def _total(requests: RequestMetrics, matcher: str, window: str) -> str:
    """Every inference request a second: one counter, or the sum of several."""
    terms = [_rate(series, matcher, window) for series in requests.requests]
    return terms[0] if len(terms) == 1 else f"({' + '.join(terms)})"

