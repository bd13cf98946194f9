"""PromQL over the model server's own Prometheus metrics, for the autoscalers and the analyses.

The server exports `modelserver_requests_total{model, route, code}`,
`modelserver_request_duration_seconds_bucket{model, route, le}` and
`modelserver_requests_in_progress_seconds_total{model}` (request-seconds, see
`images/modelserver/metrics.py`). A Kubernetes scrape adds `namespace` and `pod`: the
model's PodMonitor (`modelfleet:prometheus: operator`, see `components/scrape.py`) and
Prometheus' standard `kubernetes-pods` job (`annotations`) alike. A Deployment's pods are
`<deployment>-<hash>-<id>`, which the pattern below matches and no other Deployment's pods
do (not `<deployment>-primary-...`).
"""

from __future__ import annotations

REQUEST_WINDOW = "1m"
"""The window of the request-load triggers: four samples at the PodMonitor's 15 s interval."""
REQUESTS = "modelserver_requests_total"
DURATION_BUCKETS = "modelserver_request_duration_seconds_bucket"
DURATION_COUNT = "modelserver_request_duration_seconds_count"
REQUEST_SECONDS = "modelserver_requests_in_progress_seconds_total"
ROWS = "modelserver_rows_predicted_total"


def pods(namespace: str, deployment: str) -> str:
    """A label matcher for the pods of one Deployment."""
    return f'namespace="{namespace}",pod=~"{deployment}-[a-z0-9]+-[a-z0-9]+"'


def request_query(metric: str, namespace: str, deployment: str,
                  window: str = REQUEST_WINDOW) -> str:
    """Request load summed over a Deployment's pods, which KEDA divides by the replica count
    (metricType AverageValue) and compares with the target per pod (KServe's meanings):

    - `concurrency`: requests in progress, averaged over `window`: the rate of the
      request-seconds counter (Little's law; a sampled gauge would read about zero).
    - `rps`: inference requests answered per second.
    """
    if metric == "concurrency":
        return f"sum(rate({REQUEST_SECONDS}{{{pods(namespace, deployment)}}}[{window}]))"
    return (f'sum(rate({REQUESTS}{{{pods(namespace, deployment)},'
            f'route="infer"}}[{window}]))')


# Flagger's MetricTemplates: `{{ namespace }}`, `{{ target }}` (the canary Deployment) and
# `{{ interval }}` are Flagger's own template variables.
_CANARY = pods("{{ namespace }}", "{{ target }}") + ',route="infer"'
SUCCESS_RATE = (
    f'100 * sum(rate({REQUESTS}{{{_CANARY},code!~"5.."}}[{{{{ interval }}}}]))'
    f' / sum(rate({REQUESTS}{{{_CANARY}}}[{{{{ interval }}}}]))')
"""Percent of the canary's inference requests answered without a server error (a 4xx is
the client's mistake, not the version's: it counts as a success)."""
LATENCY_P99_MS = (
    "1000 * histogram_quantile(0.99, sum by (le) (rate("
    f"{DURATION_BUCKETS}{{{_CANARY}}}[{{{{ interval }}}}])))")
"""The canary's p99 inference latency, in milliseconds."""
